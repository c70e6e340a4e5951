// Package search finds CloudTrail events in an archive without an index: it
// prunes objects by the key layout (account, region, day, and the delivery
// minute in the file name), reads the rest in parallel, tests cheap byte
// conditions on each file and each record before decoding anything, and
// decodes only the records that can match.
package search

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Filter says which events match; every field set must hold.
type Filter struct {
	EventNames  []string // any of them
	EventSource string
	Principal   string // a substring of userIdentity.arn or of a user name
	AccessKey   string
	SourceIP    string
	AnyError    bool
	ErrorCode   string
	Resource    string // a substring of a resource ARN or of requestParameters
	// Accounts and Regions match the archive folder an event lies in
	// (AWSLogs/ACCOUNT/CloudTrail/REGION/), or, outside that layout, the
	// event's recipientAccountId and awsRegion.
	Accounts []string
	Regions  []string
	// Since (inclusive) and Until (exclusive) bound eventTime; zero: open.
	Since, Until time.Time
}

// Event is the part of a CloudTrail record search reads to decide and to show.
type Event struct {
	EventTime          string          `json:"eventTime"`
	EventName          string          `json:"eventName"`
	EventSource        string          `json:"eventSource"`
	AWSRegion          string          `json:"awsRegion"`
	RecipientAccountID string          `json:"recipientAccountId"`
	SourceIPAddress    string          `json:"sourceIPAddress"`
	ErrorCode          string          `json:"errorCode"`
	UserIdentity       UserIdentity    `json:"userIdentity"`
	Resources          []Resource      `json:"resources"`
	RequestParameters  json.RawMessage `json:"requestParameters"`
}

// UserIdentity is who made the call.
type UserIdentity struct {
	Type           string `json:"type"`
	PrincipalID    string `json:"principalId"`
	ARN            string `json:"arn"`
	AccountID      string `json:"accountId"`
	AccessKeyID    string `json:"accessKeyId"`
	UserName       string `json:"userName"`
	InvokedBy      string `json:"invokedBy"`
	SessionContext struct {
		SessionIssuer struct {
			ARN      string `json:"arn"`
			UserName string `json:"userName"`
		} `json:"sessionIssuer"`
	} `json:"sessionContext"`
}

// Resource is one entry of an event's resources.
type Resource struct {
	ARN string `json:"ARN"`
}

// Principal is who an event names as its caller, for people: the ARN, else a
// user name, else the service that acted (service events have no ARN).
func (e *Event) Principal() string {
	u := e.UserIdentity
	for _, s := range []string{u.ARN, u.UserName, u.SessionContext.SessionIssuer.ARN, u.InvokedBy, u.PrincipalID, u.Type} {
		if s != "" {
			return s
		}
	}
	return ""
}

// Time parses eventTime (zero when it does not parse).
func (e *Event) Time() time.Time {
	t, _ := time.Parse(time.RFC3339, e.EventTime)
	return t
}

// match decides on a decoded event. account and region are the folder's,
// or "" outside the archive layout.
func (f *Filter) match(e *Event, account, region string) bool {
	return f.matchTop(e, account, region) && f.matchDeep(e)
}

// field points at the Event field of a top-level key that matchTop reads.
func (e *Event) field(key string) *string {
	switch key {
	case "eventTime":
		return &e.EventTime
	case "eventName":
		return &e.EventName
	case "eventSource":
		return &e.EventSource
	case "awsRegion":
		return &e.AWSRegion
	case "recipientAccountId":
		return &e.RecipientAccountID
	case "sourceIPAddress":
		return &e.SourceIPAddress
	case "errorCode":
		return &e.ErrorCode
	}
	return nil
}

// deep reports whether the filter reads fields below the top level.
func (f *Filter) deep() bool { return f.Principal != "" || f.AccessKey != "" || f.Resource != "" }

// matchTop decides on the top-level fields alone.
func (f *Filter) matchTop(e *Event, account, region string) bool {
	if account == "" {
		account = e.RecipientAccountID
	}
	if region == "" {
		region = e.AWSRegion
	}
	switch {
	case len(f.Accounts) > 0 && !slices.Contains(f.Accounts, account),
		len(f.Regions) > 0 && !slices.Contains(f.Regions, region),
		len(f.EventNames) > 0 && !slices.Contains(f.EventNames, e.EventName),
		f.EventSource != "" && e.EventSource != f.EventSource,
		f.SourceIP != "" && e.SourceIPAddress != f.SourceIP,
		f.AnyError && e.ErrorCode == "",
		f.ErrorCode != "" && e.ErrorCode != f.ErrorCode:
		return false
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		t := e.Time()
		if t.IsZero() || (!f.Since.IsZero() && t.Before(f.Since)) || (!f.Until.IsZero() && !t.Before(f.Until)) {
			return false
		}
	}
	return true
}

// matchDeep decides on the fields below the top level (the event must be decoded).
func (f *Filter) matchDeep(e *Event) bool {
	if f.AccessKey != "" && e.UserIdentity.AccessKeyID != f.AccessKey {
		return false
	}
	if f.Principal != "" {
		u := e.UserIdentity
		if !strings.Contains(u.ARN, f.Principal) && !strings.Contains(u.UserName, f.Principal) &&
			!strings.Contains(u.SessionContext.SessionIssuer.UserName, f.Principal) {
			return false
		}
	}
	return f.Resource == "" || e.mentions(f.Resource)
}

// mentions reports whether a resource ARN or the request parameters contain s.
func (e *Event) mentions(s string) bool {
	for _, r := range e.Resources {
		if strings.Contains(r.ARN, s) {
			return true
		}
	}
	if len(e.RequestParameters) == 0 {
		return false
	}
	if bytes.Contains(e.RequestParameters, []byte(s)) {
		return true
	}
	// The parameters as JSON may escape what the user typed; compare decoded text.
	var v any
	if json.Unmarshal(e.RequestParameters, &v) != nil {
		return false
	}
	return containsString(v, s)
}

func containsString(v any, s string) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, s)
	case map[string]any:
		for _, y := range x {
			if containsString(y, s) {
				return true
			}
		}
	case []any:
		for _, y := range x {
			if containsString(y, s) {
				return true
			}
		}
	}
	return false
}

// needles are byte strings a record must contain to possibly match: each
// group needs one of its members. They are tested on whole files first, then
// on each record, before any JSON is decoded.
type needles [][][]byte

func (f *Filter) needles() needles {
	var n needles
	quoted := func(values ...string) {
		var g [][]byte
		for _, v := range values {
			if !plain(v) {
				return // JSON might escape it: no shortcut for this filter
			}
			g = append(g, []byte(`"`+v+`"`))
		}
		n = append(n, g)
	}
	if len(f.EventNames) > 0 {
		quoted(f.EventNames...)
	}
	if f.EventSource != "" {
		quoted(f.EventSource)
	}
	if f.AccessKey != "" {
		quoted(f.AccessKey)
	}
	if f.SourceIP != "" {
		quoted(f.SourceIP)
	}
	if f.ErrorCode != "" {
		quoted(f.ErrorCode)
	}
	if f.AnyError {
		n = append(n, [][]byte{[]byte(`"errorCode"`)})
	}
	for _, sub := range []string{f.Principal, f.Resource} {
		if sub != "" && plain(sub) {
			n = append(n, [][]byte{[]byte(sub)})
		}
	}
	return n
}

// plain reports whether JSON writers leave s as it is: printable ASCII
// without quotes, backslashes or the characters some encoders escape.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// in reports whether b contains one member of every group.
func (n needles) in(b []byte) bool {
	for _, g := range n {
		found := false
		for _, x := range g {
			if bytes.Contains(b, x) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
