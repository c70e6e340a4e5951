package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const authHeader = "AWS4-HMAC-SHA256 Credential=111111111111/20250910/ap-northeast-1/%s/aws4_request, SignedHeaders=host, Signature=0"

// checkAnswer asserts that a malformed request got an AWS-shaped answer.
func checkAnswer(t *testing.T, service string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code < 200 || rec.Code > 599 {
		t.Fatalf("status %d", rec.Code)
	}
	if rec.Code < 400 || rec.Body.Len() == 0 {
		return
	}
	switch service {
	case "cloudtrail":
		var e struct {
			Type string `json:"__type"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Type == "" {
			t.Fatalf("error without __type: %s", rec.Body)
		}
	default:
		var e struct {
			Code  string
			Error struct{ Code string }
		}
		if xml.Unmarshal(rec.Body.Bytes(), &e) != nil || (e.Code == "" && e.Error.Code == "") {
			t.Fatalf("error without a Code: %s", rec.Body)
		}
	}
	if rec.Code == 500 {
		t.Fatalf("internal error for a client's mistake: %s", rec.Body)
	}
}

func fuzzSandbox(f *testing.F) *Sandbox {
	sb, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sb.Close() })
	// Something to act on: a versioned bucket with a policy and a replication rule.
	for _, r := range []struct{ method, target, body string }{
		{"PUT", "/b", ""}, {"PUT", "/b?versioning", `<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>`},
		{"PUT", "/b/k", "data"},
	} {
		req := httptest.NewRequest(r.method, r.target, strings.NewReader(r.body))
		req.Header.Set("Authorization", strings.Replace(authHeader, "%s", "s3", 1))
		req.RemoteAddr = "127.0.0.1:1"
		sb.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}
	return sb
}

func FuzzS3Request(f *testing.F) {
	sb := fuzzSandbox(f)
	for _, s := range []struct{ method, target, header, body string }{
		{"PUT", "/b?replication", "", `<ReplicationConfiguration><Role>arn:aws:iam::111111111111:role/r</Role><Rule><Status>Enabled</Status><Priority>1</Priority><Filter><Prefix>AWSLogs/</Prefix></Filter><DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication><Destination><Bucket>arn:aws:s3:::b</Bucket></Destination></Rule></ReplicationConfiguration>`},
		{"PUT", "/b?policy", "", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`},
		{"PUT", "/b?object-lock", "", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>`},
		{"PUT", "/b/chunked", "Content-Encoding: aws-chunked\nX-Amz-Content-Sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER", "4\r\ndata\r\n0\r\nx-amz-checksum-crc32:rr0vBg==\r\n\r\n"},
		{"PUT", "/b?notification", "", `<NotificationConfiguration><TopicConfiguration><Id>x</Id><Topic>arn:aws:sns:us-east-1:111111111111:t</Topic><Event>s3:Replication:*</Event><Event>:</Event><Filter><S3Key><FilterRule><Name>Prefix</Name><Value>AWSLogs/</Value></FilterRule></S3Key></Filter></TopicConfiguration><QueueConfiguration><Event>s3:ObjectCreated:*</Event></QueueConfiguration></NotificationConfiguration>`},
		{"GET", "/b?list-type=2&max-keys=-1&prefix=a&delimiter=/", "", ""},
		{"GET", "/b?versions&key-marker=k&version-id-marker=zz", "", ""},
		{"POST", "/b?delete", "", `<Delete><Object><Key>k</Key></Object></Delete>`},
		{"POST", "/b/m?uploads", "", ""},
		{"GET", "/b/k", "Range: bytes=5-2", ""},
		{"PUT", "/b/c", "X-Amz-Copy-Source: /b/k?versionId=null", ""},
		{"DELETE", "/b/k?versionId=xyz", "X-Amz-Bypass-Governance-Retention: true", ""},
		{"PUT", "/b/k?retention", "", `<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>`},
	} {
		f.Add(s.method, s.target, s.header, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, target, header string, body []byte) {
		if !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "/_sandbox") {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || len(method) == 0 || strings.ContainsAny(method, " \r\n\t") {
			return
		}
		req := &http.Request{Method: method, URL: u, Host: "127.0.0.1:4566", Header: http.Header{},
			Body: httptestBody(body), ContentLength: int64(len(body)), RemoteAddr: "127.0.0.1:1"}
		req.Header.Set("Authorization", strings.Replace(authHeader, "%s", "s3", 1))
		sc := bufio.NewScanner(strings.NewReader(header))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k != "" {
				req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		rec := httptest.NewRecorder()
		sb.Handler().ServeHTTP(rec, req)
		checkAnswer(t, "s3", rec)
	})
}

func httptestBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func FuzzQueryRequest(f *testing.F) {
	sb := fuzzSandbox(f)
	f.Add("iam", "Action=CreateRole&Version=2010-05-08&RoleName=r&AssumeRolePolicyDocument=%7B%22Statement%22%3A%5B%5D%7D")
	f.Add("iam", "Action=PutRolePolicy&Version=2010-05-08&RoleName=r&PolicyName=p&PolicyDocument=%7B%7D")
	f.Add("sts", "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::111111111111:role/r&RoleSessionName=s&DurationSeconds=x")
	f.Add("cloudformation", "Action=CreateStack&Version=2010-05-15&StackName=s&TemplateBody=Resources%3A%0A++R%3A+%21Sub+x&Capabilities.member.1=CAPABILITY_IAM")
	f.Add("sns", "Action=CreateTopic&Version=2010-03-31&Name=t&Attributes.entry.1.key=Policy&Attributes.entry.1.value=%7B%7D")
	f.Add("sns", "Action=Subscribe&Version=2010-03-31&TopicArn=arn:aws:sns:us-east-1:111111111111:t&Protocol=http&Endpoint=http://127.0.0.1:1/")
	f.Add("sns", "Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:111111111111:t&Token=")
	f.Add("cloudformation", "Action=CreateStack&StackName=s&TemplateBody=%7B%22Resources%22%3A%7B%22B%22%3A%7B%22Type%22%3A%22AWS%3A%3AS3%3A%3ABucket%22%2C%22Properties%22%3A%7B%22BucketName%22%3A%7B%22Ref%22%3A%22B%22%7D%7D%7D%7D%7D")
	f.Fuzz(func(t *testing.T, service, form string) {
		if service != "iam" && service != "sts" && service != "cloudformation" && service != "sns" {
			return
		}
		req := httptest.NewRequest("POST", "/", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", strings.Replace(authHeader, "%s", service, 1))
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		sb.Handler().ServeHTTP(rec, req)
		checkAnswer(t, service, rec)
	})
}

func FuzzCloudTrailRequest(f *testing.F) {
	sb := fuzzSandbox(f)
	f.Add("CreateTrail", []byte(`{"Name":"t-1","S3BucketName":"b","S3KeyPrefix":"p","KmsKeyId":"alias/x","IsMultiRegionTrail":true}`))
	f.Add("ListPublicKeys", []byte(`{"StartTime":"yesterday"}`))
	f.Add("GetTrailStatus", []byte(`{"Name":5}`))
	f.Add("DescribeTrails", []byte(`{"trailNameList":[1,null,"x"]}`))
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."+op)
		req.Header.Set("Authorization", strings.Replace(authHeader, "%s", "cloudtrail", 1))
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		sb.Handler().ServeHTTP(rec, req)
		checkAnswer(t, "cloudtrail", rec)
	})
}

func FuzzTemplate(f *testing.F) {
	f.Add(seedTemplate)
	f.Add(`{"Resources":{"R":{"Type":"AWS::IAM::Role","Properties":{"RoleName":{"Fn::Join":["-",[{"Ref":"AWS::Region"},{"Fn::Select":[9,[]]}]]}}}}}`)
	f.Add("Resources:\n  A: &x\n    Type: AWS::S3::Bucket\n  B: *x\n  C:\n    Type: !GetAtt A\n")
	f.Add("Resources: &r\n  A:\n    Type: AWS::S3::Bucket\n    Properties: *r\n") // an alias inside its own anchor
	f.Add(laughs)
	f.Fuzz(func(t *testing.T, body string) {
		tpl, err := parseTemplate(body)
		if err != nil {
			return
		}
		order, err := creationOrder(tpl)
		if err != nil {
			return
		}
		r := &resolver{params: map[string]string{}, pseudo: map[string]string{"AWS::Region": "us-east-1"}, physical: map[string]string{}, attrs: map[string]map[string]string{}}
		for _, name := range order {
			r.resolve(tpl.Resources[name]["Properties"])
			r.physical[name] = name
			r.attrs[name] = map[string]string{"Arn": name}
		}
	})
}

const seedTemplate = `Parameters:
  DestinationAccountId:
    Type: String
    AllowedPattern: '[0-9]{12}'
Resources:
  S3ReplicationRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: S3ReplicationRole
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: s3:ReplicateObject
                Resource: !Sub 'arn:aws:s3:::aggregation-cloudtrail-logs-${DestinationAccountId}/*'
Outputs:
  Arn:
    Value: !GetAtt S3ReplicationRole.Arn
    Export:
      Name: !Sub '${AWS::StackName}-Arn'
`

func FuzzDecodeChunked(f *testing.F) {
	f.Add([]byte("4\r\ndata\r\n0\r\nx-amz-checksum-crc32:rr0vBg==\r\n\r\n"))
	f.Add([]byte("4;chunk-signature=abc\r\ndata\r\n0;chunk-signature=def\r\n\r\n"))
	f.Add([]byte("ffffffffffff\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		io.Copy(io.Discard, &chunkReader{br: bufio.NewReader(bytes.NewReader(body)), trailers: http.Header{}})
	})
}

// A Glue column type is outside input: any text parses or fails cleanly,
// and what parses reads any JSON value without panicking.
func FuzzParseHiveType(f *testing.F) {
	for _, s := range []string{"string", "struct<a:string,b:array<map<string,int>>>", "decimal(10,2)", "array<", "struct<:string>", "map<string>"} {
		f.Add(s, `{"a":"x","b":[{"k":1}]}`)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		ht, err := parseHiveType(typ)
		if err != nil {
			return
		}
		_ = ht.duck()
		serdeValue([]byte(value), ht)
	})
}
