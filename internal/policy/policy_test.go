package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// archivePolicy is the compact archive layout of AWS-FACTS.md section 4 plus the TLS deny.
const archivePolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
     "Resource": ["arn:aws:s3:::archive", "arn:aws:s3:::archive/*"],
     "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    {"Sid": "TrailkeeperReplication", "Effect": "Allow",
     "Principal": {"AWS": ["111111111111", "222222222222"]},
     "Action": ["s3:ReplicateObject", "s3:ReplicateTags"],
     "Resource": "arn:aws:s3:::archive/AWSLogs/*",
     "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/trailkeeper-replication"}}}
  ]
}`

func role(acct, name string) Caller {
	return Caller{Account: acct, ARN: "arn:aws:iam::" + acct + ":role/" + name, UniqueID: "AROA" + acct}
}

func TestEvaluateArchivePolicy(t *testing.T) {
	doc, err := Parse([]byte(archivePolicy), Resource)
	if err != nil {
		t.Fatal(err)
	}
	secure := func(v string) map[string][]string {
		return map[string][]string{"aws:SecureTransport": {v}}
	}
	tests := []struct {
		name   string
		caller Caller
		action string
		res    string
		ctx    map[string][]string
		want   Decision
		sid    string
	}{
		{"granted role replicates", role("111111111111", "trailkeeper-replication"), "s3:ReplicateObject",
			"arn:aws:s3:::archive/AWSLogs/111111111111/x.json.gz", secure("true"), Allowed, "TrailkeeperReplication"},
		{"action is case-insensitive", role("111111111111", "trailkeeper-replication"), "S3:replicateobject",
			"arn:aws:s3:::archive/AWSLogs/1/x", secure("true"), Allowed, "TrailkeeperReplication"},
		{"other role of a granted account", role("111111111111", "admin"), "s3:ReplicateObject",
			"arn:aws:s3:::archive/AWSLogs/1/x", secure("true"), ImplicitDeny, ""},
		{"same role name in an ungranted account", role("333333333333", "trailkeeper-replication"), "s3:ReplicateObject",
			"arn:aws:s3:::archive/AWSLogs/1/x", secure("true"), ImplicitDeny, ""},
		{"delete is not granted", role("111111111111", "trailkeeper-replication"), "s3:ReplicateDelete",
			"arn:aws:s3:::archive/AWSLogs/1/x", secure("true"), ImplicitDeny, ""},
		{"outside AWSLogs/", role("111111111111", "trailkeeper-replication"), "s3:ReplicateObject",
			"arn:aws:s3:::archive/other/x", secure("true"), ImplicitDeny, ""},
		{"plain http is denied", role("111111111111", "trailkeeper-replication"), "s3:ReplicateObject",
			"arn:aws:s3:::archive/AWSLogs/1/x", secure("false"), ExplicitDeny, "DenyInsecureTransport"},
		{"deny applies to the bucket itself", Caller{Account: "999999999999", ARN: "arn:aws:iam::999999999999:root"},
			"s3:ListBucket", "arn:aws:s3:::archive", secure("false"), ExplicitDeny, "DenyInsecureTransport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			ctx["aws:PrincipalArn"] = []string{tt.caller.ARN}
			got := doc.Evaluate(Request{Caller: tt.caller, Action: tt.action, Resource: tt.res, Context: ctx})
			if got.Decision != tt.want || got.Sid != tt.sid {
				t.Errorf("got %v (sid %q), want %v (sid %q)", got.Decision, got.Sid, tt.want, tt.sid)
			}
		})
	}
}

func TestPrincipalForms(t *testing.T) {
	c := role("111111111111", "R")
	tests := []struct {
		principal string
		want      bool
	}{
		{`"*"`, true},
		{`{"AWS":"*"}`, true},
		{`{"AWS":"111111111111"}`, true},
		{`{"AWS":"arn:aws:iam::111111111111:root"}`, true},
		{`{"AWS":"arn:aws:iam::111111111111:role/R"}`, true},
		{`{"AWS":"AROA111111111111"}`, true}, // stored unique ID of the role
		{`{"AWS":"AROA999"}`, false},         // a deleted role's ID no longer matches
		{`{"AWS":"arn:aws:iam::222222222222:root"}`, false},
		{`{"Service":"s3.amazonaws.com"}`, false},
	}
	for _, tt := range tests {
		doc, err := Parse([]byte(`{"Statement":{"Effect":"Allow","Principal":`+tt.principal+`,"Action":"s3:GetObject","Resource":"*"}}`), Resource)
		if err != nil {
			t.Fatalf("%s: %v", tt.principal, err)
		}
		got := doc.Evaluate(Request{Caller: c, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k"}).Decision == Allowed
		if got != tt.want {
			t.Errorf("principal %s: allowed=%v, want %v", tt.principal, got, tt.want)
		}
	}
	svc := Caller{Service: "cloudtrail.amazonaws.com"}
	doc, _ := Parse([]byte(`{"Statement":{"Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:PutObject","Resource":"*"}}`), Resource)
	if doc.Evaluate(Request{Caller: svc, Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k"}).Decision != Allowed {
		t.Error("service principal not matched")
	}
}

func TestConditionOperators(t *testing.T) {
	ctx := map[string][]string{
		"aws:SourceArn":       {"arn:aws:cloudtrail:us-east-1:111111111111:trail/Members"},
		"s3:x-amz-acl":        {"bucket-owner-full-control"},
		"aws:SourceIp":        {"10.1.2.3"},
		"s3:max-keys":         {"50"},
		"aws:CurrentTime":     {"2025-09-10T12:00:00Z"},
		"aws:TagKeys":         {"a", "b"},
		"aws:SecureTransport": {"true"},
	}
	tests := []struct {
		cond string
		want bool
	}{
		{`{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control"}}`, true},
		{`{"StringEquals":{"S3:X-AMZ-ACL":"bucket-owner-full-control"}}`, true}, // keys are case-insensitive
		{`{"StringEquals":{"s3:x-amz-acl":"private"}}`, false},
		{`{"StringNotEquals":{"s3:x-amz-acl":["private","public-read"]}}`, true},
		{`{"StringEqualsIgnoreCase":{"s3:x-amz-acl":"BUCKET-OWNER-FULL-CONTROL"}}`, true},
		{`{"StringLike":{"aws:SourceArn":"arn:aws:cloudtrail:*:111111111111:trail/*"}}`, true},
		{`{"StringNotLike":{"aws:SourceArn":"*:222222222222:*"}}`, true},
		{`{"ArnEquals":{"aws:SourceArn":"arn:aws:cloudtrail:us-east-1:111111111111:trail/Members"}}`, true},
		{`{"ArnLike":{"aws:SourceArn":"arn:aws:cloudtrail:us-east-1:111111111111:trail/Other*"}}`, false},
		{`{"ArnNotEquals":{"aws:SourceArn":"arn:aws:cloudtrail:us-east-1:111111111111:trail/Other"}}`, true},
		{`{"Bool":{"aws:SecureTransport":false}}`, false},
		{`{"Bool":{"aws:SecureTransport":"true"}}`, true},
		{`{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, true},
		{`{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}`, false},
		{`{"NumericLessThanEquals":{"s3:max-keys":50}}`, true},
		{`{"NumericGreaterThan":{"s3:max-keys":"50"}}`, false},
		{`{"DateGreaterThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}`, true},
		{`{"DateLessThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}`, false},
		{`{"Null":{"aws:MissingKey":"true"}}`, true},
		{`{"Null":{"s3:x-amz-acl":"true"}}`, false},
		{`{"Null":{"s3:x-amz-acl":"false"}}`, true},
		// A missing key fails positive operators and satisfies negated ones.
		{`{"StringEquals":{"aws:MissingKey":"x"}}`, false},
		{`{"StringNotEquals":{"aws:MissingKey":"x"}}`, true},
		{`{"StringEqualsIfExists":{"aws:MissingKey":"x"}}`, true},
		{`{"StringEqualsIfExists":{"s3:x-amz-acl":"private"}}`, false},
		{`{"ForAnyValue:StringEquals":{"aws:TagKeys":["b","z"]}}`, true},
		{`{"ForAllValues:StringEquals":{"aws:TagKeys":["a","z"]}}`, false},
		{`{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b","c"]}}`, true},
		{`{"ForAllValues:StringEquals":{"aws:MissingKey":["a"]}}`, true},
		{`{"ForAnyValue:StringEquals":{"aws:MissingKey":["a"]}}`, false},
		// Several keys and operators must all hold.
		{`{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control","aws:SourceArn":"x"}}`, false},
		{`{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control"},"Bool":{"aws:SecureTransport":"true"}}`, true},
	}
	for _, tt := range tests {
		doc, err := Parse([]byte(`{"Statement":{"Effect":"Allow","Action":"s3:PutObject","Resource":"*","Condition":`+tt.cond+`}}`), Identity)
		if err != nil {
			t.Fatalf("%s: %v", tt.cond, err)
		}
		got := doc.Evaluate(Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k", Context: ctx}).Decision == Allowed
		if got != tt.want {
			t.Errorf("%s: holds=%v, want %v", tt.cond, got, tt.want)
		}
	}
}

func TestNotActionNotResourceNotPrincipal(t *testing.T) {
	doc, err := Parse([]byte(`{"Statement":[
	  {"Effect":"Allow","NotAction":"s3:Delete*","NotResource":"arn:aws:s3:::secret/*"},
	  {"Effect":"Deny","NotAction":"s3:Get*","Resource":"arn:aws:s3:::ro/*"}]}`), Identity)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		action, res string
		want        Decision
	}{
		{"s3:PutObject", "arn:aws:s3:::b/k", Allowed},
		{"s3:DeleteObject", "arn:aws:s3:::b/k", ImplicitDeny},
		{"s3:PutObject", "arn:aws:s3:::secret/k", ImplicitDeny},
		{"s3:PutObject", "arn:aws:s3:::ro/k", ExplicitDeny},
		{"s3:GetObject", "arn:aws:s3:::ro/k", Allowed},
	} {
		if got := doc.Evaluate(Request{Action: tt.action, Resource: tt.res}).Decision; got != tt.want {
			t.Errorf("%s on %s: %v, want %v", tt.action, tt.res, got, tt.want)
		}
	}
	np, _ := Parse([]byte(`{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"111111111111"},"Action":"s3:*","Resource":"*"}}`), Resource)
	if np.Evaluate(Request{Caller: role("111111111111", "R"), Action: "s3:GetObject", Resource: "x"}).Decision != ImplicitDeny {
		t.Error("NotPrincipal denied the excluded account")
	}
	if np.Evaluate(Request{Caller: role("222222222222", "R"), Action: "s3:GetObject", Resource: "x"}).Decision != ExplicitDeny {
		t.Error("NotPrincipal did not deny another account")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		doc  string
		kind Kind
		msg  string
	}{
		{``, Resource, "first byte must be '{'"},
		{`[]`, Resource, "first byte must be '{'"},
		{`{"Version":"2012-10-17"}`, Resource, "Missing required field Statement"},
		{`{"Statement":[]}`, Resource, "Missing required field Statement"},
		{`{"Version":"2099-01-01","Statement":[]}`, Resource, "Invalid policy version"},
		{`{"Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:*","Resource":"*"}}`, Resource, "Invalid effect: Maybe"},
		{`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}`, Resource, "Missing required field Principal"},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}`, Identity, "should not specify a principal"},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Resource":"*"}}`, Resource, "Missing required field Action"},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*"}}`, Resource, "Missing required field Resource"},
		{`{"Statement":{"Effect":"Allow","Principal":"someone","Action":"s3:*","Resource":"*"}}`, Resource, "Invalid principal"},
		{`{"Statement":{"Effect":"Allow","Principal":{"Robot":"x"},"Action":"s3:*","Resource":"*"}}`, Resource, "Invalid principal"},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"GetObject","Resource":"*"}}`, Resource, "invalid action"},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}}`, Resource, "Invalid Condition type : StringEqualz"},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Extra":1}}`, Resource, "Unknown field Extra"},
		{`{"Statement":[{"Sid":"A","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},{"Sid":"A","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}`, Resource, "must be unique"},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}} trailing`, Resource, "valid JSON"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.doc), tt.kind)
		var perr *Error
		if !errors.As(err, &perr) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Parse(%s) = %v, want an *Error containing %q", tt.doc, err, tt.msg)
		}
	}
	if _, err := Parse([]byte(`{"Statement":{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"}}`), Trust); err != nil {
		t.Errorf("trust policy without Resource: %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	doc, err := Parse([]byte(archivePolicy), Resource)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), " ") || !strings.HasPrefix(string(data), `{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*"`) {
		t.Errorf("not minified in AWS's element order: %s", data)
	}
	again, err := Parse(data, Resource)
	if err != nil {
		t.Fatal(err)
	}
	data2, _ := json.Marshal(again)
	if string(data) != string(data2) {
		t.Errorf("round trip changed the document:\n%s\n%s", data, data2)
	}
}

func TestGlob(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "abbbd", false}, {"a?c", "abc", true},
		{"a?c", "ac", false}, {"*/*", "b/k", true}, {"arn:aws:s3:::b/*", "arn:aws:s3:::b", false},
		{"**x", "yyx", true}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXcYb", false},
	} {
		if got := Glob(tt.p, tt.s); got != tt.want {
			t.Errorf("Glob(%q,%q)=%v", tt.p, tt.s, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(archivePolicy))
	f.Add([]byte(`{"Statement":{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"}}`))
	f.Add([]byte(`{"Statement":[{"Effect":"Deny","NotPrincipal":"*","NotAction":[],"Resource":[],"Condition":{"ForAllValues:NumericLessThanIfExists":{"k":[1,true,"x"]}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, kind := range []Kind{Identity, Resource, Trust} {
			doc, err := Parse(data, kind)
			if err != nil {
				var perr *Error
				if !errors.As(err, &perr) {
					t.Fatalf("error is not a *policy.Error: %v", err)
				}
				continue
			}
			doc.Evaluate(Request{Caller: role("111111111111", "R"), Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k",
				Context: map[string][]string{"k": {"1"}, "aws:SecureTransport": {"true"}}})
			out, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(out, kind); err != nil {
				t.Fatalf("marshalled document does not parse: %v\n%s", err, out)
			}
		}
	})
}

// Policy variables, as IAM documents them: replaced by the request's value,
// literally; no value and no default means the statement does not apply; the
// 2008 grammar reads them as text.
func TestPolicyVariables(t *testing.T) {
	grant := func(version, resource string) *Document {
		doc, err := Parse([]byte(`{"Version":"`+version+`","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:ReplicateObject","Resource":"`+resource+`"}]}`), Resource)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	own := "arn:aws:s3:::archive/AWSLogs/${aws:PrincipalAccount}/*"
	ctx := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = []string{kv[i+1]}
		}
		return m
	}
	tests := []struct {
		name, version, resource, object string
		ctx                             map[string][]string
		want                            Decision
	}{
		{"own folder", "2012-10-17", own, "arn:aws:s3:::archive/AWSLogs/111111111111/CloudTrail/x", ctx("aws:PrincipalAccount", "111111111111"), Allowed},
		{"another account's folder", "2012-10-17", own, "arn:aws:s3:::archive/AWSLogs/222222222222/CloudTrail/x", ctx("aws:PrincipalAccount", "111111111111"), ImplicitDeny},
		{"key name is case-insensitive", "2012-10-17", "arn:aws:s3:::archive/${AWS:principalaccount}/*", "arn:aws:s3:::archive/111111111111/x", ctx("aws:PrincipalAccount", "111111111111"), Allowed},
		{"no value: no statement", "2012-10-17", own, "arn:aws:s3:::archive/AWSLogs/111111111111/x", ctx(), ImplicitDeny},
		{"no value, a default", "2012-10-17", "arn:aws:s3:::archive/${aws:username, 'shared'}/*", "arn:aws:s3:::archive/shared/x", ctx(), Allowed},
		{"a value is literal, not a wildcard", "2012-10-17", "arn:aws:s3:::archive/${aws:username}/*", "arn:aws:s3:::archive/bob/x", ctx("aws:username", "*"), ImplicitDeny},
		{"the literal star", "2012-10-17", "arn:aws:s3:::archive/${*}/*", "arn:aws:s3:::archive/*/x", ctx(), Allowed},
		{"the literal star is not a wildcard", "2012-10-17", "arn:aws:s3:::archive/${*}/*", "arn:aws:s3:::archive/a/x", ctx(), ImplicitDeny},
		{"2008 grammar: text", "2008-10-17", own, "arn:aws:s3:::archive/AWSLogs/111111111111/x", ctx("aws:PrincipalAccount", "111111111111"), ImplicitDeny},
		{"2008 grammar: the text itself", "2008-10-17", own, "arn:aws:s3:::archive/AWSLogs/${aws:PrincipalAccount}/x", ctx("aws:PrincipalAccount", "111111111111"), Allowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := grant(tc.version, tc.resource).Evaluate(Request{Caller: Caller{Account: "111111111111"}, Action: "s3:ReplicateObject", Resource: tc.object, Context: tc.ctx})
			if got.Decision != tc.want {
				t.Fatalf("%s on %s: %v, want %v", tc.resource, tc.object, got.Decision, tc.want)
			}
		})
	}
	cond, err := Parse([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"s3:ExistingObjectTag/owner":"${aws:PrincipalAccount}"}}}]}`), Resource)
	if err != nil {
		t.Fatal(err)
	}
	for owner, want := range map[string]Decision{"111111111111": Allowed, "222222222222": ImplicitDeny} {
		got := cond.Evaluate(Request{Caller: Caller{Account: "111111111111"}, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k",
			Context: ctx("aws:PrincipalAccount", "111111111111", "s3:ExistingObjectTag/owner", owner)})
		if got.Decision != want {
			t.Errorf("condition with a variable, owner %s: %v, want %v", owner, got.Decision, want)
		}
	}
}
