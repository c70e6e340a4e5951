package setup

import (
	"context"
	"testing"
)

// Apply runs a step of every phase: a phase it did not know of once left its
// steps unrun while apply said "applied" and exited 0.
func TestApplyRunsEveryPhase(t *testing.T) {
	p := &Plan{}
	ran := map[Phase]bool{}
	appliers["test.mark"] = with(func(_ context.Context, _ execution, phase Phase) error { ran[phase] = true; return nil })
	defer delete(appliers, "test.mark")
	for phase := range phases {
		p.add(&Step{Account: "999999999999", Phase: phase, Op: opOf("test.mark", phase)})
	}
	if err := p.Apply(context.Background(), &Env{}, 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if !s.Done || !ran[s.Phase] {
			t.Errorf("the step of phase %s did not run", s.Phase)
		}
	}
}
