// Command durability measures what the sandbox's durability costs: PUT
// throughput with 8 writers for 3 seconds, in memory, and with a data dir where
// an acknowledged PUT waits until the state holding it is on disk (saves are
// grouped: one snapshot answers every request waiting for it). It prints markdown.
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

func main() {
	fmt.Printf("Machine: %d cores, %s. 8 writers, 3 s each, 1 KiB objects, plain http on loopback.\n\n", runtime.NumCPU(), runtime.Version())
	fmt.Println("| store | PUTs per second | median latency |")
	fmt.Println("|---|---|---|")
	for _, durable := range []bool{false, true} {
		opts := sandbox.Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour}
		name := "memory (no data dir)"
		if durable {
			dir, err := os.MkdirTemp("", "durability")
			check(err)
			defer os.RemoveAll(dir)
			opts.DataDir, name = dir, "data dir, acknowledged = saved and fsync'd"
		}
		rate, median := run(opts)
		fmt.Printf("| %s | %.0f | %s |\n", name, rate, median.Round(10*time.Microsecond))
	}
}

func run(opts sandbox.Options) (float64, time.Duration) {
	ctx := context.Background()
	sb, err := sandbox.New(opts)
	check(err)
	defer sb.Close()
	srv, err := sb.Start("127.0.0.1:0", false)
	check(err)
	defer srv.Close()
	cl := world.S3(srv.URL, "111111111111", "us-east-1")
	_, err = cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")})
	check(err)
	_, err = cl.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("bench"), VersioningConfiguration: &s3types.VersioningConfiguration{Status: "Enabled"}})
	check(err)
	var n atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	end := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	body := bytes.Repeat([]byte("x"), 1024)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				start := time.Now()
				_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String(fmt.Sprintf("w%d/%06d", w, i)), Body: bytes.NewReader(body)})
				check(err)
				n.Add(1)
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	return float64(n.Load()) / 3, lat[len(lat)/2]
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
