package setup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/sandbox/sandboxtest"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

const leaseBucket = "lease-test-999999999999"

// leaseOps is an archive bucket with Object Lock in a fresh sandbox.
func leaseOps(t *testing.T) archiveOps {
	t.Helper()
	_, url := sandboxtest.Start(t, sandbox.Options{})
	cl := world.S3(url, "999999999999", "us-east-1")
	if _, err := cl.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(leaseBucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	c := &config.Config{Archive: config.Archive{AccountID: "999999999999", Bucket: leaseBucket}}
	return archiveOps{cl: &awsapi.Clients{S3: cl}, c: c, note: func(string, ...any) {}}
}

func putLease(t *testing.T, o archiveOps, b leaseBody) {
	t.Helper()
	data, _ := json.Marshal(b)
	if _, err := o.cl.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(leaseBucket), Key: aws.String(LeaseKey),
		Body: bytes.NewReader(data), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatal(err)
	}
}

// A holder this process cannot see is alive until its lease expires: another
// PID namespace on the same host (a container with the host's network), where
// PID 4242 may well be a live apply, or a holder from before a reboot whose
// PID is taken; and this very process, if it is the holder.
func TestLeaseOfAHolderThatCannotBeSeen(t *testing.T) {
	host, _ := os.Hostname()
	me := self()
	for name, b := range map[string]leaseBody{
		"another PID namespace": {Host: host, PID: 4242, PIDNS: "pid:[1]", BootID: me.bootID, Started: "5"},
		"another boot":          {Host: host, PID: os.Getpid(), PIDNS: me.pidNS, BootID: "not-this-boot", Started: "5"},
		"another host":          {Host: "laptop-7", PID: 4242, PIDNS: me.pidNS, BootID: me.bootID},
		"an old lease":          {Host: host, PID: 4242}, // written before holders were named this way
		"this process":          {Host: host, PID: os.Getpid(), PIDNS: me.pidNS, BootID: me.bootID, Started: startTicks(os.Getpid())},
	} {
		if b.dead() {
			t.Errorf("%s: the holder was taken for dead", name)
		}
	}
	if startTicks(os.Getpid()) == "" {
		t.Fatal("this process's start time cannot be read")
	}
}

// A lease held by another apply makes the writer wait, and give up naming it.
func TestLeaseHeldByAnotherApply(t *testing.T) {
	o := leaseOps(t)
	defer func(w time.Duration) { leaseWait = w }(leaseWait)
	leaseWait = time.Second
	putLease(t, o, leaseBody{Holder: "trailkeeper apply on laptop-7 (pid 4242)", Host: "laptop-7", PID: 4242, Expires: time.Now().Add(time.Minute)})
	start := time.Now()
	_, err := o.acquireLease(context.Background())
	var conflict *Conflict
	if !errors.As(err, &conflict) || !strings.Contains(conflict.Msg, "laptop-7 (pid 4242)") || conflict.Hint == "" {
		t.Fatalf("acquire under another's lease: %v", err)
	}
	if time.Since(start) < leaseWait {
		t.Fatalf("gave up after %s, before waiting %s", time.Since(start), leaseWait)
	}
}

// A lease that ran out, or whose holder is provably gone (on this host, boot
// and PID namespace: its PID is gone, or is another process now), is taken
// over at once; a released one too, and its policy hash is handed on.
func TestLeaseTakeover(t *testing.T) {
	o := leaseOps(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	me := self()
	for name, b := range map[string]leaseBody{
		"expired": {Holder: "old", Host: "elsewhere", PID: 1, Expires: time.Now().Add(-time.Second)},
		"dead": {Holder: "killed", Host: host, PID: gone.Process.Pid, PIDNS: me.pidNS, BootID: me.bootID, Started: "1",
			Expires: time.Now().Add(time.Minute)},
		"pid reused": {Holder: "killed", Host: host, PID: os.Getpid(), PIDNS: me.pidNS, BootID: me.bootID, Started: "1",
			Expires: time.Now().Add(time.Minute)},
		"released": {Holder: "done", Released: true, Policy: "abc"},
	} {
		putLease(t, o, b)
		ctx, cancel := testenv.Patience(t)
		l, err := o.acquireLease(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s lease: %v", name, err)
		}
		if name == "released" && l.previous != "abc" {
			t.Errorf("the released lease's policy hash was not handed on: %q", l.previous)
		}
		if err := l.release(context.Background(), nil); err != nil {
			t.Fatalf("%s lease: release: %v", name, err)
		}
	}
}

// Two holders at once cannot both win: the conditional write lets one through.
func TestLeaseIsExclusive(t *testing.T) {
	o := leaseOps(t)
	first, err := o.acquireLease(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func(w time.Duration) { leaseWait = w }(leaseWait)
	leaseWait = 300 * time.Millisecond
	if _, err := o.acquireLease(context.Background()); err == nil {
		t.Fatal("a second holder got the lease while the first held it")
	}
	if err := first.release(context.Background(), &policy.Document{Version: "2012-10-17"}); err != nil {
		t.Fatal(err)
	}
	second, err := o.acquireLease(context.Background())
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	// The first holder's lease is gone: its late release must not free the
	// second's, and it says that another apply held the lease meanwhile.
	var conflict *Conflict
	if err := first.release(context.Background(), nil); !errors.As(err, &conflict) {
		t.Fatalf("a stale release: %v", err)
	}
	if _, err := o.acquireLease(context.Background()); err == nil {
		t.Fatal("a stale release freed the current holder's lease")
	}
	second.release(context.Background(), nil)
}
