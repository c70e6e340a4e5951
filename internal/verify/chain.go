package verify

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"sort"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/parallel"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// state of a digest or log file.
type state int

const (
	unproven state = iota
	proven
	bad
)

// member is the genuine version of one digest key in a chain.
type member struct {
	*digestVersion
	chain    *chainRun
	state    state
	proof    string   // the signature that proved it
	finding  *Finding // its one finding, if any (decided before it is added)
	accepted bool     // an unsigned tail that --accept-unsigned-tail accepted
}

func (m *member) start() time.Time {
	if m.file != nil {
		return m.file.Start
	}
	return m.key.Time.Add(-time.Hour)
}

func (m *member) end() time.Time {
	if m.file != nil {
		return m.file.End
	}
	return m.key.Time
}

// linksTo reports whether m names p as its predecessor.
func (m *member) linksTo(p *member) bool {
	return m.file != nil && p != nil && !m.file.ChainStart() && *m.file.PreviousObject == p.key.Raw
}

// chainRun is one chain being checked.
type chainRun struct {
	folder  *folder
	id      chainID
	digests []*digestVersion // every version read, of every key
	summary *Chain
	members []*member // oldest first
	tail    *Tail     // the proven tail an earlier run left, or nil
}

// gap is a missing digest interval; log files in it count against its finding.
type gap struct {
	from, to time.Time
	finding  *Finding
}

type logRef struct {
	hash   string
	member *member
}

// checkChains groups the digests into chains and checks every chain, several
// at once (signature checks use the CPU).
func (v *verifier) checkChains(ctx context.Context, f *folder, digests []*digestVersion) error {
	byChain := map[chainID][]*digestVersion{}
	for _, d := range digests {
		id := chainID{f.account, f.region, d.key.Trail, d.key.HomeRegion, d.key.Backfill}
		byChain[id] = append(byChain[id], d)
	}
	f.referenced = map[string][]logRef{}
	ids := make([]chainID, 0, len(byChain))
	for id := range byChain {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	for _, id := range ids {
		c := &chainRun{folder: f, id: id, digests: byChain[id], summary: &Chain{Account: id.account, Region: id.region, Trail: id.trail, HomeRegion: id.home, Backfill: id.backfill}}
		if v.opts.State != nil {
			c.tail = v.opts.State.Chains[id.String()]
		}
		if c.tail != nil {
			c.summary.ProvenBefore = c.tail.Key
		}
		f.chains = append(f.chains, c)
		v.mu.Lock()
		v.report.Chains = append(v.report.Chains, c.summary)
		v.mu.Unlock()
	}
	err := parallel.For(ctx, runtime.NumCPU(), len(f.chains), func(ctx context.Context, i int) error {
		return v.chain(ctx, f.chains[i])
	})
	if err != nil {
		return err
	}
	// Register the log files each digest lists, for hashing.
	for _, c := range f.chains {
		for _, m := range c.members {
			if m.file == nil {
				continue
			}
			for _, l := range m.file.LogFiles {
				f.referenced[l.Object] = append(f.referenced[l.Object], logRef{hash: l.HashValue, member: m})
			}
		}
	}
	return nil
}

// chain checks one chain: which version of each digest is genuine, which
// digests are proven, unproven or bad, and every link and gap between them.
func (v *verifier) chain(ctx context.Context, c *chainRun) error {
	f := c.folder
	byKey := map[string][]*digestVersion{}
	for _, d := range c.digests {
		byKey[d.key.Raw] = append(byKey[d.key.Raw], d)
	}
	for key, vs := range byKey {
		m, err := v.genuine(ctx, f, c, key, vs)
		if err != nil {
			return err
		}
		if m != nil {
			m.chain = c
			c.members = append(c.members, m)
		}
	}
	sort.Slice(c.members, func(i, j int) bool { return c.members[i].key.Time.Before(c.members[j].key.Time) })
	ms := c.members
	if len(ms) == 0 {
		return nil
	}
	c.summary.Digests = len(ms)
	c.summary.First, c.summary.Last = ms[0].start(), ms[len(ms)-1].end()

	// Newest first: on a local copy a digest's signature is in its successor.
	for i := len(ms) - 1; i >= 0; i-- {
		var succ *member
		if i+1 < len(ms) {
			succ = ms[i+1]
		}
		if err := v.prove(ctx, f, c, ms[i], succ, i == len(ms)-1); err != nil {
			return err
		}
	}
	v.links(f, c)
	if err := v.acceptTail(ctx, c); err != nil {
		return err
	}
	for _, m := range ms {
		switch m.state {
		case proven:
			c.summary.DigestsProven++
		case unproven:
			c.summary.DigestsUnproven++
		}
		if m.finding != nil {
			v.addTo(c, m.finding)
		}
		if m.file != nil {
			if want := v.bucket(f.account, m.file.Bucket); m.state != bad {
				for _, l := range m.file.LogFiles {
					if l.Bucket != want {
						v.addTo(c, v.finding(Error, WrongBucket, m, "lists log file %s in bucket %s; account %s's trail bucket is %s", l.Object, l.Bucket, f.account, want))
						break
					}
				}
			}
		}
	}
	return nil
}

// addTo adds a finding and counts it against the chain when it fails the run.
func (v *verifier) addTo(c *chainRun, f *Finding) {
	v.add(f)
	if f.Failing() {
		v.mu.Lock()
		c.summary.Problems++
		v.mu.Unlock()
	}
}

func (v *verifier) finding(sev Severity, kind string, m *member, format string, a ...any) *Finding {
	return &Finding{Severity: sev, Code: kind, Account: m.folder.account, Region: m.folder.region, Trail: m.chain.id.trail,
		Key: m.key.Raw, VersionID: m.version.VersionID, Message: fmt.Sprintf(format, a...)}
}

// bucket returns the bucket an account's digests must name: the registered
// one, or else the first one seen.
func (v *verifier) bucket(account, seen string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if b, ok := v.buckets[account]; ok {
		return b
	}
	v.buckets[account] = seen
	v.report.Notes = append(v.report.Notes, "account "+account+": no registered trail bucket; every digest must name "+seen+", the bucket of its first digest")
	return seen
}

// genuine picks, among the versions of one digest key, the one CloudTrail wrote
// (its signature verifies; else the oldest, the replica) and reports every
// other version. An unreadable digest stays a member, so that its successor's
// link to it is not taken for a break.
func (v *verifier) genuine(ctx context.Context, f *folder, c *chainRun, key string, vs []*digestVersion) (*member, error) {
	var candidates, unreadable []*digestVersion
	var marker *digestVersion
	for _, d := range vs {
		switch {
		case d.version.DeleteMarker:
			if d.version.Latest {
				marker = d
			}
		case d.file != nil:
			candidates = append(candidates, d)
		case d.err != nil && !errors.Is(d.err, store.ErrNotFound):
			unreadable = append(unreadable, d)
		}
	}
	report := func(d *digestVersion, kind, format string, a ...any) {
		v.addTo(c, &Finding{Severity: Error, Code: kind, Account: f.account, Region: f.region, Trail: c.id.trail, Key: key, VersionID: d.version.VersionID,
			Message: fmt.Sprintf(format, a...)})
	}
	if marker != nil {
		report(marker, DeleteMarker, "a delete marker hides this digest; the digest itself is kept in an older version")
	}
	if len(candidates) == 0 {
		if len(unreadable) == 0 {
			return nil, nil
		}
		d := unreadable[len(unreadable)-1]
		m := &member{digestVersion: d, state: bad, chain: c}
		m.finding = v.finding(Error, Unreadable, m, "not a readable digest: %v", d.err)
		for _, u := range unreadable[:len(unreadable)-1] {
			report(u, ShadowingVersion, "another unreadable version of this digest: %v", u.err)
		}
		return m, nil
	}
	pick := candidates[len(candidates)-1] // versions come newest first: the oldest is the replica
	if len(candidates) > 1 {
		// The oldest version whose signature verifies is the replica: a later
		// one may replay the same bytes and metadata, but it was written over.
		for i := len(candidates) - 1; i >= 0; i-- {
			d := candidates[i]
			if d.metaSig == "" {
				continue
			}
			ok, err := v.signatureOK(ctx, c, d.file, d.metaSig)
			if err != nil {
				return nil, err
			}
			if ok == nil {
				pick = d
				break
			}
		}
		for _, d := range candidates {
			if d != pick {
				report(d, ShadowingVersion, "another version of this digest was written over the replica (version %s is the one CloudTrail signed)", pick.version.VersionID)
			}
		}
	}
	for _, u := range unreadable {
		report(u, ShadowingVersion, "an unreadable version written over the replica: %v", u.err)
	}
	return &member{digestVersion: pick, chain: c}, nil
}

var (
	errBadSignature = errors.New("signature does not verify")
)

// signatureOK checks a signature with the public key of the chain's home
// region that was valid when the digest was signed. The verdict is the first
// result; the error is a failed key lookup.
func (v *verifier) signatureOK(ctx context.Context, c *chainRun, df *ct.DigestFile, sig string) (verdict, lookup error) {
	key, err := v.opts.Keys.PublicKey(ctx, c.id.home, df.Fingerprint, signedAt(c, df))
	if errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeyNotValid) {
		return err, nil
	}
	if err != nil {
		return nil, fmt.Errorf("CloudTrail public keys of %s: %w", c.id.home, err)
	}
	if err := df.VerifySignature(sig, key); err != nil {
		return errBadSignature, nil
	}
	return nil, nil
}

// signedAt is when CloudTrail signed a digest, as far as a key's validity
// window is concerned: at its end. A backfill digest is signed later than its
// period, at a time only its metadata names: its window is not checked.
func signedAt(c *chainRun, df *ct.DigestFile) time.Time {
	if c.id.backfill {
		return time.Time{}
	}
	return df.End
}

// prove decides whether m is proven, unproven or bad. succ is the digest after
// it in the chain, already decided.
func (v *verifier) prove(ctx context.Context, f *folder, c *chainRun, m, succ *member, newest bool) error {
	if m.file == nil {
		return nil // unreadable: bad, reported
	}
	df := m.file
	switch {
	case df.AccountID != f.account:
		m.state, m.finding = bad, v.finding(Error, MovedDigest, m, "names account %s but lies under account %s", df.AccountID, f.account)
		return nil
	case df.Object != m.key.Raw:
		m.state, m.finding = bad, v.finding(Error, MovedDigest, m, "names %s as its location: it was moved or copied from elsewhere", df.Object)
		return nil
	}
	if want := v.bucket(f.account, df.Bucket); df.Bucket != want {
		m.state, m.finding = bad, v.finding(Error, WrongBucket, m, "was written to bucket %s, not account %s's trail bucket %s", df.Bucket, f.account, want)
		return nil
	}
	linked := succ != nil && succ.linksTo(m)
	succProven := linked && succ.state == proven
	check := func(sig string) (error, error) { return v.signatureOK(ctx, c, df, sig) }
	switch {
	case c.tail != nil && c.tail.Key == m.key.Raw:
		if df.RawHash != c.tail.Hash {
			m.state, m.finding = bad, v.finding(Error, AlteredDigest, m, "differs from the digest proven on %s (SHA-256 %s, now %s)", c.tail.Proven.Format(time.RFC3339), c.tail.Hash, df.RawHash)
			return nil
		}
		m.state, m.proof = proven, c.tail.Signature
	case m.metaSig != "":
		res, err := check(m.metaSig)
		if err != nil {
			return err
		}
		switch {
		case res == nil:
			m.state, m.proof = proven, m.metaSig
		case succProven && *succ.file.PreviousHash != df.RawHash:
			m.state, m.finding = bad, v.finding(Error, AlteredDigest, m, "its SHA-256 differs from the one its proven successor %s recorded: the digest was altered", succ.key.Raw)
		case errors.Is(res, ErrUnknownKey):
			m.state, m.finding = bad, v.finding(Error, UnknownKey, m, "signed with a key CloudTrail does not publish for %s (fingerprint %s): re-signed by someone else", c.id.home, df.Fingerprint)
		case errors.Is(res, ErrKeyNotValid):
			m.state, m.finding = bad, v.finding(Error, KeyNotValid, m, "names key %s, which %v: a key proves only what it signed while it was valid", df.Fingerprint, res)
		default:
			m.state, m.finding = bad, v.finding(Error, BadSignature, m, "signature does not verify: the digest, its location or its predecessor's signature was changed")
		}
	case v.s.Versioned():
		// S3 keeps the signature CloudTrail wrote; an object without it was re-uploaded.
		m.state, m.finding = bad, v.finding(Error, MissingSignature, m, "has no x-amz-meta-signature: CloudTrail signs every digest, and replication keeps the metadata")
	case linked:
		res, err := check(*succ.file.PreviousSignature)
		if err != nil {
			return err
		}
		switch {
		case res == nil:
			m.state, m.proof = proven, *succ.file.PreviousSignature
		case succProven && *succ.file.PreviousHash == df.RawHash:
			// The bytes are the ones the successor recorded: what is wrong is
			// the signature the successor recorded for them, not this digest.
			m.finding = v.finding(Unproven, UnprovenDigest, m, "its only signature, recorded in %s, does not verify: that digest recorded a wrong one", succ.key.Raw)
			if succ.finding == nil {
				succ.state, succ.finding = bad, v.finding(Error, ChainBreak, succ, "records a signature for its predecessor %s that does not verify, though it records that digest's hash", m.key.Raw)
			}
		case succProven:
			m.state, m.finding = bad, v.finding(Error, AlteredDigest, m, "does not match the signature its proven successor %s recorded: the digest was altered", succ.key.Raw)
		default:
			m.finding = v.finding(Unproven, UnprovenDigest, m, "its signature is kept only in its successor %s, which is not proven itself", succ.key.Raw)
		}
	case newest:
		m.finding = v.finding(Unproven, UnsignedTail, m, "the newest digest of its chain: its signature is in object metadata, which a local copy does not keep")
		m.accepted = v.opts.AcceptUnsignedTail // checked against its chain in links
	default:
		m.finding = v.finding(Unproven, UnprovenDigest, m, "its signature is kept only in the digest after it, which is not in the archive")
	}
	// The successor's link must match what is proven here; a successor that
	// only its own (unverifiable) content vouches for is bad if it disagrees.
	if m.state == proven && linked && succ.state != bad &&
		(*succ.file.PreviousHash != df.RawHash || *succ.file.PreviousSignature != m.proof) {
		succ.state = bad
		succ.finding = v.finding(Error, ChainBreak, succ, "records a hash or signature for its predecessor %s other than the proven one", m.key.Raw)
	}
	return nil
}

// acceptTail decides whether --accept-unsigned-tail may accept a chain's
// newest digest, unsigned on a local copy. It accepts only what it says: a
// digest that links to its proven predecessor with that digest's hash, names
// a key CloudTrail published and that was valid at its end, and keeps the
// chain's cadence (its name's time is its end, it starts where its predecessor
// ended, it is no longer than the chain's interval). A digest that fails one
// of these is not a tail left unsigned by a copy: it is bad.
func (v *verifier) acceptTail(ctx context.Context, c *chainRun) error {
	ms := c.members
	if len(ms) == 0 || !ms[len(ms)-1].accepted {
		return nil
	}
	m := ms[len(ms)-1]
	m.accepted = false
	var prev *member
	if len(ms) > 1 {
		prev = ms[len(ms)-2]
	}
	switch {
	case m.file == nil || m.file.ChainStart() || !m.linksTo(prev):
		m.finding.Message += "; nothing links it to a proven digest, so --accept-unsigned-tail cannot accept it"
		return nil
	case prev.state != proven:
		m.finding.Message += "; its predecessor is not proven, so --accept-unsigned-tail cannot accept it"
		return nil
	}
	df := m.file
	interval := typicalInterval(ms)
	reject := func(format string, a ...any) {
		m.state = bad
		m.finding = v.finding(Error, TailNotAccepted, m, "the newest digest, unsigned on this copy, "+format+": --accept-unsigned-tail accepts only a tail that fits its chain", a...)
	}
	key, err := v.opts.Keys.PublicKey(ctx, c.id.home, df.Fingerprint, signedAt(c, df))
	switch {
	case errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeyNotValid) || errors.Is(err, ErrNoKeys):
		reject("names key %s of %s: %v", df.Fingerprint, c.id.home, err)
	case err != nil:
		return fmt.Errorf("CloudTrail public keys of %s: %w", c.id.home, err)
	case key == nil:
		reject("names no key")
	case *df.PreviousHash != prev.file.RawHash:
		reject("records a hash for its predecessor %s other than that digest's", prev.key.Raw)
	case !df.End.Equal(m.key.Time):
		reject("ends at %s, but its name says %s", df.End.Format(time.RFC3339), m.key.Time.Format(time.RFC3339))
	case df.Start.Sub(prev.end()).Abs() > time.Second:
		reject("starts at %s, but its predecessor ended at %s", df.Start.Format(time.RFC3339), prev.end().Format(time.RFC3339))
	case !df.End.After(df.Start) || df.End.Sub(df.Start) > interval+5*time.Minute:
		reject("covers %s, but the chain's digests cover %s each", df.End.Sub(df.Start), interval)
	default:
		m.finding.Accepted = true
		m.finding.Message = "the newest digest of its chain, accepted unsigned (--accept-unsigned-tail): it links to its proven predecessor, names a published key and keeps the chain's cadence, but nothing here proves its content"
	}
	return nil
}

// links walks the chain oldest first: chain starts, and the digests missing
// between two members (one finding per missing interval, where the AWS CLI
// reports a run of them as one).
func (v *verifier) links(f *folder, c *chainRun) {
	ms := c.members
	interval := typicalInterval(ms)
	for i, m := range ms {
		var prev *member
		if i > 0 {
			prev = ms[i-1]
		}
		if m.file == nil || m.linksTo(prev) {
			continue
		}
		if m.file.ChainStart() {
			if m.state == bad {
				continue
			}
			msg := "chain starts: the first digest after logging or log file validation was turned on"
			if prev != nil {
				msg = "chain restarts: logging or validation was stopped after " + prev.end().Format(time.RFC3339)
			}
			v.add(v.finding(Info, ChainStart, m, "%s", msg))
			continue
		}
		prevKey := *m.file.PreviousObject
		pk, perr := ct.ParseKey(prevKey)
		before := perr == nil && (!v.inRange(pk.Time) || pk.Time.Before(f.since))
		if _, listed := f.digests[prevKey]; listed {
			if before {
				continue // the predecessor lies before the range
			}
			if m.state == proven {
				v.addTo(c, v.finding(Error, ChainBreak, m, "names %s as its predecessor, which is not the digest before it", prevKey))
			}
			continue
		}
		if prev == nil {
			if before {
				continue
			}
			fnd := &Finding{Severity: Error, Code: MissingDigest, Account: f.account, Region: f.region, Trail: c.id.trail, Key: prevKey,
				Message: "missing: the predecessor of " + m.key.Raw}
			v.addTo(c, fnd)
			c.summary.MissingDigests++
			f.gaps = append(f.gaps, &gap{from: m.start().Add(-interval), to: m.start(), finding: fnd})
			continue
		}
		if c.id.backfill {
			continue // backfill digests come when late logs do, not every hour
		}
		from, to := prev.end(), m.start()
		n := max(1, int((to.Sub(from)+interval/2)/interval))
		for k := range n {
			a, b := from.Add(time.Duration(k)*interval), from.Add(time.Duration(k+1)*interval)
			key := "(not in the archive)"
			if k == n-1 {
				b, key = to, prevKey
			}
			fnd := &Finding{Severity: Error, Code: MissingDigest, Account: f.account, Region: f.region, Trail: c.id.trail, Key: key, From: &a, To: &b,
				Message: "missing digest for " + a.Format(time.RFC3339) + " to " + b.Format(time.RFC3339)}
			v.addTo(c, fnd)
			c.summary.MissingDigests++
			f.gaps = append(f.gaps, &gap{from: a, to: b, finding: fnd})
		}
	}
}

func typicalInterval(members []*member) time.Duration {
	var ds []time.Duration
	for _, m := range members {
		if m.file != nil {
			if d := m.file.End.Sub(m.file.Start); d > 0 {
				ds = append(ds, d)
			}
		}
	}
	if len(ds) == 0 {
		return time.Hour
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// sampled decides, by a hash of the key, whether --sample 1/N hashes a log.
func (v *verifier) sampled(key string) bool {
	if v.opts.Sample <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32()%uint32(v.opts.Sample) == 0
}
