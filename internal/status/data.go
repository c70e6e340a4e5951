package status

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// RTCThreshold is Replication Time Control's promise: 15 minutes.
const RTCThreshold = 15 * time.Minute

type logObject struct {
	key string
	at  time.Time
}

// readTrail lists the trail's folders once (setup.Compare): the window's log
// files and digests against the archive, and today's and yesterday's log files,
// which also give the last day's volume for the cost estimate.
func (ck *checker) readTrail(ctx context.Context, a *Account, st *setup.SourceState, cl *awsapi.Clients) (*setup.Completeness, []logObject, error) {
	t, acct := st.Trail, st.Config.AccountID
	var logs []logObject
	c, err := setup.Compare(ctx, cl, ck.e.Archive, ck.c.Archive.Bucket, t, acct, ck.opts.Since, ck.opts.Now, func(l setup.Log) {
		logs = append(logs, logObject{l.Key, l.At})
		if ck.opts.Now.Sub(l.At) <= 24*time.Hour {
			a.LastDay.Add(l.Size)
		}
	})
	if err != nil {
		return nil, nil, accessOr(acct, "list the trail bucket and the archive (s3:ListBucket on both)", err)
	}
	a.digestRegions = len(c.Regions.Digests)
	return c, logs, nil
}

// checkData looks at the newest log files: a HeadObject on the newest few in
// the source, and one in the archive for each until one is found there.
func (ck *checker) checkData(ctx context.Context, a *Account, st *setup.SourceState, cl *awsapi.Clients, logs []logObject) error {
	t, acct := st.Trail, st.Config.AccountID
	base := t.LogPrefix() + acct + "/CloudTrail/"
	sort.Slice(logs, func(i, j int) bool { return logs[i].at.After(logs[j].at) })
	if len(logs) == 0 {
		if t.Logging {
			ck.add(a, Warning, "no-recent-logs", acct, "make sure the account has activity; check the trail's event selectors",
				"no log files today or yesterday under s3://%s/%s", t.Bucket, base)
		}
		return nil
	}
	a.NewestSourceLog = &logs[0].at
	arch := ck.e.Archive.S3
	var failed []string
	for i, l := range logs {
		if i >= ck.opts.Recent {
			break
		}
		h, err := cl.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &t.Bucket, Key: &l.key})
		if err != nil {
			return accessOr(acct, "read the trail's log files (s3:GetObject, which HeadObject needs)", fmt.Errorf("head s3://%s/%s: %w", t.Bucket, l.key, err))
		}
		status := string(h.ReplicationStatus)
		if status == "" {
			status = "NONE"
		}
		a.Recent[status]++
		switch status {
		case "PENDING":
			if age := ck.opts.Now.Sub(l.at); age > RTCThreshold {
				ck.add(a, Error, "replication-pending", acct, "check the rule's OperationsPendingReplication metric in CloudWatch (AWS/S3, RuleId "+setup.RuleID+")",
					"%s has been PENDING for %s, longer than the 15-minute RTC threshold", l.key, age.Round(time.Minute))
			}
		case "FAILED":
			failed = append(failed, l.key)
			// NONE: written before the rule or outside it; archive-incomplete counts
			// those, and the rule's own findings say when it does not cover the trail.
		}
	}
	if len(failed) > 0 {
		ck.add(a, Error, "replication-failed", acct, failedFix,
			"%d of the newest %d log files FAILED to replicate (e.g. %s); S3 never retries FAILED objects", len(failed), min(len(logs), ck.opts.Recent), failed[0])
	}
	// The newest log file that is in the archive gives the lag.
	for i, l := range logs {
		if i >= ck.opts.Recent {
			break
		}
		h, err := arch.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &ck.c.Archive.Bucket, Key: &l.key})
		if err == nil {
			at := aws.ToTime(h.LastModified)
			a.NewestArchiveLog = &at
			lag := int64(logs[0].at.Sub(l.at).Seconds())
			a.LagSeconds = &lag
			break
		}
		if code := awsapi.Code(err); code != "NotFound" && code != "NoSuchKey" && code != "404" {
			return accessOr(ck.c.Archive.AccountID, "read the archive's log files (s3:GetObject, which HeadObject needs)", fmt.Errorf("head s3://%s/%s: %w", ck.c.Archive.Bucket, l.key, err))
		}
	}
	if a.NewestArchiveLog == nil && a.Recent["COMPLETED"] == 0 {
		ck.add(a, Error, "nothing-archived", acct, "see the findings above; then trailkeeper backfill --account "+acct+" brings in what replication missed",
			"none of the newest %d log files of account %s is in the archive", min(len(logs), ck.opts.Recent), acct)
	}
	return nil
}

// failedFix lists what each replication failure reason needs; on AWS the reason
// is in S3 replication events, not on the object.
const failedFix = "find the reason in the s3:Replication:OperationFailedReplication events of the source bucket " +
	"(AssumeRoleNotPermitted: fix the role's trust; SrcGetObjectNotPermitted: the role's source permissions; " +
	"DstPutObjectNotPermitted: the archive policy grant; DstBucketUnversioned: archive versioning; " +
	"DstKmsKeyNotFound: replication.replica_kms_key), run trailkeeper apply, then trailkeeper backfill (S3 never retries FAILED objects)"
