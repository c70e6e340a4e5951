package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// TestApplyUnderFaults: with a fifth of all requests failing (throttling and
// internal errors), apply reaches the same end state as without faults.
func TestApplyUnderFaults(t *testing.T) {
	accounts := []string{acctA, acctB, acctC}
	clean := newEnv(t, sandbox.Options{})
	faulty := newEnv(t, sandbox.Options{})
	for _, e := range []*env{clean, faulty} {
		for _, a := range accounts {
			e.member(world.Member{Account: a})
		}
		e.writeConfig(accounts, "")
	}
	clean.apply()
	faulty.sb.SetFaultRate(0.2)
	faulty.apply()
	if faulty.sb.Calls()[archiveAcct+" Fault"]+faulty.sb.Calls()[acctA+" Fault"] == 0 {
		t.Fatal("no faults were injected")
	}
	if _, _, code := faulty.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("plan after apply under faults exited %d", code)
	}
	faulty.sb.SetFaultRate(0)
	if a, b := archivePolicy(t, clean), archivePolicy(t, faulty); a != b {
		t.Fatalf("archive policies differ:\n%s\n%s", a, b)
	}
	for _, a := range accounts {
		faulty.freshLogReplicates(a)
	}
}

// TestInterruptedApplyConverges kills apply in the middle of each step in turn;
// the next apply finishes the job, with no principal or rule twice.
func TestInterruptedApplyConverges(t *testing.T) {
	accounts := []string{acctA, acctB}
	probe := newEnv(t, sandbox.Options{})
	for _, a := range accounts {
		probe.member(world.Member{Account: a})
	}
	probe.writeConfig(accounts, "")
	steps := len(build(t, probe).Steps)
	if steps < 8 {
		t.Fatalf("only %d steps planned", steps)
	}
	for kill := 1; kill <= steps; kill++ {
		e := newEnv(t, sandbox.Options{})
		for _, a := range accounts {
			e.member(world.Member{Account: a})
		}
		e.writeConfig(accounts, "")
		plan := build(t, e)
		cctx, cancel := context.WithCancel(ctx)
		err := plan.Apply(cctx, 4, &killAt{n: kill, cancel: cancel})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("kill at step %d: apply returned %v", kill, err)
		}
		e.apply()
		pol := archivePolicy(t, e)
		for _, a := range accounts {
			if strings.Count(pol, grantOf(a)) != 1 {
				t.Fatalf("kill at step %d: account %s appears %d times in %s", kill, a, strings.Count(pol, grantOf(a)), pol)
			}
			e.freshLogReplicates(a)
		}
		if _, _, code := e.run("plan", "--detailed-exitcode"); code != 0 {
			t.Fatalf("kill at step %d: not converged (plan exit %d)", kill, code)
		}
	}
}

func build(t *testing.T, e *env) *planned { return buildFrom(t, e.config) }

// planned is a plan and the clients it applies with.
type planned struct {
	*setup.Plan
	env *setup.Env
}

func (p *planned) Apply(ctx context.Context, parallel int, progress setup.Progress) error {
	return p.Plan.Apply(ctx, p.env, parallel, progress)
}

// killAt cancels the context as step n starts: the step's calls fail midway.
type killAt struct {
	n      int
	seen   int
	cancel context.CancelFunc
}

func (k *killAt) Start(*setup.Step) {
	k.seen++
	if k.seen == k.n {
		k.cancel()
	}
}
func (k *killAt) Done(*setup.Step, error) {}

// TestConcurrentAppliesKeepBothGrants: two teams add an account each from the
// same starting point, planned before either applies, applied at once. S3 has
// no conditional bucket policy write; the policy lease serialises the writers
// and the second rebases its change onto the first's, so both grants remain.
func TestConcurrentAppliesKeepBothGrants(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	for _, a := range []string{acctA, acctB, acctC} {
		e.member(world.Member{Account: a})
	}
	e.writeConfig([]string{acctA}, "")
	e.apply()
	configs := map[string]string{}
	for _, added := range []string{acctB, acctC} {
		e.writeConfig([]string{acctA, added}, "")
		configs[added] = filepath.Join(e.dir, "team-"+added+".yaml")
		if err := os.Rename(e.config, configs[added]); err != nil {
			t.Fatal(err)
		}
	}
	e.writeConfig([]string{acctA, acctB, acctC}, "") // profiles for every account
	plans := map[string]*planned{}
	for added, path := range configs {
		plans[added] = buildFrom(t, path)
	}
	errs := make(chan error, len(plans))
	for _, p := range plans {
		go func() { errs <- p.Apply(ctx, 4, nil) }()
	}
	for range plans {
		if err := <-errs; err != nil {
			t.Fatalf("an apply failed: %v", err)
		}
	}
	pol := archivePolicy(t, e)
	for _, a := range []string{acctA, acctB, acctC} {
		if strings.Count(pol, grantOf(a)) != 1 {
			t.Fatalf("account %s appears %d times in the policy after both applies: %s", a, strings.Count(pol, grantOf(a)), pol)
		}
	}
	e.freshLogReplicates(acctB)
	e.freshLogReplicates(acctC)
	if out, _, code := e.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("not converged after both applies (plan exit %d):\n%s", code, out)
	}
}

func buildFrom(t *testing.T, path string) *planned {
	t.Helper()
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := setup.Connect(ctx, c, c.Sources, 4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := setup.Build(ctx, env, setup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &planned{p, env}
}

// TestAppliesInTwoPIDNamespaces: two applies on one host in different PID
// namespaces (one in a container sharing the host's network), the first one's
// policy write held back by a slow network. The second must not take the
// first's lease for dead because it cannot see its PID: it waits, says so,
// and both grants end in the archive policy.
func TestAppliesInTwoPIDNamespaces(t *testing.T) {
	testenv.RequireTool(t, "unshare", "--pid", "--fork", "--mount-proc", "true")
	bin := filepath.Join(t.TempDir(), "trailkeeper")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/trailkeeper").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e := newEnv(t, sandbox.Options{})
	for _, a := range []string{acctA, acctB, acctC} {
		e.member(world.Member{Account: a})
	}
	e.writeConfig([]string{acctA}, "")
	e.apply()
	configs := map[string]string{}
	for _, added := range []string{acctB, acctC} {
		e.writeConfig([]string{acctA, added}, "")
		configs[added] = filepath.Join(e.dir, "team-"+added+".yaml")
		if err := os.Rename(e.config, configs[added]); err != nil {
			t.Fatal(err)
		}
	}
	e.writeConfig([]string{acctA, acctB, acctC}, "")
	e.sb.SlowDown("PUT", "policy", 3*time.Second, 1) // the first write to the archive policy
	apply := func(added string, namespace ...string) (*exec.Cmd, *strings.Builder) {
		var out strings.Builder
		cmd := exec.Command(bin, "apply", "--yes", "--no-progress", "--config", configs[added])
		if len(namespace) > 0 {
			cmd = exec.Command(namespace[0], append(append(namespace[1:], bin), cmd.Args[1:]...)...)
		}
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	first, firstOut := apply(acctB) // in this PID namespace
	// The second starts once the first holds the lease (its write is held back).
	arch := world.S3(e.url, archiveAcct, region)
	testenv.Await(t, "the first apply to hold the policy lease", func() bool {
		got, err := arch.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(archive), Key: aws.String(setup.LeaseKey)})
		if err != nil {
			return false
		}
		defer got.Body.Close()
		var body struct{ Released bool }
		data, _ := io.ReadAll(got.Body)
		return json.Unmarshal(data, &body) == nil && !body.Released
	})
	second, secondOut := apply(acctC, "unshare", "--pid", "--fork", "--mount-proc") // in its own: the first's PID is not there
	errFirst, errSecond := first.Wait(), second.Wait()
	if errFirst != nil || errSecond != nil {
		t.Fatalf("first apply: %v\n%s\nsecond apply: %v\n%s", errFirst, firstOut, errSecond, secondOut)
	}
	if !strings.Contains(secondOut.String(), "waiting for the archive policy lease") {
		t.Errorf("the second apply did not say it waited:\n%s", secondOut)
	}
	pol := archivePolicy(t, e)
	for _, a := range []string{acctA, acctB, acctC} {
		if strings.Count(pol, grantOf(a)) != 1 {
			t.Fatalf("account %s appears %d times in the policy after both applies: %s", a, strings.Count(pol, grantOf(a)), pol)
		}
	}
	if out, _, code := e.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("not converged after both applies (plan exit %d):\n%s", code, out)
	}
}
