package sandbox

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// caller is who made a request.
type caller struct {
	Account     string // 12 digits; empty for services and anonymous callers
	ARN         string // policy ARN: arn:aws:iam::ACCT:root or the role's ARN
	Session     string // for role sessions: arn:aws:sts::ACCT:assumed-role/ROLE/NAME
	UniqueID    string // role ID for role sessions
	Service     string // e.g. cloudtrail.amazonaws.com for requests the sandbox makes as a service
	User        string // IAM user name, for requests signed with a user's access key
	AccessKey   string
	SessionName string
}

func (c caller) root() bool { return c.Account != "" && c.Session == "" && c.User == "" }

// call is one request in flight.
type call struct {
	w         http.ResponseWriter
	r         *http.Request
	service   string
	region    string
	action    string
	caller    caller
	secure    bool
	requestID string
	sourceIP  string
	start     time.Time
	status    int
	// CloudTrail event fields, filled by handlers.
	params          map[string]any
	response        map[string]any
	errCode         string
	errMsg          string
	readOnly        bool
	resourceAccount string // account whose trails record the event; the caller's by default
}

// awsError is an error in AWS's terms.
type awsError struct {
	Status   int
	Code     string
	Message  string
	Resource string
}

func (e *awsError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, a ...any) *awsError {
	return &awsError{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

func accessDenied(format string, a ...any) *awsError {
	return errorf(403, "AccessDenied", format, a...)
}

func (s *Sandbox) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if d := time.Duration(s.latency.Load()); d > 0 {
		time.Sleep(d)
	}
	if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
		s.serveControl(w, r)
		return
	}
	if d := s.holdBack(r); d > 0 {
		time.Sleep(d)
	}
	c := &call{w: w, r: r, requestID: randomID("", 16), start: time.Now(), status: 200}
	c.sourceIP, _, _ = net.SplitHostPort(r.RemoteAddr)
	c.secure = r.TLS != nil || (!s.opts.InsecureHTTP && isLoopback(c.sourceIP))
	cred := parseCredential(r)
	c.service, c.region = cred.service, cred.region
	if c.region == "" {
		c.region = "us-east-1"
	}
	if c.service == "" {
		c.service = guessService(r)
	}
	w.Header().Set("x-amz-request-id", c.requestID)
	w.Header().Set("x-amzn-RequestId", c.requestID)
	// A change is acknowledged only once the data dir holds it: the answer
	// waits in a buffer until then.
	var held *heldResponse
	if s.opts.DataDir != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		held = &heldResponse{header: http.Header{}, status: 200}
		c.w = held
	}
	var err error
	if c.caller, err = s.resolveCaller(cred); err == nil {
		if rate := s.currentFaultRate(); rate > 0 && s.chance(rate) {
			err = s.fault(c)
		} else {
			err = s.dispatch(c)
		}
	}
	if err != nil {
		s.writeError(c, err)
	}
	if held != nil {
		if derr := s.durable(); derr != nil {
			held = &heldResponse{header: http.Header{}}
			c.w = held
			s.writeError(c, errorf(500, "InternalError", "the sandbox could not save its state: %v", derr))
		}
		held.send(w)
	}
	s.afterCall(c)
}

// heldResponse keeps an answer until it may be sent.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (h *heldResponse) Header() http.Header { return h.header }
func (h *heldResponse) WriteHeader(status int) {
	if !h.wrote {
		h.status, h.wrote = status, true
	}
}
func (h *heldResponse) Write(p []byte) (int, error) {
	h.WriteHeader(200)
	return h.body.Write(p)
}

func (h *heldResponse) send(w http.ResponseWriter) {
	for k, v := range h.header {
		w.Header()[k] = v
	}
	w.WriteHeader(h.status)
	w.Write(h.body.Bytes())
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

func (s *Sandbox) dispatch(c *call) error {
	switch c.service {
	case "s3":
		return s.serveS3(c)
	case "iam":
		return s.serveQuery(c, "https://iam.amazonaws.com/doc/2010-05-08/", s.iamHandlers)
	case "sts":
		return s.serveQuery(c, "https://sts.amazonaws.com/doc/2011-06-15/", s.stsHandlers)
	case "cloudformation":
		return s.serveQuery(c, "http://cloudformation.amazonaws.com/doc/2010-05-15/", s.cfnHandlers)
	case "sns":
		return s.serveQuery(c, snsNamespace, s.snsHandlers)
	case "glue", "athena", "cloudtrail", "events":
		return s.serveJSON(c, s.jsonServices[c.service])
	case "lambda":
		return s.serveLambda(c)
	case "access-analyzer":
		return s.serveAccessAnalyzer(c)
	}
	return errorf(400, "UnknownService", "the sandbox does not emulate service %q", c.service)
}

// fault answers with throttling or an internal error in the service's own terms.
func (s *Sandbox) fault(c *call) error {
	c.action = "Fault"
	if s.chance(0.5) {
		return errorf(500, "InternalError", "We encountered an internal error. Please try again.")
	}
	switch c.service {
	case "s3":
		return errorf(503, "SlowDown", "Please reduce your request rate.")
	case "cloudtrail":
		return errorf(400, "ThrottlingException", "Rate exceeded")
	}
	return errorf(400, "Throttling", "Rate exceeded")
}

// credential is what a request says about its signer.
type credential struct {
	accessKey, region, service, token string
	present                           bool
}

// parseCredential reads the SigV4 Authorization header or presigned query.
// Signatures are not checked: the sandbox trusts the access key id, as LocalStack does.
func parseCredential(r *http.Request) credential {
	cr := credential{token: r.Header.Get("X-Amz-Security-Token")}
	scope := ""
	if auth := r.Header.Get("Authorization"); auth != "" {
		cr.present = true
		if rest, ok := strings.CutPrefix(auth, "AWS "); ok { // SigV2
			cr.accessKey, _, _ = strings.Cut(rest, ":")
			cr.service = ""
			return cr
		}
		for _, part := range strings.Split(auth, ",") {
			part = strings.TrimSpace(part)
			if i := strings.Index(part, "Credential="); i >= 0 {
				scope = part[i+len("Credential="):]
			}
		}
	} else if q := r.URL.Query(); q.Get("X-Amz-Credential") != "" {
		cr.present = true
		scope = q.Get("X-Amz-Credential")
		if cr.token == "" {
			cr.token = q.Get("X-Amz-Security-Token")
		}
	} else if q.Get("AWSAccessKeyId") != "" {
		cr.present = true
		cr.accessKey = q.Get("AWSAccessKeyId")
		return cr
	}
	parts := strings.Split(scope, "/")
	if len(parts) == 5 {
		cr.accessKey, cr.region, cr.service = parts[0], parts[2], parts[3]
	} else if scope != "" {
		cr.accessKey = parts[0]
	}
	return cr
}

func guessService(r *http.Request) string {
	switch t := r.Header.Get("X-Amz-Target"); {
	case strings.Contains(t, "CloudTrail"):
		return "cloudtrail"
	case strings.HasPrefix(t, "AWSGlue."):
		return "glue"
	case strings.HasPrefix(t, "AmazonAthena."):
		return "athena"
	case strings.HasPrefix(t, "AWSEvents."):
		return "events"
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		switch r.URL.Query().Get("Version") {
		case "2010-05-08":
			return "iam"
		case "2011-06-15":
			return "sts"
		case "2010-05-15":
			return "cloudformation"
		case "2010-03-31":
			return "sns"
		}
	}
	// The SubscribeURL and UnsubscribeURL of SNS messages are plain GETs.
	if q := r.URL.Query(); r.Method == http.MethodGet && (q.Get("Action") == "ConfirmSubscription" || q.Get("Action") == "Unsubscribe") {
		return "sns"
	}
	return "s3"
}

// resolveCaller maps an access key to a principal: 12 digits act as that account's
// root (LocalStack's convention), ASIA... keys are AssumeRole sessions.
func (s *Sandbox) resolveCaller(cr credential) (caller, error) {
	if !cr.present {
		return caller{}, nil // anonymous
	}
	k := cr.accessKey
	if isAccountID(k) {
		return caller{Account: k, ARN: "arn:aws:iam::" + k + ":root", AccessKey: k}, nil
	}
	if strings.HasPrefix(k, "ASIA") {
		s.mu.Lock()
		sess := s.st.Sessions[k]
		s.mu.Unlock()
		if sess == nil {
			return caller{}, errorf(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		}
		if time.Now().After(sess.Expires) {
			return caller{}, errorf(400, "ExpiredToken", "The security token included in the request is expired")
		}
		return caller{
			Account: sess.Account, ARN: "arn:aws:iam::" + sess.Account + ":role/" + sess.Role,
			Session:  "arn:aws:sts::" + sess.Account + ":assumed-role/" + sess.Role + "/" + sess.Name,
			UniqueID: sess.RoleID, AccessKey: k, SessionName: sess.Name,
		}, nil
	}
	if strings.HasPrefix(k, "AKIA") {
		s.mu.Lock()
		defer s.mu.Unlock()
		if uk := s.st.Keys[k]; uk != nil {
			if u := s.st.account(uk.Account).Users[uk.User]; u != nil {
				return caller{Account: uk.Account, ARN: "arn:aws:iam::" + uk.Account + ":user" + u.Path + u.Name, UniqueID: u.ID, User: u.Name, AccessKey: k}, nil
			}
		}
	}
	a := s.opts.DefaultAccount
	return caller{Account: a, ARN: "arn:aws:iam::" + a + ":root", AccessKey: k}, nil
}

func isAccountID(s string) bool { return len(s) == 12 && strings.Trim(s, "0123456789") == "" }

func (s *Sandbox) writeError(c *call, err error) {
	e, ok := err.(*awsError)
	if !ok {
		e = errorf(500, "InternalError", "%v", err)
	}
	c.status, c.errCode, c.errMsg = e.Status, e.Code, e.Message
	h := c.w.Header()
	switch c.service {
	case "cloudtrail", "glue", "athena", "events", "lambda", "access-analyzer":
		h.Set("Content-Type", "application/x-amz-json-1.1")
		h.Set("X-Amzn-ErrorType", e.Code)
		c.w.WriteHeader(e.Status)
		json.NewEncoder(c.w).Encode(map[string]string{"__type": e.Code, "message": e.Message})
	case "s3":
		h.Set("Content-Type", "application/xml")
		c.w.WriteHeader(e.Status)
		if c.r.Method == http.MethodHead {
			return
		}
		type s3Error struct {
			XMLName   xml.Name `xml:"Error"`
			Code      string
			Message   string
			Resource  string `xml:",omitempty"`
			RequestID string `xml:"RequestId"`
		}
		io.WriteString(c.w, xml.Header)
		xml.NewEncoder(c.w).Encode(s3Error{Code: e.Code, Message: e.Message, Resource: e.Resource, RequestID: c.requestID})
	default:
		h.Set("Content-Type", "text/xml")
		c.w.WriteHeader(e.Status)
		kind := "Sender"
		if e.Status >= 500 {
			kind = "Receiver"
		}
		fmt.Fprintf(c.w, `<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
			kind, xmlEscape(e.Code), xmlEscape(e.Message), c.requestID)
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeXML writes v as the S3 response body with the given root element.
func writeXML(c *call, root string, v any) error {
	c.w.Header().Set("Content-Type", "application/xml")
	c.w.WriteHeader(c.status)
	io.WriteString(c.w, xml.Header)
	enc := xml.NewEncoder(c.w)
	return enc.EncodeElement(v, xml.StartElement{Name: xml.Name{Local: root}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: "http://s3.amazonaws.com/doc/2006-03-01/"}}})
}

// queryHandler handles one action of a Query-protocol service (IAM, STS,
// CloudFormation) and returns the <ActionResult> content, or nil for none.
type queryHandler func(c *call, p url.Values) (any, error)

func (s *Sandbox) serveQuery(c *call, ns string, actions map[string]queryHandler) error {
	if err := c.r.ParseForm(); err != nil {
		return errorf(400, "MalformedQueryString", "%v", err)
	}
	p := c.r.Form
	c.action = p.Get("Action")
	h, ok := actions[c.action]
	if !ok {
		return errorf(400, "InvalidAction", "Could not find operation %s for version %s", c.action, p.Get("Version"))
	}
	if c.caller.Account == "" && !anonymousActions[c.service+":"+c.action] {
		return errorf(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	c.params = map[string]any{}
	for k, v := range p {
		if k != "Action" && k != "Version" && len(v) > 0 && !strings.Contains(k, "Policy") && k != "TemplateBody" {
			c.params[lowerFirst(k)] = v[0]
		}
	}
	res, err := h(c, p)
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "text/xml")
	c.w.WriteHeader(200)
	fmt.Fprintf(c.w, `<%sResponse xmlns="%s">`, c.action, ns)
	if res != nil {
		enc := xml.NewEncoder(c.w)
		if err := enc.EncodeElement(res, xml.StartElement{Name: xml.Name{Local: c.action + "Result"}}); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.w, `<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, c.requestID, c.action)
	return nil
}

// anonymousActions need no credentials: the token or the subscription ARN in an
// SNS message is the proof.
var anonymousActions = map[string]bool{"sns:ConfirmSubscription": true, "sns:Unsubscribe": true}

// recordedParams are a JSON request's parameters as CloudTrail records them:
// the request's members in lower camel case ({"name": ...} for StopLogging's
// Name), which is what EventBridge patterns on requestParameters match.
func recordedParams(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[lowerFirst(k)] = v
	}
	return out
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// members reads a Query-protocol list: Name.member.1, Name.member.2, ...
func members(p url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[fmt.Sprintf("%s.member.%d", name, i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func required(p url.Values, names ...string) error {
	for _, n := range names {
		if p.Get(n) == "" {
			return errorf(400, "ValidationError", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", lowerFirst(n))
		}
	}
	return nil
}
