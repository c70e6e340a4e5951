package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

const (
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testRegion = "eu-west-1"
)

// s3Double answers GETs as S3 does and keeps every request it got.
type s3Double struct {
	mu       sync.Mutex
	requests []*http.Request
	flaky    int // 503s still to give
}

func (d *s3Double) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests = append(d.requests, r.Clone(context.Background()))
	flaky := d.flaky > 0 && strings.Contains(r.URL.Path, "slow")
	if flaky {
		d.flaky--
	}
	d.mu.Unlock()
	switch {
	case strings.Contains(r.URL.Path, "missing"):
		w.WriteHeader(404)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchVersion</Code><Message>The specified version does not exist.</Message></Error>`)
	case strings.Contains(r.URL.Path, "denied"):
		w.WriteHeader(403)
		io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
	case flaky:
		w.WriteHeader(503)
		io.WriteString(w, `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
	default:
		w.Header().Set("Content-Encoding", "gzip") // as CloudTrail stores logs: the bytes must come as stored
		w.Header().Set("X-Amz-Meta-Signature", "abc123")
		io.WriteString(w, "not gzip at all")
	}
}

func (d *s3Double) last() *http.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests[len(d.requests)-1]
}

func testClient(t *testing.T, d *s3Double) *s3.Client {
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, HTTPClient: srv.Client(),
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", testSecret, "session-token"))})
}

// checkSigV4 recomputes a request's signature from what reached the server,
// by the algorithm of AWS's "Create a signed AWS API request" (written here
// again, not taken from the SDK), and says why it does not hold.
func checkSigV4(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	fields := map[string]string{}
	for _, f := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ", ") {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	scope := strings.TrimPrefix(fields["Credential"], "AKIDEXAMPLE/")
	parts := strings.Split(scope, "/")
	if len(parts) != 4 || parts[1] != testRegion || parts[2] != "s3" || parts[3] != "aws4_request" {
		return "scope " + scope
	}
	path, query, _ := strings.Cut(r.RequestURI, "?")
	var pairs []string
	for _, p := range strings.Split(query, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		k, _ = url.PathUnescape(k)
		v, _ = url.PathUnescape(v)
		pairs = append(pairs, escape(k, false)+"="+escape(v, false))
	}
	sort.Strings(pairs)
	signed := strings.Split(fields["SignedHeaders"], ";")
	var headers strings.Builder
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		headers.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	canonical := strings.Join([]string{r.Method, path, strings.Join(pairs, "&"), headers.String(), fields["SignedHeaders"], r.Header.Get("X-Amz-Content-Sha256")}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + r.Header.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + testSecret)
	for _, p := range []string{parts[0], testRegion, "s3", "aws4_request", toSign} {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(p))
		key = m.Sum(nil)
	}
	if got := hex.EncodeToString(key); got != fields["Signature"] {
		return "signature " + fields["Signature"] + ", recomputed " + got + " over\n" + canonical
	}
	for _, must := range []string{"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"} {
		if !strings.Contains(";"+fields["SignedHeaders"]+";", ";"+must+";") {
			return "unsigned " + must
		}
	}
	return ""
}

// TestSignedGetIsValidSigV4: the lean GET's requests carry a valid SigV4
// signature over the same path and query as the SDK's GetObject (checked by
// an independent implementation that the SDK's own request passes too), for
// keys and version ids that need escaping; the bytes come as stored, with
// their metadata.
func TestSignedGetIsValidSigV4(t *testing.T) {
	d := &s3Double{}
	c := testClient(t, d)
	b := S3{Client: c, Bucket: "archive"}
	ctx := context.Background()
	for _, tc := range []struct{ key, version string }{
		{"AWSLogs/111111111111/CloudTrail/eu-west-1/2026/12/07/111111111111_CloudTrail_eu-west-1_20261207T0105Z_abc.json.gz", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"},
		{"odd key/a b+c=d!'()*;:@&$,é~.json.gz", "v/1=2"},
		{"plain", ""},
	} {
		body, meta, err := b.Open(ctx, tc.key, tc.version)
		if err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		data, _ := io.ReadAll(body)
		body.Close()
		if string(data) != "not gzip at all" || meta["signature"] != "abc123" {
			t.Fatalf("%s: body %q, metadata %v", tc.key, data, meta)
		}
		lean := d.last()
		if why := checkSigV4(lean); why != "" {
			t.Fatalf("%s: the lean GET's signature does not hold: %s", tc.key, why)
		}
		in := &s3.GetObjectInput{Bucket: aws.String("archive"), Key: aws.String(tc.key)}
		if tc.version != "" {
			in.VersionId = aws.String(tc.version)
		}
		if out, err := c.GetObject(ctx, in); err == nil {
			out.Body.Close()
		}
		sdk := d.last()
		if why := checkSigV4(sdk); why != "" {
			t.Fatalf("%s: the SDK's own request fails the check, so the check is wrong: %s", tc.key, why)
		}
		// The same object and version (the SDK adds x-id=GetObject to the query).
		if lean.URL.EscapedPath() != sdk.URL.EscapedPath() || lean.URL.Query().Get("versionId") != sdk.URL.Query().Get("versionId") {
			t.Errorf("%s: the lean GET asks for %s, the SDK for %s", tc.key, lean.RequestURI, sdk.RequestURI)
		}
	}
	// A signature over anything else is refused by the check.
	forged := d.last().Clone(ctx)
	forged.RequestURI = "/archive/other"
	if checkSigV4(forged) == "" {
		t.Fatal("the check accepts a signature over another key")
	}
}

// TestSignedGetErrors: S3's errors keep their codes (a missing version is
// ErrNotFound, a denial an AccessDenied the CLI names), and a throttled GET is
// tried again.
func TestSignedGetErrors(t *testing.T) {
	d := &s3Double{flaky: 2}
	b := S3{Client: testClient(t, d), Bucket: "archive"}
	ctx := context.Background()
	if _, _, err := b.Open(ctx, "missing", "v1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "s3://archive/missing") {
		t.Errorf("missing version: %v", err)
	}
	var api smithy.APIError
	if _, _, err := b.Open(ctx, "denied", ""); !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
		t.Errorf("denied: %v", err)
	}
	before := len(d.requests)
	body, _, err := b.Open(ctx, "slow", "")
	if err != nil {
		t.Fatalf("throttled twice: %v", err)
	}
	body.Close()
	if n := len(d.requests) - before; n != 3 {
		t.Errorf("%d requests for a GET throttled twice", n)
	}
}
