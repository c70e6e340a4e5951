package verify

import (
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
	"github.com/trailkeeper/trailkeeper/internal/parallel"
	"github.com/trailkeeper/trailkeeper/internal/store"
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
	// Progress hears how many objects are done of how many found so far; it is
	// called from one goroutine at a time.
	Progress func(done, total int64)
}

// DefaultParallelS3 is how many requests verify keeps in flight to S3: at
// 20 ms a round trip, 256 requests make about 12,800 objects a second.
const DefaultParallelS3 = 256

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
	digests                 map[string][]store.Version // key -> versions, newest first
	logs                    map[string][]store.Version
	insights                map[string][]store.Version
	chains                  []*chainRun
	referenced              map[string][]logRef // log key -> the digests that list it
	gaps                    []*gap              // missing digest intervals
	firstOnce               sync.Once
	first                   string // the earliest log key with a live version
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
	v := &verifier{s: s, opts: opts, buckets: map[string]string{},
		report: &Report{Location: s.String(), Chains: []*Chain{}, Findings: []*Finding{}, Notes: []string{}, AcceptedUnsignedTail: opts.AcceptUnsignedTail}}
	for a, b := range opts.Registry {
		v.buckets[a] = b
	}
	v.next = &State{Location: s.String(), Chains: map[string]*Tail{}}
	if opts.State != nil {
		for id, t := range opts.State.Chains {
			v.next.Chains[id] = t
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
	v.expected(func(account string) bool { _, ok := seen.Load(account); return ok })
	if !s.Versioned() && len(v.report.Chains) > 0 {
		v.note("%s is a local copy without object metadata: a digest's signature is read from its successor, so the newest digest of each chain is unproven unless --state vouches for it", s)
	}
	if len(v.report.Chains) == 0 {
		v.nothingFound()
	}
	v.report.ObjectsRead = v.read.Load()
	v.report.State = v.next
	v.report.sort()
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
	for _, c := range f.chains {
		v.advance(c)
	}
	return nil
}

type verifier struct {
	s       store.Store
	jobs    chan func() // reads, run by long-lived workers: the SDK's deep stacks grow once
	opts    Options
	report  *Report
	next    *State
	mu      sync.Mutex
	buckets map[string]string // account -> bucket digests must name
	done    atomic.Int64
	total   atomic.Int64
	listed  atomic.Int64
	read    atomic.Int64
	progMu  sync.Mutex
	top     []string // the folders at the root, for the hint when nothing is found
}

func (v *verifier) note(format string, a ...any) {
	v.mu.Lock()
	v.report.Notes = append(v.report.Notes, fmt.Sprintf(format, a...))
	v.mu.Unlock()
}

// add records a finding, with the fix for its kind.
func (v *verifier) add(f *Finding) {
	if f.Fix == "" {
		f.Fix = strings.ReplaceAll(fixes[f.Kind], "ACCOUNT", f.Account)
	}
	v.mu.Lock()
	v.report.Findings = append(v.report.Findings, f)
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

// open reads one object version, counting reads.
func (v *verifier) open(ctx context.Context, key, version string) (io.ReadCloser, map[string]string, error) {
	v.read.Add(1)
	return v.s.Open(ctx, key, version)
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

// listAccount lists one account folder and sorts what it holds into one folder
// per region. Objects CloudTrail does not write are reported, never skipped.
func (v *verifier) listAccount(ctx context.Context, base, prefix, account string) ([]*folder, error) {
	byRegion := map[string]*folder{}
	get := func(region string) *folder {
		f := byRegion[region]
		if f == nil {
			f = &folder{prefix: base, account: account, region: region, digests: map[string][]store.Version{},
				logs: map[string][]store.Version{}, insights: map[string][]store.Version{}}
			byRegion[region] = f
		}
		return f
	}
	seen := map[string]bool{}
	collect := func(ver store.Version) error {
		v.listed.Add(1)
		k, err := ct.ParseKey(ver.Key)
		if err != nil || k.Account != account || k.Prefix != base {
			if !seen[ver.Key] {
				seen[ver.Key] = true
				v.add(&Finding{Severity: Error, Kind: UnexpectedObject, Account: account, Key: ver.Key, VersionID: ver.VersionID,
					Message: "not a CloudTrail log, digest or Insights file name"})
			}
			return nil
		}
		if !contains(v.opts.Regions, k.Region) {
			return nil
		}
		f := get(k.Region)
		switch k.Kind {
		case ct.Digest:
			f.digests[ver.Key] = append(f.digests[ver.Key], ver)
		case ct.Log:
			f.logs[ver.Key] = append(f.logs[ver.Key], ver)
		case ct.Insight:
			f.insights[ver.Key] = append(f.insights[ver.Key], ver)
		}
		return nil
	}
	if !accountRE.MatchString(account) {
		// Not an account folder: everything in it is unexpected.
		return nil, v.s.Versions(ctx, prefix, collect)
	}
	if v.opts.Since.IsZero() && !v.hasState(account) {
		err := v.s.Versions(ctx, prefix, collect)
		return sortedFolders(byRegion), err
	}
	kinds, err := v.s.Prefixes(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var lists []string // prefixes to list, all at once
	for _, kind := range kinds {
		name := strings.TrimSuffix(strings.TrimPrefix(kind, prefix), "/")
		if name != "CloudTrail" && name != "CloudTrail-Digest" && name != "CloudTrail-Insight" {
			lists = append(lists, kind) // everything in it is unexpected
			continue
		}
		regions, err := v.s.Prefixes(ctx, kind)
		if err != nil {
			return nil, err
		}
		for _, r := range regions {
			region := strings.TrimSuffix(strings.TrimPrefix(r, kind), "/")
			if !contains(v.opts.Regions, region) {
				continue
			}
			get(region)
			for _, day := range v.days(account, region) {
				lists = append(lists, r+day)
			}
		}
	}
	var mu sync.Mutex
	err = v.each(ctx, len(lists), func(ctx context.Context, i int) error {
		var found []store.Version
		if err := v.s.Versions(ctx, lists[i], func(ver store.Version) error { found = append(found, ver); return nil }); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ver := range found {
			collect(ver)
		}
		return nil
	})
	return sortedFolders(byRegion), err
}

func sortedFolders(m map[string]*folder) []*folder {
	out := make([]*folder, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	return out
}

func (v *verifier) hasState(account string) bool {
	if v.opts.State == nil {
		return false
	}
	for id := range v.opts.State.Chains {
		if strings.HasPrefix(id, account+"/") {
			return true
		}
	}
	return false
}

// since is where verification of one folder starts: --since, or the oldest
// proven tail of its chains when an incremental state has all of them.
func (v *verifier) since(account, region string) time.Time {
	since := v.opts.Since
	if v.opts.State == nil {
		return since
	}
	var oldest time.Time
	for id, t := range v.opts.State.Chains {
		if strings.HasPrefix(id, account+"/"+region+"/") && (oldest.IsZero() || t.End.Before(oldest)) {
			oldest = t.End
		}
	}
	if oldest.After(since) {
		return oldest
	}
	return since
}

// days lists the YYYY/MM/DD/ folders to read for a folder's range, from an
// hour before it (the logs of its first digest) to an hour after (the digest
// that lists its last logs).
func (v *verifier) days(account, region string) []string {
	since := v.since(account, region)
	if since.IsZero() {
		return []string{""}
	}
	until := v.opts.Until
	if until.IsZero() {
		until = time.Now()
	}
	var out []string
	for d := since.UTC().Add(-time.Hour).Truncate(24 * time.Hour); !d.After(until.UTC().Add(time.Hour)); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format("2006/01/02/"))
	}
	return out
}

func (v *verifier) inRange(t time.Time) bool {
	return (v.opts.Since.IsZero() || !t.Before(v.opts.Since)) && (v.opts.Until.IsZero() || !t.After(v.opts.Until))
}

// readDigests reads every version of every digest of a folder in range.
func (v *verifier) readDigests(ctx context.Context, f *folder) ([]*digestVersion, error) {
	var all []*digestVersion
	since := v.since(f.account, f.region)
	for key, versions := range f.digests {
		k, _ := ct.ParseKey(key)
		// A digest up to an hour after --until lists the logs just before it.
		if !v.inRange(k.Time) && !(k.Time.After(v.opts.Until) && !k.Time.After(v.opts.Until.Add(time.Hour))) {
			continue
		}
		if !since.IsZero() && k.Time.Before(since) {
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
		r, meta, err := v.open(ctx, d.key.Raw, d.version.VersionID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				d.err = err
				return nil
			}
			return err
		}
		defer r.Close()
		d.file, d.err = ct.ReadDigest(io.LimitReader(r, ct.MaxDigestSize))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.metaSig = lookup(meta, "signature")
		return nil
	})
	return all, err
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
			v.add(&Finding{Severity: Error, Kind: NoDigests, Account: account,
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
		if f.Kind == RegionWithoutDigests {
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
	v.add(&Finding{Severity: Error, Kind: NoDigests, Message: msg, Fix: hint})
}
