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
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// A replica's retention is not always the archive's: S3 replicates each
// object's own retention (a source bucket with Object Lock gives its logs
// one), and the archive's default applies only to replicas that arrive
// without one, and only as it stands when they arrive. The archive's owner
// may always extend a retention; that is how apply repairs a short one.

// retainUntil is when the default retention lock ends for an object created at t.
func retainUntil(lock config.ObjectLock, t time.Time) time.Time {
	return t.UTC().AddDate(lock.Years, 0, lock.Days)
}

// retentionSlack absorbs the time between a log's creation in its bucket (the
// replica's Last-Modified) and the replica's own creation, from which S3
// counts the default; a replica a day short is short.
const retentionSlack = 24 * time.Hour

// ShortRetention says whether a replica created at created and locked until
// until falls short of the archive's default retention.
func ShortRetention(lock config.ObjectLock, created, until time.Time) bool {
	return until.Before(retainUntil(lock, created).Add(-retentionSlack))
}

// Shorter says whether a default retention ends before another for objects
// created at the same time.
func Shorter(a, b config.ObjectLock) bool {
	t := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	return retainUntil(a, t).Before(retainUntil(b, t))
}

// ShortReplica is a replica whose retention ends before the archive's default.
type ShortReplica struct {
	Key, VersionID, Mode string
	Created, Until       time.Time
}

// findShortRetention reads the retention of every version under the account's
// folders in the archive (one GetObjectRetention each, 16 at a time) and
// returns those that end before the archive's default would, and how many
// it read.
func findShortRetention(ctx context.Context, cl *awsapi.Clients, c *config.Config, t Trail, account string) ([]ShortReplica, int, error) {
	bucket, lock := c.Archive.Bucket, c.Archive.ObjectLock
	prefix := t.LogPrefix() + account + "/"
	var versions []ShortReplica // every version, with its retention once read
	pages := s3.NewListObjectVersionsPaginator(cl.S3, &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &prefix, EncodingType: s3types.EncodingTypeUrl})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, 0, wrap(c.Archive.AccountID, "list s3://"+bucket+"/"+prefix, err)
		}
		for _, v := range page.Versions {
			key, err := store.ListedKey(page.EncodingType, aws.ToString(v.Key))
			if err != nil {
				return nil, 0, wrap(c.Archive.AccountID, "list s3://"+bucket+"/"+prefix, err)
			}
			versions = append(versions, ShortReplica{Key: key, VersionID: aws.ToString(v.VersionId), Created: aws.ToTime(v.LastModified)})
		}
	}
	err := forEach(ctx, 16, len(versions), func(ctx context.Context, i int) error {
		v := &versions[i]
		r, err := cl.S3.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &bucket, Key: &v.Key, VersionId: &v.VersionID})
		switch {
		case awsapi.Code(err) == "NoSuchObjectLockConfiguration": // no retention at all
		case err != nil:
			return wrap(c.Archive.AccountID, "s3 GetObjectRetention s3://"+bucket+"/"+v.Key, err)
		default:
			v.Until, v.Mode = aws.ToTime(r.Retention.RetainUntilDate), string(r.Retention.Mode)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	var short []ShortReplica
	for _, v := range versions {
		if ShortRetention(lock, v.Created, v.Until) {
			short = append(short, v)
		}
	}
	sort.Slice(short, func(i, j int) bool { return short[i].Key < short[j].Key })
	return short, len(versions), nil
}

// extendRetention locks each replica until the archive's default would have:
// in the archive's mode, or COMPLIANCE where the replica already has it (S3
// allows no step down from COMPLIANCE, and nobody needs one). It never
// shortens: a retention already as long is left alone by ShortRetention.
func extendRetention(ctx context.Context, cl *awsapi.Clients, c *config.Config, short []ShortReplica) error {
	lock := c.Archive.ObjectLock
	return forEach(ctx, 16, len(short), func(ctx context.Context, i int) error {
		r := short[i]
		mode := s3types.ObjectLockRetentionMode(lock.Mode)
		if r.Mode == string(s3types.ObjectLockRetentionModeCompliance) {
			mode = s3types.ObjectLockRetentionModeCompliance
		}
		until := retainUntil(lock, r.Created)
		_, err := cl.S3.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: &c.Archive.Bucket, Key: &r.Key, VersionId: &r.VersionID,
			Retention: &s3types.ObjectLockRetention{Mode: mode, RetainUntilDate: &until}})
		if err != nil {
			return wrap(c.Archive.AccountID, fmt.Sprintf("s3 PutObjectRetention s3://%s/%s (version %s)", c.Archive.Bucket, r.Key, r.VersionID), err)
		}
		return nil
	})
}

// planRetention finds, with --extend-retention, the replicas of each source
// whose retention is short, and plans extending them.
func (p *Plan) planRetention(ctx context.Context, e *Env, sources []*SourceState, removing map[string]bool, opts Options) error {
	if !opts.ExtendRetention {
		return nil
	}
	c := e.Config
	found := make([][]ShortReplica, len(sources))
	err := forEach(ctx, opts.Parallel, len(sources), func(ctx context.Context, i int) error {
		st := sources[i]
		if st == nil || removing[st.Config.AccountID] {
			return nil
		}
		short, seen, err := findShortRetention(ctx, e.Archive, c, st.Trail, st.Config.AccountID)
		if err != nil {
			return err
		}
		found[i] = short
		if len(short) == 0 {
			p.note("account %s: all %d replicas are locked at least until the archive's default (%s) ends", st.Config.AccountID, seen, c.Archive.ObjectLock)
		}
		return nil
	})
	if err != nil {
		return err
	}
	total := 0
	for _, short := range found {
		total += len(short)
	}
	if total > opts.BatchAbove {
		var all []ShortReplica
		for _, short := range found {
			all = append(all, short...)
		}
		return p.planRetentionJobs(ctx, e, retentionJobs(c.Archive.ObjectLock, all), total, opts)
	}
	for i, short := range found {
		if len(short) == 0 {
			continue
		}
		acct := sources[i].Config.AccountID
		p.add(&Step{Account: c.Archive.AccountID, Phase: PhaseRetention, Resource: "replica retention of " + acct, Action: "update",
			Summary: fmt.Sprintf("extend %d replicas locked for less than %s (first %s, until %s)", len(short), c.Archive.ObjectLock, short[0].Key, short[0].Until.Format("2006-01-02")),
			Op:      opOf("archive.extendRetention", retentionArgs{short})})
	}
	return nil
}
