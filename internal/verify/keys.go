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

// Keys finds CloudTrail's public key of a region by fingerprint.
type Keys interface {
	PublicKey(ctx context.Context, region, fingerprint string) (*rsa.PublicKey, error)
}

// ErrUnknownKey means no key of that fingerprint exists in the region.
var ErrUnknownKey = fmt.Errorf("no public key with that fingerprint")

// ErrNoKeys means a key file holds no key of a region at all: that says
// nothing about the digests, only that the file is incomplete.
var ErrNoKeys = errors.New("the key file has no CloudTrail public keys of this region")

// PublicKey is one exported key.
type PublicKey struct {
	Region      string    `json:"region"`
	Fingerprint string    `json:"fingerprint"`
	Value       string    `json:"value"` // base64 of the DER, as ListPublicKeys answers
	ValidFrom   time.Time `json:"validFrom"`
	ValidTo     time.Time `json:"validTo"`
}

// KeySet is a set of keys: loaded from a file, or filled from CloudTrail.
type KeySet struct {
	mu     sync.Mutex
	keys   map[string]map[string]*rsa.PublicKey // region -> fingerprint -> key
	list   []PublicKey
	fetch  func(ctx context.Context, region string) ([]PublicKey, error)
	loaded map[string]bool
}

// NewCloudTrailKeys asks CloudTrail's ListPublicKeys, once per region, for keys
// valid in [from, to] (widened by two hours, as the AWS CLI does).
func NewCloudTrailKeys(client func(region string) *cloudtrail.Client, from, to time.Time) *KeySet {
	return &KeySet{keys: map[string]map[string]*rsa.PublicKey{}, loaded: map[string]bool{},
		fetch: func(ctx context.Context, region string) ([]PublicKey, error) {
			in := &cloudtrail.ListPublicKeysInput{}
			if !from.IsZero() {
				in.StartTime = aws.Time(from.Add(-2 * time.Hour))
			}
			if !to.IsZero() {
				in.EndTime = aws.Time(to.Add(2 * time.Hour))
			}
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
		}}
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
	s := &KeySet{keys: map[string]map[string]*rsa.PublicKey{}, loaded: map[string]bool{}}
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
	if s.keys[k.Region] == nil {
		s.keys[k.Region] = map[string]*rsa.PublicKey{}
	}
	s.keys[k.Region][fp] = pub
	s.list = append(s.list, k)
	return nil
}

// PublicKey returns the key, fetching the region's keys once.
func (s *KeySet) PublicKey(ctx context.Context, region, fingerprint string) (*rsa.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded[region] && s.fetch == nil {
		return nil, fmt.Errorf("%s: %w", region, ErrNoKeys)
	}
	if !s.loaded[region] {
		list, err := s.fetch(ctx, region)
		if err != nil {
			return nil, err
		}
		for _, k := range list {
			if err := s.add(k); err != nil {
				return nil, fmt.Errorf("CloudTrail key %s in %s: %w", k.Fingerprint, region, err)
			}
		}
		s.loaded[region] = true
	}
	if k := s.keys[region][fingerprint]; k != nil {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// Export writes the keys of the given regions as JSON.
func (s *KeySet) Export(ctx context.Context, regions []string) ([]byte, error) {
	for _, r := range regions {
		if _, err := s.PublicKey(ctx, r, ""); err != nil && err != ErrUnknownKey {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.MarshalIndent(s.list, "", "  ")
}

// StaticKeys is a KeySet of DER keys valid in the given regions, for tests and fixtures.
func StaticKeys(regions []string, ders ...[]byte) *KeySet {
	s := &KeySet{keys: map[string]map[string]*rsa.PublicKey{}, loaded: map[string]bool{}}
	for _, r := range regions {
		s.loaded[r] = true
		for _, der := range ders {
			_, fp, _ := ct.ParsePublicKey(der)
			s.add(PublicKey{Region: r, Fingerprint: fp, Value: base64.StdEncoding.EncodeToString(der)})
		}
	}
	return s
}
