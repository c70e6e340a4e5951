package sandbox

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

type trail struct {
	Name          string `json:"name"`
	ARN           string `json:"arn"`
	Account       string `json:"account"`
	HomeRegion    string `json:"homeRegion"`
	Bucket        string `json:"bucket"`
	Prefix        string `json:"prefix,omitempty"`
	IncludeGlobal bool   `json:"includeGlobal"`
	MultiRegion   bool   `json:"multiRegion"`
	LogValidation bool   `json:"logValidation"`
	// ValidationSince is when log file validation was last turned on.
	ValidationSince time.Time            `json:"validationSince,omitzero"`
	KMSKey          string               `json:"kmsKey,omitempty"`
	Logging         bool                 `json:"logging"`
	StartedLogging  time.Time            `json:"startedLogging,omitzero"`
	StoppedLogging  time.Time            `json:"stoppedLogging,omitzero"`
	LatestDelivery  time.Time            `json:"latestDelivery,omitzero"`
	DeliveryError   string               `json:"deliveryError,omitempty"`
	LatestDigest    time.Time            `json:"latestDigest,omitzero"`
	DigestError     string               `json:"digestError,omitempty"`
	LatestAttempt   time.Time            `json:"latestAttempt,omitzero"`
	Chains          map[string]*chain    `json:"chains"` // per delivering region
	LastDigestEnd   map[string]time.Time `json:"lastDigestEnd,omitempty"`
	Tags            []tag                `json:"tags,omitempty"`
}

// chain is the state of one digest chain (account, region, trail).
type chain struct {
	Start         time.Time   `json:"start"` // start of the next digest's period
	PrevBucket    string      `json:"prevBucket,omitempty"`
	PrevKey       string      `json:"prevKey,omitempty"`
	PrevHash      string      `json:"prevHash,omitempty"`
	PrevSignature string      `json:"prevSignature,omitempty"`
	Logs          []digestLog `json:"logs,omitempty"` // delivered since the last digest
}

type digestLog struct {
	Bucket string    `json:"s3Bucket"`
	Key    string    `json:"s3Object"`
	Hash   string    `json:"hashValue"`
	Oldest time.Time `json:"oldest"`
	Newest time.Time `json:"newest"`
}

// cloudtrailActions are CloudTrail's operations; each takes s.mu itself.
func (s *Sandbox) cloudtrailActions() map[string]jsonHandler {
	return map[string]jsonHandler{
		"CreateTrail": s.ctCreateTrail, "UpdateTrail": s.ctUpdateTrail, "DeleteTrail": s.ctDeleteTrail,
		"GetTrail": s.ctGetTrail, "DescribeTrails": s.ctDescribeTrails, "ListTrails": s.ctListTrails,
		"StartLogging": s.ctStartLogging, "StopLogging": s.ctStopLogging, "GetTrailStatus": s.ctGetTrailStatus,
		"ListPublicKeys": s.ctListPublicKeys, "GetEventSelectors": s.ctGetEventSelectors,
	}
}

func str(in map[string]any, k string) string {
	v, _ := in[k].(string)
	return v
}

func boolean(in map[string]any, k string, def bool) bool {
	if v, ok := in[k].(bool); ok {
		return v
	}
	return def
}

var trailNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,126}[A-Za-z0-9]$`) })

// FindTrail resolves a name or ARN to a trail visible from the caller's region.
// Callers hold s.mu.
func (s *Sandbox) FindTrail(c *call, name string) (*trail, error) {
	a := s.st.account(c.caller.Account)
	if strings.HasPrefix(name, "arn:") {
		if t := a.Trails[name]; t != nil {
			return t, nil
		}
	} else {
		for _, t := range a.Trails {
			if t.Name == name && (t.HomeRegion == c.region || t.MultiRegion) {
				return t, nil
			}
		}
	}
	return nil, errorf(400, "TrailNotFoundException", "Unknown trail: %s for the user: %s", name, c.caller.Account)
}

func (s *Sandbox) ctCreateTrail(c *call, in map[string]any) (any, error) {
	name := str(in, "Name")
	if !trailNameRE().MatchString(name) || strings.Contains(name, "..") || strings.Contains(name, "__") || strings.Contains(name, "--") ||
		strings.Contains(name, "._") || strings.Contains(name, "_.") || strings.Contains(name, ".-") || strings.Contains(name, "-.") ||
		strings.Contains(name, "_-") || strings.Contains(name, "-_") {
		return nil, errorf(400, "InvalidTrailNameException", "Trail name %s is not valid.", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	arn := "arn:aws:cloudtrail:" + c.region + ":" + c.caller.Account + ":trail/" + name
	a := s.st.account(c.caller.Account)
	for _, t := range a.Trails {
		if t.Name == name && t.HomeRegion == c.region {
			return nil, errorf(400, "TrailAlreadyExistsException", "Trail %s already exists for customer: %s", name, c.caller.Account)
		}
	}
	t := &trail{Name: name, ARN: arn, Account: c.caller.Account, HomeRegion: c.region, IncludeGlobal: true, Chains: map[string]*chain{}}
	if err := s.applyTrailSettings(c, t, in); err != nil {
		return nil, err
	}
	a.Trails[arn] = t
	s.changed()
	return trailJSON(t), nil
}

func (s *Sandbox) ctUpdateTrail(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.homeTrail(c, in)
	if err != nil {
		return nil, err
	}
	cp := *t
	if err := s.applyTrailSettings(c, &cp, in); err != nil {
		return nil, err
	}
	if cp.LogValidation && !t.LogValidation {
		cp.Chains = map[string]*chain{} // turning validation on starts new chains
		cp.ValidationSince = time.Now().UTC()
	}
	*t = cp
	s.changed()
	return trailJSON(t), nil
}

// applyTrailSettings validates and sets the settings given to CreateTrail or UpdateTrail.
func (s *Sandbox) applyTrailSettings(c *call, t *trail, in map[string]any) error {
	if _, ok := in["S3BucketName"]; ok {
		t.Bucket = str(in, "S3BucketName")
	}
	if _, ok := in["S3KeyPrefix"]; ok {
		t.Prefix = str(in, "S3KeyPrefix")
	}
	t.IncludeGlobal = boolean(in, "IncludeGlobalServiceEvents", t.IncludeGlobal)
	t.MultiRegion = boolean(in, "IsMultiRegionTrail", t.MultiRegion)
	t.LogValidation = boolean(in, "EnableLogFileValidation", t.LogValidation)
	if _, ok := in["KmsKeyId"]; ok {
		t.KMSKey = str(in, "KmsKeyId")
		if t.KMSKey != "" && !strings.HasPrefix(t.KMSKey, "arn:aws:kms:") {
			if strings.HasPrefix(t.KMSKey, "alias/") {
				t.KMSKey = "arn:aws:kms:" + t.HomeRegion + ":" + t.Account + ":" + t.KMSKey
			} else if len(t.KMSKey) == 36 {
				t.KMSKey = "arn:aws:kms:" + t.HomeRegion + ":" + t.Account + ":key/" + t.KMSKey
			} else {
				return errorf(400, "KmsKeyNotFoundException", "KMS key not found: %s", t.KMSKey)
			}
		}
	}
	if t.MultiRegion && !t.IncludeGlobal {
		return errorf(400, "InvalidParameterCombinationException", "Multi-Region trail must include global service events.")
	}
	if len(t.Prefix) > 200 {
		return errorf(400, "InvalidS3PrefixException", "Prefix is too long")
	}
	b := s.st.Buckets[t.Bucket]
	if b == nil {
		return errorf(400, "S3BucketDoesNotExistException", "S3 bucket %s does not exist.", t.Bucket)
	}
	if reason := s.deliveryDenied(t, b, "probe.json.gz"); reason != "" {
		return errorf(400, "InsufficientS3BucketPolicyException", "Incorrect S3 bucket policy is detected for bucket: %s", t.Bucket)
	}
	return nil
}

// deliveryDenied checks, as CloudTrail does, that the bucket policy lets the
// service read the bucket ACL and write under the trail's prefix. Callers hold s.mu.
func (s *Sandbox) deliveryDenied(t *trail, b *bucket, name string) string {
	as := &call{secure: true, caller: caller{Service: "cloudtrail.amazonaws.com"}}
	ctx := map[string][]string{"aws:SourceArn": {t.ARN}, "aws:SourceAccount": {t.Account}}
	if err := s.authorize(as, b, "s3:GetBucketAcl", bucketARN(b.Name), ctx); err != nil {
		return "AccessDenied"
	}
	ctx["s3:x-amz-acl"] = []string{"bucket-owner-full-control"}
	if err := s.authorize(as, b, "s3:PutObject", bucketARN(b.Name)+"/"+keyPrefix(t)+"AWSLogs/"+t.Account+"/"+name, ctx); err != nil {
		return "AccessDenied"
	}
	return ""
}

func keyPrefix(t *trail) string {
	if t.Prefix == "" {
		return ""
	}
	return t.Prefix + "/"
}

// homeTrail is the trail a request names, which it may change only from the
// trail's home region. Callers hold s.mu.
func (s *Sandbox) homeTrail(c *call, in map[string]any) (*trail, error) {
	t, err := s.FindTrail(c, str(in, "Name"))
	if err != nil {
		return nil, err
	}
	if t.HomeRegion != c.region {
		return nil, errorf(400, "InvalidHomeRegionException", "This operation must be called from the trail's home region (%s).", t.HomeRegion)
	}
	return t, nil
}

func (s *Sandbox) ctDeleteTrail(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.homeTrail(c, in)
	if err != nil {
		return nil, err
	}
	delete(s.st.account(c.caller.Account).Trails, t.ARN)
	s.changed()
	return map[string]any{}, nil
}

func trailJSON(t *trail) map[string]any {
	m := map[string]any{
		"Name": t.Name, "S3BucketName": t.Bucket, "IncludeGlobalServiceEvents": t.IncludeGlobal,
		"IsMultiRegionTrail": t.MultiRegion, "HomeRegion": t.HomeRegion, "TrailARN": t.ARN,
		"LogFileValidationEnabled": t.LogValidation, "HasCustomEventSelectors": false, "HasInsightSelectors": false,
		"IsOrganizationTrail": false,
	}
	if t.Prefix != "" {
		m["S3KeyPrefix"] = t.Prefix
	}
	if t.KMSKey != "" {
		m["KmsKeyId"] = t.KMSKey
	}
	return m
}

func (s *Sandbox) ctGetTrail(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.FindTrail(c, str(in, "Name"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"Trail": trailJSON(t)}, nil
}

func (s *Sandbox) ctDescribeTrails(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]bool{}
	if l, ok := in["trailNameList"].([]any); ok {
		for _, n := range l {
			if n, ok := n.(string); ok {
				names[n] = true
			}
		}
	}
	shadows := boolean(in, "includeShadowTrails", true)
	list := []map[string]any{}
	for _, t := range s.sortedTrails(c.caller.Account) {
		if len(names) > 0 && !names[t.Name] && !names[t.ARN] {
			continue
		}
		if t.HomeRegion != c.region && !(t.MultiRegion && shadows) {
			continue
		}
		list = append(list, trailJSON(t))
	}
	return map[string]any{"trailList": list}, nil
}

func (s *Sandbox) sortedTrails(account string) []*trail {
	var out []*trail
	for _, t := range s.st.account(account).Trails {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ARN < out[j].ARN })
	return out
}

func (s *Sandbox) ctListTrails(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []map[string]any{}
	for _, t := range s.sortedTrails(c.caller.Account) {
		list = append(list, map[string]any{"TrailARN": t.ARN, "Name": t.Name, "HomeRegion": t.HomeRegion})
	}
	return map[string]any{"Trails": list}, nil
}

func (s *Sandbox) ctStartLogging(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.homeTrail(c, in)
	if err != nil {
		return nil, err
	}
	if !t.Logging {
		t.Logging, t.StartedLogging = true, time.Now().UTC()
		t.Chains = map[string]*chain{} // a stopped chain never resumes: the next digest starts a new one
	}
	s.changed()
	return map[string]any{}, nil
}

func (s *Sandbox) ctStopLogging(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	t, err := s.homeTrail(c, in)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	wasLogging := t.Logging
	s.mu.Unlock()
	if wasLogging {
		// Deliver what was recorded and close each chain with a final digest, as
		// CloudTrail does when logging stops.
		s.deliver(t.ARN, true)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logging, t.StoppedLogging = false, time.Now().UTC()
	s.changed()
	return map[string]any{}, nil
}

func epoch(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return float64(t.UnixNano()) / 1e9
}

func (s *Sandbox) ctGetTrailStatus(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.FindTrail(c, str(in, "Name"))
	if err != nil {
		return nil, err
	}
	out := map[string]any{"IsLogging": t.Logging}
	set := func(k string, v any) {
		if v != nil && v != "" {
			out[k] = v
		}
	}
	set("LatestDeliveryTime", epoch(t.LatestDelivery))
	set("LatestDeliveryError", t.DeliveryError)
	set("LatestDigestDeliveryTime", epoch(t.LatestDigest))
	set("LatestDigestDeliveryError", t.DigestError)
	set("StartLoggingTime", epoch(t.StartedLogging))
	set("StopLoggingTime", epoch(t.StoppedLogging))
	if !t.LatestAttempt.IsZero() {
		out["LatestDeliveryAttemptTime"] = t.LatestAttempt.Format("2006-01-02T15:04:05Z")
		out["LatestDeliveryAttemptSucceeded"] = t.LatestDelivery.Format("2006-01-02T15:04:05Z")
	}
	if !t.StartedLogging.IsZero() {
		out["TimeLoggingStarted"] = t.StartedLogging.Format("2006-01-02T15:04:05Z")
	}
	if !t.StoppedLogging.IsZero() {
		out["TimeLoggingStopped"] = t.StoppedLogging.Format("2006-01-02T15:04:05Z")
	}
	return out, nil
}

func (s *Sandbox) ctGetEventSelectors(c *call, in map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.FindTrail(c, str(in, "TrailName"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"TrailARN": t.ARN, "EventSelectors": []any{map[string]any{
		"ReadWriteType": "All", "IncludeManagementEvents": true, "DataResources": []any{}, "ExcludeManagementEventSources": []any{}}}}, nil
}

// ListPublicKeys answers for the request's region: keys are per region, not
// per account. As AWS documents it, it returns the keys that signed digests
// in [StartTime, EndTime]; without StartTime that is now, so only the
// current key; without EndTime, now.
func (s *Sandbox) ctListPublicKeys(c *call, in map[string]any) (any, error) {
	if _, err := s.signingKey(c.region); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	start, end := now, now
	for name, t := range map[string]*time.Time{"StartTime": &start, "EndTime": &end} {
		switch v := in[name].(type) {
		case nil:
		case float64:
			*t = time.Unix(0, int64(v*1e9)).UTC()
		default:
			return nil, errorf(400, "SerializationException", "%s must be a timestamp", name)
		}
	}
	if start.After(end) {
		return nil, errorf(400, "InvalidTimeRangeException", "Start time must be before end time.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []any{}
	for _, k := range s.keys[c.region] {
		until := k.retired
		if until.IsZero() {
			until = k.created.Add(keyLifetime)
			if s.opts.SigningKey != nil { // a fixed key never rotates
				until = time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)
			}
		}
		if k.created.After(end) || until.Before(start) {
			continue
		}
		pub := publicDER(k.priv)
		list = append(list, map[string]any{"Value": base64.StdEncoding.EncodeToString(pub),
			"ValidityStartTime": epoch(k.created), "ValidityEndTime": epoch(until), "Fingerprint": fingerprint(pub)})
	}
	return map[string]any{"PublicKeyList": list}, nil
}

// StopLoggingQuietly stops a trail as no API call does: nothing is recorded
// and EventBridge hears nothing, as when logging stops for a reason no event
// tells (what watch's scheduled verdict exists to notice).
func (s *Sandbox) StopLoggingQuietly(account, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.st.account(account).Trails {
		if t.Name == name || t.ARN == name {
			t.Logging, t.StoppedLogging = false, time.Now().UTC()
			s.changed()
			return nil
		}
	}
	return fmt.Errorf("account %s has no trail %s", account, name)
}
