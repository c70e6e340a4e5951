package awsapi

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// s3Endpoints remembers resolved S3 endpoints. The SDK evaluates its endpoint
// rules on every request, about a fifth of the CPU that verify spends on an
// object; for one bucket the answer never changes. The rules do not read the
// object key, prefix or copy source, so those are left out of the cache key.
type s3Endpoints struct {
	next s3.EndpointResolverV2
	mu   sync.Mutex
	seen map[string]smithyendpoints.Endpoint
}

func newS3Endpoints() *s3Endpoints {
	return &s3Endpoints{next: s3.NewDefaultEndpointResolverV2(), seen: map[string]smithyendpoints.Endpoint{}}
}

func (r *s3Endpoints) ResolveEndpoint(ctx context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	p.Key, p.Prefix, p.CopySource = nil, nil, nil
	key := endpointKey(p)
	r.mu.Lock()
	e, ok := r.seen[key]
	r.mu.Unlock()
	if ok {
		return copyOf(e), nil
	}
	e, err := r.next.ResolveEndpoint(ctx, p)
	if err != nil {
		return e, err
	}
	r.mu.Lock()
	if len(r.seen) > 1000 {
		clear(r.seen)
	}
	r.seen[key] = e
	r.mu.Unlock()
	return copyOf(e), nil
}

// copyOf copies an endpoint deeply enough for one request: the SDK merges its
// own settings into the auth options it finds in the endpoint's properties.
func copyOf(e smithyendpoints.Endpoint) smithyendpoints.Endpoint {
	out := smithyendpoints.Endpoint{URI: e.URI, Headers: e.Headers.Clone()}
	out.Properties.SetAll(&e.Properties)
	if opts, ok := smithyauth.GetAuthOptions(&e.Properties); ok {
		copies := make([]*smithyauth.Option, len(opts))
		for i, o := range opts {
			c := &smithyauth.Option{SchemeID: o.SchemeID}
			c.IdentityProperties.SetAll(&o.IdentityProperties)
			c.SignerProperties.SetAll(&o.SignerProperties)
			copies[i] = c
		}
		smithyauth.SetAuthOptions(&out.Properties, copies)
	}
	return out
}

func endpointKey(p s3.EndpointParameters) string {
	var b strings.Builder
	for _, s := range []*string{p.Bucket, p.Region, p.Endpoint} {
		if s != nil {
			b.WriteString(*s)
		}
		b.WriteByte(0)
	}
	for _, v := range []*bool{p.UseFIPS, p.UseDualStack, p.ForcePathStyle, p.Accelerate, p.UseGlobalEndpoint, p.UseObjectLambdaEndpoint,
		p.DisableAccessPoints, p.DisableMultiRegionAccessPoints, p.UseArnRegion, p.UseS3ExpressControlEndpoint, p.DisableS3ExpressSessionAuth} {
		if v == nil {
			b.WriteByte('-')
		} else {
			b.WriteString(strconv.FormatBool(*v)[:1])
		}
	}
	return b.String()
}
