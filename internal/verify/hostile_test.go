package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// The cases of issue 11: each was once reported "all valid" or on the wrong
// file. Each test asserts the verdict (Problems, as the exit code is derived
// from it), the finding's kind and its key.

// localCopy copies the archive's latest objects to a directory, as aws s3 sync does.
func (a *archive) localCopy() store.Dir {
	a.t.Helper()
	dir := store.Dir{Root: a.t.TempDir()}
	a.mem.Versions(ctx, "", func(v store.Version) error {
		if v.Latest && !v.DeleteMarker {
			dir.Put(ctx, v.Key, a.read(v.Key), nil)
		}
		return nil
	})
	return dir
}

func (a *archive) run(s store.Store, opts Options) *Report {
	a.t.Helper()
	k, _ := keys(a.t)
	if opts.Keys == nil {
		opts.Keys = StaticKeys([]string{"us-east-1", "eu-west-1"}, fixture.Builder{Key: k}.PublicKeyDER())
	}
	r, err := Run(ctx, s, opts)
	if err != nil {
		a.t.Fatal(err)
	}
	return r
}

// failing lists the findings that fail the run as "kind key".
func failing(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Failing() {
			out = append(out, f.Code+" "+f.Key)
		}
	}
	return out
}

func has(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}

// rewriteLog replaces a log with an altered body and returns the new hash.
func (a *archive) rewriteLog(s store.Writer, key string) string {
	body := bytes.Replace(testenv.Gunzip(a.t, a.read(key)), []byte(`"readOnly":true`), []byte(`"readOnly":false`), 1)
	s.Put(ctx, key, fixture.Gzip(body), nil)
	return sha(body)
}

// rewriteDigest rewrites a digest so that it lists hash for log, unsigned.
func (a *archive) rewriteDigest(s store.Writer, key, log, hash string, meta map[string]string) {
	df, err := ct.ReadDigest(bytes.NewReader(a.read(key)))
	if err != nil {
		a.t.Fatal(err)
	}
	for i := range df.LogFiles {
		if df.LogFiles[i].Object == log {
			df.LogFiles[i].HashValue = hash
		}
	}
	raw, _, _ := fixture.Builder{Key: testKey}.Sign(df)
	s.Put(ctx, key, fixture.Gzip(raw), meta)
}

func TestLocalDigestBeforeAGapRewrittenWithItsLog(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctA+"/us-east-1"]
	dir := a.localCopy()
	// The successor of digest 2 is gone; digest 2 and a log it lists are rewritten to agree.
	if err := removeFile(dir, w.Digests[3]); err != nil {
		t.Fatal(err)
	}
	victim := w.Logs[2*3+1]
	hash := a.rewriteLog(dir, victim)
	a.rewriteDigest(dir, w.Digests[2], victim, hash, nil)
	r := a.run(dir, Options{})
	got := failing(r)
	if r.Problems() == 0 || !has(got, UnprovenDigest+" "+w.Digests[2]) || !has(got, MissingDigest+" "+w.Digests[3]) {
		t.Fatalf("got %v", got)
	}
	for _, c := range r.Chains {
		if c.Account == acctA && c.Region == "us-east-1" && (c.LogsProven != 9 || c.DigestsProven != 3) {
			t.Fatalf("the rewritten digest's logs were counted proven: %+v", c)
		}
	}
}

func TestLocalDigestBeforeAnUnreadableSuccessor(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctA+"/us-east-1"]
	dir := a.localCopy()
	dir.Put(ctx, w.Digests[3], a.read(w.Digests[3])[:40], nil) // truncated gzip
	r := a.run(dir, Options{})
	got := failing(r)
	// One root cause: the truncated digest. Its predecessor cannot be proven,
	// and its successor's link to it is not a chain break.
	if !has(got, Unreadable+" "+w.Digests[3]) || !has(got, UnprovenDigest+" "+w.Digests[2]) || has(got, ChainBreak+" "+w.Digests[4]) {
		t.Fatalf("got %v", got)
	}
}

func TestS3NewestDigestWithoutSignatureMetadata(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctB+"/eu-west-1"]
	newest := w.Digests[5]
	victim := w.Logs[5*3]
	a.mem.Purge(victim)
	a.mem.Put(ctx, victim, fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	rewritten := store.NewMemory()
	a.rewriteDigest(rewritten, newest, victim, sha([]byte(`{"Records":[]}`)), nil)
	data, _ := readAll(rewritten, newest)
	a.mem.Purge(newest)
	a.mem.Put(ctx, newest, data, nil)
	r := a.verify(Options{})
	if got := failing(r); len(got) != 1 || got[0] != MissingSignature+" "+newest {
		t.Fatalf("got %v", got)
	}
}

func TestLocalNewestDigestResignedWithAnUnknownKey(t *testing.T) {
	a := newArchive(t, "Members")
	_, other := keys(t)
	w := a.chains[acctA+"/eu-west-1"]
	dir := a.localCopy()
	newest := w.Digests[5]
	df, _ := ct.ReadDigest(bytes.NewReader(a.read(newest)))
	df.Fingerprint = fixture.Builder{Key: other}.Fingerprint()
	raw, _, _ := fixture.Builder{Key: other}.Sign(df)
	dir.Put(ctx, newest, fixture.Gzip(raw), nil)
	r := a.run(dir, Options{})
	got := failing(r)
	if r.Problems() == 0 || !has(got, UnsignedTail+" "+newest) {
		t.Fatalf("got %v", got)
	}
	// The flag accepts only a tail that names a published key: this one is bad.
	r = a.run(dir, Options{AcceptUnsignedTail: true})
	if got := failing(r); r.Valid() || len(got) != 1 || got[0] != TailNotAccepted+" "+newest {
		t.Fatalf("with --accept-unsigned-tail: %v", got)
	}
}

func TestObjectsThatAreNotCloudTrailFiles(t *testing.T) {
	a := newArchive(t, "Members")
	day := "2025/09/10/"
	planted := []string{
		ct.LogFolder("", acctA, "us-east-1") + day + acctA + "_CloudTrail_us-east-1_20250910T0130Z_evil.json.gz",
		ct.LogFolder("", acctA, "us-east-1") + day + "injected-events.json.gz",
		"AWSLogs/" + acctA + "/notes.txt",
		ct.DigestFolder("", acctB, "eu-west-1") + day + "stray.json.gz",
	}
	for _, k := range planted {
		a.mem.Put(ctx, k, fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	}
	// Logs in a region that has no digests at all.
	for i := range 3 {
		a.mem.Put(ctx, ct.LogKey("", acctB, "sa-east-1", start.Add(time.Duration(i)*time.Hour), "NODIGESTSnodiges"), fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	}
	r := a.verify(Options{})
	got := failing(r)
	for _, k := range planted {
		if !has(got, UnexpectedObject+" "+k) {
			t.Errorf("%s not reported: %v", k, got)
		}
	}
	f := findingOf(r, RegionWithoutDigests)
	if f == nil || f.Region != "sa-east-1" || f.Count != 3 || len(got) != len(planted)+1 {
		t.Fatalf("region without digests: %+v; all: %v", f, got)
	}
}

func TestNothingToVerifyIsNotValid(t *testing.T) {
	a := newArchive(t, "Members")
	deep := a.localCopy()
	logsOnly := store.NewMemory()
	logsOnly.Put(ctx, a.chains[acctA+"/us-east-1"].Logs[0], a.read(a.chains[acctA+"/us-east-1"].Logs[0]), nil)
	cases := []struct {
		name  string
		s     store.Store
		root  string
		fix   string
		count int
	}{
		{"empty bucket", store.NewMemory(), "", "contains AWSLogs/", 0},
		{"empty directory", store.Dir{Root: t.TempDir()}, "", "contains AWSLogs/", 0},
		{"one level too deep", store.Dir{Root: deep.Root + "/AWSLogs"}, "", "one level up", 0},
		{"two levels too deep", store.Dir{Root: deep.Root + "/AWSLogs/" + acctA}, "", "two levels up", 0},
		{"logs but no digests", logsOnly, "", "log file validation", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.run(tc.s, Options{})
			f := findingOf(r, NoDigests)
			if r.Valid() || r.Problems() == 0 || f == nil || !strings.Contains(f.Message, "no CloudTrail digests under") || !strings.Contains(f.Fix, tc.fix) {
				t.Fatalf("valid=%v, finding %+v", r.Valid(), f)
			}
		})
	}
}

func TestNewestDigestsDeleted(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctA+"/us-east-1"]
	for _, d := range w.Digests[3:] {
		a.mem.Purge(d)
	}
	until := start.Add(6*time.Hour + 10*time.Minute) // "now": the last digest ended at 06:00
	r := a.verify(Options{Until: until, CheckTail: true})
	got := failing(r)
	f := findingOf(r, ChainTailMissing)
	if len(got) != 1 || f == nil || f.Key != w.Digests[2] || f.Count != 9 {
		t.Fatalf("got %v, %+v", got, f)
	}
}

func TestWrongPreviousSignatureIsReportedOnTheDigestThatHoldsIt(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctA+"/us-east-1"]
	n := w.Digests[3]
	df, _ := ct.ReadDigest(bytes.NewReader(a.read(n)))
	bogus := strings.Repeat("cd", 256)
	df.PreviousSignature = &bogus
	raw, _ := jsonOf(df)
	_, meta, _ := a.mem.Open(ctx, n, "")
	a.mem.Purge(n)
	a.mem.Put(ctx, n, fixture.Gzip(raw), meta)
	if got := failing(a.verify(Options{})); len(got) != 1 || got[0] != AlteredDigest+" "+n {
		t.Fatalf("on S3: got %v", got)
	}
	// On a local copy the signature of digest 3 comes from digest 4: digest 3
	// is the bad one, and digest 2, whose signature only digest 3 held, is unproven.
	r := a.run(a.localCopy(), Options{})
	got := failing(r)
	if !has(got, AlteredDigest+" "+n) || has(got, AlteredDigest+" "+w.Digests[2]) || has(got, BadSignature+" "+w.Digests[2]) {
		t.Fatalf("on a local copy: got %v", got)
	}
}

func TestTruncatedDigestHasNoKnockOn(t *testing.T) {
	a := newArchive(t, "Members")
	d := a.chains[acctB+"/us-east-1"].Digests[2]
	a.mem.Purge(d)
	a.mem.Put(ctx, d, fixture.Gzip([]byte(`{"awsAccountId":`))[:20], map[string]string{"signature": "00"})
	r := a.verify(Options{})
	if got := failing(r); len(got) != 1 || got[0] != Unreadable+" "+d || findingOf(r, Unreadable).Count != 3 {
		t.Fatalf("got %v", got)
	}
}

func TestEveryFailingFindingHasAFix(t *testing.T) {
	for kind := range map[string]bool{MissingDigest: true, MissingLog: true, MissingBeforeReplication: true, AlteredLog: true, AlteredDigest: true, UnreferencedLog: true,
		BadSignature: true, MissingSignature: true, UnknownKey: true, MovedDigest: true, WrongBucket: true, ShadowingVersion: true,
		DeleteMarker: true, ChainBreak: true, Unreadable: true, UnexpectedObject: true, RegionWithoutDigests: true, ChainTailMissing: true,
		NoDigests: true, UnsignedTail: true, UnprovenDigest: true, UncoveredLogs: true} {
		if fixes[kind] == "" {
			t.Errorf("%s has no fix", kind)
		}
	}
}

func TestIncrementalState(t *testing.T) {
	k, _ := keys(t)
	mem := store.NewMemory()
	b := fixture.Builder{Key: k, W: mem}
	keysOf := StaticKeys([]string{"us-east-1"}, b.PublicKeyDER())
	var chains []*fixture.Written
	for _, acct := range []string{acctA, acctB} {
		w, err := b.Write(ctx, fixture.Chain{Account: acct, Region: "us-east-1", Trail: "Members", Bucket: bucket + acct, Start: start, Digests: 48, LogsPerDigest: 2})
		if err != nil {
			t.Fatal(err)
		}
		chains = append(chains, w)
	}
	full, err := Run(ctx, mem, Options{Keys: keysOf, State: &State{Location: mem.String()}})
	if err != nil || !full.Valid() {
		t.Fatalf("%v %v", err, failing(full))
	}
	// One more hour in each chain.
	for i, acct := range []string{acctA, acctB} {
		if _, err := b.Write(ctx, fixture.Chain{Account: acct, Region: "us-east-1", Trail: "Members", Bucket: bucket + acct, Digests: 1, LogsPerDigest: 2, Continue: chains[i]}); err != nil {
			t.Fatal(err)
		}
	}
	inc, err := Run(ctx, mem, Options{Keys: keysOf, State: full.State})
	if err != nil || !inc.Valid() {
		t.Fatalf("%v %v", err, failing(inc))
	}
	// Per chain, from the day of the proven tail (the listing of the days
	// before it is unchanged): the tail again with its 2 logs, the new
	// digest and its 2 logs.
	if inc.ObjectsRead != 2*(2+4) || full.ObjectsRead != 2*(48+96) {
		t.Fatalf("read %d objects incrementally, %d in full", inc.ObjectsRead, full.ObjectsRead)
	}
	for _, c := range inc.Chains {
		if c.DigestsProven != 2 || c.LogsProven != 4 {
			t.Fatalf("incremental chain %+v", c)
		}
	}
	// A tampered proven tail is still caught.
	tail := inc.State.Chains[acctA+"/us-east-1/Members/us-east-1"].Key
	_, meta, _ := mem.Open(ctx, tail, "")
	data, _ := readAll(mem, tail)
	df, _ := ct.ReadDigest(bytes.NewReader(data))
	df.LogFiles = df.LogFiles[:1]
	raw, _, _ := b.Sign(df)
	mem.Purge(tail)
	mem.Put(ctx, tail, fixture.Gzip(raw), meta)
	again, err := Run(ctx, mem, Options{Keys: keysOf, State: inc.State})
	if err != nil {
		t.Fatal(err)
	}
	if got := failing(again); len(got) != 1 || got[0] != AlteredDigest+" "+tail {
		t.Fatalf("tampered tail: %v", got)
	}
	if again.State.Chains[acctA+"/us-east-1/Members/us-east-1"].Key != tail {
		t.Fatal("the state moved past a problem")
	}
}

func removeFile(d store.Dir, key string) error { return os.Remove(filepath.Join(d.Root, key)) }

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func jsonOf(df *ct.DigestFile) ([]byte, error) { return json.Marshal(df) }

func readAll(s store.Store, key string) ([]byte, error) {
	r, _, err := s.Open(ctx, key, "")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// A state file is outside input: whatever it holds, loading it fails cleanly
// or yields complete entries.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"location":"memory","chains":{"1/r/t/r":{"key":"k","sha256":"` + strings.Repeat("a", 64) + `","signature":"ab","end":"2025-09-10T00:00:00Z"}}}`))
	f.Add([]byte(`{"location":"memory","chains":{"x":null}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "state.json")
		os.WriteFile(path, data, 0o600)
		s, err := LoadState(path, "memory")
		if err != nil {
			return
		}
		for id, tail := range s.Chains {
			if tail == nil || tail.Key == "" || len(tail.Hash) != 64 {
				t.Fatalf("accepted an incomplete entry %s: %+v", id, tail)
			}
		}
	})
}

// A key file without the keys of a home region is an incomplete file, not a
// forged archive: Run fails with ErrNoKeys instead of reporting unknown-key.
func TestKeyFileWithoutTheRegion(t *testing.T) {
	a := newArchive(t, "Members")
	k, _ := keys(t)
	_, err := Run(ctx, a.mem, Options{Keys: StaticKeys([]string{"eu-west-1"}, fixture.Builder{Key: k}.PublicKeyDER())})
	if !errors.Is(err, ErrNoKeys) {
		t.Fatalf("got %v", err)
	}
}
