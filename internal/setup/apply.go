package setup

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Progress hears about each step as it starts and ends.
type Progress interface {
	Start(s *Step)
	Done(s *Step, err error)
}

// Apply runs the plan phase by phase. Within the source phase, accounts run in
// parallel and each account's steps in order; a failure stops that account only,
// and the revoke phase runs only when every source succeeded, so that nothing is
// taken away while a source still depends on it. Every step is idempotent:
// an interrupted apply is finished by running apply again.
func (p *Plan) Apply(ctx context.Context, e *Env, parallel int, progress Progress) error {
	for phase := PhaseArchive; phase < phases; phase++ {
		byAccount := map[string][]*Step{}
		var order []string
		for _, s := range p.Steps {
			if s.Phase != phase {
				continue
			}
			if _, ok := byAccount[s.Account]; !ok {
				order = append(order, s.Account)
			}
			byAccount[s.Account] = append(byAccount[s.Account], s)
		}
		sort.Strings(order)
		var mu sync.Mutex
		err := forEach(ctx, parallel, len(order), func(ctx context.Context, i int) error {
			for _, s := range byAccount[order[i]] {
				if progress != nil {
					mu.Lock()
					progress.Start(s)
					mu.Unlock()
				}
				err := p.run(ctx, e, s)
				s.Done = err == nil
				if progress != nil {
					mu.Lock()
					progress.Done(s, err)
					mu.Unlock()
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// run applies a step's operation in its account.
func (p *Plan) run(ctx context.Context, e *Env, s *Step) error {
	apply, ok := appliers[s.Op.Kind]
	if !ok {
		return fmt.Errorf("account %s: %s: this trailkeeper has no operation %q", s.Account, s.Resource, s.Op.Kind)
	}
	return apply(ctx, execution{e: e, plan: p, acct: s.Account}, s.Op.Args)
}
