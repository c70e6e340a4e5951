package setup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/sandbox/sandboxtest"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// Compare finds what the archive lacks in every region of a multi-region
// trail, including a region with digests only (CloudTrail writes a digest
// every hour in every region, logs only where something happened), and only
// from the window's first day.
func TestCompareFindsDigestOnlyRegions(t *testing.T) {
	ctx := context.Background()
	_, url := sandboxtest.Start(t, sandbox.Options{})
	src, arch := world.S3(url, "111111111111", "ap-northeast-1"), world.S3(url, "999999999999", "ap-northeast-1")
	loc := &s3types.CreateBucketConfiguration{LocationConstraint: "ap-northeast-1"}
	for _, b := range []struct {
		cl   *s3.Client
		name string
	}{{src, "trail"}, {arch, "archive"}} {
		if _, err := b.cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.name), CreateBucketConfiguration: loc}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(cl *s3.Client, bucket, key string) {
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	base := "AWSLogs/111111111111/"
	log := base + "CloudTrail/ap-northeast-1/2026/12/02/111111111111_CloudTrail_ap-northeast-1_20261202T0000Z_a.json.gz"
	digest := base + "CloudTrail-Digest/eu-west-3/2026/12/02/111111111111_CloudTrail-Digest_eu-west-3_Members_ap-northeast-1_20261202T000000Z.json.gz"
	old := base + "CloudTrail/ap-northeast-1/2026/11/01/111111111111_CloudTrail_ap-northeast-1_20261101T0000Z_a.json.gz"
	for _, k := range []string{log, digest, old} {
		put(src, "trail", k)
	}
	put(arch, "archive", log)
	tr := Trail{Bucket: "trail", HomeRegion: "ap-northeast-1", MultiRegion: true, Validation: true}
	c, err := Compare(ctx, &awsapi.Clients{S3: src}, &awsapi.Clients{S3: arch}, "archive", tr, "111111111111",
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if all := c.All(); c.Regions.Count() != 2 || c.Source != 2 || len(all) != 1 || all[0].Key != digest {
		t.Fatalf("regions %d, source %d, missing %v; want 2 regions, 2 objects since Dec 1, the digest missing", c.Regions.Count(), c.Source, all)
	}
}
