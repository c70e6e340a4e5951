package setup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// S3 has no conditional write for bucket policies, so two applies at once
// would each write their own merge and one would lose. Writers of the archive
// policy take a lease first: an object in the archive bucket written with
// If-None-Match or If-Match, which S3 itself serialises. A holder that dies
// (kill -9) blocks others only until its lease expires.
const (
	LeaseKey = "trailkeeper/policy-lease.json"
	leaseTTL = 2 * time.Minute
)

// leaseBody is the lease object's content. The releaser records a hash of
// the policy it left, so the next holder can tell a stale read (bucket
// configuration reads are eventually consistent) from someone else's edit.
type leaseBody struct {
	Holder   string    `json:"holder"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Nonce    string    `json:"nonce"` // equal bodies would share an ETag
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
	Policy   string    `json:"policySha256,omitempty"`
}

type lease struct {
	o        archiveOps
	etag     string
	previous string // the policy hash the last holder left
	until    time.Time
}

// leaseWait is how long a writer waits for another's lease before giving up;
// leasePoll how often it looks. Variables so that tests can shorten them.
var leaseWait, leasePoll = leaseTTL + 30*time.Second, 500 * time.Millisecond

func newLeaseBody() leaseBody {
	host, _ := os.Hostname()
	return leaseBody{Holder: fmt.Sprintf("trailkeeper apply on %s (pid %d)", host, os.Getpid()), Host: host, PID: os.Getpid(), Nonce: rand.Text()}
}

// dead says whether the lease was left by a process of this machine that no
// longer runs (an apply killed with -9): its lease need not run out.
func (b leaseBody) dead() bool {
	host, _ := os.Hostname()
	if b.Host != host || b.PID <= 0 || b.PID == os.Getpid() {
		return false
	}
	p, err := os.FindProcess(b.PID)
	return err != nil || errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// acquireLease takes the archive policy's lease, waiting while another apply
// holds it.
func (o archiveOps) acquireLease(ctx context.Context) (*lease, error) {
	b, key := o.bucket(), LeaseKey
	deadline := time.Now().Add(leaseWait)
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
			return &lease{o: o, etag: aws.ToString(put.ETag), previous: body.Policy, until: mine.Expires}, nil
		case "PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey":
			continue // another writer was quicker: look again
		default:
			return nil, wrap(o.acct(), "s3 PutObject "+b+"/"+key, err)
		}
	}
}

// release hands the lease back, recording the policy this holder left.
// A lease that expired and was taken over is left to its new holder.
func (l *lease) release(ctx context.Context, left *policy.Document) error {
	b, key := l.o.bucket(), LeaseKey
	body := newLeaseBody()
	body.Released, body.Policy = true, policyHash(left)
	data, _ := json.Marshal(body)
	_, err := l.o.cl.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &key, Body: bytes.NewReader(data),
		ContentType: aws.String("application/json"), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32, IfMatch: aws.String(l.etag)})
	if c := awsapi.Code(err); c == "PreconditionFailed" || c == "ConditionalRequestConflict" {
		return nil
	}
	if err != nil {
		return wrap(l.o.acct(), "s3 PutObject "+b+"/"+key, err)
	}
	return nil
}

// valid says whether there is time left to write under the lease.
func (l *lease) valid() bool { return time.Until(l.until) > leaseTTL/2 }

func policyHash(d *policy.Document) string {
	if d == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(canonicalPolicy(d)))
	return hex.EncodeToString(sum[:])
}
