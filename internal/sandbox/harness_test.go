package sandbox

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	archiveAcct = "999999999999"
	sourceAcct  = "111111111111"
	otherAcct   = "222222222222"
	region      = "ap-northeast-1"
)

// env is one in-process sandbox served on a loopback port.
type env struct {
	t      testing.TB
	sb     *Sandbox
	url    string
	client *http.Client // for https sandboxes: trusts the sandbox's CA
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	sb, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sb.Start("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		sb.Close()
	})
	return &env{t: t, sb: sb, url: srv.URL}
}

// cfg is an SDK configuration acting as the root of account acct.
func (e *env) cfg(acct string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(acct, "secret", ""),
		BaseEndpoint: aws.String(e.url),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
		HTTPClient:   e.httpClient(),
	}
}

func (e *env) httpClient() aws.HTTPClient {
	if e.client == nil {
		return http.DefaultClient
	}
	return e.client
}

func (e *env) s3(acct string) *s3.Client {
	return s3.NewFromConfig(e.cfg(acct), func(o *s3.Options) { o.UsePathStyle = true })
}

func (e *env) iam(acct string) *iam.Client { return iam.NewFromConfig(e.cfg(acct)) }
func (e *env) sts(acct string) *sts.Client { return sts.NewFromConfig(e.cfg(acct)) }
func (e *env) cloudtrail(acct string) *cloudtrail.Client {
	return cloudtrail.NewFromConfig(e.cfg(acct))
}

// get reads an object's bytes through the SDK.
func (e *env) get(acct, bucket, key string) []byte {
	e.t.Helper()
	out, err := e.s3(acct).GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		e.t.Fatalf("get s3://%s/%s as %s: %v", bucket, key, acct, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return data
}

func (e *env) waitReplication() {
	ctx, cancel := testenv.Patience(e.t)
	defer cancel()
	if err := e.sb.WaitReplication(ctx); err != nil {
		e.t.Fatal("replication did not finish:", err)
	}
}

// errCode returns the AWS error code of err, or "" for none.
func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// cli runs the real AWS CLI as account acct against endpoint.
type cli struct {
	t        *testing.T
	endpoint string
	dir      string
	aws      *testenv.AWSCLI
	env      []string // extra variables, such as HTTP_PROXY
}

func newCLI(t *testing.T, endpoint string) *cli {
	return &cli{t: t, endpoint: endpoint, dir: t.TempDir(), aws: testenv.StartAWSCLI(t)}
}

func (c *cli) run(acct string, args ...string) (string, error) {
	env := append([]string{"AWS_ACCESS_KEY_ID=" + acct, "AWS_SECRET_ACCESS_KEY=secret", "AWS_SESSION_TOKEN=",
		"AWS_DEFAULT_REGION=" + region, "AWS_ENDPOINT_URL=" + c.endpoint, "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1"}, c.env...)
	out, errOut, code, err := c.aws.Run(c.dir, env, args...)
	switch {
	case err != nil:
		c.t.Fatal(err)
	case code != 0:
		return out, errors.New(strings.TrimSpace(errOut))
	}
	return strings.TrimSpace(out), nil
}

func (c *cli) ok(acct string, args ...string) string {
	c.t.Helper()
	out, err := c.run(acct, args...)
	if err != nil {
		c.t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (c *cli) file(name, content string) string {
	p := c.dir + "/" + name
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return "file://" + p
}

// assumed returns an S3 client acting as a session of roleARN, assumed by acct.
func (e *env) assumed(t *testing.T, acct, roleARN string) *s3.Client {
	t.Helper()
	out := must(e.sts(acct).AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: &roleARN, RoleSessionName: aws.String("test")})).OK(t)
	cfg := e.cfg(acct)
	c := out.Credentials
	cfg.Credentials = credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// must(call).OK(t) fails the test when the call returned an error.
func must[T any](v T, err error) testenv.Result[T] { return testenv.Must(v, err) }

var requireTool = testenv.RequireTool
