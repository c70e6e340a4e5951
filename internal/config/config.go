// Package config reads trailkeeper.yaml: the schema, its defaults, and validation
// errors that name the file, the line and the field.
package config

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trailkeeper/trailkeeper/internal/regions"
)

// Config is what trailkeeper.yaml says should be.
type Config struct {
	Path        string
	Text        []byte // the file as it was read
	Archive     Archive
	Replication Replication
	Sources     []Source
	Alerts      Alerts
	Athena      Athena
	Watch       Watch
	// EndpointURL points every client at one endpoint (the sandbox, moto);
	// AWS_ENDPOINT_URL does the same without editing the file.
	EndpointURL string
}

// Credentials say how to act in an account: a shared-config profile (SSO
// included), a role to assume, or the default chain when both are empty.
type Credentials struct {
	Profile    string
	RoleARN    string
	ExternalID string
}

// Archive is the Object-Lock bucket in the log-archive account.
type Archive struct {
	AccountID    string
	Region       string
	Bucket       string
	Credentials  Credentials
	ObjectLock   ObjectLock
	StorageClass string
	// InventoryBucket receives a daily S3 Inventory report of the archive
	// (verify --inventory); "" for none.
	InventoryBucket string
}

// ObjectLock is the archive's default retention.
type ObjectLock struct {
	Mode  string // GOVERNANCE or COMPLIANCE
	Days  int
	Years int
}

func (o ObjectLock) String() string {
	if o.Years > 0 {
		return fmt.Sprintf("%s %d years", o.Mode, o.Years)
	}
	return fmt.Sprintf("%s %d days", o.Mode, o.Days)
}

// Replication configures the role and rule trailkeeper writes in each source.
type Replication struct {
	RoleName    string
	TimeControl bool // Replication Time Control (15 minutes) with metrics
	// ReplicaKMSKey is a KMS key ARN of the archive account and region: S3
	// re-encrypts replicas of SSE-KMS logs with it. Needed only for KMS trails.
	ReplicaKMSKey string
}

// Alerts say where replication failures go (off unless the file has an
// alerts: section). S3 publishes a bucket's events only to a topic in the
// bucket's region, so there is one topic per region with sources.
type Alerts struct {
	Enabled bool
	// Subscribe lists email addresses and http(s) URLs subscribed to the
	// topics trailkeeper creates; each confirms once.
	Subscribe []string
	// Topics are existing topics of the archive account, at most one per
	// region, used instead of creating one there; their subscriptions are the
	// owner's business.
	Topics []string
}

// Watch asks apply to wire tamper alerts (off unless the file has a watch:
// section; watch: {} is enough): an EventBridge rule in each source account
// sends the calls that break the path to the archive (StopLogging, a deleted
// replication rule, a changed role, ...) to a bus of the archive account, and
// from there to the alert topic of the archive's region, as one line.
type Watch struct {
	Enabled bool
	// DigestsWithin is how long a trail may go without a new digest before
	// status (and the watch function) calls it stopped: CloudTrail delivers
	// one an hour even without activity.
	DigestsWithin time.Duration
}

// Athena asks apply for the Glue tables and the Athena workgroup over the
// archive (off unless the file has an athena: section), in the archive
// account and region.
type Athena struct {
	Enabled   bool
	Database  string   // default trailkeeper
	Workgroup string   // default trailkeeper
	Results   string   // s3://bucket/prefix/ for query results (required)
	Regions   []string // projected; default the regions enabled by default
	From      string   // first day projected, yyyy/MM/dd
	Parquet   string   // s3://bucket/prefix where trailkeeper index --to publishes the index
}

// Source is one member account whose trail writes to its own bucket.
type Source struct {
	AccountID   string
	Region      string // the trail's home region
	Trail       string // name; empty: the single trail writing to Bucket (or the account's only trail)
	Bucket      string
	Credentials Credentials
	Line        int
}

// Error is a problem in the file, with its line.
type Error struct {
	File    string
	Line    int
	Field   string
	Msg     string
	Missing bool // the file is not there at all
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return loc + ": " + e.Msg
}

// Defaults used when the file leaves a value out.
const (
	DefaultRoleName     = "trailkeeper-replication"
	DefaultStorageClass = "STANDARD" // CloudTrail's small files cost many times more in classes with a 128 KB minimum (internal/cost)
)

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, &Error{File: path, Msg: "no such file", Missing: true}
		}
		return nil, &Error{File: path, Msg: err.Error()}
	}
	return Parse(path, data)
}

// Parse validates a config given as bytes; path names it in errors.
func Parse(path string, data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, yamlError(path, err)
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: path, Msg: "the file is empty"}
	}
	p := &parser{file: path}
	c := &Config{Path: path, Text: data, Replication: Replication{RoleName: DefaultRoleName, TimeControl: true},
		Archive: Archive{StorageClass: DefaultStorageClass, ObjectLock: ObjectLock{Mode: "GOVERNANCE", Days: 400}}}
	seen := p.mapping(root.Content[0], "", map[string]func(*yaml.Node, string){
		"archive":      func(n *yaml.Node, f string) { p.archive(n, f, &c.Archive) },
		"replication":  func(n *yaml.Node, f string) { p.replication(n, f, &c.Replication) },
		"sources":      func(n *yaml.Node, f string) { c.Sources = p.sources(n, f) },
		"endpoint_url": func(n *yaml.Node, f string) { c.EndpointURL = p.str(n, f) },
		"alerts":       func(n *yaml.Node, f string) { p.alerts(n, f, c) },
		"athena":       func(n *yaml.Node, f string) { p.athena(n, f, &c.Athena) },
		"watch": func(n *yaml.Node, f string) {
			c.Watch = Watch{Enabled: true, DigestsWithin: 2 * time.Hour}
			if n.Tag != "!!null" {
				p.mapping(n, f, map[string]func(*yaml.Node, string){
					"digests_within": func(n *yaml.Node, f string) {
						d, err := time.ParseDuration(p.str(n, f))
						switch {
						case p.err != nil:
						case err != nil || d < 90*time.Minute || d > 7*24*time.Hour:
							p.fail(n, f, "%q: a duration from 90m (CloudTrail's hourly digest, and some slack) to 168h", n.Value)
						default:
							c.Watch.DigestsWithin = d
						}
					},
				})
			}
		},
	})
	if p.err != nil {
		return nil, p.err
	}
	line := root.Content[0].Line
	if !seen["archive"] {
		return nil, &Error{File: path, Line: line, Field: "archive", Msg: "missing: say which account and bucket keep the archive"}
	}
	if !seen["sources"] || len(c.Sources) == 0 {
		return nil, &Error{File: path, Line: line, Field: "sources", Msg: "missing: list at least one source account"}
	}
	if err := p.validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+)`) })

func yamlError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimSpace(yamlLineRE().ReplaceAllString(msg, ""))
		msg = strings.TrimPrefix(msg, ": ")
	}
	return &Error{File: path, Line: line, Msg: "not valid YAML: " + msg}
}

// parser keeps the first error, so that one wrong value gives one clear message.
type parser struct {
	file string
	err  error
}

func (p *parser) fail(n *yaml.Node, field, format string, a ...any) {
	if p.err == nil {
		line := 0
		if n != nil {
			line = n.Line
		}
		p.err = &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// mapping calls the handler of each key and rejects unknown or repeated keys.
func (p *parser) mapping(n *yaml.Node, field string, handlers map[string]func(*yaml.Node, string)) map[string]bool {
	seen := map[string]bool{}
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "must be a mapping of keys to values")
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := join(field, k.Value)
		h, ok := handlers[k.Value]
		if !ok {
			known := make([]string, 0, len(handlers))
			for name := range handlers {
				known = append(known, name)
			}
			sort.Strings(known)
			p.fail(k, f, "unknown key (known here: %s)", strings.Join(known, ", "))
			return seen
		}
		if seen[k.Value] {
			p.fail(k, f, "given twice")
			return seen
		}
		seen[k.Value] = true
		h(v, f)
	}
	return seen
}

func (p *parser) str(n *yaml.Node, field string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, field, "must be a single value")
		return ""
	}
	return n.Value
}

func (p *parser) integer(n *yaml.Node, field string) int {
	v, err := strconv.Atoi(p.str(n, field))
	if err != nil && p.err == nil {
		p.fail(n, field, "%q is not a whole number", n.Value)
	}
	return v
}

func (p *parser) boolean(n *yaml.Node, field string) bool {
	switch strings.ToLower(p.str(n, field)) {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	p.fail(n, field, "%q is not true or false", n.Value)
	return false
}

// accountID takes the literal text, so an unquoted id with a leading zero keeps it.
func (p *parser) accountID(n *yaml.Node, field string) string {
	v := p.str(n, field)
	if p.err == nil && !IsAccountID(v) {
		p.fail(n, field, "%q is not a 12-digit AWS account id", v)
	}
	return v
}

// IsAccountID reports whether s is 12 digits.
func IsAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (p *parser) region(n *yaml.Node, field string) string {
	v := p.str(n, field)
	if p.err == nil && !regions.Known(v) {
		p.fail(n, field, "%q is not an AWS region", v)
	}
	return v
}

func (p *parser) credentials(c *Credentials) map[string]func(*yaml.Node, string) {
	return map[string]func(*yaml.Node, string){
		"profile": func(n *yaml.Node, f string) { c.Profile = p.str(n, f) },
		"role_arn": func(n *yaml.Node, f string) {
			c.RoleARN = p.str(n, f)
			if p.err == nil && !roleARNRE().MatchString(c.RoleARN) {
				p.fail(n, f, "%q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", c.RoleARN)
			}
		},
		"external_id": func(n *yaml.Node, f string) { c.ExternalID = p.str(n, f) },
	}
}

var roleARNRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^arn:aws[\w-]*:iam::(\d{12}):role/[\w+=,.@/-]+$`) })

var roleNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w+=,.@-]{1,64}$`) })

var bucketRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`) })

func (p *parser) bucket(n *yaml.Node, field string) string {
	v := p.str(n, field)
	if p.err == nil && (!bucketRE().MatchString(v) || strings.Contains(v, "..")) {
		p.fail(n, field, "%q is not a valid S3 bucket name (3-63 lower-case letters, digits, dots and hyphens)", v)
	}
	return v
}

var storageClasses = map[string]bool{"STANDARD": true, "STANDARD_IA": true, "ONEZONE_IA": true, "INTELLIGENT_TIERING": true,
	"GLACIER_IR": true, "GLACIER": true, "DEEP_ARCHIVE": true}

func (p *parser) archive(n *yaml.Node, field string, a *Archive) {
	h := p.credentials(&a.Credentials)
	h["account_id"] = func(n *yaml.Node, f string) { a.AccountID = p.accountID(n, f) }
	h["region"] = func(n *yaml.Node, f string) { a.Region = p.region(n, f) }
	h["bucket"] = func(n *yaml.Node, f string) { a.Bucket = p.bucket(n, f) }
	h["inventory_bucket"] = func(n *yaml.Node, f string) { a.InventoryBucket = p.bucket(n, f) }
	h["storage_class"] = func(n *yaml.Node, f string) {
		a.StorageClass = p.str(n, f)
		if p.err == nil && !storageClasses[a.StorageClass] {
			p.fail(n, f, "%q is not an S3 storage class for replicas", a.StorageClass)
		}
	}
	h["object_lock"] = func(n *yaml.Node, f string) {
		a.ObjectLock = ObjectLock{}
		p.mapping(n, f, map[string]func(*yaml.Node, string){
			"mode": func(n *yaml.Node, f string) {
				a.ObjectLock.Mode = strings.ToUpper(p.str(n, f))
				if p.err == nil && a.ObjectLock.Mode != "GOVERNANCE" && a.ObjectLock.Mode != "COMPLIANCE" {
					p.fail(n, f, "%q: use GOVERNANCE or COMPLIANCE", n.Value)
				}
			},
			"days":  func(n *yaml.Node, f string) { a.ObjectLock.Days = p.integer(n, f) },
			"years": func(n *yaml.Node, f string) { a.ObjectLock.Years = p.integer(n, f) },
		})
		ol := a.ObjectLock
		switch {
		case p.err != nil:
		case ol.Mode == "":
			p.fail(n, f+".mode", "missing: GOVERNANCE or COMPLIANCE")
		case (ol.Days > 0) == (ol.Years > 0) || ol.Days < 0 || ol.Years < 0:
			p.fail(n, f, "give either days or years, a positive number (S3 takes one of them)")
		}
	}
	seen := p.mapping(n, field, h)
	if p.err != nil {
		return
	}
	for _, k := range []string{"account_id", "region"} {
		if !seen[k] {
			p.fail(n, join(field, k), "missing")
			return
		}
	}
	if a.Bucket == "" {
		a.Bucket = "aggregation-cloudtrail-logs-" + a.AccountID
	}
	if a.InventoryBucket == a.Bucket {
		p.fail(n, join(field, "inventory_bucket"), "%q is the archive bucket: its reports would be locked for the archive's retention; name another bucket (apply creates it)", a.InventoryBucket)
	}
}

func (p *parser) replication(n *yaml.Node, field string, r *Replication) {
	p.mapping(n, field, map[string]func(*yaml.Node, string){
		"role_name": func(n *yaml.Node, f string) {
			r.RoleName = p.str(n, f)
			if p.err == nil && !roleNameRE().MatchString(r.RoleName) {
				p.fail(n, f, "%q is not a valid IAM role name", r.RoleName)
			}
		},
		"time_control": func(n *yaml.Node, f string) { r.TimeControl = p.boolean(n, f) },
		"replica_kms_key": func(n *yaml.Node, f string) {
			r.ReplicaKMSKey = p.str(n, f)
			if p.err == nil && !strings.HasPrefix(r.ReplicaKMSKey, "arn:aws:kms:") {
				p.fail(n, f, "%q: give the full key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID): S3 accepts anything here and then fails every object", r.ReplicaKMSKey)
			}
		},
	})
}

func (p *parser) sources(n *yaml.Node, field string) []Source {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list of accounts (- account_id: ...)")
		return nil
	}
	var out []Source
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		s := Source{Line: item.Line}
		h := p.credentials(&s.Credentials)
		h["account_id"] = func(n *yaml.Node, f string) { s.AccountID = p.accountID(n, f) }
		h["region"] = func(n *yaml.Node, f string) { s.Region = p.region(n, f) }
		h["trail"] = func(n *yaml.Node, f string) { s.Trail = p.str(n, f) }
		h["bucket"] = func(n *yaml.Node, f string) { s.Bucket = p.bucket(n, f) }
		seen := p.mapping(item, f, h)
		if p.err == nil && !seen["account_id"] {
			p.fail(item, f+".account_id", "missing")
		}
		out = append(out, s)
	}
	return out
}

var (
	topicARNRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws[\w-]*:sns:([a-z0-9-]+):(\d{12}):[\w-]{1,256}$`)
	})
	emailRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[^@\s:/]+@[^@\s]+\.[^@\s]+$`) })
)

// TopicRegion returns the region of an SNS topic ARN, or "".
func TopicRegion(arn string) string {
	if m := topicARNRE().FindStringSubmatch(arn); m != nil {
		return m[1]
	}
	return ""
}

func (p *parser) alerts(n *yaml.Node, field string, c *Config) {
	a := &c.Alerts
	a.Enabled = true
	list := func(n *yaml.Node, f string, check func(*yaml.Node, string, string)) []string {
		if n.Kind != yaml.SequenceNode {
			p.fail(n, f, "must be a list")
			return nil
		}
		var out []string
		for i, item := range n.Content {
			v := p.str(item, fmt.Sprintf("%s[%d]", f, i))
			if p.err == nil {
				check(item, fmt.Sprintf("%s[%d]", f, i), v)
			}
			out = append(out, v)
		}
		return out
	}
	p.mapping(n, field, map[string]func(*yaml.Node, string){
		"subscribe": func(n *yaml.Node, f string) {
			a.Subscribe = list(n, f, func(n *yaml.Node, f, v string) {
				u, err := url.Parse(v)
				web := err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
				if !web && !emailRE().MatchString(v) {
					p.fail(n, f, "%q is neither an email address nor an http(s) URL", v)
				}
			})
		},
		"topics": func(n *yaml.Node, f string) {
			seen := map[string]bool{}
			a.Topics = list(n, f, func(n *yaml.Node, f, v string) {
				m := topicARNRE().FindStringSubmatch(v)
				switch {
				case m == nil:
					p.fail(n, f, "%q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", v)
				case !regions.Known(m[1]):
					p.fail(n, f, "%q: %q is not an AWS region", v, m[1])
				case seen[m[1]]:
					p.fail(n, f, "a second topic in %s: S3 sends a bucket's events to one topic per region here", m[1])
				}
				if m != nil {
					seen[m[1]] = true
				}
			})
		},
	})
	if p.err == nil && len(a.Subscribe) == 0 && len(a.Topics) == 0 {
		p.fail(n, field, "say where failures go: subscribe: [an email address or https URL], or topics: [an existing topic ARN]")
	}
}

var (
	glueNameRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9_]{1,255}$`) })
	workgroupNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9._-]{1,128}$`) })
	dayRE           = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\d{4}/\d{2}/\d{2}$`) })
)

func (p *parser) athena(n *yaml.Node, field string, a *Athena) {
	*a = Athena{Enabled: true, Database: "trailkeeper", Workgroup: "trailkeeper", From: "2020/01/01"}
	s3 := func(n *yaml.Node, f string) string {
		v := p.str(n, f)
		if p.err == nil && (!strings.HasPrefix(v, "s3://") || len(v) <= len("s3://")) {
			p.fail(n, f, "%q is not an s3:// location (s3://bucket/prefix/)", v)
		}
		return v
	}
	seen := p.mapping(n, field, map[string]func(*yaml.Node, string){
		"database": func(n *yaml.Node, f string) {
			if a.Database = p.str(n, f); p.err == nil && !glueNameRE().MatchString(a.Database) {
				p.fail(n, f, "%q: Athena reads lower-case letters, digits and underscores", a.Database)
			}
		},
		"workgroup": func(n *yaml.Node, f string) {
			if a.Workgroup = p.str(n, f); p.err == nil && !workgroupNameRE().MatchString(a.Workgroup) {
				p.fail(n, f, "%q is not a workgroup name (letters, digits, . _ -)", a.Workgroup)
			}
		},
		"results": func(n *yaml.Node, f string) { a.Results = s3(n, f) },
		"parquet": func(n *yaml.Node, f string) { a.Parquet = s3(n, f) },
		"from": func(n *yaml.Node, f string) {
			if a.From = p.str(n, f); p.err == nil && !dayRE().MatchString(a.From) {
				p.fail(n, f, "%q: give the first day as yyyy/MM/dd", a.From)
			}
		},
		"regions": func(n *yaml.Node, f string) {
			if n.Kind != yaml.SequenceNode {
				p.fail(n, f, "must be a list of regions")
				return
			}
			for i, item := range n.Content {
				a.Regions = append(a.Regions, p.region(item, fmt.Sprintf("%s[%d]", f, i)))
			}
		},
	})
	if p.err == nil && !seen["results"] {
		p.fail(n, field+".results", "missing: where Athena writes query results (s3://bucket/prefix/)")
	}
}

func (p *parser) validate(c *Config) error {
	if c.Watch.Enabled && !c.Alerts.Enabled {
		return &Error{File: c.Path, Field: "watch", Msg: "watch sends what it sees to the alert topic: add an alerts: section (subscribe: or topics:) too"}
	}
	seen := map[string]int{}
	for i := range c.Sources {
		s := &c.Sources[i]
		f := fmt.Sprintf("sources[%d]", i)
		if first, dup := seen[s.AccountID]; dup {
			return &Error{File: c.Path, Line: s.Line, Field: f + ".account_id", Msg: fmt.Sprintf("account %s is listed twice (first on line %d)", s.AccountID, first)}
		}
		seen[s.AccountID] = s.Line
		if s.AccountID == c.Archive.AccountID {
			return &Error{File: c.Path, Line: s.Line, Field: f + ".account_id", Msg: "the archive account cannot also be a source: replication needs two buckets in different accounts"}
		}
		if s.Region == "" {
			s.Region = c.Archive.Region
		}
		if s.Credentials.RoleARN != "" && roleARNRE().FindStringSubmatch(s.Credentials.RoleARN)[1] != s.AccountID {
			return &Error{File: c.Path, Line: s.Line, Field: f + ".role_arn", Msg: "the role belongs to another account than account_id"}
		}
	}
	for i, t := range c.Alerts.Topics {
		if acct := topicARNRE().FindStringSubmatch(t)[2]; acct != c.Archive.AccountID {
			return &Error{File: c.Path, Field: fmt.Sprintf("alerts.topics[%d]", i), Msg: fmt.Sprintf("%s belongs to account %s: give topics of the archive account (%s), whose policy trailkeeper keeps", t, acct, c.Archive.AccountID)}
		}
	}
	if c.Replication.ReplicaKMSKey != "" && !strings.Contains(c.Replication.ReplicaKMSKey, ":"+c.Archive.Region+":"+c.Archive.AccountID+":") {
		return &Error{File: c.Path, Field: "replication.replica_kms_key", Msg: "must be a key of the archive account in the archive region"}
	}
	return nil
}

// Source returns the source with the given account id, or nil.
func (c *Config) Source(account string) *Source {
	for i := range c.Sources {
		if c.Sources[i].AccountID == account {
			return &c.Sources[i]
		}
	}
	return nil
}
