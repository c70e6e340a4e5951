package setup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Completeness compares what a source's trail bucket holds with what the
// archive holds, key by key, for the log files and digests delivered since a
// day: is the archive complete, and not only is replication working.
type Completeness struct {
	Since   time.Time
	Regions Regions
	Source  int // log files and digests of the source since the day of Since
	// Missing are the source objects not in the archive, oldest first, older
	// than InFlight; Recent those younger (replication may be on its way).
	Missing []Log
	Recent  []Log
	// Foreign are archive objects under the account's folders that its
	// bucket does not hold: written by another account, or deleted from the
	// trail bucket after they replicated.
	Foreign []string
	// Sample are a few replicas spread over the window, oldest first: whose
	// retention status reads.
	Sample []Log
}

// SampleSize is how many replicas of an account status looks at for their
// retention: spread over the window, so that a week when the default was
// cut shows.
const SampleSize = 6

// All is every source object the archive lacks, oldest first.
func (c *Completeness) All() []Log { return append(append([]Log{}, c.Missing...), c.Recent...) }

// InFlight is how long an object may take to reach the archive before it
// counts as missing: Replication Time Control's 15 minutes.
const InFlight = 15 * time.Minute

// Compare lists, per region, the trail's CloudTrail/ and CloudTrail-Digest/
// folders from the day of since onwards in the source bucket and in the
// archive (one listing each, starting after the day's prefix: CloudTrail's keys
// sort by date) and returns what the archive lacks. With recent, the log
// listing starts at yesterday at the latest and hands recent every log file of
// today and yesterday, so that status reads them once.
func Compare(ctx context.Context, src *awsapi.Clients, archive *awsapi.Clients, archiveBucket string, t Trail, account string,
	since, now time.Time, recent func(Log)) (*Completeness, error) {
	regions, err := TrailRegions(ctx, src, t, account)
	if err != nil {
		return nil, err
	}
	c := &Completeness{Since: since, Regions: regions}
	var archived []Log
	base := t.LogPrefix() + account + "/"
	yesterday := now.UTC().AddDate(0, 0, -1).Format("2006/01/02/")
	for _, folder := range []struct {
		kind    string
		regions []string
	}{{"CloudTrail/", regions.Logs}, {"CloudTrail-Digest/", regions.Digests}} {
		for _, r := range folder.regions {
			prefix := base + folder.kind + r + "/"
			from := prefix + since.UTC().Format("2006/01/02/")
			start := from
			if recent != nil && folder.kind == "CloudTrail/" && prefix+yesterday < start {
				start = prefix + yesterday
			}
			have := map[string]bool{}
			err := listFrom(ctx, archive, archiveBucket, prefix, from, func(l Log) {
				have[l.Key] = true
				archived = append(archived, l)
			})
			if awsapi.Code(err) == "NoSuchBucket" {
				err = nil // an archive apply has yet to create holds nothing
			}
			if err != nil {
				return nil, fmt.Errorf("archive: %w", err)
			}
			err = listFrom(ctx, src, t.Bucket, prefix, start, func(l Log) {
				if recent != nil && folder.kind == "CloudTrail/" && l.Key > prefix+yesterday {
					recent(l)
				}
				if l.Key <= from {
					return // before the window: read for recent only
				}
				c.Source++
				switch {
				case have[l.Key]:
					delete(have, l.Key)
				case now.Sub(l.At) > InFlight:
					c.Missing = append(c.Missing, l)
				default:
					c.Recent = append(c.Recent, l)
				}
			})
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", account, err)
			}
			for k := range have { // listed before the source: no race with new logs
				c.Foreign = append(c.Foreign, k)
			}
		}
	}
	sort.Strings(c.Foreign)
	sort.Slice(archived, func(i, j int) bool { return archived[i].At.Before(archived[j].At) })
	n := min(SampleSize, len(archived))
	for i := range n {
		c.Sample = append(c.Sample, archived[i*(len(archived)-1)/max(1, n-1)])
	}
	sort.Slice(c.Missing, func(i, j int) bool { return c.Missing[i].At.Before(c.Missing[j].At) })
	return c, nil
}

// listFrom lists the keys under prefix after startAfter, all pages.
func listFrom(ctx context.Context, cl *awsapi.Clients, bucket, prefix, startAfter string, fn func(Log)) error {
	pages := s3.NewListObjectsV2Paginator(cl.S3, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix, StartAfter: &startAfter,
		EncodingType: s3types.EncodingTypeUrl})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key, err := store.ListedKey(page.EncodingType, aws.ToString(o.Key))
			if err != nil {
				return fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
			}
			fn(Log{key, aws.ToInt64(o.Size), aws.ToTime(o.LastModified)})
		}
	}
	return nil
}
