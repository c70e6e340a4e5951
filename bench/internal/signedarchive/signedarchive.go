// Package signedarchive is what the verify benchmarks share: the trailkeeper
// binary built as a user runs it, the sandbox with one versioned archive
// bucket, CloudTrail's public keys for the fixtures' signing key, and the
// environment that points the binary at the sandbox.
package signedarchive

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/verify"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// Account is the archive's account.
const Account = "999999999999"

// Build builds trailkeeper into work and returns its path.
func Build(work string) string {
	bin := filepath.Join(work, "trailkeeper")
	build := exec.Command("go", "build", "-o", bin, "./cmd/trailkeeper")
	build.Stderr = os.Stderr
	Check(build.Run())
	return bin
}

// Archive is a running sandbox with the archive bucket.
type Archive struct {
	Sandbox *sandbox.Sandbox
	URL     string
	S3      *s3.Client
	Bucket  string
	stop    func()
}

// Start starts a sandbox whose CloudTrail signs with key and creates the
// versioned bucket aggregation-cloudtrail-logs-ACCOUNT in us-east-1.
func Start(ctx context.Context, key *rsa.PrivateKey) *Archive {
	sb, err := sandbox.New(sandbox.Options{SigningKey: key, DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	Check(err)
	srv, err := sb.Start("127.0.0.1:0", false)
	Check(err)
	a := &Archive{Sandbox: sb, URL: srv.URL, S3: world.S3(srv.URL, Account, "us-east-1"), Bucket: "aggregation-cloudtrail-logs-" + Account,
		stop: func() { srv.Close(); sb.Close() }}
	_, err = a.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &a.Bucket})
	Check(err)
	_, err = a.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &a.Bucket, VersioningConfiguration: &s3types.VersioningConfiguration{Status: "Enabled"}})
	Check(err)
	return a
}

// Close stops the sandbox.
func (a *Archive) Close() { a.stop() }

// Env is the binary's environment: the archive account's credentials and
// the sandbox's endpoint, no shared config.
func (a *Archive) Env() []string {
	return append(os.Environ(), "AWS_ACCESS_KEY_ID="+Account, "AWS_SECRET_ACCESS_KEY=x", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL="+a.URL, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
}

// PublicKeys writes the file verify --public-keys reads: b's key in each region.
func PublicKeys(path string, b fixture.Builder, regions ...string) {
	var list []verify.PublicKey
	for _, r := range regions {
		list = append(list, verify.PublicKey{Region: r, Fingerprint: b.Fingerprint(), Value: base64.StdEncoding.EncodeToString(b.PublicKeyDER())})
	}
	data, _ := json.Marshal(list)
	Check(os.WriteFile(path, data, 0o600))
}

// ForEach runs fn for 0..n-1 on workers goroutines.
func ForEach(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// Check ends the benchmark on an error.
func Check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
