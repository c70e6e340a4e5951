package cloudtrail

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		key  string
		want Key
	}{
		{"AWSLogs/653711331788/CloudTrail/us-east-1/2018/11/28/653711331788_CloudTrail_us-east-1_20181128T2235Z_cR9ra7OH1rytWyXY.json.gz",
			Key{Kind: Log, Account: "653711331788", Region: "us-east-1", Day: "2018/11/28", Time: time.Date(2018, 11, 28, 22, 35, 0, 0, time.UTC), Suffix: "cR9ra7OH1rytWyXY"}},
		{"org/logs/AWSLogs/111111111111/CloudTrail-Digest/eu-west-1/2025/09/10/111111111111_CloudTrail-Digest_eu-west-1_a.b_c-d_us-east-1_20250910T150131Z.json.gz",
			Key{Kind: Digest, Prefix: "org/logs/", Account: "111111111111", Region: "eu-west-1", Day: "2025/09/10", Trail: "a.b_c-d", HomeRegion: "us-east-1",
				Time: time.Date(2025, 9, 10, 15, 1, 31, 0, time.UTC)}},
		{"AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2025/09/10/111111111111_CloudTrail-Digest_us-east-1_Members_us-east-1_20250910T150131Z_backfill.json.gz",
			Key{Kind: Digest, Account: "111111111111", Region: "us-east-1", Day: "2025/09/10", Trail: "Members", HomeRegion: "us-east-1", Backfill: true,
				Time: time.Date(2025, 9, 10, 15, 1, 31, 0, time.UTC)}},
		{"AWSLogs/111111111111/CloudTrail-Insight/us-east-1/2025/09/10/111111111111_CloudTrail-Insight_us-east-1_20250910T1500Z_aaaaaaaaaaaaaaaa.json.gz",
			Key{Kind: Insight, Account: "111111111111", Region: "us-east-1", Day: "2025/09/10", Time: time.Date(2025, 9, 10, 15, 0, 0, 0, time.UTC), Suffix: "aaaaaaaaaaaaaaaa"}},
		// A trail name that itself looks like "_name_region": read from the right.
		{"AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2025/09/10/111111111111_CloudTrail-Digest_us-east-1_x_us-west-2_us-east-1_20250910T150131Z.json.gz",
			Key{Kind: Digest, Account: "111111111111", Region: "us-east-1", Day: "2025/09/10", Trail: "x_us-west-2", HomeRegion: "us-east-1",
				Time: time.Date(2025, 9, 10, 15, 1, 31, 0, time.UTC)}},
	}
	for _, tt := range tests {
		got, err := ParseKey(tt.key)
		if err != nil {
			t.Fatalf("%s: %v", tt.key, err)
		}
		tt.want.Raw = tt.key
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.key, got, tt.want)
		}
	}
	for _, bad := range []string{
		"", "AWSLogs/", "AWSLogs/1/CloudTrail/us-east-1/2018/11/28/x.json.gz",
		"fooAWSLogs/653711331788/CloudTrail/us-east-1/2018/11/28/653711331788_CloudTrail_us-east-1_20181128T2235Z_cR9ra7OH1rytWyXY.json.gz",
		"AWSLogs/653711331788/CloudTrail/us-east-1/2018/11/29/653711331788_CloudTrail_us-east-1_20181128T2235Z_cR9ra7OH1rytWyXY.json.gz",
		"AWSLogs/222222222222/CloudTrail/us-east-1/2018/11/28/653711331788_CloudTrail_us-east-1_20181128T2235Z_cR9ra7OH1rytWyXY.json.gz",
		"AWSLogs/653711331788/CloudTrail/us-east-1/2018/11/28/653711331788_CloudTrail_us-east-1_20181128T2299Z_cR9ra7OH1rytWyXY.json.gz",
	} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestKeyBuildersRoundTrip(t *testing.T) {
	at := time.Date(2025, 9, 10, 15, 1, 31, 0, time.UTC)
	k, err := ParseKey(DigestKey("p/", "111111111111", "ap-northeast-1", "a.b_c-d", "us-east-1", at, true))
	if err != nil || k.Trail != "a.b_c-d" || !k.Backfill || !k.Time.Equal(at) || k.Prefix != "p/" {
		t.Fatalf("%+v %v", k, err)
	}
	k, err = ParseKey(LogKey("", "111111111111", "ap-northeast-1", at, "ABCDEFGHabcdefgh"))
	if err != nil || k.Kind != Log || !k.Time.Equal(at.Truncate(time.Minute)) {
		t.Fatalf("%+v %v", k, err)
	}
}

func TestHashLogOfRealFiles(t *testing.T) {
	// Invictus' files are the uncompressed logs as CloudTrail wrote them: gzip
	// them as S3 holds them, and the hash must be that of the uncompressed bytes.
	files, _ := filepath.Glob(filepath.Join(testenv.RealCloudTrail(t, "invictus-ir-aws-dataset"), "CloudTrail", "*.json"))
	if len(files) == 0 {
		t.Fatal("no real logs in testdata/cloudtrail")
	}
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		sum := sha256.Sum256(raw)
		data := gz(raw)
		if h, _, err := HashLog(bytes.NewReader(data), LogInflateLimit(int64(len(data)))); err != nil || h != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: %s %v", f, h, err)
		}
		if _, _, err := HashLog(bytes.NewReader(data[:len(data)/2]), 0); err == nil {
			t.Fatalf("%s: a truncated file hashed without error", f)
		}
	}
}

// The inflation limit never refuses a real log file (the SANS 504 set's gzip
// files as CloudTrail's were recompressed, the most compressible here), and
// stops a gzip bomb long before its end.
func TestLogInflateLimit(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.RealCloudTrail(t, "sans504-s3-ransomware-lab"), "CloudTrail", "*", "*", "*", "*", "*.json.gz"))
	if len(files) < 3000 {
		t.Fatalf("found %d files of the SANS 504 set", len(files))
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if _, _, err := HashLog(bytes.NewReader(data), LogInflateLimit(int64(len(data)))); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	bomb := bytes.Repeat(gz(make([]byte, 1<<20)), 32) // 32 MiB of zeros in 32 KB of gzip members: its limit is 3 MiB
	_, n, err := HashLog(bytes.NewReader(bomb), LogInflateLimit(int64(len(bomb))))
	if !errors.Is(err, ErrTooLarge) || n > LogInflateLimit(int64(len(bomb)))+1<<20 {
		t.Fatalf("a %d-byte gzip bomb: read %d bytes, %v", len(bomb), n, err)
	}
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

const sampleDigest = `{"awsAccountId":"111111111111","digestStartTime":"2025-09-10T14:01:31Z","digestEndTime":"2025-09-10T15:01:31Z","digestS3Bucket":"b","digestS3Object":"AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2025/09/10/111111111111_CloudTrail-Digest_us-east-1_t_us-east-1_20250910T150131Z.json.gz","digestPublicKeyFingerprint":"00","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[]}`

func TestReadDigest(t *testing.T) {
	d, err := ReadDigest(bytes.NewReader(gz([]byte(sampleDigest))))
	if err != nil || !d.ChainStart() || !strings.HasSuffix(d.SigningString(), "\nnull") {
		t.Fatalf("%v %+v", err, d)
	}
	for name, data := range map[string][]byte{
		"not gzip":   []byte(sampleDigest),
		"truncated":  gz([]byte(sampleDigest))[:40],
		"not json":   gz([]byte("hello")),
		"bad time":   gz([]byte(strings.Replace(sampleDigest, "2025-09-10T15:01:31Z", "yesterday", 1))),
		"half null":  gz([]byte(strings.Replace(sampleDigest, `"previousDigestSignature":null`, `"previousDigestSignature":"ab"`, 1))),
		"other algo": gz([]byte(strings.Replace(sampleDigest, "SHA256withRSA", "MD5withRSA", 1))),
	} {
		if _, err := ReadDigest(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add("AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2025/09/10/111111111111_CloudTrail-Digest_us-east-1_a.b_c-d_us-east-1_20250910T150131Z_backfill.json.gz")
	f.Add("p/AWSLogs/o-abc/111111111111/CloudTrail/us-east-1/2018/11/28/111111111111_CloudTrail_us-east-1_20181128T2235Z_cR9ra7OH1rytWyXY.json.gz")
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseKey(key)
		if err != nil {
			return
		}
		if k.Kind == Digest {
			if got := DigestKey(k.Prefix, k.Account, k.Region, k.Trail, k.HomeRegion, k.Time, k.Backfill); !strings.HasSuffix(key, got[len(k.Prefix):]) {
				t.Fatalf("round trip: %s -> %s", key, got)
			}
		}
	})
}

func FuzzReadDigest(f *testing.F) {
	f.Add(gz([]byte(sampleDigest)))
	f.Add(gz([]byte(`{"logFiles":[{"s3Object":"x","hashValue":"00","hashAlgorithm":"SHA-256"}]}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ReadDigest(bytes.NewReader(data))
		if err == nil {
			_ = d.SigningString()
		}
		HashLog(bytes.NewReader(data), 0)
	})
}

// FuzzKeyNames: the quick reading of file names and days gives what the regular
// expressions give, for any name.
func FuzzKeyNames(f *testing.F) {
	at := time.Date(2026, 12, 7, 1, 5, 0, 0, time.UTC)
	for _, k := range []string{
		LogKey("", "111111111111", "ap-northeast-1", at, "ABCDEFGHabcdefgh"),
		DigestKey("", "111111111111", "ap-northeast-1", "a.b_c-d", "us-east-1", at, true),
		DigestKey("", "111111111111", "eu-west-1", "Members", "us-gov-west-1", at, false),
		"111111111111_CloudTrail-Insight_us-east-1_20261207T0105Z_ABCDEFGHabcdefgh.json.gz",
		"111111111111_CloudTrail-Digest_us-east-1_a_b_us-east-1_us-east-1_20261207T010500Z_backfill.json.gz",
	} {
		f.Add(k[strings.LastIndexByte(k, '/')+1:])
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := matchLogName(name), logNameRE.FindStringSubmatch(name); !slices.Equal(got, want) {
			t.Fatalf("log name %q: %q, the expression %q", name, got, want)
		}
		if got, want := matchDigestName(name), digestNameRE.FindStringSubmatch(name); !slices.Equal(got, want) {
			t.Fatalf("digest name %q: %q, the expression %q", name, got, want)
		}
		if got, want := isDay(name), regexp.MustCompile(`^\d{4}/\d{2}/\d{2}$`).MatchString(name); got != want {
			t.Fatalf("day %q: %v, the expression %v", name, got, want)
		}
	})
}
