package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/finding"
	"github.com/trailkeeper/trailkeeper/internal/parallel"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"golang.org/x/sync/semaphore"
)

// Options narrow and tune a verification.
type Options struct {
	// Root is where to look for [prefix/]AWSLogs/ (s3://bucket/ROOT); "" for the top.
	Root         string
	Since, Until time.Time // digests whose period ends in [Since, Until]; zero: all
	// CheckTail reports chains whose newest digest ends more than TailGrace
	// before Until (Until is "now" for a live archive).
	CheckTail bool
	Accounts  []string
	Regions   []string
	// Registry maps each source account to its registered trail bucket: a digest
	// must name it. Accounts without an entry must name one bucket consistently.
	Registry map[string]string
	// Sample hashes one log file in Sample (all digests are still checked).
	Sample   int
	Parallel int
	Keys     Keys
	// AcceptUnsignedTail lets a local copy's newest digests, whose signatures
	// only the bucket's metadata holds, pass unproven.
	AcceptUnsignedTail bool
	// State, when set, is where an earlier run left off: only what follows each
	// chain's proven tail is verified. Run returns the next state in Report.State.
	State *State
	// Inventory, with State, stands in for the listing of the days before the
	// day ahead of its report (internal/inventory): only later days are
	// listed. Every version it lists is held to ShortRetention.
	Inventory Inventory
	// ShortRetention says whether a version created at created and locked
	// until until (zero: not locked) falls short of the archive's retention;
	// nil checks nothing.
	ShortRetention func(created, until time.Time) bool
	// Progress hears how many objects are done of how many found so far; it is
	// called from one goroutine at a time.
	Progress func(done, total int64)
}

// Inventory lists the archive's object versions as of a time, with their
// Object Lock retention.
type Inventory interface {
	fmt.Stringer // names the report
	Taken() time.Time
	Versions(ctx context.Context, prefix string, fn func(v store.Version, retainUntil time.Time, mode string) error) error
}

// DefaultParallelS3 is how many requests verify keeps in flight to S3: at
// 20 ms a round trip, 256 requests make about 12,800 objects a second.
const DefaultParallelS3 = 256

// fetchBudget bounds the compressed bytes of digests read at once: 256
// typical digests (a few KB each) fit many times over, 8 of the largest.
const fetchBudget = 64 << 20

// hourDays is how many days back from Until a state run fingerprints by the
// hour as well: the next cutoff, the proven tail, lies in them.
const hourDays = 3

// TailGrace is how long after an hour CloudTrail may take to deliver its digest.
const TailGrace = 2 * time.Hour

// chainID names one chain.
type chainID struct {
	account, region, trail, home string
	backfill                     bool
}

type digestVersion struct {
	folder  *folder
	key     ct.Key
	version store.Version
	file    *ct.DigestFile
	metaSig string // from metadata; "" where there is none
	err     error  // unreadable
}

// folder is what one account and region hold.
type folder struct {
	prefix, account, region string
	// since is where verification starts: --since, or the cutoff of an
	// incremental state whose listing is unchanged (what lies before it is
	// re-attested by the listing's fingerprint).
	since time.Time
	old   *Listed        // what the incremental state vouches for; nil for nothing
	fp    *fingerprinter // this run's listing, for the next state (state runs only)
	full  bool           // verified in full: the state vouched for nothing here
	// changed lists the months and days whose listing differs from the state.
	changed    []string
	digests    map[string][]store.Version // key -> versions, newest first
	logs       map[string][]store.Version
	insights   map[string][]store.Version
	chains     []*chainRun
	referenced map[string][]logRef // log key -> the digests that list it
	gaps       []*gap              // missing digest intervals
	firstOnce  sync.Once
	first      string // the earliest log key with a live version
	problems   int    // findings of this folder that fail the run
}

func (f *folder) reset() {
	f.digests, f.logs, f.insights = map[string][]store.Version{}, map[string][]store.Version{}, map[string][]store.Version{}
}

// firstLog is the earliest log file of the folder the archive holds:
// CloudTrail's keys sort by delivery time within a folder.
func (f *folder) firstLog() string {
	f.firstOnce.Do(func() {
		for k, vs := range f.logs {
			for _, v := range vs {
				if !v.DeleteMarker && (f.first == "" || k < f.first) {
					f.first = k
				}
			}
		}
	})
	return f.first
}

// Run verifies the archive in s.
func Run(ctx context.Context, s store.Store, opts Options) (*Report, error) {
	if opts.Parallel <= 0 {
		// Reads from S3 wait on the network far more than on the CPU: keep
		// enough in flight that round trips overlap. Local files need few.
		opts.Parallel = 8 * runtime.NumCPU()
		if s.Versioned() {
			opts.Parallel = DefaultParallelS3
		}
	}
	v := &verifier{s: s, opts: opts, buckets: map[string]string{}, problems: map[string]int{},
		fetching: semaphore.NewWeighted(fetchBudget), inflating: semaphore.NewWeighted(int64(2 * runtime.NumCPU())),
		report: &Report{SchemaVersion: finding.SchemaVersion, Location: s.String(), Chains: []*Chain{}, Findings: []*Finding{}, Notes: []string{}, AcceptedUnsignedTail: opts.AcceptUnsignedTail}}
	for a, b := range opts.Registry {
		v.buckets[a] = b
	}
	v.next = &State{Version: StateVersion, Location: s.String(), Chains: map[string]*Tail{}, Folders: map[string]*Listed{}}
	v.hourFrom = opts.Until
	if v.hourFrom.IsZero() {
		v.hourFrom = time.Now()
	}
	v.hourFrom = v.hourFrom.AddDate(0, 0, -hourDays)
	if opts.State != nil {
		for id, t := range opts.State.Chains {
			v.next.Chains[id] = t
		}
		for id, l := range opts.State.Folders {
			v.next.Folders[id] = l
		}
	}
	accounts, err := v.discover(ctx)
	if err != nil {
		return nil, err
	}
	// Accounts stream through listing, digests, chains and logs a few at a
	// time, so memory stays bounded however many accounts the archive holds;
	// the reads of all of them share one pool of workers.
	v.jobs = make(chan func())
	defer close(v.jobs)
	for range opts.Parallel {
		go func() {
			for job := range v.jobs {
				job()
			}
		}()
	}
	var seen sync.Map // account -> it has a chain
	// A quarter of the requests' slots in accounts: each account's listing and
	// phases take a few round trips one after another, which others overlap.
	err = parallel.For(ctx, max(4, opts.Parallel/4), len(accounts), func(ctx context.Context, i int) error {
		a := accounts[i]
		folders, err := v.listAccount(ctx, a.base, a.prefix, a.id)
		if err != nil {
			return err
		}
		// The regions of an account are independent: check them side by side.
		return parallel.For(ctx, len(folders), len(folders), func(ctx context.Context, i int) error {
			f := folders[i]
			if err := v.verifyFolder(ctx, f); err != nil {
				return err
			}
			if len(f.chains) > 0 {
				seen.Store(f.account, true)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	v.report.ObjectsListed = v.listed.Load()
	if opts.State != nil && opts.Inventory != nil {
		v.note("days before %s re-attested from the S3 Inventory report %s, taken %s; every version it lists was held to the archive's retention",
			inventoryFrom(opts.Inventory).Format(time.DateOnly), opts.Inventory, opts.Inventory.Taken().UTC().Format(time.RFC3339))
	}
	v.expected(func(account string) bool { _, ok := seen.Load(account); return ok })
	if !s.Versioned() && len(v.report.Chains) > 0 {
		v.note("%s is a local copy without object metadata: a digest's signature is read from its successor, so the newest digest of each chain is unproven unless --state vouches for it", s)
	}
	if len(v.report.Chains) == 0 {
		v.nothingFound()
	}
	v.report.ObjectsRead = v.read.Load()
	v.report.State = v.next
	v.report.finish()
	return v.report, nil
}

// verifyFolder checks one account and region: its digests, chains and logs.
func (v *verifier) verifyFolder(ctx context.Context, f *folder) error {
	digests, err := v.readDigests(ctx, f)
	if err != nil {
		return err
	}
	if err := v.checkChains(ctx, f, digests); err != nil {
		return err
	}
	if err := v.hashLogs(ctx, f); err != nil {
		return err
	}
	v.account(f)
	if len(f.changed) > 0 {
		v.add(&Finding{Severity: Info, Code: ChangedSinceProven, Account: f.account, Region: f.region, Key: f.prefix + "AWSLogs/" + f.account + "/",
			Message: "the listing of " + strings.Join(f.changed, ", ") + " changed since an earlier run proved it: verified again in full"})
	}
	if f.old != nil && len(f.chains) == 0 {
		v.add(&Finding{Severity: Error, Code: NoDigests, Account: f.account, Region: f.region, Key: f.prefix + "AWSLogs/" + f.account + "/",
			Message: fmt.Sprintf("an earlier run proved digests of %s in %s before %s; none is left", f.account, f.region, f.old.Cutoff.Format("2006-01-02"))})
	}
	if v.opts.Sample <= 1 { // a sample proves too little to build on
		for _, c := range f.chains {
			v.advance(c)
		}
		v.advanceFolder(f)
	}
	return nil
}

// advanceFolder records, for the next incremental run, the fingerprint of
// the folder's listing before a new cutoff: the day of the newest proven
// digest of the chains that still run. Only a folder without problems, whose
// range was verified from its start, moves; otherwise the next run verifies
// again from where this one started.
func (v *verifier) advanceFolder(f *folder) {
	if f.fp == nil {
		return
	}
	id := f.account + "/" + f.region
	covered := v.opts.Since.IsZero() || (!f.full && f.old != nil && !v.opts.Since.After(f.old.Cutoff))
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.problems[id] > 0 || v.problems[f.account+"/"] > 0 || !covered {
		if f.full {
			delete(v.next.Folders, id) // what it vouched for no longer holds
		}
		return
	}
	var lastEnd, cut time.Time
	for _, c := range f.chains {
		if len(c.members) > 0 && !c.id.backfill && c.members[len(c.members)-1].end().After(lastEnd) {
			lastEnd = c.members[len(c.members)-1].end()
		}
	}
	for _, c := range f.chains {
		if len(c.members) == 0 || c.id.backfill || c.members[len(c.members)-1].end().Before(lastEnd.Add(-TailGrace)) {
			continue // a chain that ended long ago lies wholly before the cutoff
		}
		var tail time.Time
		for _, m := range c.members {
			if m.state != proven {
				break
			}
			tail = m.end()
		}
		if tail.IsZero() {
			return
		}
		if cut.IsZero() || tail.Before(cut) {
			cut = tail
		}
	}
	if cut.IsZero() {
		return
	}
	v.next.Folders[id] = f.fp.listed(cut)
}

type verifier struct {
	s store.Store
	// fetching budgets the compressed digest bytes in flight; inflating, how
	// many digests inflate at once (each up to MaxDigestSize).
	fetching, inflating *semaphore.Weighted
	jobs                chan func() // reads, run by long-lived workers: the SDK's deep stacks grow once
	opts                Options
	report              *Report
	next                *State
	mu                  sync.Mutex
	buckets             map[string]string // account -> bucket digests must name
	// problems counts failing findings per "ACCOUNT/REGION" ("ACCOUNT/" for
	// the account's own), so that no state moves past one.
	problems  map[string]int
	hourFrom  time.Time // the first day fingerprinted by the hour too
	done      atomic.Int64
	total     atomic.Int64
	listed    atomic.Int64
	read      atomic.Int64
	progMu    sync.Mutex
	shortRead atomic.Int64 // versions read whose retention fell short
	top       []string     // the folders at the root, for the hint when nothing is found
}

func (v *verifier) note(format string, a ...any) {
	v.mu.Lock()
	v.report.Notes = append(v.report.Notes, fmt.Sprintf(format, a...))
	v.mu.Unlock()
}

// add records a finding, with the fix for its kind.
func (v *verifier) add(f *Finding) {
	if f.Fix == "" {
		f.Fix = strings.ReplaceAll(fixes[f.Code], "ACCOUNT", f.Account)
	}
	v.mu.Lock()
	v.report.Findings = append(v.report.Findings, f)
	if f.Failing() {
		v.problems[f.Account+"/"+f.Region]++
	}
	v.mu.Unlock()
}

func (v *verifier) tick(n int64) {
	d := v.done.Add(n)
	if v.opts.Progress != nil {
		v.progMu.Lock()
		v.opts.Progress(d, v.total.Load())
		v.progMu.Unlock()
	}
}

// open reads one object version, counting reads, and holds its retention,
// when the store tells it, to the archive's.
func (v *verifier) open(ctx context.Context, key string, ver store.Version) (io.ReadCloser, map[string]string, error) {
	v.read.Add(1)
	r, meta, err := v.s.Open(ctx, key, ver.VersionID)
	if err == nil && v.opts.ShortRetention != nil && meta[store.RetainUntil] != "" {
		until, perr := time.Parse(time.RFC3339, meta[store.RetainUntil])
		if perr == nil && v.opts.ShortRetention(ver.LastModified, until) {
			v.readShort(key, ver, until)
		}
	}
	return r, meta, err
}

// readShort reports a version read whose retention falls short, up to
// maxRetentionFindings in a run.
func (v *verifier) readShort(key string, ver store.Version, until time.Time) {
	k, _ := ct.ParseKey(key)
	n := v.shortRead.Add(1)
	if n > maxRetentionFindings {
		return
	}
	ver.Key = key
	f := retentionFinding(ver, k.Account, k.Region, until, "", "S3's answer to the GET")
	if n == maxRetentionFindings {
		f.Message += "; further short versions are not listed one by one"
	}
	v.add(f)
}

// each runs fn for 0..n-1 on the run's read workers and returns the first error.
func (v *verifier) each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		wg.Add(1)
		job := func() {
			defer wg.Done()
			if ctx.Err() != nil {
				return
			}
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}
		select {
		case v.jobs <- job:
		case <-ctx.Done():
			wg.Done()
		}
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func contains(list []string, s string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var accountRE = regexp.MustCompile(`^\d{12}$`)

// discover finds every [prefix/]AWSLogs/ACCOUNT/ folder and lists it, in
// parallel: whole when everything is verified, day by day when a time range
// or an incremental state narrows it.
type accountFolder struct{ base, prefix, id string }

func (v *verifier) discover(ctx context.Context) ([]accountFolder, error) {
	root := v.opts.Root
	if root != "" && !strings.HasSuffix(root, "/") {
		root += "/"
	}
	top, err := v.s.Prefixes(ctx, root)
	if err != nil {
		return nil, err
	}
	v.top = top
	bases, err := store.Bases(ctx, v.s, root)
	if err != nil {
		return nil, err
	}
	var accounts []accountFolder
	for _, base := range bases {
		ps, err := v.s.Prefixes(ctx, base+"AWSLogs/")
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			name := strings.TrimSuffix(strings.TrimPrefix(p, base+"AWSLogs/"), "/")
			if strings.HasPrefix(name, "o-") { // an organization trail's AWSLogs/o-ID/ACCOUNT/
				sub, err := v.s.Prefixes(ctx, p)
				if err != nil {
					return nil, err
				}
				for _, q := range sub {
					accounts = append(accounts, accountFolder{base, q, strings.TrimSuffix(strings.TrimPrefix(q, p), "/")})
				}
				continue
			}
			if !accountRE.MatchString(name) || contains(v.opts.Accounts, name) {
				accounts = append(accounts, accountFolder{base, p, name})
			}
		}
	}
	return accounts, nil
}

// listAccount lists one account folder and sorts what it holds into one
// folder per region. Objects CloudTrail does not write are reported, never
// skipped. A full run lists everything; a --since run walks the levels down to
// the days in range (so a file beside the folders is seen too); a state run
// lists everything, fingerprinting what the state vouches for.
func (v *verifier) listAccount(ctx context.Context, base, prefix, account string) ([]*folder, error) {
	l := &lister{v: v, base: base, account: account, folders: map[string]*folder{}, seen: map[string]bool{}}
	if !accountRE.MatchString(account) {
		return nil, v.s.Versions(ctx, prefix, l.collect) // not an account folder: everything in it is unexpected
	}
	var err error
	if v.opts.State != nil {
		// A folder the state knows is compared even when nothing of it is left.
		for id := range v.opts.State.Folders {
			if acct, region, _ := strings.Cut(id, "/"); acct == account && contains(v.opts.Regions, region) {
				l.get(region)
			}
		}
	}
	switch {
	case v.opts.State != nil && v.opts.Inventory != nil:
		if err = l.fromInventory(ctx, prefix); err == nil {
			err = l.recheck(ctx)
		}
	case v.opts.State != nil:
		if err = v.s.Versions(ctx, prefix, l.collect); err == nil {
			err = l.recheck(ctx)
		}
	case v.opts.Since.IsZero():
		err = v.s.Versions(ctx, prefix, l.collect)
	default:
		err = l.walk(ctx, prefix)
	}
	out := make([]*folder, 0, len(l.folders))
	for _, f := range l.folders {
		out = append(out, f)
	}
	return out, err
}

// lister sorts one account folder's listing into folders.
type lister struct {
	v             *verifier
	base, account string
	mu            sync.Mutex
	folders       map[string]*folder
	seen          map[string]bool // unexpected keys already reported
}

func (l *lister) get(region string) *folder {
	f := l.folders[region]
	if f != nil {
		return f
	}
	v := l.v
	f = &folder{prefix: l.base, account: l.account, region: region, since: v.opts.Since}
	f.reset()
	if v.opts.State != nil {
		f.fp, f.full = newFingerprinter(v.hourFrom), true
		if old := v.opts.State.Folders[l.account+"/"+region]; old != nil {
			f.old, f.full = old, false
			if old.Cutoff.After(f.since) {
				f.since = old.Cutoff
			}
		}
	}
	l.folders[region] = f
	return f
}

// collect sorts one listed version. Callers listing in parallel hold l.mu.
func (l *lister) collect(ver store.Version) error {
	l.v.listed.Add(1)
	k, err := ct.ParseKey(ver.Key)
	switch {
	case ver.Special:
		l.unexpected(ver, "not a regular file (a FIFO, device, socket or link): S3 holds only objects, and a copy of it only files")
		return nil
	case err != nil || k.Account != l.account || k.Prefix != l.base:
		l.unexpected(ver, "not a CloudTrail log, digest or Insights file name")
		return nil
	case !contains(l.v.opts.Regions, k.Region):
		return nil
	}
	f := l.get(k.Region)
	if f.fp != nil {
		f.fp.add(ver, strings.Split(ver.Key[len(l.base)+len("AWSLogs/"):], "/")[1], k.Day, k.Time)
	}
	if !f.since.IsZero() && k.Time.Before(f.since.Add(-time.Hour)) {
		return nil // before the range: only fingerprinted
	}
	f.add(k, ver)
	return nil
}

func (f *folder) add(k ct.Key, ver store.Version) {
	switch k.Kind {
	case ct.Digest:
		f.digests[ver.Key] = append(f.digests[ver.Key], ver)
	case ct.Log:
		f.logs[ver.Key] = append(f.logs[ver.Key], ver)
	case ct.Insight:
		f.insights[ver.Key] = append(f.insights[ver.Key], ver)
	}
}

func (l *lister) unexpected(ver store.Version, why string) {
	if l.seen[ver.Key] {
		return
	}
	l.seen[ver.Key] = true
	l.v.add(&Finding{Severity: Error, Code: UnexpectedObject, Account: l.account, Key: ver.Key, VersionID: ver.VersionID, Message: why})
}

// recheck compares each folder's listing with what the state vouches for. A
// folder whose listing changed, or that the state does not know, is listed
// again and verified in full: an incremental run never vouches for a range
// it could not re-attest.
func (l *lister) recheck(ctx context.Context) error {
	for _, f := range l.folders {
		if f.old == nil {
			continue
		}
		if f.changed = f.fp.changed(f.old); len(f.changed) == 0 {
			continue
		}
		f.full, f.since = true, l.v.opts.Since
		f.reset()
		for _, kind := range []string{"CloudTrail-Digest/", "CloudTrail-Insight/", "CloudTrail/"} {
			err := l.v.s.Versions(ctx, l.base+"AWSLogs/"+l.account+"/"+kind+f.region+"/", func(ver store.Version) error {
				if k, err := ct.ParseKey(ver.Key); err == nil && !ver.Special && k.Account == l.account && k.Prefix == l.base {
					if f.since.IsZero() || !k.Time.Before(f.since.Add(-time.Hour)) {
						f.add(k, ver)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// walk lists an account folder level by level, and only the day folders in
// range whole: files at the account, kind, region, year and month levels are
// seen whatever the range.
func (l *lister) walk(ctx context.Context, prefix string) error {
	v := l.v
	var lists []string // day folders to list, all at once
	var regionPrefixes []string
	kinds, objs, err := v.s.Level(ctx, prefix)
	if err != nil {
		return err
	}
	l.collectAll(objs)
	for _, kind := range kinds {
		name := strings.TrimSuffix(strings.TrimPrefix(kind, prefix), "/")
		if name != "CloudTrail" && name != "CloudTrail-Digest" && name != "CloudTrail-Insight" {
			lists = append(lists, kind) // everything in it is unexpected
			continue
		}
		regions, objs, err := v.s.Level(ctx, kind)
		if err != nil {
			return err
		}
		l.collectAll(objs)
		for _, r := range regions {
			region := strings.TrimSuffix(strings.TrimPrefix(r, kind), "/")
			if contains(v.opts.Regions, region) {
				l.get(region)
				regionPrefixes = append(regionPrefixes, r)
			}
		}
	}
	from, to := v.opts.Since.UTC().Add(-time.Hour).Format("2006/01/02/"), "9999/"
	if !v.opts.Until.IsZero() {
		to = v.opts.Until.UTC().Add(time.Hour).Format("2006/01/02/")
	}
	// Region by region, the years, the months that meet the range, their days.
	err = v.each(ctx, len(regionPrefixes), func(ctx context.Context, i int) error {
		r := regionPrefixes[i]
		var days []string
		years, objs, err := v.s.Level(ctx, r)
		if err != nil {
			return err
		}
		found := objs
		for _, y := range years {
			if !digits(y[len(r):], 4) {
				days = append(days, y) // not a year: everything in it is unexpected
				continue
			}
			months, objs, err := v.s.Level(ctx, y)
			if err != nil {
				return err
			}
			found = append(found, objs...)
			for _, m := range months {
				rel := m[len(r):] // YYYY/MM/
				if !digits(m[len(y):], 2) {
					days = append(days, m)
					continue
				}
				if rel+"99/" < from || rel > to {
					continue
				}
				ds, objs, err := v.s.Level(ctx, m)
				if err != nil {
					return err
				}
				found = append(found, objs...)
				for _, d := range ds {
					if rel := d[len(r):]; rel >= from && rel <= to || len(rel) != len("2006/01/02/") {
						days = append(days, d)
					}
				}
			}
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.collectAll(found)
		lists = append(lists, days...)
		return nil
	})
	if err != nil {
		return err
	}
	return v.each(ctx, len(lists), func(ctx context.Context, i int) error {
		var found []store.Version
		if err := v.s.Versions(ctx, lists[i], func(ver store.Version) error { found = append(found, ver); return nil }); err != nil {
			return err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.collectAll(found)
		return nil
	})
}

// digits reports whether a folder name ("2026/") is n digits.
func digits(name string, n int) bool {
	if len(name) != n+1 || name[n] != '/' {
		return false
	}
	for _, c := range name[:n] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (l *lister) collectAll(vs []store.Version) {
	for _, ver := range vs {
		l.collect(ver)
	}
}

func (v *verifier) inRange(t time.Time) bool {
	return (v.opts.Since.IsZero() || !t.Before(v.opts.Since)) && (v.opts.Until.IsZero() || !t.After(v.opts.Until))
}

// readDigests reads every version of every digest of a folder in range.
// Memory stays bounded whatever the archive holds: an object larger than any
// digest is refused unread, the compressed bytes in flight share one budget,
// and only a few digests inflate at once, each at most MaxDigestSize.
func (v *verifier) readDigests(ctx context.Context, f *folder) ([]*digestVersion, error) {
	var all []*digestVersion
	for key, versions := range f.digests {
		k, _ := ct.ParseKey(key)
		// A digest up to an hour after --until lists the logs just before it.
		if !v.inRange(k.Time) && !(k.Time.After(v.opts.Until) && !k.Time.After(v.opts.Until.Add(time.Hour))) {
			continue
		}
		if !f.since.IsZero() && k.Time.Before(f.since) {
			continue
		}
		for _, ver := range versions {
			all = append(all, &digestVersion{folder: f, key: k, version: ver})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].key.Raw < all[j].key.Raw })
	v.total.Add(int64(len(all)))
	err := v.each(ctx, len(all), func(ctx context.Context, i int) error {
		d := all[i]
		defer v.tick(1)
		if d.version.DeleteMarker {
			return nil
		}
		if d.version.Size > ct.MaxDigestSize {
			d.err = fmt.Errorf("%w: %d bytes, more than any digest (%d MiB at most); not read", ct.ErrTooLarge, d.version.Size, ct.MaxDigestSize>>20)
			return nil
		}
		compressed, meta, err := v.fetch(ctx, d.key.Raw, d.version)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotRegular) {
				d.err = err
				return nil
			}
			return err
		}
		d.metaSig = lookup(meta, "signature")
		if err := v.inflating.Acquire(ctx, 1); err != nil {
			return err
		}
		defer v.inflating.Release(1)
		d.file, d.err = ct.ReadDigest(bytes.NewReader(compressed))
		return nil
	})
	return all, err
}

// fetch reads one digest version whole, holding its size of the fetch budget
// while it does.
func (v *verifier) fetch(ctx context.Context, key string, ver store.Version) ([]byte, map[string]string, error) {
	size := max(ver.Size, 1)
	if err := v.fetching.Acquire(ctx, size); err != nil {
		return nil, nil, err
	}
	defer v.fetching.Release(size)
	r, meta, err := v.open(ctx, key, ver)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	// The listing said how large it is: a store that sends more is not read further.
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return nil, nil, err
	}
	return data, meta, nil
}

// lookup finds a metadata value by name, whatever its case.
func lookup(meta map[string]string, name string) string {
	if v, ok := meta[name]; ok {
		return v
	}
	for k, v := range meta {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// expected reports registered source accounts of which the archive holds no
// digest at all.
func (v *verifier) expected(has func(account string) bool) {
	for account := range v.opts.Registry {
		if !has(account) && contains(v.opts.Accounts, account) && len(v.opts.Regions) == 0 {
			v.add(&Finding{Severity: Error, Code: NoDigests, Account: account,
				Message: "account " + account + " is a source in the config, but no digest of it is in " + v.s.String()})
		}
	}
}

// advance moves a chain's proven tail, for the next incremental run, to its
// newest proven digest, but only when the chain has no problem: a problem is
// reported again on every run until it is resolved.
func (v *verifier) advance(c *chainRun) {
	if c.summary.Problems > 0 {
		return
	}
	var tail *member
	for _, m := range c.members {
		if m.state != proven {
			break
		}
		tail = m
	}
	if tail != nil {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.next.Chains[c.id.String()] = &Tail{Key: tail.key.Raw, VersionID: tail.version.VersionID, Hash: tail.file.RawHash, Signature: tail.proof,
			End: tail.key.Time, Proven: time.Now().UTC()}
	}
}

// nothingFound explains an empty verification: a cron job must not read
// "valid" from an archive that held nothing to prove.
func (v *verifier) nothingFound() {
	hint := fixes[NoDigests]
	var names []string
	for _, p := range v.top {
		names = append(names, strings.TrimSuffix(p[len(v.opts.Root):], "/"))
	}
	looksLike := func(re *regexp.Regexp) bool {
		for _, n := range names {
			if re.MatchString(strings.TrimPrefix(n, "/")) {
				return true
			}
		}
		return false
	}
	switch {
	case looksLike(accountRE):
		hint = "this looks like an AWSLogs/ folder (it holds account folders): give the folder that contains AWSLogs/, one level up"
	case looksLike(regexp.MustCompile(`^CloudTrail(-Digest)?$`)):
		hint = "this looks like an account folder (AWSLogs/ACCOUNT/): give the folder that contains AWSLogs/, two levels up"
	case len(v.opts.Accounts) > 0 || len(v.opts.Regions) > 0 || !v.opts.Since.IsZero():
		hint = "nothing matched --account, --region, --since or --until: widen them"
	}
	var logs int
	for _, f := range v.report.Findings {
		if f.Code == RegionWithoutDigests {
			logs += f.Count
		}
	}
	msg := "no CloudTrail digests under " + v.s.String()
	if v.opts.Root != "" {
		msg = "no CloudTrail digests under " + v.s.String() + "/" + strings.TrimSuffix(v.opts.Root, "/")
	}
	if logs > 0 {
		msg += fmt.Sprintf(" (%s, but no digest lists them)", plural(logs, "log file", "log files"))
		hint = fixes[RegionWithoutDigests]
	}
	v.add(&Finding{Severity: Error, Code: NoDigests, Message: msg, Fix: hint})
}
