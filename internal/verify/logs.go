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

// hashLogs hashes every log file the digests of a folder list: every
// version of it when there are several, to tell the replica from what was
// written over it.
func (v *verifier) hashLogs(ctx context.Context, f *folder) error {
	var jobs []*logJob
	for key, refs := range f.referenced {
		jobs = append(jobs, &logJob{f: f, key: key, refs: refs})
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
		f := &Finding{Severity: Error, Code: kind, Account: j.f.account, Region: j.f.region, Trail: c.id.trail, Key: j.key, VersionID: version,
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
	// Versions come newest first; the oldest whose hash the digest lists is
	// the replica, and a later one with the same bytes was written over it.
	match := -1 // index in live of the version whose hash the digest lists
	hashes := make([]string, len(live))
	for i := len(live) - 1; i >= 0; i-- {
		ver := live[i]
		h, err := v.hash(ctx, j.key, ver)
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
		hashes[i] = h
		if h == ref.hash && match < 0 {
			match = i
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

func (v *verifier) hash(ctx context.Context, key string, ver store.Version) (string, error) {
	r, _, err := v.open(ctx, key, ver)
	if errors.Is(err, store.ErrNotRegular) {
		return "", &unreadableError{err}
	}
	if err != nil {
		return "", err
	}
	defer r.Close()
	h, _, err := ct.HashLog(r, ct.LogInflateLimit(ver.Size))
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
	group := func(sev Severity, kind, what, key string, t time.Time) {
		var g *Finding
		for _, x := range groups {
			if x.Code == kind && x.Message == what {
				g = x
			}
		}
		if g == nil { // keys come in order: the group names its first
			g = &Finding{Severity: sev, Code: kind, Account: f.account, Region: f.region, Key: key, From: &t, To: &t, Message: what}
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
	inRange := func(t time.Time) bool { return v.inRange(t) && (f.since.IsZero() || !t.Before(f.since)) }
	for _, key := range sortedKeys(f.logs) {
		if _, ok := f.referenced[key]; ok {
			continue
		}
		k, _ := ct.ParseKey(key)
		if !inRange(k.Time) {
			continue
		}
		if live := f.logs[key]; len(live) > 0 && live[0].DeleteMarker && len(live) == 1 {
			continue
		}
		v.uncovered(f, key, k.Time, newest, firstStart, tailFinding, group)
	}
	for _, key := range sortedKeys(f.insights) {
		if _, ok := f.referenced[key]; ok {
			continue
		}
		if k, _ := ct.ParseKey(key); inRange(k.Time) {
			group(Unproven, InsightsNotCovered, "that no digest lists: nothing proves their events", key, k.Time)
		}
	}
	for _, g := range groups {
		noun := "log file"
		if g.Code == InsightsNotCovered {
			noun = "Insights file"
		}
		g.Message = plural(g.Count, noun, noun+"s") + " " + g.Message
		v.add(g)
	}
}

func sortedKeys(m map[string][]store.Version) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// place is how one chain stands to the minute in which a log file was
// delivered (its name carries the minute; digest periods the second).
type place int

const (
	rulesOut     place = iota // proven digests cover the whole minute and none lists it
	unprovenHour              // a digest that is not proven covers part of it
	inGap                     // a missing digest's interval meets it
	beforeStart               // the chain had not started
	afterEnd                  // after the chain's newest digest
	notRunning                // between a stop and a restart of the chain
)

// placeIn finds how chain c stands to the minute [w0, w1): the member or gap
// concerned, if any.
func (v *verifier) placeIn(f *folder, c *chainRun, w0, w1 time.Time) (place, *member, *gap) {
	ms := c.members
	if !w0.Before(ms[len(ms)-1].end()) {
		return afterEnd, nil, nil
	}
	covered, hole := w0, false
	for _, m := range ms {
		if !m.end().After(w0) || !m.start().Before(w1) {
			continue
		}
		if m.state != proven {
			return unprovenHour, m, nil
		}
		if m.start().After(covered) {
			hole = true
		}
		if m.end().After(covered) {
			covered = m.end()
		}
	}
	if !hole && !covered.Before(w1) {
		return rulesOut, nil, nil
	}
	for _, g := range f.gaps {
		if g.from.Before(w1) && g.to.After(w0) {
			return inGap, nil, g
		}
	}
	switch {
	case w0.Before(ms[0].start()):
		return beforeStart, nil, nil
	case covered.Before(w1) && !covered.Before(ms[len(ms)-1].end()):
		return afterEnd, nil, nil
	}
	return notRunning, nil, nil
}

// uncovered decides what one log file that no digest lists means. A log
// cannot be told to one trail from its name: it was inserted only when every
// chain of the region rules it out, and is otherwise counted on what could
// hold it (an unproven digest, a missing one, the newest digest's next hour,
// the time before validation started).
func (v *verifier) uncovered(f *folder, key string, t time.Time, newest *chainRun, firstStart time.Time, tail *Finding, group func(Severity, string, string, string, time.Time)) {
	if len(f.chains) == 0 || newest == nil {
		group(Error, RegionWithoutDigests, "in a region without any digest: nothing can prove them", key, t)
		return
	}
	w0, w1 := t, t.Add(time.Minute)
	lastEnd := newest.members[len(newest.members)-1].end()
	var ruledOut *member
	var before, stopped, after bool
	for _, c := range f.chains {
		if len(c.members) == 0 || c.id.backfill {
			continue
		}
		p, m, g := v.placeIn(f, c, w0, w1)
		switch p {
		case unprovenHour:
			if m.finding != nil {
				v.mu.Lock()
				m.finding.Count++
				v.mu.Unlock()
			}
			return
		case inGap:
			v.mu.Lock()
			g.finding.Count++
			v.mu.Unlock()
			return
		case rulesOut:
			for _, m := range c.members {
				if !m.start().After(w0) && !m.end().Before(w0) {
					ruledOut = m
				}
			}
		case beforeStart:
			before = true
		case notRunning:
			stopped = true
		case afterEnd:
			// A chain that ended long before is not delivering: only one that
			// may still go on could hold the file.
			after = after || c == newest || w0.Before(c.members[len(c.members)-1].end().Add(TailGrace))
		}
	}
	switch {
	case after && tail != nil && w0.After(lastEnd):
		tail.Count++
	case after && w0.Before(lastEnd.Add(TailGrace)):
		group(Info, PendingLogs, "delivered after the newest digest: the next digest lists them", key, t)
	case after:
		group(Unproven, UncoveredLogs, "delivered after the newest digest, with no digest since", key, t)
	case stopped:
		group(Unproven, UncoveredLogs, "delivered while no digest chain ran (validation off or logging stopped)", key, t)
	case before && ruledOut == nil && w0.Before(firstStart):
		group(Info, UncoveredLogs, "delivered before log file validation started at "+firstStart.UTC().Format(time.RFC3339)+": no digest covers them", key, t)
	case before:
		group(Unproven, UncoveredLogs, "delivered before log file validation started for one of this region's trails", key, t)
	case ruledOut != nil:
		v.addTo(ruledOut.chain, &Finding{Severity: Error, Code: UnreferencedLog, Account: f.account, Region: f.region, Key: key,
			Message: fmt.Sprintf("delivered at %s, in the hour of %s, which does not list it (nor does any other digest of the region): inserted", t.Format("15:04Z"), ruledOut.key.Raw)})
	default:
		group(Unproven, UncoveredLogs, "delivered where no digest covers them", key, t)
	}
}
