package search

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/parallel"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Options tune a search.
type Options struct {
	// Root is where to look for [prefix/]AWSLogs/ (s3://bucket/ROOT); "" for the top.
	Root   string
	Filter Filter
	// Limit stops after this many matches; 0: all.
	Limit int
	// Decode fills every Match's Event; otherwise only its top-level fields
	// are read (enough for counts and for printing the raw records).
	Decode bool
	// Parallel is how many objects are read at once (default: 256 from S3,
	// where the work is waiting for round trips; 2 per core from a directory).
	Parallel int
	// Slack is how long after an event CloudTrail may deliver the file that
	// holds it: files delivered later than Until+Slack are not read.
	Slack time.Duration
	// Progress hears the running totals, from one goroutine at a time.
	Progress func(Stats)
	// Skip leaves out listed objects that need not be read (the index: those
	// it already holds).
	Skip func(store.Version) bool
	// Listing, from List with the same filter, is read instead of listing again.
	Listing *Listing
	// ObjectDone hears each object read to its end, in order, once its
	// matches were emitted; objects that could not be read are warnings instead.
	ObjectDone func(store.Version)
	// WholeObjects emits nothing of an object that could not be read to its
	// end (the index records objects whole); otherwise its matches up to the
	// damage are emitted.
	WholeObjects bool
}

// DefaultSlack covers CloudTrail's delivery delay (about 5 minutes on average,
// per its documentation) with a wide margin.
const DefaultSlack = time.Hour

// Match is one event that matched.
type Match struct {
	Key     string // the object it came from
	Account string // the archive folder's account, or the event's
	Region  string
	Event   Event
	Raw     []byte // the record exactly as it is in the file
}

// Stats count what a search did.
type Stats struct {
	ObjectsListed  int64    `json:"objectsListed"` // after pruning by the key layout
	ObjectsDone    int64    `json:"objectsDone"`   // searched to the end, in key order
	ObjectsRead    int64    `json:"objectsRead"`
	BytesRead      int64    `json:"bytesRead"`     // as stored (gzip)
	BytesInflated  int64    `json:"bytesInflated"` // uncompressed
	RecordsDecoded int64    `json:"recordsDecoded"`
	Matched        int64    `json:"matched"`
	Warnings       []string `json:"warnings"` // objects that could not be read, by key
	// Shadowed are keys with more than one version in the archive (only the
	// newest is read): a log written over, which verify reports.
	Shadowed []string `json:"shadowed"`
}

// object is one log file to read.
type object struct {
	v               store.Version
	key, version    string
	account, region string    // "" outside the AWSLogs layout
	delivered       time.Time // from the file name; zero when unknown
}

// Run searches s and calls emit with every match, in the order of the
// objects' keys (account, region, time) and of the records in each file.
func Run(ctx context.Context, s store.Store, opts Options, emit func(Match) error) (*Stats, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 2 * runtime.NumCPU()
		if s.Versioned() {
			opts.Parallel = 256
		}
	}
	if opts.Slack <= 0 {
		opts.Slack = DefaultSlack
	}
	r := &runner{s: s, opts: opts, needles: opts.Filter.needles(), stats: &Stats{Warnings: []string{}, Shadowed: []string{}}}
	var objects []object
	if l := opts.Listing; l != nil {
		objects, r.stats.Warnings = l.objects, append(r.stats.Warnings, l.warnings...)
		r.stats.Shadowed = append(r.stats.Shadowed, l.shadowed...)
	} else {
		var err error
		if objects, err = r.list(ctx); err != nil {
			return nil, err
		}
	}
	r.stats.ObjectsListed = int64(len(objects))
	return r.stats, r.scan(ctx, objects, emit)
}

// Listing is what a search would read, listed once: List gives it, and Run
// takes it back (Options.Listing) instead of listing again.
type Listing struct {
	objects  []object
	warnings []string
	shadowed []string
}

// Versions are the listed objects.
func (l *Listing) Versions() []store.Version {
	out := make([]store.Version, len(l.objects))
	for i, o := range l.objects {
		out[i] = o.v
	}
	return out
}

// List lists the objects a search with these options would read, without
// reading them: the index answers from what it holds when it holds them all.
func List(ctx context.Context, s store.Store, opts Options) (*Listing, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	if opts.Slack <= 0 {
		opts.Slack = DefaultSlack
	}
	r := &runner{s: s, opts: opts, needles: opts.Filter.needles(), stats: &Stats{}}
	objects, err := r.list(ctx)
	return &Listing{objects: objects, warnings: r.stats.Warnings, shadowed: r.stats.Shadowed}, err
}

type runner struct {
	s       store.Store
	opts    Options
	needles needles
	stats   *Stats
	read    atomic.Int64
	bytes   atomic.Int64
	inflate atomic.Int64
	decoded atomic.Int64
}

// list finds the log files that can hold a match, pruning by the key layout.
// Outside the AWSLogs/ layout (a folder of downloaded logs) it takes every
// .json.gz and .json file.
func (r *runner) list(ctx context.Context) ([]object, error) {
	root := r.opts.Root
	if root != "" && !strings.HasSuffix(root, "/") {
		root += "/"
	}
	bases, err := store.Bases(ctx, r.s, root)
	if err != nil {
		return nil, err
	}
	var prefixes []string
	if len(bases) == 0 {
		prefixes = []string{root}
	}
	for _, base := range bases {
		ps, err := r.regionFolders(ctx, base)
		if err != nil {
			return nil, err
		}
		prefixes = append(prefixes, ps...)
	}
	var mu sync.Mutex
	var out []object
	var skipped []string
	err = parallel.For(ctx, r.opts.Parallel, len(prefixes), func(ctx context.Context, i int) error {
		var found []object
		var odd []string
		versions := map[string]int{}
		err := r.s.Versions(ctx, prefixes[i], func(v store.Version) error {
			if len(bases) == 0 && strings.HasPrefix(v.Key, root+store.StatePrefix) {
				return nil // trailkeeper's own records in an archive with no logs yet
			}
			versions[v.Key]++
			if v.Latest && !v.DeleteMarker {
				o, ok, why := r.candidate(v, len(bases) > 0)
				if ok && r.opts.Skip != nil && r.opts.Skip(v) {
					return nil
				}
				if ok {
					found = append(found, o)
				} else if why != "" {
					odd = append(odd, v.Key+": "+why)
				}
			}
			return nil
		})
		var shadowed []string
		for k, n := range versions {
			if n > 1 {
				// A new version (or a delete marker) over a log hides the one
				// CloudTrail wrote from whoever reads only the newest.
				shadowed = append(shadowed, fmt.Sprintf("%s: %d versions", k, n))
			}
		}
		mu.Lock()
		out, skipped = append(out, found...), append(skipped, odd...)
		r.stats.Shadowed = append(r.stats.Shadowed, shadowed...)
		mu.Unlock()
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	sort.Strings(skipped)
	sort.Strings(r.stats.Shadowed)
	r.stats.Warnings = append(r.stats.Warnings, skipped...)
	return out, err
}

// regionFolders lists [prefix/]AWSLogs/ACCOUNT/CloudTrail/REGION/ folders of
// the accounts and regions asked for, narrowed to the days of the range.
func (r *runner) regionFolders(ctx context.Context, base string) ([]string, error) {
	f := &r.opts.Filter
	accounts, err := r.s.Prefixes(ctx, base+"AWSLogs/")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range accounts {
		name := strings.TrimSuffix(strings.TrimPrefix(a, base+"AWSLogs/"), "/")
		if strings.HasPrefix(name, "o-") {
			sub, err := r.s.Prefixes(ctx, a) // an organization trail's AWSLogs/o-ID/ACCOUNT/
			if err != nil {
				return nil, err
			}
			for _, s := range sub {
				if acct := strings.TrimSuffix(strings.TrimPrefix(s, a), "/"); len(f.Accounts) == 0 || slices.Contains(f.Accounts, acct) {
					out = append(out, r.days(s+"CloudTrail/")...)
				}
			}
			continue
		}
		if len(f.Accounts) > 0 && !slices.Contains(f.Accounts, name) {
			continue
		}
		regions, err := r.s.Prefixes(ctx, a+"CloudTrail/")
		if err != nil {
			return nil, err
		}
		for _, rg := range regions {
			region := strings.TrimSuffix(strings.TrimPrefix(rg, a+"CloudTrail/"), "/")
			if len(f.Regions) == 0 || slices.Contains(f.Regions, region) {
				out = append(out, r.days(rg)...)
			}
		}
	}
	return out, nil
}

// days narrows a region folder to the day folders files of the range were
// delivered in.
func (r *runner) days(folder string) []string {
	f := &r.opts.Filter
	if f.Since.IsZero() || !strings.Contains(folder, "/CloudTrail/") || strings.HasSuffix(folder, "/CloudTrail/") {
		return []string{folder}
	}
	until := f.Until
	if until.IsZero() {
		until = time.Now()
	}
	var out []string
	for d := f.Since.UTC().Truncate(24 * time.Hour); !d.After(until.UTC().Add(r.opts.Slack)); d = d.AddDate(0, 0, 1) {
		out = append(out, folder+d.Format("2006/01/02/"))
	}
	return out
}

// logFolderRE finds the account and region of an object in a log folder.
var logFolderRE = regexp.MustCompile(`AWSLogs/(?:o-[^/]+/)?(\d{12})/CloudTrail/([^/]+)/`)

// candidate decides from its key alone whether an object can hold a match.
// In the archive layout only CloudTrail/ folders are listed, so digests and
// Insights files never come here; a file there whose name CloudTrail would
// not write is still read if it is JSON, and named if it is not.
func (r *runner) candidate(v store.Version, layout bool) (o object, ok bool, why string) {
	o = object{v: v, key: v.Key, version: v.VersionID}
	isJSON := strings.HasSuffix(v.Key, ".json.gz") || strings.HasSuffix(v.Key, ".json")
	k, err := ct.ParseKey(v.Key)
	switch {
	case err == nil && k.Kind == ct.Log:
		o.delivered = k.Time
		if layout {
			o.account, o.region = k.Account, k.Region
		}
	case layout && isJSON:
		if m := logFolderRE.FindStringSubmatch(v.Key); m != nil {
			o.account, o.region = m[1], m[2]
		}
		if len(r.opts.Filter.Accounts) > 0 && !slices.Contains(r.opts.Filter.Accounts, o.account) ||
			len(r.opts.Filter.Regions) > 0 && !slices.Contains(r.opts.Filter.Regions, o.region) {
			return o, false, ""
		}
	case layout:
		return o, false, "not a log file (CloudTrail does not write this name); not searched"
	case !isJSON:
		return o, false, ""
	}
	f := &r.opts.Filter
	if !o.delivered.IsZero() {
		// A file holds events from before the minute it was delivered in.
		if !f.Since.IsZero() && !o.delivered.Add(time.Minute).After(f.Since) {
			return o, false, ""
		}
		if !f.Until.IsZero() && !o.delivered.Add(-r.opts.Slack).Before(f.Until) {
			return o, false, ""
		}
	}
	return o, true, ""
}

// scan reads the objects on parallel workers and emits their matches in order.
func (r *runner) scan(ctx context.Context, objects []object, emit func(Match) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i       int
		matches []Match
		err     error
	}
	results := make(chan result)
	// Workers may run ahead of the emitter by this many objects, no more:
	// that bounds the matches held in memory.
	window := make(chan struct{}, 2*r.opts.Parallel)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.opts.Parallel, len(objects)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for {
				select {
				case window <- struct{}{}:
				case <-ctx.Done():
					return
				}
				i := int(next.Add(1) - 1)
				if i >= len(objects) {
					<-window
					return
				}
				ms, err := r.object(ctx, objects[i], &buf)
				select {
				case results <- result{i, ms, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	pending := map[int]result{}
	want := 0
	var failed error
	for res := range results {
		pending[res.i] = res
		for {
			p, ok := pending[want]
			if !ok {
				break
			}
			delete(pending, want)
			want++
			r.stats.ObjectsDone = int64(want)
			<-window
			if failed != nil {
				continue
			}
			if p.err != nil {
				var unreadable *unreadableError
				if !errors.As(p.err, &unreadable) {
					failed = p.err
					cancel()
					continue
				}
				r.stats.Warnings = append(r.stats.Warnings, objects[p.i].key+": "+p.err.Error())
				if r.opts.WholeObjects {
					continue
				}
			}
			for _, m := range p.matches {
				if r.opts.Limit > 0 && r.stats.Matched >= int64(r.opts.Limit) {
					break
				}
				r.stats.Matched++
				if err := emit(m); err != nil {
					failed = err
					cancel()
					break
				}
			}
			if p.err == nil && failed == nil && r.opts.ObjectDone != nil {
				r.opts.ObjectDone(objects[p.i].v)
			}
			r.progress()
			if r.opts.Limit > 0 && r.stats.Matched >= int64(r.opts.Limit) && failed == nil {
				failed = errLimit
				cancel()
			}
		}
	}
	r.progress()
	if failed == errLimit {
		return nil
	}
	if failed == nil && want < len(objects) {
		failed = ctx.Err()
	}
	return failed
}

var errLimit = errors.New("limit reached")

func (r *runner) progress() {
	r.stats.ObjectsRead = r.read.Load()
	r.stats.BytesRead = r.bytes.Load()
	r.stats.BytesInflated = r.inflate.Load()
	r.stats.RecordsDecoded = r.decoded.Load()
	if r.opts.Progress != nil {
		r.opts.Progress(*r.stats)
	}
}

// unreadableError is an object that is not a readable log: a warning that
// names it, and the search goes on.
type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return e.err.Error() }

// countingReader counts the bytes read from the store.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// object reads one log file and returns its matches.
func (r *runner) object(ctx context.Context, o object, buf *bytes.Buffer) ([]Match, error) {
	rc, _, err := r.s.Open(ctx, o.key, o.version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &unreadableError{fmt.Errorf("gone while searching: %w", err)}
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r.read.Add(1)
	buf.Reset()
	if err := inflate(buf, countingReader{rc, &r.bytes}); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	data := buf.Bytes()
	r.inflate.Add(int64(len(data)))
	if !r.needles.in(data) {
		return nil, nil
	}
	var out []Match
	err = records(data, func(rec []byte) error {
		if !r.needles.in(rec) {
			return nil
		}
		f := &r.opts.Filter
		var e Event
		if err := topLevel(rec, e.field); err != nil {
			return fmt.Errorf("a record is not JSON: %w", err)
		}
		if !f.matchTop(&e, o.account, o.region) {
			return nil
		}
		if f.deep() || r.opts.Decode {
			r.decoded.Add(1)
			e = Event{}
			if err := json.Unmarshal(rec, &e); err != nil {
				return fmt.Errorf("a record is not JSON: %w", err)
			}
		}
		if f.matchDeep(&e) {
			m := Match{Key: o.key, Account: o.account, Region: o.region, Event: e, Raw: bytes.Clone(rec)}
			if m.Account == "" {
				m.Account = e.RecipientAccountID
			}
			if m.Region == "" {
				m.Region = e.AWSRegion
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return out, &unreadableError{err}
	}
	return out, nil
}

// inflate writes the uncompressed object into buf: gzip as CloudTrail
// writes it, or plain JSON (some exports are not compressed).
func inflate(buf *bytes.Buffer, src io.Reader) error {
	var head [2]byte
	n, err := io.ReadFull(src, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	full := io.MultiReader(bytes.NewReader(head[:n]), src)
	if n < 2 || head[0] != 0x1f || head[1] != 0x8b {
		_, err := buf.ReadFrom(full)
		return err
	}
	if _, err := ct.Gunzip(buf, full); err != nil {
		var api interface{ ErrorCode() string }
		if errors.As(err, &api) {
			return err // the store failed, not the object
		}
		return &unreadableError{err}
	}
	return nil
}
