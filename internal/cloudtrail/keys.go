// Package cloudtrail knows CloudTrail's formats: the S3 key layout of log,
// digest and Insights files, the digest file and its signature, and streaming
// hashes of log files. It is pure: no AWS calls.
package cloudtrail

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind is what a key holds.
type Kind int

const (
	Log Kind = iota
	Digest
	Insight
)

func (k Kind) String() string { return [...]string{"log", "digest", "insight"}[k] }

// Key is a parsed CloudTrail object key.
type Key struct {
	Raw        string
	Kind       Kind
	Prefix     string // the trail's S3KeyPrefix with its slash, or ""
	Account    string
	Region     string // the region that delivered the file
	Day        string // YYYY/MM/DD of the path
	Time       time.Time
	Trail      string // digests only
	HomeRegion string // digests only
	Backfill   bool   // backfill digests
	Suffix     string // the random suffix of log files
}

var (
	logNameRE    = regexp.MustCompile(`^(\d{12})_CloudTrail(-Insight)?_([a-z0-9-]+)_(\d{8}T\d{4}Z)_([A-Za-z0-9]{16})\.json\.gz$`)
	digestNameRE = regexp.MustCompile(`^(\d{12})_CloudTrail-Digest_([a-z0-9-]+)_(.+)_([a-z]{2}(?:-[a-z]+)+-\d)_(\d{8}T\d{6}Z)(_backfill)?\.json\.gz$`)
)

// ParseKey reads a key of the layout
// [prefix/]AWSLogs/ACCOUNT/{CloudTrail,CloudTrail-Digest,CloudTrail-Insight}/REGION/YYYY/MM/DD/NAME.
// Trail names may contain '.', '_' and '-', so digest names are read from the right.
func ParseKey(key string) (Key, error) {
	k := Key{Raw: key}
	i := strings.LastIndex(key, "AWSLogs/")
	if i < 0 || (i > 0 && key[i-1] != '/') {
		return k, fmt.Errorf("%s: not under AWSLogs/", key)
	}
	k.Prefix = key[:i]
	parts := strings.Split(key[i+len("AWSLogs/"):], "/")
	// ACCOUNT/TYPE/REGION/YYYY/MM/DD/NAME (organization trails add an org id first)
	if len(parts) == 8 && strings.HasPrefix(parts[0], "o-") {
		parts = parts[1:]
	}
	if len(parts) != 7 {
		return k, fmt.Errorf("%s: not a CloudTrail file key", key)
	}
	k.Account, k.Region, k.Day = parts[0], parts[2], strings.Join(parts[3:6], "/")
	name := parts[6]
	if !isDay(k.Day) {
		return k, fmt.Errorf("%s: bad date path %s", key, k.Day)
	}
	switch parts[1] {
	case "CloudTrail", "CloudTrail-Insight":
		m := matchLogName(name)
		if m == nil {
			return k, fmt.Errorf("%s: not a CloudTrail log file name", key)
		}
		k.Kind = Log
		if m[2] != "" {
			k.Kind = Insight
		}
		if (k.Kind == Insight) != (parts[1] == "CloudTrail-Insight") {
			return k, fmt.Errorf("%s: file type does not match its folder", key)
		}
		if m[1] != k.Account || m[3] != k.Region {
			return k, fmt.Errorf("%s: account or region in the name differs from the path", key)
		}
		t, err := time.Parse("20060102T1504Z", m[4])
		if err != nil {
			return k, fmt.Errorf("%s: bad time %s", key, m[4])
		}
		k.Time, k.Suffix = t, m[5]
	case "CloudTrail-Digest":
		m := matchDigestName(name)
		if m == nil {
			return k, fmt.Errorf("%s: not a CloudTrail digest file name", key)
		}
		if m[1] != k.Account || m[2] != k.Region {
			return k, fmt.Errorf("%s: account or region in the name differs from the path", key)
		}
		t, err := time.Parse("20060102T150405Z", m[5])
		if err != nil {
			return k, fmt.Errorf("%s: bad time %s", key, m[5])
		}
		k.Kind, k.Trail, k.HomeRegion, k.Time, k.Backfill = Digest, m[3], m[4], t, m[6] != ""
	default:
		return k, fmt.Errorf("%s: unknown CloudTrail folder %s", key, parts[1])
	}
	if y, m, d := k.Time.Date(); y != atoi(k.Day[:4]) || int(m) != atoi(k.Day[5:7]) || d != atoi(k.Day[8:]) {
		return k, fmt.Errorf("%s: the name's date differs from the path", key)
	}
	return k, nil
}

// DigestFolder is the folder of one account's digests of one region.
func DigestFolder(prefix, account, region string) string {
	return prefix + "AWSLogs/" + account + "/CloudTrail-Digest/" + region + "/"
}

// LogFolder is the folder of one account's log files of one region.
func LogFolder(prefix, account, region string) string {
	return prefix + "AWSLogs/" + account + "/CloudTrail/" + region + "/"
}

// LogKey builds a log file key.
func LogKey(prefix, account, region string, t time.Time, suffix string) string {
	return LogFolder(prefix, account, region) + t.UTC().Format("2006/01/02/") +
		fmt.Sprintf("%s_CloudTrail_%s_%s_%s.json.gz", account, region, t.UTC().Format("20060102T1504Z"), suffix)
}

// DigestKey builds a digest file key.
func DigestKey(prefix, account, region, trail, homeRegion string, end time.Time, backfill bool) string {
	b := ""
	if backfill {
		b = "_backfill"
	}
	return DigestFolder(prefix, account, region) + end.UTC().Format("2006/01/02/") +
		fmt.Sprintf("%s_CloudTrail-Digest_%s_%s_%s_%s%s.json.gz", account, region, trail, homeRegion, end.UTC().Format("20060102T150405Z"), b)
}

// matchLogName is logNameRE.FindStringSubmatch, without the regular
// expression for the names CloudTrail writes (verify parses every key of an
// archive): the expression only for what the quick reading does not take.
func matchLogName(name string) []string {
	rest, ok := strings.CutSuffix(name, ".json.gz")
	if !ok || len(rest) < 12+len("_CloudTrail_x_")+14+1+16 {
		return logNameRE.FindStringSubmatch(name)
	}
	account, rest := rest[:12], rest[12:]
	rest, ok = strings.CutPrefix(rest, "_CloudTrail")
	insight := ""
	if ok && strings.HasPrefix(rest, "-Insight") {
		insight, rest = "-Insight", rest[len("-Insight"):]
	}
	suffix := rest[max(len(rest)-16, 0):]
	rest = rest[:len(rest)-len(suffix)]
	region, stamp, found := strings.Cut(strings.TrimPrefix(rest, "_"), "_")
	if !ok || !found || !strings.HasPrefix(rest, "_") || len(stamp) != 15 || stamp[14] != '_' || !digits(account) || !isStamp(stamp[:14], 4) ||
		region == "" || !every(region, func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' }) ||
		!every(suffix, func(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }) {
		return logNameRE.FindStringSubmatch(name)
	}
	return []string{name, account, insight, region, stamp[:14], suffix}
}

// matchDigestName is digestNameRE.FindStringSubmatch, as matchLogName.
func matchDigestName(name string) []string {
	rest, ok := strings.CutSuffix(name, ".json.gz")
	backfill := ""
	if ok && strings.HasSuffix(rest, "_backfill") {
		backfill, rest = "_backfill", strings.TrimSuffix(rest, "_backfill")
	}
	if !ok || len(rest) < 12+len("_CloudTrail-Digest_x_x_xx-x-0_")+16 || !strings.HasPrefix(rest[12:], "_CloudTrail-Digest_") {
		return digestNameRE.FindStringSubmatch(name)
	}
	account, stamp := rest[:12], rest[len(rest)-16:]
	rest = rest[12+len("_CloudTrail-Digest_") : len(rest)-16]
	region, rest, _ := strings.Cut(rest, "_")
	i := strings.LastIndexByte(strings.TrimSuffix(rest, "_"), '_')
	if i < 1 || !strings.HasSuffix(rest, "_") || !digits(account) || !isStamp(stamp, 6) || region == "" ||
		!every(region, func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' }) ||
		strings.IndexByte(rest, '\n') >= 0 || !isRegion(rest[i+1:len(rest)-1]) {
		return digestNameRE.FindStringSubmatch(name)
	}
	return []string{name, account, region, rest[:i], rest[i+1 : len(rest)-1], stamp, backfill}
}

func every(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func digits(s string) bool { return every(s, func(c byte) bool { return '0' <= c && c <= '9' }) }

// atoi reads digits, as isDay checked them.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// isDay says whether s is YYYY/MM/DD.
func isDay(s string) bool {
	return len(s) == 10 && digits(s[:4]) && s[4] == '/' && digits(s[5:7]) && s[7] == '/' && digits(s[8:])
}

// isStamp says whether s is YYYYMMDDTHHMM[SS]Z with n digits after the T.
func isStamp(s string, n int) bool {
	return len(s) == 8+1+n+1 && digits(s[:8]) && s[8] == 'T' && digits(s[9:9+n]) && s[9+n] == 'Z'
}

// isRegion matches [a-z]{2}(?:-[a-z]+)+-\d.
func isRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 || len(parts[0]) != 2 || len(parts[len(parts)-1]) != 1 || !digits(parts[len(parts)-1]) {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if p == "" || !every(p, func(c byte) bool { return 'a' <= c && c <= 'z' }) {
			return false
		}
	}
	return true
}
