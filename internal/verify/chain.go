package verify

import (
	"context"
	"errors"
	"hash/fnv"
	"sort"
	"time"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// member is the genuine version of one digest key in a chain.
type member struct {
	*digestVersion
	sig    string // the signature to check: from metadata, else from the successor's link
	ok     bool   // no error found for this digest
	finder func(sev Severity, kind, format string, a ...any)
}

// chain checks one chain and registers the log files its digests list.
func (v *verifier) chain(ctx context.Context, f *folder, id chainID, versions []*digestVersion, referenced map[string]*logRef) *Chain {
	c := &Chain{Account: id.account, Region: id.region, Trail: id.trail, HomeRegion: id.home, Backfill: id.backfill}
	v.mu.Lock()
	v.report.Chains = append(v.report.Chains, c)
	v.mu.Unlock()
	byKey := map[string][]*digestVersion{}
	for _, d := range versions {
		byKey[d.key.Raw] = append(byKey[d.key.Raw], d)
	}
	var members []*member
	for key, vs := range byKey {
		if m := v.genuine(ctx, f, c, key, vs); m != nil {
			members = append(members, m)
		}
	}
	sort.Slice(members, func(i, j int) bool { return members[i].key.Time.Before(members[j].key.Time) })
	c.Digests = len(members)
	if len(members) == 0 {
		return c
	}
	c.First, c.Last = members[0].file.Start, members[len(members)-1].file.End
	interval := typicalInterval(members)
	for i, m := range members {
		df := m.file
		var prev *member
		if i > 0 {
			prev = members[i-1]
		}
		switch {
		case df.ChainStart():
			msg := "chain starts: the first digest after logging or log file validation was turned on"
			if prev != nil {
				msg = "chain restarts: logging or validation was stopped after " + prev.file.End.Format(time.RFC3339) + " (digests of a stopped trail end their chain)"
			}
			m.finder(Info, ChainStart, "%s", msg)
		case prev != nil && *df.PreviousObject == prev.key.Raw:
			if *df.PreviousHash != prev.file.RawHash {
				prev.finder(Error, AlteredDigest, "its SHA-256 differs from the hash its successor recorded: the digest was altered")
				prev.ok = false
			}
			if prev.sig == "" {
				prev.sig = *df.PreviousSignature
			} else if prev.sig != *df.PreviousSignature {
				prev.finder(Error, ChainBreak, "its signature differs from the one its successor recorded")
				prev.ok = false
			}
		default:
			v.missing(f, c, m, prev, interval)
		}
		if prev != nil {
			v.checkSignature(ctx, f, c, prev)
		}
	}
	last := members[len(members)-1]
	if last.sig == "" {
		last.finder(Warning, NoSignature, "the newest digest's signature is in object metadata, which a local copy does not keep; verify the bucket itself to check it")
	} else {
		v.checkSignature(ctx, f, c, last)
	}
	for _, m := range members {
		if m.ok {
			c.DigestsValid++
		}
		for _, l := range m.file.LogFiles {
			ref := &logRef{hash: l.HashValue, chain: c, digest: m.key.Raw}
			if want := v.bucket(f.account, l.Bucket); l.Bucket != want {
				m.finder(Error, WrongBucket, "lists log file %s in bucket %s; account %s's trail bucket is %s", l.Object, l.Bucket, f.account, want)
			}
			if _, dup := referenced[l.Object]; !dup {
				c.Logs++
			}
			referenced[l.Object] = ref
		}
	}
	return c
}

type logRef struct {
	hash   string
	chain  *Chain
	digest string
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
// (its signature verifies), and reports every other version as tampering.
func (v *verifier) genuine(ctx context.Context, f *folder, c *Chain, key string, vs []*digestVersion) *member {
	var candidates []*digestVersion
	for _, d := range vs {
		switch {
		case d.version.DeleteMarker && d.version.Latest:
			v.add(v.finding(Error, DeleteMarker, f, c.Trail, key, d.version.VersionID, "a delete marker hides this digest; the digest itself is kept in an older version"))
		case d.file != nil:
			candidates = append(candidates, d)
		case d.err != nil && !errors.Is(d.err, store.ErrNotFound):
			v.add(v.finding(Error, Unreadable, f, c.Trail, key, d.version.VersionID, "not a readable digest: %v", d.err))
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	pick := candidates[0]
	if len(candidates) > 1 {
		for _, d := range candidates {
			if d.sig != "" && v.signatureOK(ctx, c, d.file, d.sig) == nil {
				pick = d
				break
			}
		}
		for _, d := range candidates {
			if d != pick {
				v.add(v.finding(Error, ShadowingVersion, f, c.Trail, key, d.version.VersionID,
					"another version of this digest was written over the replica (version %s is the one CloudTrail signed)", pick.version.VersionID))
			}
		}
	}
	m := &member{digestVersion: pick, sig: pick.sig, ok: true}
	m.finder = func(sev Severity, kind, format string, a ...any) {
		if sev == Error {
			m.ok = false
			c.Problems++
		}
		v.add(v.finding(sev, kind, f, c.Trail, key, pick.version.VersionID, format, a...))
	}
	df := pick.file
	switch {
	case df.AccountID != f.account:
		m.finder(Error, MovedDigest, "names account %s but lies under account %s", df.AccountID, f.account)
	case df.Object != key:
		m.finder(Error, MovedDigest, "names %s as its location: it was moved or copied from elsewhere", df.Object)
	}
	if want := v.bucket(f.account, df.Bucket); df.Bucket != want {
		m.finder(Error, WrongBucket, "was written to bucket %s, not account %s's trail bucket %s", df.Bucket, f.account, want)
	}
	return m
}

// signatureOK checks a signature with the public key of the chain's home region.
func (v *verifier) signatureOK(ctx context.Context, c *Chain, df *ct.DigestFile, sig string) error {
	key, err := v.opts.Keys.PublicKey(ctx, c.HomeRegion, df.Fingerprint)
	if err != nil {
		return err
	}
	if err := df.VerifySignature(sig, key); err != nil {
		return errBadSignature
	}
	return nil
}

var errBadSignature = errors.New("signature does not verify")

func (v *verifier) checkSignature(ctx context.Context, f *folder, c *Chain, m *member) {
	if m.sig == "" {
		return
	}
	switch err := v.signatureOK(ctx, c, m.file, m.sig); {
	case err == nil:
	case errors.Is(err, ErrUnknownKey):
		m.finder(Error, UnknownKey, "signed with a key CloudTrail does not know in %s (fingerprint %s): re-signed by someone else", c.HomeRegion, m.file.Fingerprint)
	case errors.Is(err, errBadSignature):
		m.finder(Error, BadSignature, "signature does not verify: the digest, its location or its predecessor's signature was changed")
	default:
		m.finder(Error, Unreadable, "cannot look up CloudTrail's public keys: %v", err)
	}
}

// missing reports the digests between prev and m that are not in the archive,
// one finding per missing interval (the AWS CLI reports a run of them as one).
func (v *verifier) missing(f *folder, c *Chain, m, prev *member, interval time.Duration) {
	prevKey := *m.file.PreviousObject
	if _, listed := f.digests[prevKey]; listed {
		pk, err := ct.ParseKey(prevKey)
		if err == nil && !v.inRange(pk.Time) {
			return // the predecessor lies before --since
		}
		m.finder(Error, ChainBreak, "names %s as its predecessor, which is not the digest before it", prevKey)
		return
	}
	if prev == nil {
		if pk, err := ct.ParseKey(prevKey); err == nil && !v.inRange(pk.Time) {
			return
		}
		v.add(&Finding{Severity: Error, Kind: MissingDigest, Account: f.account, Region: f.region, Trail: c.Trail, Key: prevKey,
			Message: "missing: the predecessor of " + m.key.Raw})
		c.MissingHours++
		c.Problems++
		return
	}
	from, to := prev.file.End, m.file.Start
	n := int((to.Sub(from) + interval/2) / interval)
	if n < 1 {
		n = 1
	}
	for k := 0; k < n; k++ {
		a, b := from.Add(time.Duration(k)*interval), from.Add(time.Duration(k+1)*interval)
		if k == n-1 {
			b = to
		}
		key := "(not in the archive)"
		if k == n-1 {
			key = prevKey
		}
		v.add(&Finding{Severity: Error, Kind: MissingDigest, Account: f.account, Region: f.region, Trail: c.Trail, Key: key, From: &a, To: &b,
			Message: "missing digest for " + a.Format(time.RFC3339) + " to " + b.Format(time.RFC3339)})
		c.MissingHours++
		c.Problems++
	}
}

func typicalInterval(members []*member) time.Duration {
	var ds []time.Duration
	for _, m := range members {
		if d := m.file.End.Sub(m.file.Start); d > 0 {
			ds = append(ds, d)
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
