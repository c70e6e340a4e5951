package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Options narrow and tune a verification.
type Options struct {
	// Root is where to look for [prefix/]AWSLogs/ (s3://bucket/ROOT); "" for the top.
	Root         string
	Since, Until time.Time // digests whose period ends in [Since, Until]; zero: all
	Accounts     []string
	Regions      []string
	// Registry maps each source account to its registered trail bucket: a digest
	// must name it. Accounts without an entry must name one bucket consistently.
	Registry map[string]string
	// Sample hashes one log file in Sample (all digests are still checked).
	Sample   int
	Parallel int
	Keys     Keys
	// Progress hears how many objects are done of how many found so far; it is
	// called from one goroutine at a time.
	Progress func(done, total int64)
}

// chainID names one chain.
type chainID struct {
	account, region, trail, home string
	backfill                     bool
}

type digestVersion struct {
	key     ct.Key
	version store.Version
	file    *ct.DigestFile
	sig     string // from metadata; "" where the store keeps none
	err     error  // unreadable
}

// folder is what one account and region hold.
type folder struct {
	prefix, account, region string
	digests                 map[string][]store.Version // key -> versions, newest first
	logs                    map[string][]store.Version
}

// Run verifies the archive in s.
func Run(ctx context.Context, s store.Store, opts Options) (*Report, error) {
	if opts.Parallel <= 0 {
		// Reads from S3 wait on the network far more than on the CPU.
		opts.Parallel = max(32, 4*runtime.NumCPU())
	}
	v := &verifier{s: s, opts: opts, report: &Report{Location: s.String()}, buckets: map[string]string{}}
	for a, b := range opts.Registry {
		v.buckets[a] = b
	}
	folders, err := v.discover(ctx)
	if err != nil {
		return nil, err
	}
	if !s.Versioned() {
		v.note("%s is a local copy without object metadata: the newest digest of each chain cannot have its signature checked; all older ones are checked through the chain", s)
	}
	for _, f := range folders {
		if err := v.folder(ctx, f); err != nil {
			return nil, err
		}
	}
	v.report.sort()
	return v.report, nil
}

type verifier struct {
	s       store.Store
	opts    Options
	report  *Report
	mu      sync.Mutex
	buckets map[string]string // account -> bucket digests must name
	done    atomic.Int64
	total   atomic.Int64
	progMu  sync.Mutex
}

func (v *verifier) note(format string, a ...any) {
	v.report.Notes = append(v.report.Notes, fmt.Sprintf(format, a...))
}

func (v *verifier) add(f *Finding) {
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

// discover finds the [prefix/]AWSLogs/ACCOUNT/.../REGION folders, then lists
// each once (day by day when a time range is given), in parallel.
func (v *verifier) discover(ctx context.Context) ([]*folder, error) {
	root := v.opts.Root
	if root != "" && !strings.HasSuffix(root, "/") {
		root += "/"
	}
	bases, err := v.findBases(ctx, root, 0)
	if err != nil {
		return nil, err
	}
	var folders []*folder
	for _, base := range bases {
		accts, err := v.s.Prefixes(ctx, base+"AWSLogs/")
		if err != nil {
			return nil, err
		}
		for _, a := range accts {
			acct := strings.TrimSuffix(strings.TrimPrefix(a, base+"AWSLogs/"), "/")
			if !contains(v.opts.Accounts, acct) {
				continue
			}
			regions := map[string]bool{}
			for _, kind := range []string{"CloudTrail-Digest/", "CloudTrail/"} {
				rs, err := v.s.Prefixes(ctx, a+kind)
				if err != nil {
					return nil, err
				}
				for _, r := range rs {
					regions[strings.TrimSuffix(strings.TrimPrefix(r, a+kind), "/")] = true
				}
			}
			for r := range regions {
				if contains(v.opts.Regions, r) {
					folders = append(folders, &folder{prefix: base, account: acct, region: r, digests: map[string][]store.Version{}, logs: map[string][]store.Version{}})
				}
			}
		}
	}
	sort.Slice(folders, func(i, j int) bool {
		return folders[i].prefix+folders[i].account+folders[i].region < folders[j].prefix+folders[j].account+folders[j].region
	})
	err = parallel(ctx, v.opts.Parallel, len(folders), func(ctx context.Context, i int) error {
		f := folders[i]
		for _, p := range v.listPrefixes(ct.DigestFolder(f.prefix, f.account, f.region), 1) {
			if err := v.s.Versions(ctx, p, func(ver store.Version) error { f.digests[ver.Key] = append(f.digests[ver.Key], ver); return nil }); err != nil {
				return err
			}
		}
		for _, p := range v.listPrefixes(ct.LogFolder(f.prefix, f.account, f.region), 0) {
			if err := v.s.Versions(ctx, p, func(ver store.Version) error { f.logs[ver.Key] = append(f.logs[ver.Key], ver); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	return folders, err
}

// findBases finds the key prefixes under which AWSLogs/ lives (a trail's
// S3KeyPrefix), up to three folders deep.
func (v *verifier) findBases(ctx context.Context, prefix string, depth int) ([]string, error) {
	ps, err := v.s.Prefixes(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ps {
		if strings.HasSuffix(p, "AWSLogs/") && p[len(prefix):] == "AWSLogs/" {
			out = append(out, prefix)
		} else if depth < 3 {
			sub, err := v.findBases(ctx, p, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
	}
	return out, nil
}

// listPrefixes narrows a folder to the days of the time range (plus slack days
// on each side, for digests that cover the edges).
func (v *verifier) listPrefixes(folder string, slackDays int) []string {
	if v.opts.Since.IsZero() {
		return []string{folder}
	}
	until := v.opts.Until
	if until.IsZero() {
		until = time.Now()
	}
	var out []string
	for d := v.opts.Since.AddDate(0, 0, -1-slackDays).UTC().Truncate(24 * time.Hour); !d.After(until.AddDate(0, 0, 1)); d = d.AddDate(0, 0, 1) {
		out = append(out, folder+d.Format("2006/01/02/"))
	}
	return out
}

func (v *verifier) inRange(t time.Time) bool {
	return (v.opts.Since.IsZero() || !t.Before(v.opts.Since)) && (v.opts.Until.IsZero() || !t.After(v.opts.Until))
}

// parallel runs fn for 0..n-1, at most limit at once, and returns the first error.
func parallel(ctx context.Context, limit, n int, fn func(ctx context.Context, i int) error) error {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func (v *verifier) folder(ctx context.Context, f *folder) error {
	// Read every version of every digest in range, in parallel.
	var all []*digestVersion
	for key, versions := range f.digests {
		k, err := ct.ParseKey(key)
		if err != nil || k.Kind != ct.Digest {
			continue
		}
		if !v.inRange(k.Time) {
			continue
		}
		for _, ver := range versions {
			all = append(all, &digestVersion{key: k, version: ver})
		}
	}
	v.total.Add(int64(len(all)))
	err := parallel(ctx, v.opts.Parallel, len(all), func(ctx context.Context, i int) error {
		d := all[i]
		defer v.tick(1)
		if d.version.DeleteMarker {
			return nil
		}
		r, meta, err := v.s.Open(ctx, d.key.Raw, d.version.VersionID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				d.err = err
				return nil
			}
			return err
		}
		defer r.Close()
		d.file, d.err = ct.ReadDigest(io.LimitReader(r, ct.MaxDigestSize))
		d.sig = meta["signature"]
		return nil
	})
	if err != nil {
		return err
	}
	chains := map[chainID][]*digestVersion{}
	for _, d := range all {
		id := chainID{f.account, f.region, d.key.Trail, d.key.HomeRegion, d.key.Backfill}
		chains[id] = append(chains[id], d)
	}
	ids := make([]chainID, 0, len(chains))
	for id := range chains {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return fmt.Sprint(ids[i]) < fmt.Sprint(ids[j]) })
	referenced := map[string]*logRef{} // log key -> expected hash and chain
	var covered []window
	for _, id := range ids {
		c := v.chain(ctx, f, id, chains[id], referenced)
		covered = append(covered, window{c.First, c.Last})
	}
	return v.logs(ctx, f, referenced, covered)
}

type window struct{ from, to time.Time }

func (v *verifier) finding(sev Severity, kind string, f *folder, trail, key, version, format string, a ...any) *Finding {
	return &Finding{Severity: sev, Kind: kind, Account: f.account, Region: f.region, Trail: trail, Key: key, VersionID: version, Message: fmt.Sprintf(format, a...)}
}
