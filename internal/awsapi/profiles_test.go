package awsapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/sandbox/sandboxtest"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

const sharedConfig = `# shared config
[default]
region = eu-west-1

[profile static]
region = ap-northeast-1
aws_access_key_id = FROMCONFIG

[profile hub]
region = us-east-1

[profile member]
role_arn = arn:aws:iam::222222222222:role/admin
source_profile = hub
external_id = ext-1
role_session_name = trailkeeper-test
duration_seconds = 1800

[profile self]
role_arn = arn:aws:iam::222222222222:role/admin
source_profile = self
external_id = ext-1
aws_access_key_id = 111111111111
aws_secret_access_key = x

[profile sso]
sso_session = corp
sso_account_id = 222222222222
sso_role_name = Admin
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1

[profile nested]
aws_access_key_id = 111111111111
aws_secret_access_key = x
s3 =
  addressing_style = path

[profile process]
credential_process = /bin/false
`

const sharedCredentials = `[static]
aws_access_key_id = 111111111111
aws_secret_access_key = secret
aws_session_token = token
[hub]
aws_access_key_id = 111111111111
aws_secret_access_key = x
`

func writeShared(t *testing.T) {
	dir := t.TempDir()
	cfg, creds := filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	os.WriteFile(cfg, []byte(sharedConfig), 0o600)
	os.WriteFile(creds, []byte(sharedCredentials), 0o600)
	t.Setenv("AWS_CONFIG_FILE", cfg)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
}

// The fast path reads the keys the SDK reads, and hands every other shape to
// the SDK.
func TestPlainProfilesReadAsTheSDKReadsThem(t *testing.T) {
	writeShared(t)
	f, _ := loadSharedFiles()
	for name, plain := range map[string]bool{"default": false, "static": true, "hub": true, "member": true, "self": true,
		"sso": false, "nested": false, "process": false, "missing": false} {
		_, _, ok := f.plainCredentials(aws.Config{}, name, 0)
		if ok != plain {
			t.Errorf("profile %s: plain = %v, want %v", name, ok, plain)
		}
		if !ok {
			continue
		}
		sdk, err := awsconfig.LoadSharedConfigProfile(context.Background(), name, func(o *awsconfig.LoadSharedConfigOptions) {
			o.ConfigFiles, o.CredentialsFiles = []string{os.Getenv("AWS_CONFIG_FILE")}, []string{os.Getenv("AWS_SHARED_CREDENTIALS_FILE")}
		})
		if err != nil {
			t.Fatalf("SDK on profile %s: %v", name, err)
		}
		keys, _ := f.profile(name)
		creds := sdk.Credentials
		if sdk.SourceProfileName == name && sdk.Source != nil { // its own source: the SDK files its keys there
			creds = sdk.Source.Credentials
		}
		for k, want := range map[string]string{"aws_access_key_id": creds.AccessKeyID, "aws_secret_access_key": creds.SecretAccessKey,
			"aws_session_token": creds.SessionToken, "role_arn": sdk.RoleARN, "source_profile": sdk.SourceProfileName,
			"external_id": sdk.ExternalID, "role_session_name": sdk.RoleSessionName, "region": sdk.Region} {
			if keys[k] != want {
				t.Errorf("profile %s: %s = %q, the SDK reads %q", name, k, keys[k], want)
			}
		}
	}
}

// A profile that assumes a role from a hub profile works end to end against
// the sandbox, and accounts that share a profile load it once.
func TestProfilesAgainstTheSandbox(t *testing.T) {
	writeShared(t)
	_, url := sandboxtest.Start(t, sandbox.Options{})
	im := iam.NewFromConfig(world.Config(url, "222222222222", "us-east-1"))
	if _, err := im.CreateRole(context.Background(), &iam.CreateRoleInput{RoleName: aws.String("admin"), AssumeRolePolicyDocument: aws.String(
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"ext-1"}}}]}`)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ profile, account string }{{"static", "111111111111"}, {"member", "222222222222"}, {"self", "222222222222"}} {
		cl, err := New(context.Background(), Target{Account: c.account, Region: "ap-northeast-1", Credentials: config.Credentials{Profile: c.profile}, Endpoint: url})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.CheckIdentity(context.Background(), "profile "+c.profile); err != nil {
			t.Errorf("profile %s: %v", c.profile, err)
		}
	}
}

// With AWS_CA_BUNDLE set, every target shares one client that trusts the
// bundle, instead of a parsed copy and a connection pool each.
func TestCABundleLoadedOnce(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	t.Setenv("AWS_CA_BUNDLE", bundle)
	t.Setenv("AWS_ACCESS_KEY_ID", "111111111111")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	var clients []aws.HTTPClient
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		cl, err := New(context.Background(), Target{Account: "111111111111", Region: region, Endpoint: "https://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl.cfg.HTTPClient)
	}
	if clients[0] != clients[1] || clients[0] == aws.HTTPClient(httpClient) {
		t.Fatal("each target got its own HTTP client for the CA bundle")
	}
	tr, ok := clients[0].(*awshttp.BuildableClient)
	if !ok || !tr.GetTransport().TLSClientConfig.RootCAs.Equal(func() *x509.CertPool {
		p := x509.NewCertPool()
		c, _ := x509.ParseCertificate(der)
		p.AddCert(c)
		return p
	}()) {
		t.Fatal("the shared client does not trust exactly the bundle")
	}
}
