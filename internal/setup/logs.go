package setup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/cost"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Log is one log file in a source bucket.
type Log struct {
	Key  string
	Size int64
	At   time.Time
}

// RecentLogs lists the log files of today's and yesterday's day folders (UTC)
// in every region the trail delivers to: the folders under
// [prefix/]AWSLogs/ACCOUNT/CloudTrail/ for a multi-region trail, the home
// region's otherwise.
// It returns the regions it listed.
func RecentLogs(ctx context.Context, cl *awsapi.Clients, t Trail, account string, now time.Time, fn func(Log)) ([]string, error) {
	base := t.LogPrefix() + account + "/CloudTrail/"
	regions := []string{t.HomeRegion}
	if t.MultiRegion {
		found, err := (store.S3{Client: cl.S3, Bucket: t.Bucket}).Prefixes(ctx, base)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", account, err)
		}
		regions = nil
		for _, p := range found {
			regions = append(regions, strings.TrimSuffix(strings.TrimPrefix(p, base), "/"))
		}
	}
	for _, r := range regions {
		for _, day := range []time.Time{now, now.AddDate(0, 0, -1)} {
			p := base + r + "/" + day.UTC().Format("2006/01/02/")
			pages := s3.NewListObjectsV2Paginator(cl.S3, &s3.ListObjectsV2Input{Bucket: &t.Bucket, Prefix: &p})
			for pages.HasMorePages() {
				page, err := pages.NextPage(ctx)
				if err != nil {
					return nil, fmt.Errorf("account %s: list s3://%s/%s: %w", account, t.Bucket, p, err)
				}
				for _, o := range page.Contents {
					fn(Log{aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToTime(o.LastModified)})
				}
			}
		}
	}
	return regions, nil
}

// LastDay is what a cost estimate scales to a month: the count and sizes of
// the log files delivered in the 24 hours before now, and the digests.
func LastDay(ctx context.Context, cl *awsapi.Clients, t Trail, account string, now time.Time) (cost.Source, error) {
	src := cost.Source{Account: account, Region: t.HomeRegion}
	regions, err := RecentLogs(ctx, cl, t, account, now, func(l Log) {
		if now.Sub(l.At) <= 24*time.Hour {
			src.Day.Add(l.Size)
		}
	})
	if err != nil || !t.Validation {
		return src, err
	}
	src.DigestRegions = len(regions)
	if t.MultiRegion { // digests come from every region, logs only from active ones
		found, err := (store.S3{Client: cl.S3, Bucket: t.Bucket}).Prefixes(ctx, t.LogPrefix()+account+"/CloudTrail-Digest/")
		if err != nil {
			return src, fmt.Errorf("account %s: %w", account, err)
		}
		src.DigestRegions = max(len(found), len(regions))
	}
	return src, nil
}
