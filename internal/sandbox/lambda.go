package sandbox

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// Lambda (REST-JSON, /2015-03-31/functions): functions of the OS-only
// runtimes (provided.al2023, provided.al2), whose code is a zip with an
// executable bootstrap, given inline (ZipFile, at most 50 MB) or as an S3
// object of the sandbox (S3Bucket, S3Key); unzipped at most 250 MB. Invoke
// runs the real bootstrap as a child process against a Lambda Runtime API of
// its own (lambdaruntime.go), with the execution role's credentials.

type lambdaFunction struct {
	Name         string            `json:"name"`
	Account      string            `json:"account"`
	Region       string            `json:"region"`
	Runtime      string            `json:"runtime"`
	Role         string            `json:"role"`
	Handler      string            `json:"handler"`
	Description  string            `json:"description,omitempty"`
	Timeout      int               `json:"timeout"`
	Memory       int               `json:"memory"`
	Env          map[string]string `json:"env,omitempty"`
	CodeSha256   string            `json:"codeSha256"`
	CodeSize     int               `json:"codeSize"`
	Policy       string            `json:"policy,omitempty"`
	LastModified time.Time         `json:"lastModified"`
}

func (f *lambdaFunction) arn() string {
	return "arn:aws:lambda:" + f.Region + ":" + f.Account + ":function:" + f.Name
}

// blob names the code among the object bytes: a flat hex name, as theirs.
func (f *lambdaFunction) blob() string {
	return fmt.Sprintf("%x", sha256Sum([]byte("lambda\x00"+f.CodeSha256)))
}

func (f *lambdaFunction) configuration() map[string]any {
	out := map[string]any{"FunctionName": f.Name, "FunctionArn": f.arn(), "Runtime": f.Runtime, "Role": f.Role, "Handler": f.Handler,
		"CodeSize": f.CodeSize, "CodeSha256": f.CodeSha256, "Timeout": f.Timeout, "MemorySize": f.Memory, "Version": "$LATEST",
		"LastModified": f.LastModified.Format("2006-01-02T15:04:05.000-0700"), "State": "Active", "LastUpdateStatus": "Successful",
		"PackageType": "Zip", "Architectures": []string{"x86_64"}, "Description": f.Description}
	if len(f.Env) > 0 {
		out["Environment"] = map[string]any{"Variables": f.Env}
	}
	return out
}

const (
	maxZipFile  = 50 << 20  // a zip given inline
	maxUnzipped = 250 << 20 // the code unzipped
)

var (
	functionNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`) })
	lambdaPathRE   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^/2015-03-31/functions(?:/([^/]+)(?:/(code|configuration|invocations|policy))?)?/?$`)
	})
	lambdaRuntimes = map[string]bool{"provided.al2023": true, "provided.al2": true}
)

func functionKey(account, region, name string) string { return account + "/" + region + "/" + name }

func (s *Sandbox) serveLambda(c *call) error {
	m := lambdaPathRE().FindStringSubmatch(c.r.URL.Path)
	if m == nil {
		return errorf(404, "UnknownOperationException", "The sandbox does not emulate Lambda %s %s", c.r.Method, c.r.URL.Path)
	}
	name, sub := m[1], m[2]
	if a := functionNameFromARN(name); a != "" {
		name = a
	}
	if c.caller.Account == "" {
		return errorf(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	body, err := io.ReadAll(io.LimitReader(c.r.Body, maxZipFile*4/3+1<<20))
	if err != nil {
		return errorf(400, "InvalidRequestContentException", "%v", err)
	}
	// The operation by method and what follows /functions: nothing, the
	// function's name, or one of its sub-resources.
	what := sub
	switch {
	case name == "":
		what = "functions"
	case sub == "":
		what = "function"
	}
	c.action = map[string]string{"POST functions": "CreateFunction", "GET function": "GetFunction", "DELETE function": "DeleteFunction",
		"PUT code": "UpdateFunctionCode", "PUT configuration": "UpdateFunctionConfiguration", "POST invocations": "Invoke",
		"POST policy": "AddPermission", "GET policy": "GetPolicy"}[c.r.Method+" "+what]
	if c.action == "" {
		return errorf(404, "UnknownOperationException", "The sandbox does not emulate Lambda %s %s", c.r.Method, c.r.URL.Path)
	}
	c.readOnly = c.r.Method == http.MethodGet
	var in map[string]any
	if c.action != "Invoke" && len(body) > 0 {
		if json.Unmarshal(body, &in) != nil {
			return errorf(400, "InvalidRequestContentException", "Could not parse request body into json")
		}
	}
	if c.action == "CreateFunction" {
		name = str(in, "FunctionName")
	}
	fnARN := "arn:aws:lambda:" + c.region + ":" + c.caller.Account + ":function:" + name
	if !c.caller.root() {
		action := "lambda:" + c.action // IAM names each operation as the API does, but Invoke
		if c.action == "Invoke" {
			action = "lambda:InvokeFunction"
		}
		s.mu.Lock()
		d := s.identityDecision(c.caller, policy.Request{Caller: c.caller.policyCaller(), Action: action, Resource: fnARN, Context: c.requestContext(nil)})
		s.mu.Unlock()
		if d != policy.Allowed {
			return accessDenied("User: %s is not authorized to perform: %s on resource: %s", c.caller.display(), action, fnARN)
		}
	}
	if c.action == "Invoke" {
		return s.invokeCall(c, name, body)
	}
	s.mu.Lock()
	out, status, err := s.lambdaOp(c, name, in)
	if err == nil && !c.readOnly {
		s.changed()
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	return json.NewEncoder(c.w).Encode(out)
}

func functionNameFromARN(s string) string {
	if !strings.HasPrefix(s, "arn:aws:lambda:") {
		return ""
	}
	parts := strings.Split(s, ":")
	if len(parts) < 7 {
		return ""
	}
	return parts[6]
}

// lambdaOp runs every operation but Invoke. Callers hold s.mu.
func (s *Sandbox) lambdaOp(c *call, name string, in map[string]any) (any, int, error) {
	k := functionKey(c.caller.Account, c.region, name)
	f := s.st.Functions[k]
	notFound := errorf(404, "ResourceNotFoundException", "Function not found: arn:aws:lambda:%s:%s:function:%s", c.region, c.caller.Account, name)
	if f == nil && c.action != "CreateFunction" {
		return nil, 0, notFound
	}
	switch c.action {
	case "CreateFunction":
		if !functionNameRE().MatchString(name) {
			return nil, 0, errorf(400, "InvalidParameterValueException", "1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint", name)
		}
		if f != nil {
			return nil, 0, errorf(409, "ResourceConflictException", "Function already exist: %s", name)
		}
		if rt := str(in, "Runtime"); !lambdaRuntimes[rt] {
			return nil, 0, errorf(400, "InvalidParameterValueException", "The sandbox runs the OS-only runtimes provided.al2023 and provided.al2, not %q", rt)
		}
		f = &lambdaFunction{Name: name, Account: c.caller.Account, Region: c.region, Runtime: str(in, "Runtime"), Handler: str(in, "Handler"), Timeout: 3, Memory: 128}
		if err := s.configureFunction(c, f, in); err != nil {
			return nil, 0, err
		}
		if err := s.functionCode(f, obj(in, "Code")); err != nil {
			return nil, 0, err
		}
		s.st.Functions[k] = f
		return f.configuration(), 201, nil
	case "GetFunction":
		return map[string]any{"Configuration": f.configuration(), "Code": map[string]any{"RepositoryType": "S3", "Location": "sandbox://" + f.blob()}}, 200, nil
	case "DeleteFunction":
		delete(s.st.Functions, k)
		return map[string]any{}, 204, nil
	case "UpdateFunctionCode":
		if err := s.functionCode(f, in); err != nil {
			return nil, 0, err
		}
		f.LastModified = time.Now().UTC()
		return f.configuration(), 200, nil
	case "UpdateFunctionConfiguration":
		if err := s.configureFunction(c, f, in); err != nil {
			return nil, 0, err
		}
		return f.configuration(), 200, nil
	case "AddPermission":
		return s.addPermission(f, in)
	case "GetPolicy":
		if f.Policy == "" {
			return nil, 0, errorf(404, "ResourceNotFoundException", "The resource you requested does not exist.")
		}
		return map[string]any{"Policy": f.Policy, "RevisionId": fmt.Sprintf("%x", sha256.Sum256([]byte(f.Policy)))[:32]}, 200, nil
	}
	return nil, 0, notFound
}

func (s *Sandbox) configureFunction(c *call, f *lambdaFunction, in map[string]any) error {
	if role, ok := in["Role"].(string); ok || f.Role == "" {
		m := roleARNRE().FindStringSubmatch(role)
		if m == nil || s.st.account(m[1]).Roles[m[2]] == nil {
			return errorf(400, "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")
		}
		trust, err := s.parse(s.st.account(m[1]).Roles[m[2]].Trust, policy.Trust)
		if err != nil || trust.Evaluate(policy.Request{Caller: policy.Caller{Service: "lambda.amazonaws.com"}, Action: "sts:AssumeRole", Resource: role}).Decision != policy.Allowed {
			return errorf(400, "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")
		}
		f.Role = role
	}
	if t, ok := in["Timeout"].(float64); ok {
		if t < 1 || t > 900 {
			return errorf(400, "InvalidParameterValueException", "1 validation error detected: Value '%v' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 900", t)
		}
		f.Timeout = int(t)
	}
	if m, ok := in["MemorySize"].(float64); ok {
		if m < 128 || m > 10240 {
			return errorf(400, "InvalidParameterValueException", "1 validation error detected: Value '%v' at 'memorySize' failed to satisfy constraint", m)
		}
		f.Memory = int(m)
	}
	if h, ok := in["Handler"].(string); ok {
		f.Handler = h
	}
	if d, ok := in["Description"].(string); ok {
		f.Description = d
	}
	if env := obj(in, "Environment"); env != nil {
		vars := map[string]string{}
		size := 0
		for k, v := range obj(env, "Variables") {
			vars[k] = fmt.Sprint(v)
			size += len(k) + len(vars[k])
			if strings.HasPrefix(k, "AWS_") && k != "AWS_ENDPOINT_URL" {
				return errorf(400, "InvalidParameterValueException", "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: %s", k)
			}
		}
		if size > 4096 {
			return errorf(400, "InvalidParameterValueException", "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit.")
		}
		f.Env = vars
	}
	f.LastModified = time.Now().UTC()
	return nil
}

// functionCode takes the code of a CreateFunction's Code or an
// UpdateFunctionCode: an inline zip, or an object of a bucket. Callers hold s.mu.
func (s *Sandbox) functionCode(f *lambdaFunction, in map[string]any) error {
	var data []byte
	switch {
	case str(in, "ZipFile") != "":
		var err error
		if data, err = base64.StdEncoding.DecodeString(str(in, "ZipFile")); err != nil {
			return errorf(400, "InvalidParameterValueException", "Could not unzip uploaded file. Please check your file, then try to upload again.")
		}
		if len(data) > maxZipFile {
			return errorf(413, "RequestEntityTooLargeException", "Request must be smaller than 52428800 bytes for the CreateFunction operation")
		}
	case str(in, "S3Bucket") != "":
		b := s.st.Buckets[str(in, "S3Bucket")]
		var v *version
		if b != nil {
			v = findVersion(b, str(in, "S3Key"), str(in, "S3ObjectVersion"))
		}
		if v == nil || v.DeleteMarker {
			return errorf(400, "InvalidParameterValueException", "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist.")
		}
		var err error
		if data, err = readBlob(s.blobs, blobID(b.Name, v.ID, v.Key)); err != nil {
			return err
		}
	default:
		return errorf(400, "InvalidParameterValueException", "Please provide a source for function code.")
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return errorf(400, "InvalidParameterValueException", "Could not unzip uploaded file. Please check your file, then try to upload again.")
	}
	var unzipped uint64
	boot := false
	for _, zf := range zr.File {
		unzipped += zf.UncompressedSize64
		boot = boot || zf.Name == "bootstrap"
	}
	if unzipped > maxUnzipped {
		return errorf(400, "InvalidParameterValueException", "Unzipped size must be smaller than 262144000 bytes")
	}
	if !boot {
		return errorf(400, "InvalidParameterValueException", "the zip has no bootstrap at its root: an OS-only runtime runs it")
	}
	sum := sha256.Sum256(data)
	f.CodeSha256, f.CodeSize = base64.StdEncoding.EncodeToString(sum[:]), len(data)
	return s.blobs.put(f.blob(), data)
}

// addPermission adds a statement to the function's resource policy, as
// AddPermission writes it (a service principal with its SourceArn and
// SourceAccount conditions). Callers hold s.mu.
func (s *Sandbox) addPermission(f *lambdaFunction, in map[string]any) (any, int, error) {
	sid, action, principal := str(in, "StatementId"), str(in, "Action"), str(in, "Principal")
	if sid == "" || action == "" || principal == "" {
		return nil, 0, errorf(400, "InvalidParameterValueException", "StatementId, Action and Principal are required")
	}
	doc := &policy.Document{Version: "2012-10-17", ID: "default"}
	if f.Policy != "" {
		json.Unmarshal([]byte(f.Policy), doc)
	}
	for _, st := range doc.Statements {
		if st.Sid == sid {
			return nil, 0, errorf(409, "ResourceConflictException", "The statement id (%s) provided already exists. Please provide a new statement id, or remove the existing statement.", sid)
		}
	}
	st := policy.Statement{Sid: sid, Effect: policy.Allow, Action: policy.Strings{action}, Resource: policy.Strings{f.arn()}}
	if strings.HasSuffix(principal, ".amazonaws.com") {
		st.Principal = &policy.Principal{Service: policy.Strings{principal}}
	} else {
		st.Principal = &policy.Principal{AWS: policy.Strings{principal}}
	}
	cond := policy.Conditions{}
	if a := str(in, "SourceArn"); a != "" {
		cond["ArnLike"] = map[string]policy.Strings{"AWS:SourceArn": {a}}
	}
	if a := str(in, "SourceAccount"); a != "" {
		cond["StringEquals"] = map[string]policy.Strings{"AWS:SourceAccount": {a}}
	}
	if len(cond) > 0 {
		st.Condition = cond
	}
	doc.Statements = append(doc.Statements, st)
	data, _ := json.Marshal(doc)
	f.Policy = string(data)
	stmt, _ := json.Marshal(st)
	return map[string]any{"Statement": string(stmt)}, 201, nil
}

// invokeCall answers Invoke: RequestResponse waits for the function's answer,
// Event queues it (202).
func (s *Sandbox) invokeCall(c *call, name string, payload []byte) error {
	if len(payload) > 6<<20 {
		return errorf(413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
	}
	s.mu.Lock()
	f := s.st.Functions[functionKey(c.caller.Account, c.region, name)]
	var fc lambdaFunction
	if f != nil {
		fc = *f
	}
	s.mu.Unlock()
	if f == nil {
		return errorf(404, "ResourceNotFoundException", "Function not found: arn:aws:lambda:%s:%s:function:%s", c.region, c.caller.Account, name)
	}
	switch typ := c.r.Header.Get("X-Amz-Invocation-Type"); typ {
	case "Event":
		s.invokeAsync(fc, payload)
		c.w.WriteHeader(202)
		return nil
	case "", "RequestResponse":
	default:
		return errorf(400, "InvalidParameterValueException", "Invocation type %s is not emulated", typ)
	}
	res := s.invoke(c.r.Context(), fc, payload)
	if res.err != nil {
		return res.err
	}
	c.w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if res.functionError != "" {
		c.w.Header().Set("X-Amz-Function-Error", res.functionError)
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(200)
	_, err := c.w.Write(res.payload)
	return err
}

// invokeAsync runs an invocation in the background, as an Event invocation
// or an EventBridge target does; Close waits for it.
func (s *Sandbox) invokeAsync(f lambdaFunction, payload []byte) {
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		res := s.invoke(s.stopContext(), f, payload)
		if res.err != nil || res.functionError != "" {
			s.opts.Logger.Info("lambda: asynchronous invocation failed", "function", f.arn(), "error", res.err, "payload", string(res.payload))
		}
	}()
}
