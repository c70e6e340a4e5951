package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

var ctx = context.Background()

var (
	keyOnce  sync.Once
	testKey  *rsa.PrivateKey
	otherKey *rsa.PrivateKey
)

func keys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	keyOnce.Do(func() {
		testKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		otherKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
	return testKey, otherKey
}

const (
	acctA  = "111111111111"
	acctB  = "222222222222"
	bucket = "cm-members-cloudtrail-"
)

var start = time.Date(2025, 9, 10, 0, 0, 0, 0, time.UTC)

// archive builds 2 accounts x 2 regions of 6 hourly digests with 3 logs each.
type archive struct {
	t      *testing.T
	mem    *store.Memory
	b      fixture.Builder
	chains map[string]*fixture.Written // account/region
}

func newArchive(t *testing.T, trail string) *archive {
	k, _ := keys(t)
	a := &archive{t: t, mem: store.NewMemory(), chains: map[string]*fixture.Written{}}
	a.b = fixture.Builder{Key: k, W: a.mem}
	for _, acct := range []string{acctA, acctB} {
		for _, r := range []string{"us-east-1", "eu-west-1"} {
			w, err := a.b.Write(ctx, fixture.Chain{Account: acct, Region: r, HomeRegion: "us-east-1", Trail: trail, Bucket: bucket + acct,
				Start: start, Digests: 6, LogsPerDigest: 3})
			if err != nil {
				t.Fatal(err)
			}
			a.chains[acct+"/"+r] = w
		}
	}
	return a
}

func (a *archive) verify(opts Options) *Report {
	a.t.Helper()
	k, _ := keys(a.t)
	if opts.Keys == nil {
		opts.Keys = StaticKeys([]string{"us-east-1", "eu-west-1"}, fixture.Builder{Key: k}.PublicKeyDER())
	}
	if opts.Registry == nil {
		opts.Registry = map[string]string{acctA: bucket + acctA, acctB: bucket + acctB}
	}
	r, err := Run(ctx, a.mem, opts)
	if err != nil {
		a.t.Fatal(err)
	}
	return r
}

func (a *archive) read(key string) []byte {
	r, _, err := a.mem.Open(ctx, key, "")
	if err != nil {
		a.t.Fatal(err)
	}
	defer r.Close()
	data, _ := io.ReadAll(r)
	return data
}

// errors lists the error findings as "kind key" lines.
func errorsOf(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity == Error {
			out = append(out, f.Code+" "+f.Key)
		}
	}
	return out
}

func findingOf(r *Report, kind string) *Finding {
	for _, f := range r.Findings {
		if f.Code == kind {
			return f
		}
	}
	return nil
}

func TestAllValid(t *testing.T) {
	a := newArchive(t, "Members")
	r := a.verify(Options{})
	if errs := errorsOf(r); len(errs) != 0 {
		t.Fatalf("findings on an intact archive: %v", errs)
	}
	if len(r.Chains) != 4 {
		t.Fatalf("%d chains", len(r.Chains))
	}
	for _, c := range r.Chains {
		if c.Digests != 6 || c.DigestsProven != 6 || c.Logs != 18 || c.LogsProven != 18 {
			t.Fatalf("chain %+v", c)
		}
	}
}

func TestOneLogAltered(t *testing.T) {
	a := newArchive(t, "Members")
	victim := a.chains[acctA+"/us-east-1"].Logs[4]
	body := bytes.Replace(testenv.Gunzip(t, a.read(victim)), []byte(`"readOnly":true`), []byte(`"readOnly":false`), 1)
	a.mem.Purge(victim)
	a.mem.Put(ctx, victim, fixture.Gzip(body), nil)
	if errs := errorsOf(a.verify(Options{})); len(errs) != 1 || errs[0] != AlteredLog+" "+victim {
		t.Fatalf("got %v", errs)
	}
}

func TestOneLogDeleted(t *testing.T) {
	a := newArchive(t, "Members")
	victim := a.chains[acctB+"/eu-west-1"].Logs[1]
	a.mem.Purge(victim)
	if errs := errorsOf(a.verify(Options{})); len(errs) != 1 || errs[0] != MissingLog+" "+victim {
		t.Fatalf("got %v", errs)
	}
}

// A missing log file older than every log file of its folder in the archive
// is what a late start of replication leaves (the first replicated digest
// lists files written before the rule): its fix is backfill. It is still an
// error, and the message says it could also have been deleted.
func TestMissingBeforeReplication(t *testing.T) {
	a := newArchive(t, "Members")
	chain := a.chains[acctB+"/eu-west-1"]
	for _, victim := range chain.Logs[:2] {
		a.mem.Purge(victim)
	}
	r := a.verify(Options{})
	errs := errorsOf(r)
	if len(errs) != 2 || errs[0] != MissingBeforeReplication+" "+chain.Logs[0] || errs[1] != MissingBeforeReplication+" "+chain.Logs[1] {
		t.Fatalf("got %v", errs)
	}
	f := findingOf(r, MissingBeforeReplication)
	if f.Fix != "run trailkeeper backfill --account "+acctB+": replication never copies what was written before its rule, and the source bucket still holds it" ||
		!strings.Contains(f.Message, "or deleted with all its versions") {
		t.Fatalf("finding: %+v", f)
	}
}

func TestOneLogInserted(t *testing.T) {
	a := newArchive(t, "Members")
	key := ct.LogKey("", acctA, "us-east-1", start.Add(150*time.Minute), "INSERTEDinserted")
	a.mem.Put(ctx, key, fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	if errs := errorsOf(a.verify(Options{})); len(errs) != 1 || errs[0] != UnreferencedLog+" "+key {
		t.Fatalf("got %v", errs)
	}
}

func TestTwoConsecutiveDigestsDeleted(t *testing.T) {
	a := newArchive(t, "Members")
	d := a.chains[acctA+"/us-east-1"].Digests
	a.mem.Purge(d[2])
	a.mem.Purge(d[3])
	r := a.verify(Options{})
	var missing []*Finding
	for _, f := range r.Findings {
		if f.Code == MissingDigest {
			missing = append(missing, f)
		}
	}
	if len(missing) != 2 || !missing[0].From.Equal(start.Add(2*time.Hour)) || !missing[1].From.Equal(start.Add(3*time.Hour)) || missing[1].Key != d[3] {
		t.Fatalf("missing-digest findings: %+v", missing)
	}
	// Their logs are listed by no digest: each missing hour stands for its 3, once.
	if n := len(errorsOf(r)); n != 2 || missing[0].Count != 3 || missing[1].Count != 3 {
		t.Fatalf("%d errors: %v; counts %d, %d", n, errorsOf(r), missing[0].Count, missing[1].Count)
	}
}

func TestForgedSignature(t *testing.T) {
	a := newArchive(t, "Members")
	d := a.chains[acctB+"/us-east-1"].Digests[5] // the newest: no successor vouches for it
	data := a.read(d)
	a.mem.Purge(d)
	a.mem.Put(ctx, d, data, map[string]string{"signature": strings.Repeat("ab", 256), "signature-algorithm": "SHA256withRSA"})
	if errs := errorsOf(a.verify(Options{})); len(errs) != 1 || errs[0] != BadSignature+" "+d {
		t.Fatalf("got %v", errs)
	}
}

func TestResignedWithAnUnknownKey(t *testing.T) {
	a := newArchive(t, "Members")
	_, other := keys(t)
	d := a.chains[acctA+"/eu-west-1"].Digests[5]
	df, err := ct.ReadDigest(bytes.NewReader(a.read(d)))
	if err != nil {
		t.Fatal(err)
	}
	forger := fixture.Builder{Key: other}
	df.Fingerprint = forger.Fingerprint()
	df.LogFiles = df.LogFiles[1:] // hide a log
	raw, sig, _ := forger.Sign(df)
	a.mem.Purge(d)
	a.mem.Put(ctx, d, fixture.Gzip(raw), map[string]string{"signature": sig})
	r := a.verify(Options{})
	// One root cause: the forged digest; the log it hides is counted on it.
	errs := errorsOf(r)
	if len(errs) != 1 || errs[0] != UnknownKey+" "+d || findingOf(r, UnknownKey).Count != 3 {
		t.Fatalf("got %v, %+v", errs, findingOf(r, UnknownKey))
	}
}

func TestShadowingVersion(t *testing.T) {
	a := newArchive(t, "Members")
	victim := a.chains[acctA+"/us-east-1"].Logs[7]
	a.mem.Put(ctx, victim, fixture.Gzip([]byte(`{"Records":[]}`)), nil) // a newer version over the replica
	r := a.verify(Options{})
	errs := errorsOf(r)
	if len(errs) != 1 || errs[0] != ShadowingVersion+" "+victim {
		t.Fatalf("got %v", errs)
	}
	for _, c := range r.Chains {
		if c.Account == acctA && c.Region == "us-east-1" && c.LogsProven != 18 {
			t.Fatalf("the intact replica was not counted valid: %+v", c)
		}
	}
	// A delete marker does not hide a log either.
	a.mem.Delete(a.chains[acctB+"/us-east-1"].Logs[0])
	if errs := errorsOf(a.verify(Options{})); len(errs) != 2 || !strings.HasPrefix(errs[1], DeleteMarker) {
		t.Fatalf("got %v", errs)
	}
}

func TestChainRestartAfterLoggingStopped(t *testing.T) {
	k, _ := keys(t)
	mem := store.NewMemory()
	b := fixture.Builder{Key: k, W: mem}
	c := fixture.Chain{Account: acctA, Region: "us-east-1", Trail: "Members", Bucket: bucket + acctA, Start: start, Digests: 3, LogsPerDigest: 2}
	if _, err := b.Write(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Start = start.Add(10 * time.Hour) // logging was stopped for 7 hours
	if _, err := b.Write(ctx, c); err != nil {
		t.Fatal(err)
	}
	r, err := Run(ctx, mem, Options{Keys: StaticKeys([]string{"us-east-1"}, b.PublicKeyDER())})
	if err != nil {
		t.Fatal(err)
	}
	starts := 0
	for _, f := range r.Findings {
		if f.Code == ChainStart {
			starts++
		}
	}
	if errs := errorsOf(r); len(errs) != 0 || starts != 2 || r.Chains[0].DigestsProven != 6 {
		t.Fatalf("errors %v, %d chain starts, %+v", errs, starts, r.Chains[0])
	}
}

func TestBackfillDigest(t *testing.T) {
	a := newArchive(t, "Members")
	// Late log files get their own chain of backfill digests.
	w, err := a.b.Write(ctx, fixture.Chain{Account: acctA, Region: "us-east-1", HomeRegion: "us-east-1", Trail: "Members", Bucket: bucket + acctA,
		Start: start.Add(90 * time.Minute), Digests: 1, LogsPerDigest: 2, Backfill: true})
	if err != nil {
		t.Fatal(err)
	}
	r := a.verify(Options{})
	if errs := errorsOf(r); len(errs) != 0 {
		t.Fatalf("got %v", errs)
	}
	found := false
	for _, c := range r.Chains {
		found = found || (c.Backfill && c.LogsProven == 2 && c.DigestsProven == 1)
	}
	if !found || !strings.HasSuffix(w.Digests[0], "_backfill.json.gz") {
		t.Fatalf("backfill chain not verified: %+v", r.Chains)
	}
}

func TestTrailNameWithDotsUnderscoresDashes(t *testing.T) {
	a := newArchive(t, "a.b_c-d")
	r := a.verify(Options{})
	if errs := errorsOf(r); len(errs) != 0 || r.Chains[0].Trail != "a.b_c-d" {
		t.Fatalf("%v %+v", errs, r.Chains[0])
	}
}

func TestDigestNamingAnotherBucket(t *testing.T) {
	a := newArchive(t, "Members")
	r := a.verify(Options{Registry: map[string]string{acctA: "some-other-bucket", acctB: bucket + acctB}})
	n := 0
	for _, f := range r.Findings {
		if f.Code == WrongBucket && f.Account == acctA {
			n++
		}
	}
	if n == 0 {
		t.Fatal("digests of an unregistered bucket were accepted")
	}
}

func TestLocalCopyWithoutMetadata(t *testing.T) {
	a := newArchive(t, "Members")
	dir := store.Dir{Root: t.TempDir()}
	a.mem.Versions(ctx, "", func(v store.Version) error {
		dir.Put(ctx, v.Key, a.read(v.Key), nil)
		return nil
	})
	k, _ := keys(t)
	r, err := Run(ctx, dir, Options{Keys: StaticKeys([]string{"us-east-1", "eu-west-1"}, fixture.Builder{Key: k}.PublicKeyDER())})
	if err != nil {
		t.Fatal(err)
	}
	warnings := 0
	for _, f := range r.Findings {
		if f.Code == UnsignedTail {
			warnings++
		}
	}
	if errs := errorsOf(r); len(errs) != 0 || warnings != 4 || len(r.Notes) == 0 {
		t.Fatalf("errors %v, %d newest-digest warnings, notes %v", errs, warnings, r.Notes)
	}
}

func TestSampleAndRange(t *testing.T) {
	a := newArchive(t, "Members")
	r := a.verify(Options{Sample: 3})
	skipped, valid := 0, 0
	for _, c := range r.Chains {
		skipped += c.LogsSkipped
		valid += c.LogsProven
	}
	if skipped == 0 || valid == 0 || skipped+valid != 72 {
		t.Fatalf("sample 1/3: %d skipped, %d valid", skipped, valid)
	}
	r = a.verify(Options{Since: start.Add(3 * time.Hour), Accounts: []string{acctB}, Regions: []string{"eu-west-1"}})
	if len(r.Chains) != 1 || r.Chains[0].Digests != 4 || len(errorsOf(r)) != 0 {
		t.Fatalf("range: %+v %v", r.Chains, errorsOf(r))
	}
}
