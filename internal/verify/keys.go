package verify

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
)

// Keys finds CloudTrail's public key of a region by fingerprint, for a digest
// signed at a time (zero: any time).
type Keys interface {
	PublicKey(ctx context.Context, region, fingerprint string, at time.Time) (*rsa.PublicKey, error)
}

// ErrUnknownKey means no key of that fingerprint exists in the region.
var ErrUnknownKey = fmt.Errorf("no public key with that fingerprint")

// ErrKeyNotValid means the key exists but was not valid at the time asked.
var ErrKeyNotValid = errors.New("is not valid then")

// ErrNoKeys means a key file holds no key of a region at all: that says
// nothing about the digests, only that the file is incomplete.
var ErrNoKeys = errors.New("the key file has no CloudTrail public keys of this region")

// keySlack is how far outside its validity window a key is still taken to
// have signed a digest: CloudTrail signs a digest shortly after its end.
const keySlack = time.Hour

// PublicKey is one exported key.
type PublicKey struct {
	Region      string    `json:"region"`
	Fingerprint string    `json:"fingerprint"`
	Value       string    `json:"value"` // base64 of the DER, as ListPublicKeys answers
	ValidFrom   time.Time `json:"validFrom"`
	ValidTo     time.Time `json:"validTo"`
}

// validAt reports whether the key could have signed at t (zero windows and
// zero times are unbounded).
func (k PublicKey) validAt(t time.Time) bool {
	return t.IsZero() || (k.ValidFrom.IsZero() || !t.Before(k.ValidFrom.Add(-keySlack))) && (k.ValidTo.IsZero() || !t.After(k.ValidTo.Add(keySlack)))
}

// KeySet is a set of keys: loaded from a file, or filled from CloudTrail.
type KeySet struct {
	mu   sync.Mutex
	keys map[string]map[string]*rsa.PublicKey // region -> fingerprint -> key
	info map[string]map[string]PublicKey      // region -> fingerprint -> its window
	list []PublicKey
	// fetch asks CloudTrail for the keys that signed digests in [from, to];
	// covered is, per region, the range already asked for.
	fetch   func(ctx context.Context, region string, from, to time.Time) ([]PublicKey, error)
	covered map[string][2]time.Time
	first   [2]time.Time    // the range the first call of each region asks for, when known
	loaded  map[string]bool // regions a key file holds
	now     func() time.Time
}

func newKeySet() *KeySet {
	return &KeySet{keys: map[string]map[string]*rsa.PublicKey{}, info: map[string]map[string]PublicKey{},
		covered: map[string][2]time.Time{}, loaded: map[string]bool{}, now: time.Now}
}

// fetchReach is how far around a digest's time the first lookup of a region
// asks for: CloudTrail rotates keys about monthly, so a year of digests needs
// about a dozen keys, and a handful of calls finds them all.
const fetchReach = 90 * 24 * time.Hour

// NewCloudTrailKeys asks CloudTrail's ListPublicKeys, per region and paged,
// for the keys that signed digests in the time ranges verification meets.
// Without a StartTime, ListPublicKeys returns only the current key: every
// call names its range, [from, to] when given (widened by two hours, as the
// AWS CLI does), and grows from there when an older digest needs it.
func NewCloudTrailKeys(client func(region string) *cloudtrail.Client, from, to time.Time) *KeySet {
	s := newKeySet()
	s.fetch = func(ctx context.Context, region string, start, end time.Time) ([]PublicKey, error) {
		in := &cloudtrail.ListPublicKeysInput{StartTime: aws.Time(start), EndTime: aws.Time(end)}
		var out []PublicKey
		for {
			page, err := client(region).ListPublicKeys(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("cloudtrail ListPublicKeys in %s: %w", region, err)
			}
			for _, k := range page.PublicKeyList {
				out = append(out, PublicKey{Region: region, Fingerprint: aws.ToString(k.Fingerprint), Value: base64.StdEncoding.EncodeToString(k.Value),
					ValidFrom: aws.ToTime(k.ValidityStartTime), ValidTo: aws.ToTime(k.ValidityEndTime)})
			}
			if page.NextToken == nil {
				return out, nil
			}
			in.NextToken = page.NextToken
		}
	}
	if !from.IsZero() {
		if to.IsZero() {
			to = time.Now()
		}
		s.first = [2]time.Time{from.Add(-2 * time.Hour), to.Add(2 * time.Hour)}
	}
	return s
}

// LoadKeys reads keys exported by 'trailkeeper keys export', for offline verification.
func LoadKeys(path string) (*KeySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []PublicKey
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: not a key file written by 'trailkeeper keys export': %v", path, err)
	}
	s := newKeySet()
	for _, k := range list {
		if err := s.add(k); err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", path, k.Fingerprint, err)
		}
		s.loaded[k.Region] = true
	}
	return s, nil
}

func (s *KeySet) add(k PublicKey) error {
	der, err := base64.StdEncoding.DecodeString(k.Value)
	if err != nil {
		return err
	}
	pub, fp, err := ct.ParsePublicKey(der)
	if err != nil {
		return err
	}
	if fp != k.Fingerprint {
		return fmt.Errorf("fingerprint %s does not match the key (%s)", k.Fingerprint, fp)
	}
	if !k.ValidFrom.IsZero() && !k.ValidTo.IsZero() && k.ValidTo.Before(k.ValidFrom) {
		return fmt.Errorf("valid to %s, before it is valid from %s", k.ValidTo.Format(time.RFC3339), k.ValidFrom.Format(time.RFC3339))
	}
	if s.keys[k.Region] == nil {
		s.keys[k.Region], s.info[k.Region] = map[string]*rsa.PublicKey{}, map[string]PublicKey{}
	}
	if _, dup := s.keys[k.Region][fp]; !dup {
		s.list = append(s.list, k)
	}
	s.keys[k.Region][fp], s.info[k.Region][fp] = pub, k
	return nil
}

// PublicKey returns the key that signed at `at` with this fingerprint,
// asking CloudTrail for the range around `at` when no range asked so far
// covers it.
func (s *KeySet) PublicKey(ctx context.Context, region, fingerprint string, at time.Time) (*rsa.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fetch == nil && !s.loaded[region] {
		return nil, fmt.Errorf("%s: %w", region, ErrNoKeys)
	}
	if s.fetch != nil {
		if err := s.cover(ctx, region, at); err != nil {
			return nil, err
		}
	}
	k := s.keys[region][fingerprint]
	if k == nil {
		return nil, ErrUnknownKey
	}
	if info := s.info[region][fingerprint]; !info.validAt(at) {
		return nil, fmt.Errorf("%w: key %s of %s was valid from %s to %s, not at %s", ErrKeyNotValid, fingerprint, region,
			info.ValidFrom.Format(time.RFC3339), info.ValidTo.Format(time.RFC3339), at.Format(time.RFC3339))
	}
	return k, nil
}

// cover makes sure the keys of region for time t have been asked for.
// Callers hold s.mu.
func (s *KeySet) cover(ctx context.Context, region string, t time.Time) error {
	now := s.now()
	c, ok := s.covered[region]
	if t.IsZero() && ok {
		return nil // any key will do: a backfill digest's time is not known
	}
	if t.IsZero() || t.After(now) {
		t = now
	}
	if ok && !t.Before(c[0]) && !t.After(c[1]) {
		return nil
	}
	// Up to two hours ahead, as the AWS CLI asks: a digest delivered while
	// this run goes on is covered too.
	from, to := t.Add(-fetchReach), now.Add(2*time.Hour)
	switch {
	case !ok && !s.first[0].IsZero():
		from, to = s.first[0], s.first[1]
		if t.Before(from) {
			from = t.Add(-fetchReach)
		}
	case ok && t.Before(c[0]):
		to = c[0]
	case ok:
		from = c[1]
	}
	list, err := s.fetch(ctx, region, from, to)
	if err != nil {
		return err
	}
	for _, k := range list {
		if err := s.add(k); err != nil {
			return fmt.Errorf("CloudTrail key %s in %s: %w", k.Fingerprint, region, err)
		}
	}
	if ok {
		from, to = minTime(from, c[0]), maxTime(to, c[1])
	}
	s.covered[region] = [2]time.Time{from, to}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Export writes the keys of the given regions that signed digests in
// [from, to] (widened by two hours, as the AWS CLI does) as JSON.
func (s *KeySet) Export(ctx context.Context, regions []string, from, to time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range regions {
		if s.fetch == nil {
			continue
		}
		list, err := s.fetch(ctx, r, from.Add(-2*time.Hour), to.Add(2*time.Hour))
		if err != nil {
			return nil, err
		}
		for _, k := range list {
			if err := s.add(k); err != nil {
				return nil, fmt.Errorf("CloudTrail key %s in %s: %w", k.Fingerprint, r, err)
			}
		}
	}
	out := s.list
	if out == nil {
		out = []PublicKey{}
	}
	return json.MarshalIndent(out, "", "  ")
}

// StaticKeys is a KeySet of DER keys valid at any time in the given regions, for tests and fixtures.
func StaticKeys(regions []string, ders ...[]byte) *KeySet {
	s := newKeySet()
	for _, r := range regions {
		s.loaded[r] = true
		for _, der := range ders {
			_, fp, _ := ct.ParsePublicKey(der)
			s.add(PublicKey{Region: r, Fingerprint: fp, Value: base64.StdEncoding.EncodeToString(der)})
		}
	}
	return s
}
