package awsapi

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The SDK parses the shared config and credentials files again for every
// config it loads: with a profile per account, 1,000 accounts parse a
// 1,000-profile file 1,000 times (6 GB of allocations, 375 MiB peak here).
// trailkeeper reads the files once and builds the credentials of the plain
// profile shapes itself: static keys, and role_arn with source_profile. Any
// other key (SSO, credential_process, ca_bundle, nested settings, ...) hands
// the profile to the SDK, which knows them all.

// plainKeys are the profile keys the fast path understands.
var plainKeys = map[string]bool{
	"aws_access_key_id": true, "aws_secret_access_key": true, "aws_session_token": true, "region": true, "output": true,
	"role_arn": true, "source_profile": true, "external_id": true, "role_session_name": true, "duration_seconds": true,
}

// sharedFiles are the shared config and credentials files as sections of keys.
type sharedFiles struct {
	config, credentials map[string]map[string]string
}

// filesByVersion caches the parsed files by their paths, sizes and times,
// so that an edited file (or, in tests, another home) is read again.
var filesByVersion sync.Map // string -> *sharedFiles

func loadSharedFiles() (*sharedFiles, string) {
	home, _ := os.UserHomeDir()
	cfg := cmp.Or(os.Getenv("AWS_CONFIG_FILE"), filepath.Join(home, ".aws", "config"))
	creds := cmp.Or(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), filepath.Join(home, ".aws", "credentials"))
	version := fileVersion(cfg) + "\x00" + fileVersion(creds)
	if f, ok := filesByVersion.Load(version); ok {
		return f.(*sharedFiles), version
	}
	f, _ := filesByVersion.LoadOrStore(version, &sharedFiles{config: parseINI(cfg), credentials: parseINI(creds)})
	return f.(*sharedFiles), version
}

func fileVersion(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return path
	}
	return fmt.Sprintf("%s %d %d", path, st.Size(), st.ModTime().UnixNano())
}

// parseINI reads the file at path. A key
// whose value continues on indented lines (nested settings such as s3 = ...)
// is recorded under its name with the value "\n", which no fast path accepts.
func parseINI(path string) map[string]map[string]string {
	out := map[string]map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	var section map[string]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			name := strings.Join(strings.Fields(line[1:len(line)-1]), " ")
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			section = out[name]
		case section == nil:
		case raw[0] == ' ' || raw[0] == '\t':
			section["\n"] = "nested" // a continuation: only the SDK reads these
		default:
			k, v, _ := strings.Cut(line, "=")
			section[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return out
}

// profile is a profile's keys from both files; the credentials file wins,
// as in the SDK. ok is false when neither file has it.
func (f *sharedFiles) profile(name string) (map[string]string, bool) {
	section := "profile " + name
	if name == "default" {
		section = "default"
	}
	keys := map[string]string{}
	c, inConfig := f.config[section]
	for k, v := range c {
		keys[k] = v
	}
	cr, inCreds := f.credentials[name]
	for k, v := range cr {
		keys[k] = v
	}
	return keys, inConfig || inCreds
}

// plainCredentials builds the credentials of a plain profile on base, or
// returns ok false for the SDK to handle it.
func (f *sharedFiles) plainCredentials(base aws.Config, name string, depth int) (aws.CredentialsProvider, string, bool) {
	keys, found := f.profile(name)
	if !found || depth > 4 {
		return nil, "", false
	}
	for k := range keys {
		if !plainKeys[k] {
			return nil, "", false
		}
	}
	region := keys["region"]
	static := credentials.NewStaticCredentialsProvider(keys["aws_access_key_id"], keys["aws_secret_access_key"], keys["aws_session_token"])
	hasKeys := keys["aws_access_key_id"] != "" && keys["aws_secret_access_key"] != ""
	arn := keys["role_arn"]
	if arn == "" {
		return static, region, hasKeys
	}
	src := keys["source_profile"]
	var srcCreds aws.CredentialsProvider
	switch {
	case src == "":
		return nil, "", false // credential_source and web identity: the SDK's
	case src == name && hasKeys: // a profile that is its own source uses its own keys
		srcCreds = static
	default:
		var ok bool
		if srcCreds, _, ok = f.plainCredentials(base, src, depth+1); !ok {
			return nil, "", false
		}
	}
	stsCfg := base.Copy()
	stsCfg.Credentials = srcCreds
	stsCfg.Region = cmp.Or(region, base.Region, "us-east-1")
	var duration time.Duration
	if d := keys["duration_seconds"]; d != "" {
		n, err := strconv.Atoi(d)
		if err != nil {
			return nil, "", false
		}
		duration = time.Duration(n) * time.Second
	}
	p := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(stsCfg), arn, func(o *stscreds.AssumeRoleOptions) {
		if v := keys["external_id"]; v != "" {
			o.ExternalID = aws.String(v)
		}
		if v := keys["role_session_name"]; v != "" {
			o.RoleSessionName = v
		}
		if duration > 0 {
			o.Duration = duration
		}
	})
	return aws.NewCredentialsCache(p), region, true
}

// Loader builds the clients of many targets, loading each distinct profile,
// region and endpoint once: targets that share a profile (one hub profile and
// a role_arn per account) load it once. One Loader serves one command.
type Loader struct {
	configs sync.Map // key string -> *loaded
}

type loaded struct {
	once sync.Once
	cfg  aws.Config
	err  error
}

func (l *Loader) cached(key string, load func() (aws.Config, error)) (aws.Config, error) {
	v, _ := l.configs.LoadOrStore(key, &loaded{})
	c := v.(*loaded)
	c.once.Do(func() { c.cfg, c.err = load() })
	return c.cfg.Copy(), c.err
}

// loadConfig is the SDK config of a target, its shared files read once and
// each distinct profile, region and endpoint loaded once.
func (l *Loader) loadConfig(ctx context.Context, t Target, endpoint string, opts []func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	if t.Region != "" {
		opts = append(opts, awsconfig.WithRegion(t.Region))
	}
	f, files := loadSharedFiles()
	key := t.Credentials.Profile + "\x00" + t.Region + "\x00" + endpoint + "\x00" + files
	if name := t.Credentials.Profile; name != "" {
		// (AWS_PROFILE would name a profile the environment-only base lacks.)
		if _, _, plain := f.plainCredentials(aws.Config{}, name, 0); plain && os.Getenv("AWS_PROFILE") == "" {
			return l.cached("plain\x00"+key, func() (aws.Config, error) {
				base, err := l.cached("env\x00"+t.Region+"\x00"+endpoint, func() (aws.Config, error) {
					return awsconfig.LoadDefaultConfig(ctx, noSharedFiles(opts)...)
				})
				if err != nil {
					return base, err
				}
				creds, region, _ := f.plainCredentials(base, name, 0)
				base.Credentials, base.Region = creds, cmp.Or(t.Region, region, base.Region)
				return base, nil
			})
		}
		opts = append(opts, awsconfig.WithSharedConfigProfile(name))
	}
	return l.cached("sdk\x00"+key, func() (aws.Config, error) { return awsconfig.LoadDefaultConfig(ctx, opts...) })
}

// noSharedFiles loads a config from the environment only, for the fast path
// to put a plain profile's credentials on.
func noSharedFiles(opts []func(*awsconfig.LoadOptions) error) []func(*awsconfig.LoadOptions) error {
	return append(opts, awsconfig.WithSharedConfigFiles([]string{os.DevNull}), awsconfig.WithSharedCredentialsFiles([]string{os.DevNull}))
}
