// Package sandbox is a local multi-account AWS: S3 (with cross-account
// replication, Object Lock, Block Public Access and event notifications), S3
// Batch Operations (replication and Object Lock retention jobs), IAM, STS,
// CloudFormation, CloudTrail (with log and signed digest delivery), SNS,
// EventBridge, Lambda (custom runtimes run as child processes), Glue, Athena
// (its catalog and named queries, not queries) and IAM Access Analyzer's
// CheckNoPublicAccess, speaking the real wire protocols so that the AWS CLI
// and SDKs work against it unchanged. It enforces IAM and bucket policies with
// internal/policy and never imports the tool's own setup code, so it cannot share
// the tool's assumptions about AWS.
package sandbox

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"sync"
	"sync/atomic"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// Options configure a sandbox. The zero value is a usable in-memory sandbox.
type Options struct {
	// DataDir keeps state and objects across restarts; empty means in memory.
	DataDir string
	// DeliveryInterval is how often CloudTrail delivers log files (AWS: about 5 minutes).
	DeliveryInterval time.Duration
	// DigestInterval is how often CloudTrail delivers digest files (AWS: 1 hour).
	DigestInterval time.Duration
	// BackgroundEvents adds that many generated management events per logging
	// trail and delivery, so that logs are not empty when nobody calls the API.
	BackgroundEvents int
	// FaultRate makes that share of requests fail with throttling or internal errors.
	FaultRate float64
	// Latency delays every answer.
	Latency time.Duration
	// InsecureHTTP counts plain-http requests as aws:SecureTransport=false, as AWS
	// would; by default loopback http counts as secure (see docs/sandbox.md).
	InsecureHTTP bool
	// SigningKey, when set, is CloudTrail's digest signing key in every region,
	// so that benchmarks can write chains the sandbox's ListPublicKeys vouches for.
	SigningKey *rsa.PrivateKey
	// SpillAbove is the size above which an upload is streamed to a file
	// (under DataDir, else a temporary directory) instead of kept in memory:
	// 0 means 8 MiB.
	SpillAbove int64
	// PageSize caps the entries of an S3 listing page (AWS: 1,000), so that a
	// client that drops a continuation fails its test on a small archive.
	PageSize int
	// DefaultAccount acts for access keys that are not 12 digits.
	DefaultAccount string
	// Logger receives one line per request at debug level; nil discards.
	Logger *slog.Logger
}

// Sandbox is one local AWS. Create it with New, serve it with Handler or Start.
type Sandbox struct {
	opts   Options
	mu     sync.Mutex
	st     *state
	blobs  blobStore
	keys   map[string][]*signingKey  // CloudTrail signing keys per region, the current last
	events map[string][]pendingEvent // trail ARN + region -> undelivered events

	replQueue   chan replicationJob
	replPending atomic.Int64
	snsQueue    chan snsMessage
	snsSign     snsSigner
	calls       callCounter
	// Durability: changes counts changes to the state, saved how many of
	// them the data dir holds; commits wakes the saver, and saves tell waiters.
	changes, saved atomic.Uint64
	commits        chan struct{}
	savedMu        sync.Mutex
	savedCond      *sync.Cond
	saveErr        error // the last save's failure, reported to waiters
	stop           chan struct{}
	done           sync.WaitGroup
	closeOnce      sync.Once
	rng            *rand.Rand
	rngMu          sync.Mutex
	faultRate      atomic.Uint64 // math.Float64bits of the share of requests that fail
	latency        atomic.Int64  // time.Duration added to every answer
	slowMu         sync.Mutex
	slow           []slowRule                 // requests to hold back, as a slow network would
	url            atomic.Value               // string: where Start serves, for Lambda functions to call back
	stopCtx        context.Context            // cancelled by Close, for background invocations
	queries        map[string]*queryExecution // Athena's, by ACCOUNT/REGION/id; kept in memory only
	stopCtxOnce    sync.Once
	codeMu         sync.Mutex
	codeDirs       map[string]string // Lambda code unpacked, by its hash

	// Built once in New: the handlers of each service, and parsed policy
	// documents by text (guarded by mu), so requests do not redo either.
	iamHandlers, stsHandlers, cfnHandlers, snsHandlers map[string]queryHandler
	jsonServices                                       map[string]*jsonService // by service name, jsonproto.go
	subresources                                       map[string]bucketHandler
	parsed                                             map[parsedKey]*policy.Document
}

type parsedKey struct {
	kind policy.Kind
	doc  string
}

// parse returns a parsed policy document, cached by its text. Callers hold s.mu.
func (s *Sandbox) parse(doc string, kind policy.Kind) (*policy.Document, error) {
	k := parsedKey{kind, doc}
	if d, ok := s.parsed[k]; ok {
		return d, nil
	}
	d, err := policy.Parse([]byte(doc), kind)
	if err != nil {
		return nil, err
	}
	if len(s.parsed) > 10000 { // documents come and go; keep the cache bounded
		clear(s.parsed)
	}
	s.parsed[k] = d
	return d, nil
}

// SetFaultRate changes the share of requests that fail, e.g. after a test has
// built its starting point without faults.
func (s *Sandbox) SetFaultRate(rate float64) { s.faultRate.Store(math.Float64bits(rate)) }

// SetLatency changes the delay of every answer, e.g. after a benchmark has
// written its archive at full speed.
func (s *Sandbox) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

func (s *Sandbox) currentFaultRate() float64 { return math.Float64frombits(s.faultRate.Load()) }

// slowRule holds back the next Count S3 requests of a method on a bucket
// subresource (PUT ?policy) by Delay before they are handled, as if they
// crossed a slow network: the request takes effect only when it arrives.
type slowRule struct {
	Method, Subresource string
	Delay               time.Duration
	Count               int
}

// SlowDown holds back the next n S3 requests of method on subresource by d.
func (s *Sandbox) SlowDown(method, subresource string, d time.Duration, n int) {
	s.slowMu.Lock()
	s.slow = append(s.slow, slowRule{method, subresource, d, n})
	s.slowMu.Unlock()
}

// holdBack is how long a request waits under the slow rules, counting it.
func (s *Sandbox) holdBack(r *http.Request) time.Duration {
	s.slowMu.Lock()
	defer s.slowMu.Unlock()
	for i, rule := range s.slow {
		if rule.Count > 0 && r.Method == rule.Method && r.URL.Query().Has(rule.Subresource) {
			s.slow[i].Count--
			return rule.Delay
		}
	}
	return 0
}

// New creates a sandbox and starts its background work (replication, CloudTrail
// delivery, persistence). Call Close to stop it.
func New(opts Options) (*Sandbox, error) {
	if opts.DeliveryInterval <= 0 {
		opts.DeliveryInterval = 5 * time.Minute
	}
	if opts.DigestInterval <= 0 {
		opts.DigestInterval = time.Hour
	}
	if opts.DefaultAccount == "" {
		opts.DefaultAccount = "000000000000"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FaultRate < 0 || opts.FaultRate > 1 {
		return nil, fmt.Errorf("fault rate %v: must be between 0 and 1", opts.FaultRate)
	}
	s := &Sandbox{
		opts:      opts,
		st:        newState(),
		keys:      map[string][]*signingKey{},
		events:    map[string][]pendingEvent{},
		replQueue: make(chan replicationJob, 1<<16),
		snsQueue:  make(chan snsMessage, 4096),
		stop:      make(chan struct{}), codeDirs: map[string]string{},
		rng:     rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		calls:   callCounter{m: map[string]int{}},
		commits: make(chan struct{}, 1),
	}
	s.savedCond = sync.NewCond(&s.savedMu)
	s.SetFaultRate(opts.FaultRate)
	s.SetLatency(opts.Latency)
	s.iamHandlers, s.stsHandlers, s.cfnHandlers, s.snsHandlers = s.iamActions(), s.stsActions(), s.cfnActions(), s.snsActions()
	s.subresources = s.bucketSubresources()
	s.jsonServices = s.newJSONServices()
	s.parsed = map[parsedKey]*policy.Document{}
	if opts.DataDir == "" {
		s.blobs = &memBlobs{m: map[string]memBlob{}}
	} else {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.resumeReplications()
	s.resumeJobs()
	s.mu.Unlock()
	s.done.Add(5)
	go s.scheduler()
	go s.replicator()
	go s.snsSender()
	go s.cloudtrailLoop()
	go s.persistLoop()
	return s, nil
}

// Close stops background work and saves state.
func (s *Sandbox) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.done.Wait()
		s.removeCode()
		err = s.save()
		if m, ok := s.blobs.(*memBlobs); ok {
			m.close()
		}
	})
	return err
}

// endpointURL is where the sandbox serves ("" before Start).
func (s *Sandbox) endpointURL() string {
	u, _ := s.url.Load().(string)
	return u
}

// Handler serves every emulated service on one endpoint, like LocalStack.
func (s *Sandbox) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Server is a running sandbox endpoint.
type Server struct {
	URL    string
	CACert []byte // PEM of the certificate authority, for https servers
	srv    *http.Server
	ln     net.Listener
}

// Close stops the listener.
func (srv *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.srv.Shutdown(ctx)
}

// Start serves the sandbox on addr ("127.0.0.1:0" picks a free port). With tls, the
// server uses a certificate it generates, so aws:SecureTransport is true as on AWS.
func (s *Sandbox) Start(addr string, useTLS bool) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	out := &Server{srv: &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}, ln: ln}
	scheme := "http"
	if useTLS {
		cert, caPEM, err := s.certificate()
		if err != nil {
			ln.Close()
			return nil, err
		}
		out.CACert = caPEM
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	out.URL = scheme + "://" + ln.Addr().String()
	s.url.CompareAndSwap(nil, out.URL)
	go out.srv.Serve(ln)
	return out, nil
}

// callCounter counts requests per account and action, for tests that count API calls.
type callCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *callCounter) add(account, action string) {
	c.mu.Lock()
	c.m[account+" "+action]++
	c.mu.Unlock()
}

// Calls returns how many requests each account made per action ("ACCOUNT Action").
func (s *Sandbox) Calls() map[string]int {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	out := make(map[string]int, len(s.calls.m))
	for k, v := range s.calls.m {
		out[k] = v
	}
	return out
}

// WriteCalls is the part of Calls that changed something: Put, Create, Delete,
// Update, Start, Stop, Tag and Untag actions.
func (s *Sandbox) WriteCalls() map[string]int {
	out := map[string]int{}
	for k, n := range s.Calls() {
		_, action, _ := strings.Cut(k, " ")
		for _, verb := range []string{"Put", "Create", "Delete", "Update", "Start", "Stop", "Tag", "Untag"} {
			if strings.HasPrefix(action, verb) {
				out[k] += n
			}
		}
	}
	return out
}

// ResetCalls clears the call counts.
func (s *Sandbox) ResetCalls() {
	s.calls.mu.Lock()
	s.calls.m = map[string]int{}
	s.calls.mu.Unlock()
}

func (s *Sandbox) chance(p float64) bool {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < p
}

// blobID names the bytes of one version of one object.
func blobID(bucket, versionID string, key string) string {
	return fmt.Sprintf("%x", sha256Sum([]byte(bucket+"\x00"+key+"\x00"+versionID)))
}

type snapshot struct {
	State *state            `json:"state"`
	Keys  map[string][]byte `json:"keys"` // PKCS#1 DER of the signing keys
}

func (s *Sandbox) load() error {
	dir := s.opts.DataDir
	if err := os.MkdirAll(filepath.Join(dir, "objects"), 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	s.blobs = dirBlobs{dir: filepath.Join(dir, "objects")}
	// Uploads and copies a crash cut short left these behind.
	for _, pattern := range []string{"upload-*.spool", "*.tmp"} {
		stale, _ := filepath.Glob(filepath.Join(dir, "objects", pattern))
		for _, f := range stale {
			os.Remove(f)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil || snap.State == nil {
		return fmt.Errorf("data dir %s: state.json is damaged (%v); move it away to start afresh", dir, err)
	}
	s.st = snap.State
	if s.st.Keys == nil {
		s.st.Keys = map[string]*userKey{}
	}
	if s.st.Topics == nil {
		s.st.Topics = map[string]*topic{}
	}
	if s.st.Glue == nil {
		s.st.Glue = map[string]*glueDatabase{}
	}
	if s.st.Workgroups == nil {
		s.st.Workgroups = map[string]*workgroup{}
	}
	if s.st.NamedQueries == nil {
		s.st.NamedQueries = map[string]*namedQuery{}
	}
	for _, t := range s.st.Topics {
		t.policyDoc, _ = policy.Parse([]byte(t.Policy), policy.Resource)
	}
	for _, a := range s.st.Accounts {
		if a.Users == nil {
			a.Users = map[string]*user{}
		}
	}
	for _, b := range s.st.Buckets {
		if b.Objects == nil {
			b.Objects = map[string][]*version{}
		}
		if b.Uploads == nil {
			b.Uploads = map[string]*upload{}
		}
		if b.Policy != "" {
			b.policyDoc, _ = parseBucketPolicyDoc(b.Policy)
		}
		if b.Notification != "" {
			b.notification = new(notificationConfig)
			xml.Unmarshal([]byte(b.Notification), b.notification)
		}
	}
	if err := s.loadKeys(snap.Keys); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	return nil
}

func (s *Sandbox) save() error {
	if s.opts.DataDir == "" {
		return nil
	}
	s.mu.Lock()
	upTo := s.changes.Load() // every change so far is in this snapshot
	snap := snapshot{State: s.st, Keys: s.keyDER()}
	data, err := json.Marshal(snap)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	path := filepath.Join(s.opts.DataDir, "state.json")
	err = writeSynced(path+".tmp", data)
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	s.savedMu.Lock()
	if s.saveErr = err; err == nil {
		s.saved.Store(max(s.saved.Load(), upTo))
	}
	s.savedCond.Broadcast()
	s.savedMu.Unlock()
	return err
}

// writeSynced writes a file and flushes it to the disk.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// changed records a change of the state, for the saver.
func (s *Sandbox) changed() { s.changes.Add(1) }

// durable waits until the data dir holds every change made so far: a request
// that changed something is answered only then, so an acknowledged write
// survives kill -9. Saves are grouped: one snapshot answers every request
// waiting for it.
func (s *Sandbox) durable() error {
	if s.opts.DataDir == "" {
		return nil
	}
	target := s.changes.Load()
	s.savedMu.Lock()
	defer s.savedMu.Unlock()
	for s.saved.Load() < target {
		select {
		case s.commits <- struct{}{}:
		default: // a save is already asked for
		}
		s.savedCond.Wait()
		if s.saved.Load() < target && s.saveErr != nil {
			return s.saveErr
		}
	}
	return nil
}

// persistLoop saves the state when a request waits for it, and otherwise
// shortly after it changes (replications, deliveries).
func (s *Sandbox) persistLoop() {
	defer s.done.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.commits:
		case <-t.C:
		}
		if s.changes.Load() > s.saved.Load() {
			if err := s.save(); err != nil {
				s.opts.Logger.Error("save sandbox state", "err", err)
			}
		}
	}
}
