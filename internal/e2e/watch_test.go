package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/status"
	"github.com/trailkeeper/trailkeeper/internal/watch"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// line waits for the next watch message; S3 events are passed over.
func (in *inbox) line() string {
	in.t.Helper()
	return in.await("watch message", func(msg string) bool { return strings.HasPrefix(msg, "trailkeeper watch") })
}

// A source account's administrator, with the AWS CLI, stops the trail,
// deletes the bucket's replication rule and the replication role's policy:
// each reaches the person as one line naming the account, the call, who made
// it and the fix. A call on another bucket sends nothing: the next line the
// person gets is watch test's.
func TestWatchTellsAPersonOfTampering(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, MultiRegion: true}) // IAM's calls are logged in us-east-1
	e.member(world.Member{Account: acctB})
	person := newInbox(t)
	e.writeConfig([]string{acctA, acctB}, "alerts:\n  subscribe: ["+person.url+"]\nwatch: {}\n")
	plan, _, _ := e.run("plan")
	for _, want := range []string{"event bus " + setup.WatchBusName, "EventBridge rule trailkeeper-watch in us-east-1", "policy of event bus"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan does not say %q:\n%s", want, plan)
		}
	}
	e.apply()
	person.waitConfirmed(1)
	r, code, out := e.status()
	if code != 0 || r.Watch == nil || !r.Watch.Wired || r.Watch.SourcesWired != 2 || !r.Accounts[0].WatchWired {
		t.Fatalf("status with watch wired: exit %d\n%s", code, out)
	}
	// A function deployed by another trailkeeper build: plan would deploy this
	// one, status calls it no drift.
	fn := lambda.NewFromConfig(world.Config(e.url, archiveAcct, region))
	cfg := must(fn.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(setup.WatchFunctionName)})).OK(t).Configuration
	cfg.Environment.Variables["TRAILKEEPER_BUILD"] = "0123456789abcdef"
	must(fn.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(setup.WatchFunctionName),
		Environment: &lambdatypes.Environment{Variables: cfg.Environment.Variables}})).OK(t)
	if r, code, out := e.status(); code != 0 || !r.Healthy {
		t.Fatalf("status with the function of another build: exit %d\n%s", code, out)
	}
	if out, _, _ := e.run("plan"); !strings.Contains(out, "function "+setup.WatchFunctionName) {
		t.Fatalf("plan does not deploy this build:\n%s", out)
	}
	e.apply()
	e.sb.ResetCalls()
	if out := e.apply(); len(e.writes()) != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("a second apply wrote %v:\n%s", e.writes(), out)
	}

	bucketA := "cm-members-cloudtrail-" + acctA
	for _, tc := range []struct {
		call []string
		want []string
	}{
		{[]string{"cloudtrail", "stop-logging", "--name", "Members"}, []string{"account " + acctA + " (" + region + "): StopLogging on trail Members by arn:aws:iam::" + acctA + ":root", "aws cloudtrail start-logging --name Members"}},
		{[]string{"cloudtrail", "start-logging", "--name", "Members"}, nil}, // not watched: the next line is the next call's
		{[]string{"s3api", "delete-bucket-replication", "--bucket", bucketA}, []string{"account " + acctA + " (" + region + "): DeleteBucketReplication on bucket " + bucketA, "trailkeeper apply puts back"}},
		{[]string{"iam", "delete-role-policy", "--role-name", "trailkeeper-replication", "--policy-name", "trailkeeper-replication"}, []string{"account " + acctA + " (us-east-1): DeleteRolePolicy on role trailkeeper-replication", "trailkeeper apply puts back the role"}},
		{[]string{"s3api", "create-bucket", "--bucket", "unrelated-" + acctA, "--create-bucket-configuration", "LocationConstraint=" + region}, nil},
		{[]string{"s3api", "put-bucket-versioning", "--bucket", "unrelated-" + acctA, "--versioning-configuration", "Status=Enabled"}, nil},
		{[]string{"s3api", "put-bucket-policy", "--bucket", "unrelated-" + acctA, "--policy", `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::unrelated-` + acctA + `/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`}, nil},
	} {
		if out, err := runAWS(e, acctA, tc.call...); err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(tc.call, " "), err, out)
		}
		if tc.want == nil {
			continue
		}
		got := person.line()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Fatalf("after aws %s the person read:\n%s\nwhich does not say %q", strings.Join(tc.call, " "), got, w)
			}
		}
	}
	// The changes on the unrelated bucket sent nothing: the next line is the test's.
	out, errOut, code := e.run("watch", "test")
	if code != 0 || strings.Count(out, " sent (") != 2 || !strings.Contains(out, "The watch function ran once: not healthy") {
		t.Fatalf("watch test: exit %d\n%s%s", code, out, errOut)
	}
	// The two test lines, and the function's verdict on what the admin broke;
	// a line about the unrelated bucket would be neither.
	for tests := 0; tests < 2; {
		switch got := person.line(); {
		case strings.HasPrefix(got, "trailkeeper watch test: account "):
			tests++
		case strings.HasPrefix(got, "trailkeeper watch: the archive is not healthy"):
		default:
			t.Fatalf("the person read %q where watch test's lines were due (a change on an unrelated bucket must send nothing)", got)
		}
	}

	// status names what differs; apply puts it back.
	if r, code, out := e.status(); code == 0 || r.Healthy {
		t.Fatalf("status after the tampering: exit %d\n%s", code, out)
	}
	e.apply()
	// A source that deletes its watch rule is named by status.
	srcEvents := eventbridge.NewFromConfig(world.Config(e.url, acctB, region))
	must(srcEvents.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String(setup.WatchRuleName), Ids: []string{"trailkeeper-archive"}})).OK(t)
	must(srcEvents.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String(setup.WatchRuleName)})).OK(t)
	if r, code, out := e.status(); code == 0 || finding(r, "watch-unwired") == nil || finding(r, "watch-unwired").Account != acctB {
		t.Fatalf("status with a source's watch rule deleted: exit %d\n%s", code, out)
	}
	e.apply()

	// remove-source takes the account's rules, its observer role and its place in the bus policy.
	if out, errOut, code := e.run("remove-source", acctB, "--yes"); code != 0 {
		t.Fatalf("remove-source: exit %d\n%s%s", code, out, errOut)
	}
	for _, r := range []string{region, "us-east-1"} {
		if _, err := eventbridge.NewFromConfig(world.Config(e.url, acctB, r)).DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(setup.WatchRuleName)}); err == nil {
			t.Errorf("the removed account still has the watch rule in %s", r)
		}
	}
	if _, err := iam.NewFromConfig(world.Config(e.url, acctB, region)).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(setup.ObserverRoleName)}); err == nil {
		t.Error("the removed account still has the observer role")
	}
	arch := eventbridge.NewFromConfig(world.Config(e.url, archiveAcct, region))
	if bus := must(arch.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(setup.WatchBusName)})).OK(t); strings.Contains(aws.ToString(bus.Policy), acctB) ||
		!strings.Contains(aws.ToString(bus.Policy), acctA) {
		t.Fatalf("the bus policy after remove-source: %s", aws.ToString(bus.Policy))
	}

	// Taking watch out of the config unwires what trailkeeper wrote, and only that.
	must(arch.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("security-team"), EventBusName: aws.String(setup.WatchBusName), EventPattern: aws.String(`{"source":["aws.s3"]}`)})).OK(t)
	e.writeConfig([]string{acctA}, "alerts:\n  subscribe: ["+person.url+"]\n")
	e.apply()
	for _, acct := range []string{acctA} {
		for _, r := range []string{region, "us-east-1"} {
			if _, err := eventbridge.NewFromConfig(world.Config(e.url, acct, r)).DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(setup.WatchRuleName)}); err == nil {
				t.Errorf("account %s still has the watch rule in %s", acct, r)
			}
		}
	}
	rules := must(arch.ListRules(ctx, &eventbridge.ListRulesInput{EventBusName: aws.String(setup.WatchBusName)})).OK(t)
	if len(rules.Rules) != 1 || aws.ToString(rules.Rules[0].Name) != "security-team" {
		t.Fatalf("rules left on the archive's bus: %+v", rules.Rules)
	}
}

// verdict reads what the watch function concluded last.
func (e *env) verdict() *watch.Verdict {
	e.t.Helper()
	out, err := world.S3(e.url, archiveAcct, region).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(archive), Key: aws.String(setup.WatchPrefix + "verdict.json")})
	if err != nil {
		e.t.Fatalf("the watch function left no verdict: %v", err)
	}
	defer out.Body.Close()
	var v watch.Verdict
	if err := json.NewDecoder(out.Body).Decode(&v); err != nil {
		e.t.Fatal(err)
	}
	return &v
}

func (e *env) runSchedules() {
	e.t.Helper()
	if err := e.sb.RunSchedules(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// A trail stopped with no API call (nothing for EventBridge to hear): the
// watch function, deployed by apply as this very binary and run by the
// schedule, finds it through the observer role and tells the person once; a
// run that finds nothing new says nothing; once logging is back, one
// "healthy again".
func TestWatchScheduledVerdict(t *testing.T) {
	e, person := alerted(t, "watch: {}\n")

	e.runSchedules()
	first := e.verdict()
	if first.Runs != 1 || !first.Healthy || first.Notified != 0 || first.VerifyVerdict != "valid" || first.VerifiedAt.IsZero() {
		t.Fatalf("the first run of a healthy archive (status, and the day's verify): %+v", first)
	}
	page := must(world.S3(e.url, archiveAcct, region).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(archive), Key: aws.String(setup.WatchPrefix + "report.html")})).OK(t)
	page.Body.Close()
	if aws.ToString(page.ContentType) != "text/html" {
		t.Fatalf("the function's report: %s", aws.ToString(page.ContentType))
	}
	if err := e.sb.StopLoggingQuietly(acctA, "Members"); err != nil {
		t.Fatal(err)
	}
	e.runSchedules()
	got := person.line()
	if !strings.HasPrefix(got, "trailkeeper watch: the archive is not healthy") || !strings.Contains(got, "account "+acctA+": trail-not-logging") ||
		!strings.Contains(got, "aws cloudtrail start-logging") {
		t.Fatalf("the run after the silent stop told the person:\n%s", got)
	}
	e.runSchedules()
	if v := e.verdict(); v.Runs != 3 || v.Healthy || v.Notified != 1 || !v.VerifiedAt.Equal(first.VerifiedAt) {
		t.Fatalf("a run with nothing new: %+v (one message in all, three runs, verified once a day)", v)
	}
	if out, err := runAWS(e, acctA, "cloudtrail", "start-logging", "--name", "Members"); err != nil {
		t.Fatalf("start-logging: %v\n%s", err, out)
	}
	e.deliveries(acctA, 1)
	if out, errOut, code := e.run("backfill", "--wait", "--poll", "10ms"); code != 0 {
		t.Fatalf("backfill: exit %d\n%s%s", code, out, errOut)
	}
	e.runSchedules()
	if got := person.line(); !strings.HasPrefix(got, "trailkeeper watch: healthy again") {
		t.Fatalf("after logging started again the person read (a second 'not healthy' would mean the quiet run spoke):\n%s", got)
	}
	if v := e.verdict(); v.Runs != 4 || !v.Healthy || v.Notified != 2 {
		t.Fatalf("after healthy again: %+v", v)
	}
}

// A trail that says it logs but delivers no digest for longer than watch's
// window is called stopped: CloudTrail writes one an hour, activity or not.
func TestStatusCallsASilentTrailStopped(t *testing.T) {
	e, _ := alerted(t, "watch: {digests_within: 2h}\n")
	env, err := setup.Connect(ctx, mustConfig(t, e), mustConfig(t, e).Sources, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		later   time.Duration
		overdue bool
	}{{30 * time.Minute, false}, {3 * time.Hour, true}} {
		r, err := status.Check(ctx, env, status.Options{Now: time.Now().UTC().Add(tc.later)})
		if err != nil {
			t.Fatal(err)
		}
		if f := finding(r, "digests-overdue"); (f != nil) != tc.overdue || tc.overdue && (f.Account != acctA || !strings.Contains(f.Message, "more than 2h0m0s")) {
			t.Fatalf("%v after the last digest: %+v", tc.later, r.Findings)
		}
	}
}
