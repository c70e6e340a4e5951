// Package awsapi builds per-account AWS clients the way AWS users already have
// credentials (shared-config profiles, SSO included; a role to assume; the default
// chain), pointed at AWS or at an endpoint such as the sandbox, with retries that
// ride out throttling. It also says which errors mean "AWS access" to the CLI.
package awsapi

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3control"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyendpoints "github.com/aws/smithy-go/endpoints"

	"github.com/trailkeeper/trailkeeper/internal/config"
)

// Target is one account to act in.
type Target struct {
	Account     string
	Region      string
	Credentials config.Credentials
	Endpoint    string // empty: AWS (or AWS_ENDPOINT_URL)
}

// Clients are the service clients of one account.
type Clients struct {
	Account    string
	Region     string
	S3         *s3.Client
	S3Control  *s3control.Client
	IAM        *iam.Client
	STS        *sts.Client
	CloudTrail *cloudtrail.Client
	CFN        *cloudformation.Client
	SNS        *sns.Client
	Glue       *glue.Client
	Athena     *athena.Client
	Events     *eventbridge.Client
	Lambda     *lambda.Client
	// CallerARN is who the credentials act as, once CheckIdentity has asked.
	CallerARN string
	cfg       aws.Config
}

// httpClient keeps as many idle connections per endpoint as verify and search
// keep requests in flight (the SDK keeps 10): otherwise most requests would
// open a new connection, and each costs a round trip more.
var httpClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 256
})

// sharedHTTPClient undoes what the SDK does with a custom CA bundle
// (AWS_CA_BUNDLE or a profile's ca_bundle): it reads the bundle again for
// every config and gives each its own transport, which for 1,000 accounts is
// 1,000 parsed copies of the bundle and 1,000 connection pools. Each bundle is
// loaded once here, into one client that all configs share.
func sharedHTTPClient(cfg aws.Config) aws.HTTPClient {
	if cfg.HTTPClient == aws.HTTPClient(httpClient) {
		return httpClient
	}
	path := ""
	for _, src := range cfg.ConfigSources { // the SDK's order: environment, then profile
		switch c := src.(type) {
		case awsconfig.EnvConfig:
			path = cmp.Or(path, c.CustomCABundle)
		case awsconfig.SharedConfig:
			path = cmp.Or(path, c.CustomCABundle)
		}
	}
	if path == "" {
		return cfg.HTTPClient
	}
	bundleMu.Lock()
	defer bundleMu.Unlock()
	if cl, ok := bundleClients[path]; ok {
		return cl
	}
	pem, err := os.ReadFile(path)
	pool := x509.NewCertPool()
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		return cfg.HTTPClient // the SDK's own client reports what is wrong with the file
	}
	cl := httpClient.WithTransportOptions(func(t *http.Transport) {
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.RootCAs = pool
	})
	bundleClients[path] = cl
	return cl
}

var (
	bundleMu      sync.Mutex
	bundleClients = map[string]*awshttp.BuildableClient{}
)

// MaxAttempts bounds retries of throttled and failed calls.
const MaxAttempts = 12

// New builds the clients of a target. It does not call AWS.
func New(ctx context.Context, t Target) (*Clients, error) { return new(Loader).New(ctx, t) }

// New builds the clients of a target, sharing what the Loader has loaded.
func (l *Loader) New(ctx context.Context, t Target) (*Clients, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithAppID("trailkeeper"),
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = MaxAttempts
				o.MaxBackoff = 5 * time.Second
				o.RateLimiter = ratelimit.None // retry quotas would give up on a throttled sandbox or a busy account
				// Nothing listening, or no such host, does not change in 16 s of retries: say so at once.
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
					if Unreachable(err) != "" {
						return aws.FalseTernary
					}
					return aws.UnknownTernary
				})}, o.Retryables...)
			})
		}),
	}
	endpoint := t.Endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	if endpoint != "" {
		opts = append(opts, awsconfig.WithBaseEndpoint(endpoint),
			// The SDK resolves the endpoint after the credentials, so the STS client
			// behind a profile's role_arn would still call AWS: point it here too.
			awsconfig.WithAssumeRoleCredentialOptions(func(o *stscreds.AssumeRoleOptions) {
				if c, ok := o.Client.(*sts.Client); ok {
					so := c.Options()
					so.BaseEndpoint = aws.String(endpoint)
					o.Client = sts.New(so)
				}
			}))
	}
	cfg, err := l.loadConfig(ctx, t, endpoint, opts)
	if err != nil {
		return nil, credentialsError(t, err)
	}
	if arn := t.Credentials.RoleARN; arn != "" {
		base := sts.NewFromConfig(cfg)
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(base, arn, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "trailkeeper"
			if t.Credentials.ExternalID != "" {
				o.ExternalID = aws.String(t.Credentials.ExternalID)
			}
		}))
	}
	cfg.HTTPClient = sharedHTTPClient(cfg)
	// Endpoints other than AWS's (the sandbox, moto: IP addresses) need path-style S3.
	pathStyle := t.Endpoint != "" || os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return &Clients{
		Account: t.Account,
		Region:  t.Region,
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.UsePathStyle = pathStyle
			o.EndpointResolverV2 = newS3Endpoints()
		}),
		S3Control: s3control.NewFromConfig(cfg, func(o *s3control.Options) {
			if pathStyle {
				o.EndpointResolverV2 = withoutAccountHost{s3control.NewDefaultEndpointResolverV2()}
			}
		}),
		IAM:        iam.NewFromConfig(cfg),
		STS:        sts.NewFromConfig(cfg),
		CloudTrail: cloudtrail.NewFromConfig(cfg),
		CFN:        cloudformation.NewFromConfig(cfg),
		SNS:        sns.NewFromConfig(cfg),
		Glue:       glue.NewFromConfig(cfg),
		Athena:     athena.NewFromConfig(cfg),
		Events:     eventbridge.NewFromConfig(cfg),
		Lambda:     lambda.NewFromConfig(cfg),
		cfg:        cfg,
	}, nil
}

// InRegion returns clients of the same account in another region (trails live
// in their home region; S3 and IAM do not care).
func (c *Clients) InRegion(region string) *Clients {
	if region == c.Region {
		return c
	}
	cfg := c.cfg.Copy()
	cfg.Region = region
	out := *c
	out.Region = region
	out.CloudTrail = cloudtrail.NewFromConfig(cfg)
	out.CFN = cloudformation.NewFromConfig(cfg)
	out.SNS = sns.NewFromConfig(cfg)
	out.Glue = glue.NewFromConfig(cfg)
	out.Athena = athena.NewFromConfig(cfg)
	out.Events = eventbridge.NewFromConfig(cfg)
	out.Lambda = lambda.NewFromConfig(cfg)
	out.S3Control = s3control.NewFromConfig(cfg, func(o *s3control.Options) { o.EndpointResolverV2 = c.S3Control.Options().EndpointResolverV2 })
	out.cfg = cfg
	return &out
}

// CheckIdentity makes sure the credentials really act in the configured account,
// before anything is changed.
func (c *Clients) CheckIdentity(ctx context.Context, how string) error {
	out, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return &AccessError{Account: c.Account, Err: fmt.Errorf("sts GetCallerIdentity: %w", err),
			Hint: "check the credentials of " + how + " (aws sts get-caller-identity" + profileFlag(how) + ")"}
	}
	if got := aws.ToString(out.Account); got != c.Account {
		return &AccessError{Account: c.Account, Err: fmt.Errorf("%s acts as account %s (%s), not %s", how, got, aws.ToString(out.Arn), c.Account),
			Hint: "point " + how + " at account " + c.Account + ", or fix the account_id in the config"}
	}
	c.CallerARN = aws.ToString(out.Arn)
	return nil
}

func profileFlag(how string) string {
	if p, ok := strings.CutPrefix(how, "profile "); ok {
		return " --profile " + p
	}
	return ""
}

// Describe says how a target's credentials are found, for messages.
func Describe(c config.Credentials) string {
	switch {
	case c.RoleARN != "":
		return "role " + c.RoleARN
	case c.Profile != "":
		return "profile " + c.Profile
	}
	return "the default credentials"
}

// AccessError is a failure to reach or act in an account: credentials,
// permissions, network. The CLI exits 3 for it.
type AccessError struct {
	Account string
	Err     error
	Hint    string
}

func (e *AccessError) Error() string { return "account " + e.Account + ": " + e.Err.Error() }
func (e *AccessError) Unwrap() error { return e.Err }

func credentialsError(t Target, err error) error {
	hint := "configure credentials for account " + t.Account
	var missing awsconfig.SharedConfigProfileNotExistError
	if errors.As(err, &missing) {
		hint = fmt.Sprintf("profile %s is not in ~/.aws/config; run 'aws configure sso --profile %s' or 'aws configure --profile %s'", t.Credentials.Profile, t.Credentials.Profile, t.Credentials.Profile)
	}
	return &AccessError{Account: t.Account, Err: err, Hint: hint}
}

// accessCodes are AWS error codes that mean the caller may not do what it asked.
var accessCodes = map[string]bool{"AccessDenied": true, "AccessDeniedException": true, "UnauthorizedOperation": true,
	"InvalidClientTokenId": true, "ExpiredToken": true, "ExpiredTokenException": true, "InvalidAccessKeyId": true,
	"SignatureDoesNotMatch": true, "UnrecognizedClientException": true, "AllAccessDisabled": true}

// IsAccess reports whether err is an access problem: denied, bad credentials, or
// no network.
func IsAccess(err error) bool {
	var ae *AccessError
	if errors.As(err, &ae) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return accessCodes[api.ErrorCode()]
	}
	var netErr net.Error
	var opErr *net.OpError
	return errors.As(err, &netErr) || errors.As(err, &opErr)
}

// Unreachable names the endpoint when err means nothing could be reached
// there (connection refused, no such host), and "" otherwise.
func Unreachable(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return dns.Name
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED) {
		if op.Addr != nil {
			return op.Addr.String()
		}
		return "the endpoint"
	}
	return ""
}

// Code returns the AWS error code of err, or "".
func Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// Message returns the AWS error message of err, or err's text.
func Message(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorMessage()
	}
	return err.Error()
}

// withoutAccountHost serves S3 Control on an endpoint of one's own (the
// sandbox, moto): AWS's rules put the account id in front of the host
// (ACCOUNT.s3-control.REGION.amazonaws.com), which an IP address cannot take.
type withoutAccountHost struct{ s3control.EndpointResolverV2 }

func (r withoutAccountHost) ResolveEndpoint(ctx context.Context, p s3control.EndpointParameters) (smithyendpoints.Endpoint, error) {
	ep, err := r.EndpointResolverV2.ResolveEndpoint(ctx, p)
	if err == nil && p.AccountId != nil {
		ep.URI.Host = strings.TrimPrefix(ep.URI.Host, *p.AccountId+".")
	}
	return ep, err
}
