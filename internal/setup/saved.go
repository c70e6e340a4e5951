package setup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/cost"
)

// A saved plan is what a reviewer approves: plan --out writes it, apply FILE
// applies exactly it or nothing. apply plans again from the world as it is
// and compares, step by step, every step's fingerprint (its account,
// phase, resource, action, summary and diff, the diff holding the observed
// document and the one to write): a change anyone made since, in any
// account the plan reads, shows as a step that differs, appears or is gone,
// and nothing is written. The policy lease and rebase work as for apply
// alone: the steps that run are the fresh plan's, equal to the saved ones.

// SavedFormat is the version of the saved plan's JSON.
const SavedFormat = 1

const savedKind = "trailkeeper-plan"

// Saved is a plan as plan --out writes it.
type Saved struct {
	Kind        string            `json:"kind"`
	Format      int               `json:"format"`
	Trailkeeper string            `json:"trailkeeper"` // the version that wrote it, the only one that applies it
	Created     time.Time         `json:"created"`
	Config      string            `json:"config"`
	ConfigHash  string            `json:"configSha256"`
	Options     SavedOptions      `json:"options"`
	Steps       []SavedStep       `json:"steps"`
	Notes       []string          `json:"notes"`
	PolicyBytes int               `json:"archivePolicyBytes"`
	AccountsFit int               `json:"accountsThatStillFit"`
	Accounts    map[string]string `json:"accounts"`
	Cost        *cost.Estimate    `json:"cost,omitempty"`
}

// SavedOptions are the plan options a saved plan was made with (plan takes
// no accounts out: remove-source applies at once).
type SavedOptions struct {
	Prune           bool `json:"prune,omitempty"`
	AllowCompliance bool `json:"allowCompliance,omitempty"`
	ExtendRetention bool `json:"extendRetention,omitempty"`
	BatchAbove      int  `json:"batchAbove,omitempty"`
}

// SavedStep is a step with the fingerprint apply compares.
type SavedStep struct {
	Step
	// ObservedHash is the SHA-256 of the whole document the step was
	// planned against (Step.Observed), where the diff shows part of it.
	ObservedHash string `json:"observedSha256,omitempty"`
	Fingerprint  string `json:"fingerprint"`
}

func observedHash(s *Step) string {
	if s.Observed == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s.Observed))
	return hex.EncodeToString(sum[:])
}

// stepFingerprint is a fresh step's fingerprint.
func stepFingerprint(s *Step) string { return fingerprint(s, observedHash(s)) }

// fingerprint is what apply FILE compares of a step: all it says, its
// operation with the documents it writes, and the hash of what it was
// planned against.
func fingerprint(s *Step, observed string) string {
	var args bytes.Buffer // compact: a saved plan is written indented
	json.Compact(&args, s.Op.Args)
	h := sha256.New()
	for _, f := range []string{s.Account, s.Phase.String(), s.Resource, string(s.Action), s.Summary, s.Diff, observed, s.Op.Kind, args.String()} {
		fmt.Fprintf(h, "%d:%s\n", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// configHash is the SHA-256 of a config file's text.
func configHash(c *config.Config) string {
	sum := sha256.Sum256(c.Text)
	return hex.EncodeToString(sum[:])
}

// Save is the plan as plan --out writes it.
func (p *Plan) Save(c *config.Config, opts Options, version string) *Saved {
	s := &Saved{Kind: savedKind, Format: SavedFormat, Trailkeeper: version, Created: time.Now().UTC(), Config: c.Path, ConfigHash: configHash(c),
		Options: SavedOptions{Prune: opts.Prune, AllowCompliance: opts.AllowCompliance,
			ExtendRetention: opts.ExtendRetention, BatchAbove: opts.BatchAbove},
		Steps: []SavedStep{}, Notes: p.Notes, PolicyBytes: p.PolicyBytes, AccountsFit: p.AccountsFit, Accounts: p.Accounts, Cost: p.Cost}
	for _, st := range p.Steps {
		o := observedHash(st)
		s.Steps = append(s.Steps, SavedStep{Step: *st, ObservedHash: o, Fingerprint: fingerprint(st, o)})
	}
	return s
}

// ReadSaved parses a saved plan, refusing what this version did not write
// (any version's when version is "", to show it).
func ReadSaved(data []byte, path, version string) (*Saved, error) {
	var s Saved
	if err := json.Unmarshal(data, &s); err != nil || s.Kind != savedKind {
		return nil, fmt.Errorf("%s is not a plan trailkeeper plan --out wrote (%v)", path, errOr(err, "no \"kind\": \""+savedKind+"\""))
	}
	switch {
	case s.Format != SavedFormat:
		return nil, fmt.Errorf("%s is a saved plan of format %d; this trailkeeper reads format %d: run trailkeeper plan --out again", path, s.Format, SavedFormat)
	case version != "" && s.Trailkeeper != version:
		return nil, fmt.Errorf("%s was saved by trailkeeper %s; this is trailkeeper %s, which may plan differently: run trailkeeper plan --out again with it", path, s.Trailkeeper, version)
	}
	for i, st := range s.Steps {
		if st.Fingerprint != fingerprint(&st.Step, st.ObservedHash) {
			return nil, fmt.Errorf("%s: step %d (%s) was edited after it was saved: run trailkeeper plan --out again", path, i+1, st.Resource)
		}
	}
	return &s, nil
}

func errOr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// PlanOptions are the options to plan with again.
func (s *Saved) PlanOptions(parallel int) Options {
	return Options{Prune: s.Options.Prune, AllowCompliance: s.Options.AllowCompliance,
		ExtendRetention: s.Options.ExtendRetention, BatchAbove: s.Options.BatchAbove, Parallel: parallel}
}

// Plan is the saved plan as a plan to print (its steps do not run).
func (s *Saved) Plan() *Plan {
	p := &Plan{Steps: []*Step{}, Notes: s.Notes, PolicyBytes: s.PolicyBytes, AccountsFit: s.AccountsFit, Accounts: s.Accounts, Cost: s.Cost}
	for i := range s.Steps {
		p.Steps = append(p.Steps, &s.Steps[i].Step)
	}
	return p
}

// Stale says how the world differs from a saved plan.
type Stale struct {
	Path    string
	Changes []string
}

func (e *Stale) Error() string {
	return fmt.Sprintf("%s no longer matches what is there (%s); nothing was written:\n  %s",
		e.Path, plural(len(e.Changes), "difference"), strings.Join(e.Changes, "\n  "))
}

// Check compares a fresh plan with the saved one: the same steps in the same
// order, each with the same fingerprint.
func (s *Saved) Check(fresh *Plan, c *config.Config, path string) error {
	stale := &Stale{Path: path}
	if configHash(c) != s.ConfigHash {
		stale.Changes = append(stale.Changes, "the config "+c.Path+" changed since the plan was saved")
	}
	name := func(st *Step) string {
		return "account " + st.Account + ": " + st.Resource + " (" + string(st.Action) + ")"
	}
	saved := map[string]int{} // fingerprint -> how many of the saved steps have it
	savedNames := map[string]bool{}
	for _, st := range s.Steps {
		saved[st.Fingerprint]++
		savedNames[name(&st.Step)] = true
	}
	prints := make([]string, len(fresh.Steps))
	freshNames := map[string]bool{}
	for i, st := range fresh.Steps {
		prints[i] = stepFingerprint(st)
		freshNames[name(st)] = true
		switch {
		case saved[prints[i]] > 0:
			saved[prints[i]]--
		case savedNames[name(st)]:
			stale.Changes = append(stale.Changes, name(st)+": differs from the saved step (someone changed it since): "+st.Summary)
		default:
			stale.Changes = append(stale.Changes, name(st)+": a change the saved plan does not have: "+st.Summary)
		}
	}
	for _, st := range s.Steps {
		if saved[st.Fingerprint] > 0 && !freshNames[name(&st.Step)] {
			saved[st.Fingerprint]--
			stale.Changes = append(stale.Changes, name(&st.Step)+": no longer needed (someone made it already, or the resource is gone): "+st.Summary)
		}
	}
	if len(stale.Changes) == 0 && len(prints) == len(s.Steps) {
		for i, fp := range prints { // the same steps, and in the saved order
			if fp != s.Steps[i].Fingerprint {
				stale.Changes = append(stale.Changes, "the steps come in another order than saved, from "+name(fresh.Steps[i]))
				break
			}
		}
	}
	if len(stale.Changes) > 0 {
		return stale
	}
	return nil
}
