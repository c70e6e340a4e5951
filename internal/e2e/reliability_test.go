package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
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

func build(t *testing.T, e *env) *setup.Plan {
	t.Helper()
	c, err := config.Load(e.config)
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
	return p
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
