package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// DemoOptions are the flags of demo.
type DemoOptions struct {
	Dir  string
	Addr string
	Keep bool
}

func newDemoCmd(streams IO, g *Globals) *cobra.Command {
	opts := &DemoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The whole story in one command, on the embedded sandbox: no AWS account needed",
		Long: `Start the sandbox in-process, create a log-archive account and three member accounts whose trails log
to their own buckets, then run plan and apply, let the logs flow, show status, add a fourth account, backfill it, break the archive
grant and catch the alert, stop a trail and catch watch's line, index the archive and query it with SQL (and the same SQL in Athena), verify the archive, and catch an intruder
who rewrites an archived log. Every step prints what it proved.

Exit codes: 0 every proof held, 1 one did not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), streams, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "where to write the config, sandbox data and report (default: a new temporary directory)")
	cmd.Flags().StringVar(&opts.Addr, "addr", "127.0.0.1:0", "sandbox address")
	cmd.Flags().BoolVar(&opts.Keep, "keep", false, "leave the sandbox running afterwards, to use the AWS CLI and trailkeeper against it")
	return cmd
}

const (
	demoArchive = "999999999999"
	demoRegion  = "ap-northeast-1"
	demoResults = "aggregation-query-results-" + demoArchive
)

var (
	demoMembers = []string{"111111111111", "222222222222", "333333333333", "444444444444"}
	demoFirst   = demoMembers[:3] // the fourth is added later
)

// demo runs the steps and keeps score.
type demo struct {
	ctx    context.Context
	out    io.Writer
	sb     *sandbox.Sandbox
	url    string
	dir    string
	config string
	inbox  *world.Inbox // where the alerts go
	failed int
	steps  int
}

// step runs one proof and prints one line: what it proved and how long it took.
func (d *demo) step(name string, fn func() (string, error)) bool {
	d.steps++
	start := time.Now()
	proof, err := fn()
	took := time.Since(start).Round(10 * time.Millisecond)
	if err != nil {
		d.failed++
		fmt.Fprintf(d.out, "FAIL %-9s %s (%s)\n", name, err, took)
		return false
	}
	fmt.Fprintf(d.out, "ok   %-9s %s (%s)\n", name, proof, took)
	return true
}

// cmd runs a trailkeeper command against the demo's config: its stdout, and
// its stderr too when it failed for another reason than the findings it reports.
func (d *demo) cmd(args ...string) (string, int) {
	var out, errb bytes.Buffer
	code := run(d.ctx, append(args, "--config", d.config, "--no-progress"), IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != ExitOK && code != ExitProblems && code != ExitChanges {
		return out.String() + errb.String(), code
	}
	return out.String(), code
}

func (d *demo) writeConfig(members []string) error {
	profiles := map[string]string{"log-archive": demoArchive}
	var src strings.Builder
	for i, a := range members {
		name := fmt.Sprintf("member-%c", 'a'+i)
		profiles[name] = a
		fmt.Fprintf(&src, "  - account_id: %q\n    profile: %s\n    trail: Members\n", a, name)
	}
	cfg, creds, err := world.WriteProfiles(d.dir, profiles)
	if err != nil {
		return err
	}
	os.Setenv("AWS_CONFIG_FILE", cfg)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	os.Unsetenv("AWS_PROFILE")
	yaml := fmt.Sprintf(`# Written by trailkeeper demo. The profiles are in %s and %s:
#   export AWS_CONFIG_FILE=%s AWS_SHARED_CREDENTIALS_FILE=%s
archive:
  account_id: %q
  region: %s
  bucket: aggregation-cloudtrail-logs-%s
  profile: log-archive
  object_lock: {mode: GOVERNANCE, days: 400}
replication:
  role_name: trailkeeper-replication
  time_control: true
sources:
%salerts:
  subscribe: [%s]   # a person's HTTPS endpoint, played here by the demo
athena:             # Glue tables and a workgroup over the archive, for query --athena
  results: s3://%s/athena/
endpoint_url: %s
`, cfg, creds, cfg, creds, demoArchive, demoRegion, demoArchive, src.String(), d.inbox.URL, demoResults, d.url)
	return os.WriteFile(d.config, []byte(yaml), 0o644)
}

func (d *demo) report() string { return filepath.Join(d.dir, "report.html") }

// flow makes API activity in each account and lets CloudTrail deliver twice,
// then waits until every replica is written.
func (d *demo) flow(members []string) error {
	for range 2 {
		for _, a := range members {
			if err := world.Activity(d.ctx, d.url, a, demoRegion, 3); err != nil {
				return err
			}
		}
		d.sb.Deliver()
	}
	return d.sb.WaitReplication(d.ctx)
}

func runDemo(ctx context.Context, streams IO, opts *DemoOptions) error {
	start := time.Now()
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "trailkeeper-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return usageErr("", "%v", err)
	}
	sb, err := sandbox.New(sandbox.Options{DataDir: filepath.Join(dir, "sandbox"), DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	if err != nil {
		return usageErr("use an empty --dir", "sandbox: %v", err)
	}
	defer sb.Close()
	srv, err := sb.Start(opts.Addr, false)
	if err != nil {
		return usageErr("pick a free --addr", "sandbox: %v", err)
	}
	defer srv.Close()
	in, err := world.NewInbox()
	if err != nil {
		return err
	}
	defer in.Close()
	d := &demo{ctx: ctx, out: streams.Out, sb: sb, url: srv.URL, dir: dir, config: filepath.Join(dir, "trailkeeper.yaml"), inbox: in}
	fmt.Fprintf(d.out, "trailkeeper demo: a local AWS at %s, files in %s\n\n", srv.URL, dir)
	steps := []struct {
		name  string
		proof func() (string, error)
	}{
		{"accounts", d.accountsStep},
		{"plan", d.planStep},
		{"apply", d.applyStep},
		{"replicate", d.replicateStep},
		{"status", d.statusStep},
		{"add", d.addStep},
		{"backfill", d.backfillStep},
		{"alert", d.alertStep},
		{"watch", d.watchStep},
		{"query", d.queryStep},
		{"verify", d.verifyStep},
		{"tamper", d.tamperStep},
		{"report", d.reportStep},
	}
	for _, st := range steps {
		d.step(st.name, st.proof)
	}

	took := time.Since(start).Round(100 * time.Millisecond)
	fmt.Fprintln(d.out)
	if d.failed > 0 {
		fmt.Fprintf(d.out, "%d of %d proofs FAILED (%s). Files: %s\n", d.failed, d.steps, took, dir)
		return &exitError{code: ExitProblems, err: fmt.Errorf("the demo did not hold")}
	}
	fmt.Fprintf(d.out, "All %d proofs held in %s.\n  config:  %s\n  report:  %s\n  sandbox: %s\n", d.steps, took, d.config, d.report(), filepath.Join(dir, "sandbox"))
	env, err := d.writeEnv()
	if err != nil {
		return err
	}
	if !opts.Keep {
		fmt.Fprintf(d.out, `
To go on by hand, paste into a shell:

  . %s
  trailkeeper sandbox --data-dir %s --addr %s &
  trailkeeper status --config %s

(or run demo --keep, which leaves the sandbox running).
`, env, filepath.Join(dir, "sandbox"), strings.TrimPrefix(d.url, "http://"), d.config)
		return nil
	}
	fmt.Fprintf(d.out, `
The sandbox keeps running at %s until you press Ctrl-C. In another shell, paste:

  . %s
  AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=x AWS_ENDPOINT_URL=%s aws s3 ls
  trailkeeper status --config %s
  trailkeeper verify --config %s
`, d.url, env, demoFirst[0], d.url, d.config, d.config)
	<-ctx.Done()
	return nil
}

// writeEnv writes DIR/env.sh: the demo's AWS profiles, and a trailkeeper
// command when none is on PATH (after 'go run', the binary is gone).
func (d *demo) writeEnv() (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# . this file to use the demo's accounts by hand\nexport AWS_CONFIG_FILE=%q AWS_SHARED_CREDENTIALS_FILE=%q\n",
		os.Getenv("AWS_CONFIG_FILE"), os.Getenv("AWS_SHARED_CREDENTIALS_FILE"))
	run := ""
	if wd, err := os.Getwd(); err == nil && underGoRun() {
		if _, err := os.Stat(filepath.Join(wd, "cmd", "trailkeeper")); err == nil {
			run = fmt.Sprintf("(cd %q && go run ./cmd/trailkeeper \"$@\")", wd)
		}
	} else if exe, err := os.Executable(); err == nil {
		run = fmt.Sprintf("%q \"$@\"", exe)
	}
	if run != "" {
		fmt.Fprintf(&b, "command -v trailkeeper >/dev/null 2>&1 || trailkeeper() { %s; }\n", run)
	}
	path := filepath.Join(d.dir, "env.sh")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// archived counts the log files and digests of the accounts in the archive.
func (d *demo) archived(accounts []string) (logs, digests int, err error) {
	arch := world.S3(d.url, demoArchive, demoRegion)
	bucket := "aggregation-cloudtrail-logs-" + demoArchive
	for _, a := range accounts {
		for _, kind := range []string{"CloudTrail", "CloudTrail-Digest"} {
			out, err := arch.ListObjectsV2(d.ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("AWSLogs/" + a + "/" + kind + "/")})
			if err != nil {
				return 0, 0, err
			}
			if len(out.Contents) == 0 {
				return 0, 0, fmt.Errorf("no %s files of account %s in the archive", kind, a)
			}
			if kind == "CloudTrail" {
				logs += len(out.Contents)
			} else {
				digests += len(out.Contents)
			}
		}
	}
	return logs, digests, nil
}

func writtenAccounts(writes map[string]int) map[string]bool {
	out := map[string]bool{}
	for k := range writes {
		acct, _, _ := strings.Cut(k, " ")
		out[acct] = true
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// wait returns the next value of ch, or an error after 10 seconds.
func wait[T any](ch chan T, what string) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-time.After(10 * time.Second):
		var zero T
		return zero, fmt.Errorf("no %s within 10 s", what)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// tableOnly keeps the account table of status output.
func tableOnly(s string) string {
	table, _, _ := strings.Cut(s, "\n\n")
	return table + "\n"
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("       " + l + "\n")
	}
	return b.String()
}

// accountsStep creates the log-archive account and the demoFirst three members, each trail logging to its own bucket.
func (d *demo) accountsStep() (string, error) {
	for _, a := range demoFirst {
		if err := world.CreateMember(d.ctx, d.url, world.Member{Account: a, Region: demoRegion}); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("log-archive account %s and member accounts %s, each trail logging to its own bucket", demoArchive, strings.Join(demoFirst, ", ")), d.writeConfig(demoFirst)
}

// planStep plans the setup of the archive and three sources.
func (d *demo) planStep() (string, error) {
	out, code := d.cmd("plan", "--detailed-exitcode", "--output", "json")
	var p struct{ Steps []any }
	if code != ExitChanges || json.Unmarshal([]byte(out), &p) != nil {
		return "", fmt.Errorf("plan exited %d: %s", code, firstLine(out))
	}
	return fmt.Sprintf("%d changes planned for the archive and 3 sources; config at %s", len(p.Steps), d.config), nil
}

// applyStep applies it, and a second plan finds nothing to change.
func (d *demo) applyStep() (string, error) {
	if out, code := d.cmd("apply", "--yes"); code != ExitOK {
		return "", fmt.Errorf("apply exited %d: %s", code, firstLine(out))
	}
	if out, code := d.cmd("plan", "--detailed-exitcode"); code != ExitOK {
		return "", fmt.Errorf("plan after apply still has changes: %s", firstLine(out))
	}
	if _, err := wait(d.inbox.Confirmed, "confirmation of the alert subscription"); err != nil {
		return "", err
	}
	return "Object-Lock archive, least-privilege roles, replication rules and failure alerts in place; a second plan finds nothing to change", nil
}

// replicateStep lets CloudTrail deliver and replication copy into the archive.
func (d *demo) replicateStep() (string, error) {
	if err := d.flow(demoFirst); err != nil {
		return "", err
	}
	logs, digests, err := d.archived(demoFirst)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("API activity in each account reached the archive: %d log files and %d signed digests, all REPLICA", logs, digests), nil
}

// statusStep shows every account reaching the archive.
func (d *demo) statusStep() (string, error) {
	out, code := d.cmd("status")
	if code != ExitOK {
		return "", fmt.Errorf("status is unhealthy:\n%s", out)
	}
	fmt.Fprint(d.out, indent(tableOnly(out)))
	return "every account's trail reaches the archive (exit 0, no finding)", nil
}

// addStep adds a fourth account that had logged for a while: only the archive and it change.
func (d *demo) addStep() (string, error) {
	fourth := demoMembers[3]
	if err := world.CreateMember(d.ctx, d.url, world.Member{Account: fourth, Region: demoRegion, Validation: true}); err != nil {
		return "", err
	}
	// The account has been logging for a while: replication will never copy that.
	if err := d.flow([]string{fourth}); err != nil {
		return "", err
	}
	if err := d.writeConfig(demoMembers); err != nil {
		return "", err
	}
	d.sb.ResetCalls()
	if out, code := d.cmd("apply", "--yes"); code != ExitOK {
		return "", fmt.Errorf("apply exited %d: %s", code, firstLine(out))
	}
	touched := writtenAccounts(d.sb.WriteCalls())
	if len(touched) != 2 || !touched[demoArchive] || !touched[fourth] {
		return "", fmt.Errorf("adding %s wrote in accounts %v", fourth, touched)
	}
	if err := d.flow(demoMembers); err != nil {
		return "", err
	}
	return fmt.Sprintf("account %s added: only the archive policy and the new account changed, no hand-edited JSON", fourth), nil
}

// backfillStep brings in what the fourth account logged before it was added.
func (d *demo) backfillStep() (string, error) {
	out, code := d.cmd("backfill", "--wait", "--poll", "20ms", "--account", demoMembers[3], "--output", "json")
	var r struct {
		Accounts []struct {
			Missing   int `json:"missingBefore"`
			Succeeded int `json:"succeeded"`
			Remaining int `json:"missingAfter"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != ExitOK || len(r.Accounts) != 1 || r.Accounts[0].Missing == 0 || r.Accounts[0].Remaining != 0 {
		return "", fmt.Errorf("backfill exited %d: %s", code, out)
	}
	a := r.Accounts[0]
	return fmt.Sprintf("%d log files and digests that %s wrote before it was added reached the archive through S3 Batch Replication (%d tasks succeeded); nothing is missing now",
		a.Missing, demoMembers[3], a.Succeeded), nil
}

// alertStep breaks the archive grant and catches S3's failure alert, then repairs.
func (d *demo) alertStep() (string, error) {
	// The archive stops letting the sources in; the next log cannot replicate.
	arch := world.S3(d.url, demoArchive, demoRegion)
	bucket := "aggregation-cloudtrail-logs-" + demoArchive
	pol, err := arch.GetBucketPolicy(d.ctx, &s3.GetBucketPolicyInput{Bucket: &bucket})
	if err != nil {
		return "", err
	}
	doc, err := policy.Parse([]byte(aws.ToString(pol.Policy)), policy.Resource)
	if err != nil {
		return "", err
	}
	doc.Statements = slices.DeleteFunc(doc.Statements, func(s policy.Statement) bool { return s.Sid == setup.SidReplication })
	data, _ := json.Marshal(doc)
	if _, err := arch.PutBucketPolicy(d.ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(string(data))}); err != nil {
		return "", err
	}
	written := time.Now()
	if err := d.flow(demoFirst[:1]); err != nil {
		return "", err
	}
	var ev world.S3Event
	for ev.Reason == "" { // test events from apply may come demoFirst
		msg, err := wait(d.inbox.Messages, "alert")
		if err != nil {
			return "", err
		}
		ev, _ = world.ParseS3Event(msg)
	}
	took := time.Since(written).Round(time.Millisecond)
	if out, code := d.cmd("apply", "--yes"); code != ExitOK {
		return "", fmt.Errorf("apply exited %d: %s", code, firstLine(out))
	}
	if out, code := d.cmd("backfill", "--wait", "--poll", "20ms"); code != ExitOK {
		return "", fmt.Errorf("backfill exited %d: %s", code, out)
	}
	return fmt.Sprintf("the archive grant broken: the subscriber at %s got S3's alert for %s (%s) %v after delivery; apply restored the grant, backfill brought the FAILED logs in",
		d.inbox.URL, filepath.Base(ev.Key), ev.Reason, took), nil
}

// watchStep stops a trail and catches watch's line; the watch function runs on its schedule.
func (d *demo) watchStep() (string, error) {
	// watch: an administrator of a source stops its trail; the person hears of it.
	text, err := os.ReadFile(d.config)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(d.config, append(text, "watch: {}\n"...), 0o644); err != nil {
		return "", err
	}
	var out, errb bytes.Buffer
	if code := run(d.ctx, []string{"apply", "--yes", "--config", d.config, "--no-progress"}, IO{In: strings.NewReader(""), Out: &out, Err: &errb}); code != ExitOK {
		return "", fmt.Errorf("apply with watch exited %d: %s", code, strings.TrimSpace(errb.String()))
	}
	trails := cloudtrail.NewFromConfig(world.Config(d.url, demoMembers[1], demoRegion))
	stopped := time.Now()
	if _, err := trails.StopLogging(d.ctx, &cloudtrail.StopLoggingInput{Name: aws.String("Members")}); err != nil {
		return "", err
	}
	var line string
	for !strings.HasPrefix(line, "trailkeeper watch:") { // alerts of the step before may come demoFirst
		if line, err = wait(d.inbox.Messages, "watch"); err != nil {
			return "", err
		}
	}
	took := time.Since(stopped).Round(time.Millisecond)
	if _, err := trails.StartLogging(d.ctx, &cloudtrail.StartLoggingInput{Name: aws.String("Members")}); err != nil {
		return "", err
	}
	// The scheduled verdict: trailkeeper itself as a Lambda function on EventBridge's schedule.
	if err := d.sb.RunSchedules(d.ctx); err != nil {
		return "", err
	}
	said := firstLine(line)
	return fmt.Sprintf("StopLogging in %s reached the subscriber %v later as %q; the watch function (this binary on Lambda) ran on its schedule",
		demoMembers[1], took, said[:min(len(said), 90)]+"..."), nil
}

// queryStep indexes the archive as Parquet and queries it with SQL, then
// runs the same statement in Athena (the sandbox's: DuckDB over the log
// files the Glue table names) and gets the same answer.
func (d *demo) queryStep() (string, error) {
	index := filepath.Join(d.dir, "index")
	if out, code := d.cmd("index", "--to", index); code != ExitOK {
		return "", fmt.Errorf("index exited %d: %s", code, out)
	}
	const sql = "SELECT count(DISTINCT account) AS accounts, count(*) AS events FROM events"
	start := time.Now()
	out, code := d.cmd("query", "--index", index, "-o", "csv", sql)
	var accounts, events int
	if _, err := fmt.Sscanf(lastLine(out), "%d,%d", &accounts, &events); err != nil || code != ExitOK || accounts != len(demoMembers) {
		return "", fmt.Errorf("query exited %d: %s", code, out)
	}
	took := time.Since(start).Round(time.Millisecond)
	results := demoResults
	if _, err := world.S3(d.url, demoArchive, demoRegion).CreateBucket(d.ctx, &s3.CreateBucketInput{Bucket: &results,
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: demoRegion}}); err != nil {
		return "", err
	}
	remote, code := d.cmd("query", "--athena", "-o", "csv", sql)
	if code != ExitOK || lastLine(remote) != lastLine(out) {
		return "", fmt.Errorf("query --athena exited %d and said %q, the index %q", code, lastLine(remote), lastLine(out))
	}
	return fmt.Sprintf("the archive indexed as Parquet in %s; SQL over it (DuckDB): %d events of %d accounts in %v; the same SQL with --athena in the workgroup apply made: the same answer",
		index, events, accounts, took), nil
}

// verifyStep proves the archive valid on its copy.
func (d *demo) verifyStep() (string, error) {
	out, code := d.cmd("verify")
	if code != ExitOK {
		return "", fmt.Errorf("verify found problems:\n%s", out)
	}
	return "digest chains and log hashes valid on the archive copy itself: " + strings.TrimSpace(lastLine(out)), nil
}

// tamperStep rewrites an archived log as an intruder would, and verify catches it.
func (d *demo) tamperStep() (string, error) {
	arch := world.S3(d.url, demoArchive, demoRegion)
	bucket := "aggregation-cloudtrail-logs-" + demoArchive
	list, err := arch.ListObjectsV2(d.ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("AWSLogs/" + demoFirst[0] + "/CloudTrail/")})
	if err != nil || len(list.Contents) == 0 {
		return "", fmt.Errorf("no archived log to alter: %v", err)
	}
	victim := aws.ToString(list.Contents[0].Key)
	// An intruder with write access to the archive cannot delete the locked
	// replica, so they write a new version over it, with the incriminating event gone.
	if _, err := arch.PutObject(d.ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &victim, ContentEncoding: aws.String("gzip"),
		Body: bytes.NewReader(fixture.Gzip([]byte(`{"Records":[]}`))), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32}); err != nil {
		return "", err
	}
	out, code := d.cmd("verify", "--output", "json")
	if code != ExitProblems || !strings.Contains(out, `"shadowing-version"`) || !strings.Contains(out, victim) {
		return "", fmt.Errorf("verify did not catch the rewrite of %s (exit %d)", victim, code)
	}
	return fmt.Sprintf("an intruder's rewrite of %s is caught by verify (exit 1: shadowing-version); the locked replica is intact", filepath.Base(victim)), nil
}

// reportStep writes the HTML report.
func (d *demo) reportStep() (string, error) {
	if out, code := d.cmd("report", "--html", d.report(), "--days", "1"); code != ExitOK {
		return "", fmt.Errorf("report exited %d: %s", code, firstLine(out))
	}
	return "status, heatmap and lag written to " + d.report(), nil
}
