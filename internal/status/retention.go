package status

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// checkRetention holds each account's replicas to the archive's retention:
// S3 replicates an object's own retention, so a source bucket with a default
// Object Lock retention gives its replicas that one (a day, where the
// archive keeps 400), and a default that was lowered for a while leaves its
// replicas short after it is back. The source's configuration is read, and a
// few replicas spread over the window are looked at (one HeadObject each).
func (ck *checker) checkRetention(ctx context.Context, a *Account, st *setup.SourceState, sample []setup.Log) error {
	want := ck.c.Archive.ObjectLock
	acct, b := st.Config.AccountID, st.Trail.Bucket
	fix := "trailkeeper apply --extend-retention (it extends every short replica; the archive's owner may always extend)"
	switch {
	case st.LockUnread != nil:
		ck.add(a, Warning, "source-lock-unreadable", acct, "grant s3:GetBucketObjectLockConfiguration on the trail bucket to the credentials (docs/security.md)",
			"cannot read bucket %s's Object Lock configuration: a default retention there would replace the archive's on every replica", b)
	case st.Lock != nil && setup.Shorter(*st.Lock, want):
		ck.add(a, Error, "source-retention-shorter", acct, "remove the default retention of bucket "+b+" or make it at least "+want.String()+", then "+fix,
			"bucket %s locks new logs for %s by default, and S3 replicates that retention: their replicas are locked for %s instead of the archive's %s", b, st.Lock, st.Lock, want)
	case st.Lock != nil && st.Lock.Mode == "COMPLIANCE" && want.Mode != "COMPLIANCE":
		ck.add(a, Warning, "source-retention-compliance", acct, "remove the default retention of bucket "+b+", or make it GOVERNANCE",
			"bucket %s locks new logs in COMPLIANCE mode for %s, and S3 replicates that: nobody, the archive's owner included, can delete their replicas before it ends", b, st.Lock)
	}
	if !ck.archive.ObjectLock || ck.archive.Retention == nil {
		return nil // archive-not-locked or archive-no-retention says it for every replica
	}
	archive := ck.e.Archive.S3
	for _, l := range sample {
		h, err := archive.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &ck.c.Archive.Bucket, Key: aws.String(l.Key)})
		if err != nil {
			return accessOr(ck.c.Archive.AccountID, "read the archive's objects (s3:GetObject, for HeadObject, and s3:GetObjectRetention)", err)
		}
		until := aws.ToTime(h.ObjectLockRetainUntilDate)
		if setup.ShortRetention(want, l.At, until) {
			a.ShortRetention++
			if a.ShortRetention == 1 {
				locked := "no retention"
				if !until.IsZero() {
					locked = "a retention until " + until.UTC().Format(time.DateOnly)
				}
				ck.add(a, Error, "replica-retention-short", acct, fix,
					"replica %s (created %s) has %s, short of the archive's %s: Object Lock stops protecting it early",
					l.Key, l.At.UTC().Format(time.DateOnly), locked, want)
			}
		}
	}
	return nil
}
