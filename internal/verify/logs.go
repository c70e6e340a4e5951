package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

type logJob struct {
	f    *folder
	key  string
	refs []logRef
}

// best is the reference that decides a log file's fate: one from a proven
// digest if there is one.
func (j *logJob) best() logRef {
	for _, r := range j.refs {
		if r.member.state == proven {
			return r
		}
	}
	for _, r := range j.refs {
		if r.member.state == unproven {
			return r
		}
	}
	return j.refs[0]
}

// hashLogs hashes every log file the digests of a folder list: every version of it when there are several, to tell the replica from
// what was written over it.
func (v *verifier) hashLogs(ctx context.Context, f *folder) error {
	var jobs []*logJob
	for key, refs := range f.referenced {
		again := false
		for _, r := range refs {
			again = again || !r.member.fromState
		}
		if again {
			jobs = append(jobs, &logJob{f: f, key: key, refs: refs})
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].key < jobs[j].key })
	v.total.Add(int64(len(jobs)))
	return v.each(ctx, len(jobs), func(ctx context.Context, i int) error {
		defer v.tick(1)
		return v.hashLog(ctx, jobs[i])
	})
}

func (v *verifier) hashLog(ctx context.Context, j *logJob) error {
	ref := j.best()
	m, c := ref.member, ref.member.chain
	count := func(proof state) {
		v.mu.Lock()
		defer v.mu.Unlock()
		c.summary.Logs++
		switch proof {
		case proven:
			c.summary.LogsProven++
		case unproven, bad:
			c.summary.LogsUnproven++
			if m.finding != nil && m.state != proven {
				m.finding.Count++
			}
		}
	}
	report := func(kind, version, format string, a ...any) {
		f := &Finding{Severity: Error, Kind: kind, Account: j.f.account, Region: j.f.region, Trail: c.id.trail, Key: j.key, VersionID: version,
			Message: fmt.Sprintf(format, a...)}
		v.addTo(c, f)
	}
	versions := j.f.logs[j.key]
	if versions == nil {
		versions = j.f.insights[j.key]
	}
	var live []store.Version
	for _, ver := range versions {
		if ver.DeleteMarker {
			if ver.Latest {
				report(DeleteMarker, ver.VersionID, "a delete marker hides this log file; its versions are checked below")
			}
			continue
		}
		live = append(live, ver)
	}
	if m.state == bad {
		count(bad) // the bad digest's finding stands for its log files
		return nil
	}
	if len(live) == 0 {
		if first := j.f.firstLog(); first == "" || j.key < first {
			// Nothing earlier of this folder reached the archive: the file was
			// most likely written before replication started, which never copies it.
			report(MissingBeforeReplication, "", "missing: listed in %s, and no earlier log file of this folder is in the archive: most likely written before replication started (or deleted with all its versions)", m.key.Raw)
			count(bad)
			return nil
		}
		report(MissingLog, "", "missing: listed in %s", m.key.Raw)
		count(bad)
		return nil
	}
	if !v.sampled(j.key) {
		v.mu.Lock()
		c.summary.LogsSkipped++
		c.summary.Logs++
		v.mu.Unlock()
		return nil
	}
	match := -1 // index in live of the version whose hash the digest lists
	var hashes []string
	for _, ver := range live {
		h, err := v.hash(ctx, j.key, ver.VersionID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				report(MissingLog, ver.VersionID, "listed in %s but cannot be read", m.key.Raw)
				count(bad)
				return nil
			}
			var unreadable *unreadableError
			if !errors.As(err, &unreadable) {
				return err
			}
			h = "unreadable: " + err.Error()
		}
		hashes = append(hashes, h)
		if h == ref.hash && match < 0 {
			match = len(hashes) - 1
		}
	}
	switch {
	case match < 0 && len(live) == 1:
		report(AlteredLog, live[0].VersionID, "its SHA-256 differs from the hash in %s: the log was altered (%s)", m.key.Raw, hashes[0])
		count(bad)
	case match < 0:
		report(AlteredLog, "", "none of its %d versions matches the hash in %s", len(live), m.key.Raw)
		count(bad)
	default:
		for i, ver := range live {
			if i != match {
				report(ShadowingVersion, ver.VersionID, "a version written over the replica (%s); the replica, version %s, is intact", hashes[i], live[match].VersionID)
			}
		}
		count(m.state)
	}
	return nil
}

type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return e.err.Error() }

func (v *verifier) hash(ctx context.Context, key, version string) (string, error) {
	r, _, err := v.open(ctx, key, version)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h, _, err := ct.HashLog(r)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &unreadableError{err}
	}
	return h, nil
}

// account makes sure every log and Insights file of a folder is accounted
// for: listed by a digest, or in exactly one finding that says why not.
func (v *verifier) account(f *folder) {
	since := v.since(f.account, f.region)
	var lastEnd, firstStart time.Time
	var newest *chainRun
	for _, c := range f.chains {
		if len(c.members) == 0 || c.id.backfill {
			continue
		}
		if end := c.members[len(c.members)-1].end(); end.After(lastEnd) {
			lastEnd, newest = end, c
		}
		if s := c.members[0].start(); firstStart.IsZero() || s.Before(firstStart) {
			firstStart = s
		}
	}
	// A chain that stopped: only the newest chain of a folder is expected to go on.
	var tailFinding *Finding
	if v.opts.CheckTail && newest != nil && lastEnd.Before(v.opts.Until.Add(-TailGrace)) {
		m := newest.members[len(newest.members)-1]
		tailFinding = v.finding(Error, ChainTailMissing, m, "the newest digest ends at %s, more than %s before %s: the digests after it are missing",
			lastEnd.Format(time.RFC3339), TailGrace, v.opts.Until.Format(time.RFC3339))
		v.addTo(newest, tailFinding)
	}
	var groups []*Finding // one finding per kind and reason in this folder
	group := func(sev Severity, kind, what string, t time.Time) {
		var g *Finding
		for _, x := range groups {
			if x.Kind == kind && x.Message == what {
				g = x
			}
		}
		if g == nil {
			g = &Finding{Severity: sev, Kind: kind, Account: f.account, Region: f.region, From: &t, To: &t, Message: what}
			groups = append(groups, g)
		}
		g.Count++
		if t.Before(*g.From) {
			g.From = &t
		}
		if t.After(*g.To) {
			g.To = &t
		}
	}
	keys := make([]string, 0, len(f.logs))
	for key := range f.logs {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if _, ok := f.referenced[key]; ok {
			continue
		}
		k, _ := ct.ParseKey(key)
		if !v.inRange(k.Time) || (!since.IsZero() && k.Time.Before(since)) {
			continue
		}
		if live := f.logs[key]; len(live) > 0 && live[0].DeleteMarker && len(live) == 1 {
			continue
		}
		v.uncovered(f, key, k.Time, lastEnd, firstStart, tailFinding, group)
	}
	for key := range f.insights {
		if _, ok := f.referenced[key]; ok {
			continue
		}
		k, _ := ct.ParseKey(key)
		if v.inRange(k.Time) && (since.IsZero() || !k.Time.Before(since)) {
			group(Warning, InsightsNotCovered, "that no digest lists: counted, not checked", k.Time)
		}
	}
	for _, g := range groups {
		noun := "log file"
		if g.Kind == InsightsNotCovered {
			noun = "Insights file"
		}
		g.Message = plural(g.Count, noun, noun+"s") + " " + g.Message
		v.add(g)
	}
}

// uncovered decides what one log file that no digest lists means.
func (v *verifier) uncovered(f *folder, key string, t, lastEnd, firstStart time.Time, tail *Finding, group func(Severity, string, string, time.Time)) {
	const slack = time.Minute // log names carry the minute; digest periods the second
	if len(f.chains) == 0 {
		group(Error, RegionWithoutDigests, "in a region without any digest: nothing can prove them", t)
		return
	}
	for _, c := range f.chains {
		for _, m := range c.members {
			if t.Before(m.start().Add(-slack)) || t.After(m.end().Add(slack)) {
				continue
			}
			if m.state == proven {
				v.addTo(c, &Finding{Severity: Error, Kind: UnreferencedLog, Account: f.account, Region: f.region, Key: key,
					Message: fmt.Sprintf("delivered at %s, in the hour of %s, which does not list it: inserted", t.Format("15:04Z"), m.key.Raw)})
				return
			}
			if m.finding != nil {
				v.mu.Lock()
				m.finding.Count++
				v.mu.Unlock()
			}
			return
		}
	}
	for _, g := range f.gaps {
		if !t.Before(g.from.Add(-slack)) && !t.After(g.to.Add(slack)) {
			g.finding.Count++
			return
		}
	}
	switch {
	case t.After(lastEnd) && tail != nil:
		tail.Count++
	case t.After(lastEnd) && t.Before(lastEnd.Add(TailGrace)):
		group(Info, PendingLogs, "delivered after the newest digest: the next digest lists them", t)
	case t.After(lastEnd):
		group(Unproven, UncoveredLogs, "delivered after the newest digest, with no digest since", t)
	case t.Before(firstStart):
		group(Unproven, UncoveredLogs, "delivered before log file validation started", t)
	default:
		group(Unproven, UncoveredLogs, "delivered while no digest chain ran (validation off or logging stopped)", t)
	}
}
