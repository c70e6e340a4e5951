package setup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// S3 has no conditional write for bucket policies, so two applies at once
// would each write their own merge and one would lose. Writers of the archive
// policy take a lease first: an object in the archive bucket written with
// If-None-Match or If-Match, which S3 itself serialises. A holder that dies
// (kill -9) blocks others only until its lease expires.
const (
	LeaseKey = store.StatePrefix + "policy-lease.json"
	leaseTTL = 2 * time.Minute
)

// leaseBody is the lease object's content. The releaser records a hash of
// the policy it left, so the next holder can tell a stale read (bucket
// configuration reads are eventually consistent) from someone else's edit.
// A holder is named by more than host and PID: two applies on one host may
// run in different PID namespaces (containers with the host's network), where
// the same PID is another process or none that can be seen.
type leaseBody struct {
	Holder   string    `json:"holder"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	PIDNS    string    `json:"pidNamespace,omitempty"` // /proc/self/ns/pid, e.g. pid:[4026531836]
	BootID   string    `json:"bootId,omitempty"`       // /proc/sys/kernel/random/boot_id
	Started  string    `json:"startTicks,omitempty"`   // field 22 of /proc/self/stat: tells a reused PID apart
	Nonce    string    `json:"nonce"`                  // equal bodies would share an ETag
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
	Policy   string    `json:"policySha256,omitempty"`
}

type lease struct {
	o        archiveOps
	etag     string
	previous string // the policy hash the last holder left
	until    time.Time
	body     leaseBody
}

// leaseWait is how long a writer waits for another's lease before giving up;
// leasePoll how often it looks. Variables so that tests can shorten them.
var leaseWait, leasePoll = leaseTTL + 30*time.Second, 500 * time.Millisecond

func newLeaseBody() leaseBody {
	host, _ := os.Hostname()
	me := self()
	return leaseBody{Holder: fmt.Sprintf("trailkeeper apply on %s (pid %d)", host, os.Getpid()), Host: host, PID: os.Getpid(),
		PIDNS: me.pidNS, BootID: me.bootID, Started: startTicks(os.Getpid()), Nonce: rand.Text()}
}

// identity is what names this process's view of the machine.
type identity struct{ pidNS, bootID string }

func self() identity {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return identity{pidNS: ns, bootID: strings.TrimSpace(string(boot))}
}

// startTicks is when a process started, in clock ticks since boot (field 22
// of /proc/PID/stat), or "" where it cannot be read.
func startTicks(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces: count from after its ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19] // fields 3.. follow ')': field 22 is the 20th of them
}

// dead says whether the lease was left by a process that provably no longer
// runs (an apply killed with -9): one of this host, boot and PID namespace
// whose PID is gone or is now another process. A holder that cannot be seen
// from here (another namespace, another boot, another machine) is alive
// until its lease expires.
func (b leaseBody) dead() bool {
	host, _ := os.Hostname()
	me := self()
	if b.Host != host || b.PID <= 0 || b.PIDNS == "" || b.BootID == "" || b.PIDNS != me.pidNS || b.BootID != me.bootID {
		return false
	}
	if b.PID == os.Getpid() {
		return b.Started != startTicks(os.Getpid())
	}
	started := startTicks(b.PID)
	return started == "" || started != b.Started
}

// acquireLease takes the archive policy's lease, waiting while another apply
// holds it (and saying so, once).
func (o archiveOps) acquireLease(ctx context.Context) (*lease, error) {
	b, key := o.bucket(), LeaseKey
	deadline := time.Now().Add(leaseWait)
	told := false
	for {
		var body leaseBody
		get, err := o.cl.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &key})
		held := false
		var etag string
		switch {
		case awsapi.Code(err) == "NoSuchKey":
		case err != nil:
			return nil, wrap(o.acct(), "s3 GetObject "+b+"/"+key, err)
		default:
			data, rerr := io.ReadAll(io.LimitReader(get.Body, 64<<10))
			get.Body.Close()
			if rerr != nil {
				return nil, wrap(o.acct(), "s3 GetObject "+b+"/"+key, rerr)
			}
			etag = aws.ToString(get.ETag)
			// An unreadable lease is treated as expired: it cannot name a holder.
			if json.Unmarshal(data, &body) == nil && !body.Released && time.Now().Before(body.Expires) && !body.dead() {
				held = true
			}
		}
		if held {
			if !told && o.waiting != nil {
				o.waiting(fmt.Sprintf("waiting for the archive policy lease: %s holds it until %s", body.Holder, body.Expires.Format(time.RFC3339)))
				told = true
			}
			if time.Now().After(deadline) {
				return nil, &Conflict{Account: o.acct(), Msg: fmt.Sprintf("%s is changing the archive policy (lease s3://%s/%s until %s)",
					body.Holder, b, key, body.Expires.Format(time.RFC3339)), Hint: "run apply again when it has finished"}
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(leasePoll):
			}
			continue
		}
		mine := newLeaseBody()
		mine.Expires = time.Now().Add(leaseTTL).UTC()
		data, _ := json.Marshal(mine)
		in := &s3.PutObjectInput{Bucket: &b, Key: &key, Body: bytes.NewReader(data), ContentType: aws.String("application/json"),
			ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32} // Object Lock requires one
		if etag == "" {
			in.IfNoneMatch = aws.String("*")
		} else {
			in.IfMatch = aws.String(etag)
		}
		put, err := o.cl.S3.PutObject(ctx, in)
		switch awsapi.Code(err) {
		case "":
			return &lease{o: o, etag: aws.ToString(put.ETag), previous: body.Policy, until: mine.Expires, body: mine}, nil
		case "PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey":
			continue // another writer was quicker: look again
		default:
			return nil, wrap(o.acct(), "s3 PutObject "+b+"/"+key, err)
		}
	}
}

// release hands the lease back, recording the policy this holder left. A
// lease someone else holds by now (taken over after it ran out) is theirs:
// that is a conflict, since their write may have raced with this holder's.
func (l *lease) release(ctx context.Context, left *policy.Document) error {
	b, key := l.o.bucket(), LeaseKey
	body := l.body
	body.Released, body.Policy = true, policyHash(left)
	data, _ := json.Marshal(body)
	_, err := l.o.cl.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &key, Body: bytes.NewReader(data),
		ContentType: aws.String("application/json"), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32, IfMatch: aws.String(l.etag)})
	if c := awsapi.Code(err); c == "PreconditionFailed" || c == "ConditionalRequestConflict" {
		return &Conflict{Account: l.o.acct(), Msg: fmt.Sprintf("the archive policy lease s3://%s/%s was taken over before this apply gave it back: another apply may have changed the policy at the same time", b, key),
			Hint: "run apply again: it reads the policy as it is now and puts back whatever is missing"}
	}
	if err != nil {
		return wrap(l.o.acct(), "s3 PutObject "+b+"/"+key, err)
	}
	return nil
}

// valid says whether there is time left to write under the lease.
func (l *lease) valid() bool { return time.Until(l.until) > leaseTTL/2 }

// stillHeld reads the lease again just before the policy is written: it must
// be this holder's, unchanged.
func (l *lease) stillHeld(ctx context.Context) error {
	b, key := l.o.bucket(), LeaseKey
	out, err := l.o.cl.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: &key})
	if err != nil && awsapi.Code(err) != "NotFound" && awsapi.Code(err) != "NoSuchKey" {
		return wrap(l.o.acct(), "s3 HeadObject "+b+"/"+key, err)
	}
	if err != nil || aws.ToString(out.ETag) != l.etag {
		return &Conflict{Account: l.o.acct(), Msg: "another apply took the archive policy lease over before this one wrote the policy",
			Hint: "run apply again when the other has finished"}
	}
	return nil
}

func policyHash(d *policy.Document) string {
	if d == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(canonicalPolicy(d)))
	return hex.EncodeToString(sum[:])
}
