// Package e2e runs trailkeeper's commands end to end, through the real AWS SDK,
// against an in-process sandbox; the AWS CLI plays the seed's manual setup.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/cli"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/sandbox/sandboxtest"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

const (
	archiveAcct = "999999999999"
	region      = "ap-northeast-1"
	archive     = "aggregation-cloudtrail-logs-999999999999"
)

var ctx = context.Background()

// env is a sandbox with profiles for its accounts and a trailkeeper.yaml.
type env struct {
	t       *testing.T
	sb      *sandbox.Sandbox
	url     string
	dir     string
	config  string
	members map[string]world.Member
	aws     *testenv.AWSCLI // the AWS CLI, started on first use
}

func newEnv(t *testing.T, opts sandbox.Options) *env {
	t.Helper()
	if opts.DeliveryInterval == 0 {
		opts.DeliveryInterval, opts.DigestInterval = time.Hour, time.Hour
	}
	sb, url := sandboxtest.Start(t, opts)
	e := &env{t: t, sb: sb, url: url, dir: t.TempDir(), members: map[string]world.Member{}}
	e.config = filepath.Join(e.dir, "trailkeeper.yaml")
	return e
}

// member creates a source account with a logging trail, as the seed assumes.
func (e *env) member(m world.Member) world.Member {
	e.t.Helper()
	if m.Region == "" {
		m.Region = region
	}
	if err := world.CreateMember(ctx, e.url, m); err != nil {
		e.t.Fatal(err)
	}
	e.members[m.Account] = m
	return m
}

// writeConfig writes profiles for the archive and the given accounts and a
// trailkeeper.yaml listing them as sources; extra is appended to the replication section.
func (e *env) writeConfig(accounts []string, replication string) {
	e.t.Helper()
	profiles := map[string]string{"log-archive": archiveAcct}
	var src strings.Builder
	for _, a := range accounts {
		profiles["member-"+a] = a
		fmt.Fprintf(&src, "  - account_id: %q\n    profile: member-%s\n", a, a)
		if m, ok := e.members[a]; ok && m.Trail != "" && m.Trail != "Members" {
			fmt.Fprintf(&src, "    trail: %s\n", m.Trail)
		}
	}
	cfgFile, credsFile, err := world.WriteProfiles(e.dir, profiles)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Setenv("AWS_CONFIG_FILE", cfgFile)
	e.t.Setenv("AWS_SHARED_CREDENTIALS_FILE", credsFile)
	e.t.Setenv("AWS_ENDPOINT_URL", "")
	e.t.Setenv("AWS_PROFILE", "")
	os.Unsetenv("AWS_PROFILE") // an empty AWS_PROFILE names a profile ""; t.Setenv restores the old value
	yaml := fmt.Sprintf(`archive:
  account_id: %q
  region: %s
  bucket: %s
  profile: log-archive
  object_lock: {mode: GOVERNANCE, days: 400}
replication:
  role_name: trailkeeper-replication
  time_control: true
%ssources:
%sendpoint_url: %s
`, archiveAcct, region, archive, replication, src.String(), e.url)
	if err := os.WriteFile(e.config, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// run runs the trailkeeper binary's Main with the env's config.
// archived is an env whose accounts are applied and have each let CloudTrail
// deliver n times into the archive.
func archived(t *testing.T, n int, accounts ...string) *env {
	t.Helper()
	e := newEnv(t, sandbox.Options{})
	for _, a := range accounts {
		e.member(world.Member{Account: a})
	}
	e.writeConfig(accounts, "")
	e.apply()
	for _, a := range accounts {
		e.deliveries(a, n)
	}
	return e
}

func (e *env) run(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = cli.Main(append(args, "--config", e.config, "--no-progress"), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func (e *env) apply(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(append([]string{"apply", "--yes"}, args...)...)
	if code != 0 {
		e.t.Fatalf("apply exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	return out
}

// writes counts the write calls the sandbox saw since the last reset.
func (e *env) writes() map[string]int { return e.sb.WriteCalls() }

// accountsWritten lists the accounts that received write calls.
func (e *env) accountsWritten() []string {
	set := map[string]bool{}
	for k := range e.writes() {
		a, _, _ := strings.Cut(k, " ")
		set[a] = true
	}
	var out []string
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// freshLogReplicates makes the account's trail deliver a new log file and checks
// that it reaches the archive as REPLICA, the source copy COMPLETED.
func (e *env) freshLogReplicates(account string) {
	e.t.Helper()
	mem := e.members[account]
	before := time.Now()
	if err := world.Activity(ctx, e.url, account, mem.Region, 2); err != nil {
		e.t.Fatal(err)
	}
	e.sb.Deliver()
	wctx, cancel := testenv.Patience(e.t)
	defer cancel()
	if err := e.sb.WaitReplication(wctx); err != nil {
		e.t.Fatal(err)
	}
	prefix := "AWSLogs/" + account + "/CloudTrail/"
	if mem.Prefix != "" {
		prefix = mem.Prefix + "/" + prefix
	}
	src := world.S3(e.url, account, mem.Region)
	bucket := mem.Bucket
	if bucket == "" {
		bucket = "cm-members-cloudtrail-" + account
	}
	list, err := src.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		e.t.Fatal(err)
	}
	var newest string
	var at time.Time
	for _, o := range list.Contents {
		if o.LastModified.After(at) || o.LastModified.Equal(at) {
			newest, at = *o.Key, *o.LastModified
		}
	}
	if newest == "" || at.Before(before.Add(-time.Second)) {
		e.t.Fatalf("account %s: no fresh log file under %s", account, prefix)
	}
	sh, err := src.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &newest})
	if err != nil {
		e.t.Fatal(err)
	}
	rh, err := world.S3(e.url, archiveAcct, region).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: &newest})
	if err != nil || sh.ReplicationStatus != "COMPLETED" || rh.ReplicationStatus != "REPLICA" {
		st, why, _ := e.sb.ReplicationFailure(bucket, newest, aws.ToString(sh.VersionId))
		e.t.Fatalf("account %s: %s is %s (%s %s) in the source, archive: %v", account, newest, sh.ReplicationStatus, st, why, err)
	}
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %s", s)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// byMeaning compacts a policy and writes account principals as bare ids: S3
// returns arn:aws:iam::ID:root for an id (moto keeps what was written), and
// both name the same principal.
func byMeaning(t *testing.T, policy string) string {
	t.Helper()
	return rootARN.ReplaceAllString(compactJSON(t, policy), `"$1"`)
}

var rootARN = regexp.MustCompile(`"arn:aws:iam::(\d{12}):root"`)

// grantOf is how an account appears in a bucket policy S3 returns.
func grantOf(account string) string { return `"arn:aws:iam::` + account + `:root"` }

func decodeURL(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

// runAWS runs the AWS CLI as an account against the env's sandbox, in dir
// (the env's own folder when ""), through one CLI driver per env.
func runAWSIn(e *env, dir, acct string, args ...string) (string, error) {
	if e.aws == nil {
		e.aws = testenv.StartAWSCLI(e.t)
	}
	if dir == "" {
		dir = e.dir
	}
	out, errOut, code, err := e.aws.Run(dir, []string{"AWS_ACCESS_KEY_ID=" + acct, "AWS_SECRET_ACCESS_KEY=x", "AWS_DEFAULT_REGION=" + region,
		"AWS_ENDPOINT_URL=" + e.url, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}, args...)
	switch {
	case err != nil:
		e.t.Fatal(err)
	case code != 0:
		return out + errOut, fmt.Errorf("exit status %d: %s%s", code, out, errOut)
	}
	return out + errOut, nil
}

func runAWS(e *env, acct string, args ...string) (string, error) {
	return runAWSIn(e, "", acct, args...)
}

// must(call).OK(t) fails the test when the call returned an error.
func must[T any](v T, err error) testenv.Result[T] { return testenv.Must(v, err) }

var requireTool = testenv.RequireTool
