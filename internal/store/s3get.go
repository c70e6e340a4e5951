package store

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// signedGet is GetObject for verify's hot path: the same endpoint (the
// client's own resolver, once per bucket), credentials, SigV4 signer and
// HTTP client as the SDK's, without its per-request middleware stack, which
// costs several times the rest of reading a small object. Anything unusual
// (an S3 Express or access point bucket, a skewed clock) goes to the SDK.
type signedGet struct {
	o      s3.Options
	signer *v4.Signer
	mu     sync.Mutex
	base   map[string]string // bucket -> endpoint URL ending in the bucket's path
}

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

var getters sync.Map // *s3.Client -> *signedGet

func getterFor(c *s3.Client) *signedGet {
	if g, ok := getters.Load(c); ok {
		return g.(*signedGet)
	}
	g, _ := getters.LoadOrStore(c, &signedGet{o: c.Options(), base: map[string]string{},
		// S3 signs the path as sent: no second escaping (the SDK's S3 signer does the same).
		signer: v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })})
	return g.(*signedGet)
}

// errUseSDK says the lean path does not handle this request.
var errUseSDK = errors.New("use the SDK")

func (g *signedGet) endpoint(ctx context.Context, bucket string) (string, error) {
	g.mu.Lock()
	u, ok := g.base[bucket]
	g.mu.Unlock()
	if ok {
		return u, nil
	}
	if strings.HasPrefix(bucket, "arn:") || strings.HasSuffix(bucket, "--x-s3") || g.o.EndpointResolverV2 == nil || g.o.Credentials == nil || g.o.HTTPClient == nil {
		return "", errUseSDK
	}
	p := s3.EndpointParameters{Bucket: &bucket, Region: aws.String(g.o.Region), ForcePathStyle: aws.Bool(g.o.UsePathStyle), Accelerate: aws.Bool(g.o.UseAccelerate),
		UseFIPS:      aws.Bool(g.o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(g.o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled), Endpoint: g.o.BaseEndpoint}
	e, err := g.o.EndpointResolverV2.ResolveEndpoint(ctx, p)
	if err != nil {
		return "", errUseSDK
	}
	u = strings.TrimSuffix(e.URI.String(), "/")
	g.mu.Lock()
	g.base[bucket] = u
	g.mu.Unlock()
	return u, nil
}

// open gets one object version. Errors are the SDK's kind: a smithy.APIError
// with S3's code.
func (g *signedGet) open(ctx context.Context, bucket, key, versionID string) (*http.Response, error) {
	base, err := g.endpoint(ctx, bucket)
	if err != nil {
		return nil, err
	}
	target := base + "/" + escape(key, true)
	if versionID != "" {
		target += "?versionId=" + escape(versionID, false)
	}
	return g.get(ctx, target)
}

// get sends a signed GET, again after a throttle or a server's error.
func (g *signedGet) get(ctx context.Context, target string) (*http.Response, error) {
	attempts := max(g.o.RetryMaxAttempts, 3)
	for attempt := 1; ; attempt++ {
		resp, err := g.once(ctx, target)
		if err == nil && resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		if err == nil {
			err = responseError(resp)
		}
		if attempt >= attempts || !retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		// Full jitter, as the SDK's standard retryer.
		delay := time.Duration(rand.Int64N(int64(min(20*time.Second, 50*time.Millisecond<<attempt))))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (g *signedGet) once(ctx context.Context, target string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	creds, err := g.o.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	req.Header.Set("User-Agent", "trailkeeper")
	// The bytes as stored: without this Go asks for gzip and inflates a log
	// stored with Content-Encoding: gzip before it is hashed.
	req.Header.Set("Accept-Encoding", "identity")
	if err := g.signer.SignHTTP(ctx, creds, req, emptySHA256, "s3", g.o.Region, time.Now().UTC()); err != nil {
		return nil, err
	}
	return g.o.HTTPClient.Do(req)
}

// responseError reads S3's XML error (a HEAD-less GET always has one, but a
// proxy's may not) and closes the body.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	var e struct {
		Code, Message string
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if xml.Unmarshal(data, &e) != nil || e.Code == "" {
		e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
		if resp.StatusCode == http.StatusNotFound {
			e.Code = "NoSuchKey"
		}
	}
	return &httpError{status: resp.StatusCode, GenericAPIError: smithy.GenericAPIError{Code: e.Code, Message: e.Message}}
}

// httpError is S3's error with its HTTP status, for retries.
type httpError struct {
	status int
	smithy.GenericAPIError
}

func (e *httpError) Unwrap() error { return &e.GenericAPIError }

func retryable(err error) bool {
	var h *httpError
	if !errors.As(err, &h) {
		// The network (a reset, a timeout), not the context nor the credentials.
		var ue *url.Error
		return errors.As(err, &ue) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch h.Code {
	case "RequestTimeTooSkewed":
		return false // the SDK corrects its clock and tries again
	case "SlowDown", "InternalError", "RequestTimeout":
		return true
	}
	return h.status >= 500 || h.status == http.StatusTooManyRequests
}

// escape escapes every byte but the unreserved ones (and "/" in a path), as
// SigV4 and the SDK do.
func escape(s string, path bool) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || path && c == '/' {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}
