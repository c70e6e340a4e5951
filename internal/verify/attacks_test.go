package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// The cases of issue 25 (and the two false alarms of issue 23): each once
// ended in "valid", took the verifier down, or named the wrong object. Each
// asserts the verdict, the finding's kind and its key.

func kindsOf(r *Report) map[string]*Finding {
	out := map[string]*Finding{}
	for _, f := range r.Findings {
		out[f.Code+" "+f.Key] = f
	}
	return out
}

// An Insights file no digest lists proves nothing: it is unproven, in a
// proven hour and in an account folder that holds nothing else.
func TestInsightsFileNobodySigned(t *testing.T) {
	a := newArchive(t, "Members")
	fake := []byte(`{"Records":[{"eventType":"AwsCloudTrailInsight","eventName":"CreateAccessKey","insightDetails":{"state":"Start"}}]}`)
	inHour := strings.Replace(ct.LogKey("", acctA, "us-east-1", start.Add(90*time.Minute), "INSIGHTinsight00"), "_CloudTrail_", "_CloudTrail-Insight_", 1)
	inHour = strings.Replace(inHour, "/CloudTrail/", "/CloudTrail-Insight/", 1)
	a.mem.Put(ctx, inHour, fixture.Gzip(fake), nil)
	r := a.verify(Options{})
	if r.Valid() || !has(failing(r), InsightsNotCovered+" "+inHour) {
		t.Fatalf("an unsigned Insights file in a proven hour: %v", failing(r))
	}

	b := newArchive(t, "Members")
	const stranger = "333333333333"
	alone := strings.Replace(strings.Replace(ct.LogKey("", stranger, "us-east-1", start.Add(30*time.Minute), "INSIGHTinsight01"),
		"_CloudTrail_", "_CloudTrail-Insight_", 1), "/CloudTrail/", "/CloudTrail-Insight/", 1)
	b.mem.Put(ctx, alone, fixture.Gzip(fake), nil)
	r = b.verify(Options{})
	if r.Valid() || !has(failing(r), InsightsNotCovered+" "+alone) {
		t.Fatalf("an account folder holding only an Insights file: %v", failing(r))
	}
}

// --sample proves a sample and says so: never "valid" for what it did not
// read, and a sampled run leaves the state where it was.
func TestSampleIsNeverValid(t *testing.T) {
	a := newArchive(t, "Members")
	victim := a.chains[acctA+"/us-east-1"].Logs[4]
	altered := store.NewMemory()
	a.rewriteLog(altered, victim)
	body, _ := readAll(altered, victim)
	a.mem.Purge(victim)
	a.mem.Put(ctx, victim, body, nil) // the replica itself altered
	st := &State{Location: a.mem.String()}
	r := a.verify(Options{Sample: 1000, State: st})
	tot := r.Totals()
	if r.Valid() || tot.LogsSkipped == 0 {
		t.Fatalf("a sample of 1 in 1000 was called valid: skipped %d, %v", tot.LogsSkipped, failing(r))
	}
	if !r.Sampled() || r.Problems() != 0 && !has(failing(r), AlteredLog+" "+victim) {
		t.Fatalf("sampled verdict: %v", failing(r))
	}
	if len(r.State.Chains) != 0 || len(r.State.Folders) != 0 {
		t.Fatalf("a sampled run advanced the state: %+v", r.State)
	}
	if full := a.verify(Options{}); full.Valid() || !has(failing(full), AlteredLog+" "+victim) {
		t.Fatalf("full run after the sample: %v", failing(full))
	}
}

// sixtyHours is one account's chain of 60 hourly digests from start, a log file each.
func sixtyHours(t *testing.T) (*archive, *fixture.Written) {
	k, _ := keys(t)
	a := &archive{t: t, mem: store.NewMemory(), chains: map[string]*fixture.Written{}}
	a.b = fixture.Builder{Key: k, W: a.mem}
	w, err := a.b.Write(ctx, fixture.Chain{Account: acctA, Region: "us-east-1", HomeRegion: "us-east-1", Trail: "Members", Bucket: bucket + acctA,
		Start: start, Digests: 60, LogsPerDigest: 1})
	if err != nil {
		t.Fatal(err)
	}
	a.chains[acctA+"/us-east-1"] = w
	return a, w
}

// threeDays is one account's chain over three days (so that an incremental
// run re-attests two of them by listing), verified once with a state.
func threeDays(t *testing.T) (*archive, *fixture.Written, *State) {
	a, w := sixtyHours(t)
	first := a.verify(Options{State: &State{Location: a.mem.String()}, Registry: map[string]string{acctA: bucket + acctA}})
	if !first.Valid() || first.State.Folders[acctA+"/us-east-1"] == nil {
		t.Fatalf("first run: %v, state %+v", failing(first), first.State)
	}
	return a, w, first.State
}

// After a --state run, what is slipped into an already proven day is found by
// the next --state run: the listing of that day changed, so the folder is
// verified in full again. A file at the region level is found by --since too.
func TestIncrementalRunsSeeOldDays(t *testing.T) {
	a, w, st := threeDays(t)
	if cut := st.Folders[acctA+"/us-east-1"].Cutoff; !cut.Equal(start.AddDate(0, 0, 2)) {
		t.Fatalf("cutoff %s", cut)
	}
	day := "2025/09/10/"
	logged := ct.LogKey("", acctA, "us-east-1", start.Add(5*time.Hour+10*time.Minute), "SLIPPEDslipped00")
	odd := ct.LogFolder("", acctA, "us-east-1") + day + "notes.txt"
	insight := strings.Replace(strings.Replace(ct.LogKey("", acctA, "us-east-1", start.Add(6*time.Hour+10*time.Minute), "INSIGHTinsight02"),
		"_CloudTrail_", "_CloudTrail-Insight_", 1), "/CloudTrail/", "/CloudTrail-Insight/", 1)
	regionLevel := ct.LogFolder("", acctA, "us-east-1") + "evil.json.gz"
	for _, key := range []string{logged, odd, insight, regionLevel} {
		a.mem.Put(ctx, key, fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	}
	only := map[string]string{acctA: bucket + acctA}
	r := a.verify(Options{State: st, Registry: only})
	got := failing(r)
	for _, want := range []string{UnreferencedLog + " " + logged, UnexpectedObject + " " + odd, InsightsNotCovered + " " + insight, UnexpectedObject + " " + regionLevel} {
		if !has(got, want) {
			t.Errorf("incremental run missed %s: got %v", want, got)
		}
	}
	if r.Valid() || kindsOf(r)[ChangedSinceProven+" AWSLogs/"+acctA+"/"] == nil {
		t.Fatalf("no changed-since-proven note: %v", r.Findings)
	}
	if r.State.Folders[acctA+"/us-east-1"] != nil {
		t.Fatal("a folder with problems kept a state that vouches for its old days")
	}
	// The state never moves past a problem: the next run reports it again.
	if again := a.verify(Options{State: r.State, Registry: only}); !has(failing(again), UnreferencedLog+" "+logged) {
		t.Fatalf("second incremental run: %v", failing(again))
	}
	// A --since run lists the region level, whatever the range.
	since := a.verify(Options{Since: start.Add(55 * time.Hour), Registry: only})
	if !has(failing(since), UnexpectedObject+" "+regionLevel) {
		t.Fatalf("--since missed the region-level file: %v", failing(since))
	}
	_ = w
}

// A new version or a delete marker on a proven old object changes the
// listing too, without a single read of the object.
func TestIncrementalRunSeesANewVersionOfAnOldLog(t *testing.T) {
	a, w, st := threeDays(t)
	victim := w.Logs[3]
	a.mem.Put(ctx, a.chains[acctA+"/us-east-1"].Logs[3], a.read(victim), nil) // the same bytes again
	marked := w.Logs[5]
	a.mem.Delete(marked)
	r := a.verify(Options{State: st, Registry: map[string]string{acctA: bucket + acctA}})
	if got := failing(r); r.Valid() || !has(got, ShadowingVersion+" "+victim) || !has(got, DeleteMarker+" "+marked) {
		t.Fatalf("got %v", got)
	}
}

// A forged tail on a local copy: the newest digests and their logs deleted,
// and the last remaining (unsigned) digest's end set to now. The flag that
// accepts an unsigned tail does not accept this one.
func TestForgedTailOnALocalCopy(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctA+"/us-east-1"]
	dir := a.localCopy()
	for _, d := range w.Digests[4:] {
		removeFile(dir, d)
	}
	for _, l := range w.Logs[3*3:] {
		removeFile(dir, l)
	}
	last := w.Digests[3]
	df, _ := ct.ReadDigest(bytes.NewReader(a.read(last)))
	now := time.Now().UTC().Truncate(time.Second)
	df.EndTime = now.Format(time.RFC3339)
	raw, _ := jsonOf(df)
	dir.Put(ctx, last, fixture.Gzip(raw), nil)
	r := a.run(dir, Options{AcceptUnsignedTail: true, Until: now, CheckTail: true})
	if got := failing(r); r.Valid() || !has(got, TailNotAccepted+" "+last) {
		t.Fatalf("got %v", got)
	}
	// The honest tail of the same copy is accepted, and the report says so.
	honest := a.run(a.localCopy(), Options{AcceptUnsignedTail: true})
	if !honest.Valid() || len(honest.Accepted()) != 4 {
		t.Fatalf("honest tails: %v, accepted %v", failing(honest), honest.Accepted())
	}
}

// A key proves only what it signed while it was valid.
func TestKeyOutsideItsValidity(t *testing.T) {
	a := newArchive(t, "Members")
	k, _ := keys(t)
	der := fixture.Builder{Key: k}.PublicKeyDER()
	var list []PublicKey
	for _, r := range []string{"us-east-1", "eu-west-1"} {
		list = append(list, PublicKey{Region: r, Fingerprint: fixture.Builder{Key: k}.Fingerprint(), Value: base64.StdEncoding.EncodeToString(der),
			ValidFrom: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), ValidTo: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)})
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	data, _ := json.Marshal(list)
	os.WriteFile(path, data, 0o600)
	ks, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	r := a.verify(Options{Keys: ks})
	newest := a.chains[acctA+"/us-east-1"].Digests[5]
	if got := failing(r); r.Valid() || !has(got, KeyNotValid+" "+newest) {
		t.Fatalf("a key expired in 2024 proved digests of 2025: %v", got)
	}
}

// CloudTrail rotates keys: a verification asks for the range its digests
// need and finds the key of each, however many there are.
func TestRotatedKeysAreFetchedForTheirRange(t *testing.T) {
	k1, k2 := keys(t)
	b1, b2 := fixture.Builder{Key: k1}, fixture.Builder{Key: k2}
	rotation := start.Add(3 * time.Hour)
	published := []PublicKey{
		{Region: "us-east-1", Fingerprint: b1.Fingerprint(), Value: base64.StdEncoding.EncodeToString(b1.PublicKeyDER()), ValidFrom: start.Add(-24 * time.Hour), ValidTo: rotation},
		{Region: "us-east-1", Fingerprint: b2.Fingerprint(), Value: base64.StdEncoding.EncodeToString(b2.PublicKeyDER()), ValidFrom: rotation, ValidTo: rotation.AddDate(0, 1, 0)},
	}
	var asked [][2]time.Time
	ks := newKeySet()
	ks.now = func() time.Time { return start.AddDate(0, 2, 0) }
	ks.fetch = func(ctx context.Context, region string, from, to time.Time) ([]PublicKey, error) {
		asked = append(asked, [2]time.Time{from, to})
		var out []PublicKey
		for _, k := range published { // as ListPublicKeys: the keys that signed in the range
			if k.ValidFrom.Before(to) && k.ValidTo.After(from) {
				out = append(out, k)
			}
		}
		return out, nil
	}
	mem := store.NewMemory()
	first, err := fixture.Builder{Key: k1, W: mem}.Write(ctx, fixture.Chain{Account: acctA, Region: "us-east-1", Trail: "Members", Bucket: bucket + acctA, Start: start, Digests: 3, LogsPerDigest: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (fixture.Builder{Key: k2, W: mem}).Write(ctx, fixture.Chain{Account: acctA, Region: "us-east-1", Trail: "Members", Bucket: bucket + acctA, Digests: 3, LogsPerDigest: 1, Continue: first}); err != nil {
		t.Fatal(err)
	}
	r, err := Run(ctx, mem, Options{Keys: ks})
	if err != nil || !r.Valid() {
		t.Fatalf("%v %v", err, failing(r))
	}
	if len(asked) == 0 || len(asked) > 2 {
		t.Fatalf("ListPublicKeys asked %d times: %v", len(asked), asked)
	}
	for _, rng := range asked {
		if rng[0].IsZero() || rng[0].After(start) {
			t.Fatalf("a call without the digests' start time returns only the current key: %v", asked)
		}
	}
}

// Hostile objects cost a bounded effort: a FIFO is never opened, a digest
// larger than any CloudTrail writes is refused unread, a gzip bomb stops at
// its limit.
func TestHostileObjectsAreBounded(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctA+"/us-east-1"]
	dir := a.localCopy()
	fifo := w.Logs[2]
	removeFile(dir, fifo)
	if err := syscall.Mkfifo(filepath.Join(dir.Root, fifo), 0o644); err != nil {
		t.Skipf("no FIFOs: %v", err)
	}
	r := a.run(dir, Options{AcceptUnsignedTail: true})
	if got := failing(r); r.Valid() || !has(got, UnexpectedObject+" "+fifo) {
		t.Fatalf("FIFO: %v", got)
	}

	b := newArchive(t, "Members")
	bw := b.chains[acctB+"/us-east-1"]
	bomb := gzipBomb(2 * ct.MaxDigestSize >> 20) // inflates past any digest
	b.mem.Put(ctx, bw.Digests[1], bomb, map[string]string{"signature": "00"})
	huge := make([]byte, ct.MaxDigestSize+1)
	rand.Read(huge)
	b.mem.Put(ctx, bw.Digests[2], huge, map[string]string{"signature": "00"})
	b.mem.Put(ctx, bw.Logs[9], gzipBomb(32), nil) // 32 MiB from 32 KB: past its limit of 3 MiB
	r = b.verify(Options{})
	got := failing(r)
	for _, want := range []string{ShadowingVersion + " " + bw.Digests[1], ShadowingVersion + " " + bw.Digests[2], ShadowingVersion + " " + bw.Logs[9]} {
		if !has(got, want) {
			t.Errorf("missing %s: %v", want, got)
		}
	}
	for _, f := range r.Findings {
		if f.Key == bw.Digests[2] && !strings.Contains(f.Message, "not read") {
			t.Errorf("the oversized digest was read: %s", f.Message)
		}
	}
}

// gzipBomb is a gzip file of n MiB of zeros: n members of one MiB each, which
// a reader inflates one after the other (cheap to make, however large).
func gzipBomb(n int) []byte {
	return bytes.Repeat(fixture.Gzip(make([]byte, 1<<20)), n)
}

// Findings name the right object: a later version replaying a digest's bytes
// and metadata is the one written over, not the replica; so is a log
// re-uploaded byte for byte.
func TestReplayedVersionsAreTheShadows(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctA+"/us-east-1"]
	d := w.Digests[3]
	_, meta, _ := a.mem.Open(ctx, d, "")
	a.mem.Put(ctx, d, a.read(d), meta)
	l := w.Logs[7]
	a.mem.Put(ctx, l, a.read(l), nil)
	var newestOf = map[string]string{}
	a.mem.Versions(ctx, "", func(v store.Version) error {
		if v.Latest {
			newestOf[v.Key] = v.VersionID
		}
		return nil
	})
	r := a.verify(Options{})
	var shadows []*Finding
	for _, f := range r.Findings {
		if f.Failing() {
			shadows = append(shadows, f)
		}
	}
	if len(shadows) != 2 {
		t.Fatalf("got %v", failing(r))
	}
	for _, f := range shadows {
		if f.Code != ShadowingVersion || f.VersionID != newestOf[f.Key] {
			t.Errorf("%s on %s version %s; the replayed version is %s", f.Code, f.Key, f.VersionID, newestOf[f.Key])
		}
	}
}

// With two trails in one region, a log of the other trail's bad hour is
// counted on that hour's finding, not called inserted.
func TestTwoTrailsInOneRegion(t *testing.T) {
	k, _ := keys(t)
	mem := store.NewMemory()
	b := fixture.Builder{Key: k, W: mem}
	var ws []*fixture.Written
	for i, trail := range []string{"Audit", "Members"} {
		w, err := b.Write(ctx, fixture.Chain{Account: acctA, Region: "us-east-1", Trail: trail, Bucket: bucket + acctA, Start: start.Add(time.Duration(i) * 7 * time.Minute),
			Digests: 6, LogsPerDigest: 3})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	keysOf := StaticKeys([]string{"us-east-1"}, b.PublicKeyDER())
	mem.Purge(ws[1].Digests[2])                                                        // a deleted hour of Members
	mem.Put(ctx, ws[1].Digests[4], fixture.Gzip([]byte(`{"awsAccountId":`))[:20], nil) // and an unreadable one
	r, err := Run(ctx, mem, Options{Keys: keysOf})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		if f.Code == UnreferencedLog {
			t.Errorf("a log of a bad hour called inserted: %s", f.Key)
		}
	}
	got := kindsOf(r)
	if f := got[MissingDigest+" "+ws[1].Digests[2]]; f == nil || f.Count != 3 {
		t.Fatalf("missing digest: %+v (%v)", f, failing(r))
	}
}

// On a local copy, a re-signed digest that records a wrong signature for its
// intact predecessor is the break; the predecessor is unproven, not altered.
func TestLocalResignedBreakIsOnTheDigestThatRecordsIt(t *testing.T) {
	a := newArchive(t, "Members")
	w := a.chains[acctB+"/us-east-1"]
	dir := a.localCopy()
	n, succ := w.Digests[4], w.Digests[5]
	df, _ := ct.ReadDigest(bytes.NewReader(a.read(n)))
	wrong := strings.Repeat("cd", 256)
	df.PreviousSignature = &wrong
	raw, sig, _ := a.b.Sign(df)
	dir.Put(ctx, n, fixture.Gzip(raw), nil)
	sdf, _ := ct.ReadDigest(bytes.NewReader(a.read(succ)))
	h := sha(raw)
	sdf.PreviousHash, sdf.PreviousSignature = &h, &sig
	sraw, _, _ := a.b.Sign(sdf)
	dir.Put(ctx, succ, fixture.Gzip(sraw), nil)
	r := a.run(dir, Options{AcceptUnsignedTail: true})
	got := failing(r)
	if !has(got, ChainBreak+" "+n) || has(got, AlteredDigest+" "+w.Digests[3]) {
		t.Fatalf("got %v", got)
	}
}

// A log delivered before log file validation started, and one delivered
// seconds after the newest digest, are no alarm: the archive is valid.
func TestNoFalseAlarmOnANewArchive(t *testing.T) {
	a := newArchive(t, "Members")
	// Validation of a third account started 30 seconds into a minute; a log
	// of that minute may have come before it.
	const late = "333333333333"
	if _, err := a.b.Write(ctx, fixture.Chain{Account: late, Region: "eu-west-1", Trail: "Members", Bucket: bucket + late, Start: start.Add(30 * time.Second),
		Digests: 2, LogsPerDigest: 1}); err != nil {
		t.Fatal(err)
	}
	before := ct.LogKey("", acctA, "us-east-1", start.Add(-10*time.Minute), "BEFOREvalidation")
	straddling := ct.LogKey("", late, "eu-west-1", start.Add(10*time.Second), "STRADDLINGstart0")
	after := ct.LogKey("", acctB, "us-east-1", start.Add(6*time.Hour+20*time.Second), "AFTERnewest00000")
	for _, key := range []string{before, straddling, after} {
		a.mem.Put(ctx, key, fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	}
	r := a.verify(Options{Registry: map[string]string{acctA: bucket + acctA, acctB: bucket + acctB, late: bucket + late}})
	if !r.Valid() {
		t.Fatalf("false alarm: %v", failing(r))
	}
	got := kindsOf(r)
	if f := got[UncoveredLogs+" "+before]; f == nil || f.Severity != Info || !strings.Contains(f.Message, "validation started at") {
		t.Fatalf("before validation: %+v", f)
	}
	if f := got[UncoveredLogs+" "+straddling]; f == nil || f.Severity != Info {
		t.Fatalf("straddling the start: %+v", f)
	}
	if f := got[PendingLogs+" "+after]; f == nil {
		t.Fatalf("after the newest digest: %v", r.Findings)
	}
}

// A log in the minute of a boundary between two proven digests was inserted:
// one of the two would have listed it.
func TestInsertedAtABoundary(t *testing.T) {
	a := newArchive(t, "Members")
	key := ct.LogKey("", acctA, "us-east-1", start.Add(2*time.Hour), "BOUNDARYboundary")
	a.mem.Put(ctx, key, fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	if got := failing(a.verify(Options{})); len(got) != 1 || got[0] != UnreferencedLog+" "+key {
		t.Fatalf("got %v", got)
	}
}

// A --state run near its data fingerprints the cutoff's day by the hour: the
// next run reads only from the proven tail's hour on, and what is slipped
// into an earlier hour of that day is still seen (and a file named for
// another day is no CloudTrail file there).
func TestIncrementalRunsByTheHour(t *testing.T) {
	a, _ := sixtyHours(t)
	only := map[string]string{acctA: bucket + acctA}
	until := start.Add(61 * time.Hour)
	first := a.verify(Options{State: &State{Location: a.mem.String()}, Registry: only, Until: until})
	st := first.State.Folders[acctA+"/us-east-1"]
	if !first.Valid() || st == nil || !st.Cutoff.Equal(start.Add(60*time.Hour)) || len(st.Hours) != 12 {
		t.Fatalf("first run: %v, folder state %+v", failing(first), st)
	}
	again := a.verify(Options{State: first.State, Registry: only, Until: until})
	if !again.Valid() || again.ObjectsRead > 6 {
		t.Fatalf("a run with nothing new: %v, %d objects read (the tail's digest and the hour before the cutoff's files)", failing(again), again.ObjectsRead)
	}

	slipped := ct.LogKey("", acctA, "us-east-1", start.Add(50*time.Hour+10*time.Minute), "SLIPPEDslipped00")
	otherDay := strings.Replace(ct.LogKey("", acctA, "us-east-1", start.Add(3*time.Hour+10*time.Minute), "ELSEWHEREelse000"), "/2025/09/10/", "/2025/09/12/", 1)
	for _, key := range []string{slipped, otherDay} {
		a.mem.Put(ctx, key, fixture.Gzip([]byte(`{"Records":[]}`)), nil)
	}
	r := a.verify(Options{State: again.State, Registry: only, Until: until})
	if got := failing(r); r.Valid() || !has(got, UnreferencedLog+" "+slipped) || !has(got, UnexpectedObject+" "+otherDay) {
		t.Fatalf("the slipped logs: %v", got)
	}
	changed := kindsOf(r)[ChangedSinceProven+" AWSLogs/"+acctA+"/"]
	if changed == nil || !strings.Contains(changed.Message, "hour 2025-09-12T02") {
		t.Fatalf("changed-since-proven: %+v", changed)
	}
}
