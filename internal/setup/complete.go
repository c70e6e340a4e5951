package setup

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Completeness compares what a source's trail bucket holds with what the
// archive holds, key by key, for the log files and digests delivered since a
// day: is the archive complete, and not only is replication working.
type Completeness struct {
	Since   time.Time `json:"since"`
	Regions int       `json:"regions"`
	Source  int       `json:"sourceObjects"`
	// Missing are the source objects not in the archive, oldest first, older
	// than InFlight; Recent those younger (replication may be on its way).
	Missing []Log `json:"-"`
	Recent  []Log `json:"-"`
}

// All is every source object the archive lacks, oldest first.
func (c *Completeness) All() []Log { return append(append([]Log{}, c.Missing...), c.Recent...) }

// InFlight is how long an object may take to reach the archive before it
// counts as missing: Replication Time Control's 15 minutes.
const InFlight = 15 * time.Minute

// Compare lists, per region, the trail's CloudTrail/ and CloudTrail-Digest/
// folders from the day of since onwards in the source bucket and in the
// archive (one listing each, starting after the day's prefix: CloudTrail's keys
// sort by date) and returns what the archive lacks.
func Compare(ctx context.Context, src *awsapi.Clients, archive *awsapi.Clients, archiveBucket string, t Trail, account string, since, now time.Time) (*Completeness, error) {
	c := &Completeness{Since: since}
	base := t.LogPrefix() + account + "/"
	regions := []string{t.HomeRegion}
	if t.MultiRegion {
		// CloudTrail writes a digest every hour in every region of the trail,
		// logs only where there was activity: a region may have digests only.
		set := map[string]bool{}
		for _, kind := range []string{"CloudTrail/", "CloudTrail-Digest/"} {
			found, err := (store.S3{Client: src.S3, Bucket: t.Bucket}).Prefixes(ctx, base+kind)
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", account, err)
			}
			for _, p := range found {
				set[strings.TrimSuffix(strings.TrimPrefix(p, base+kind), "/")] = true
			}
		}
		regions = nil
		for r := range set {
			regions = append(regions, r)
		}
		sort.Strings(regions)
	}
	c.Regions = len(regions)
	for _, r := range regions {
		for _, kind := range []string{"CloudTrail/", "CloudTrail-Digest/"} {
			prefix := base + kind + r + "/"
			from := prefix + since.UTC().Format("2006/01/02/")
			have := map[string]bool{}
			err := listFrom(ctx, archive, archiveBucket, prefix, from, func(l Log) { have[l.Key] = true })
			if awsapi.Code(err) == "NoSuchBucket" {
				err = nil // an archive apply has yet to create holds nothing
			}
			if err != nil {
				return nil, fmt.Errorf("archive: %w", err)
			}
			err = listFrom(ctx, src, t.Bucket, prefix, from, func(l Log) {
				c.Source++
				switch {
				case have[l.Key]:
				case now.Sub(l.At) > InFlight:
					c.Missing = append(c.Missing, l)
				default:
					c.Recent = append(c.Recent, l)
				}
			})
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", account, err)
			}
		}
	}
	sort.Slice(c.Missing, func(i, j int) bool { return c.Missing[i].At.Before(c.Missing[j].At) })
	return c, nil
}

// listFrom lists the keys under prefix after startAfter, all pages.
func listFrom(ctx context.Context, cl *awsapi.Clients, bucket, prefix, startAfter string, fn func(Log)) error {
	pages := s3.NewListObjectsV2Paginator(cl.S3, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix, StartAfter: &startAfter})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			fn(Log{aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToTime(o.LastModified)})
		}
	}
	return nil
}
