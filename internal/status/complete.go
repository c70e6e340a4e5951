package status

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// classifyAtMost bounds the HeadObject calls that tell why objects are missing.
const classifyAtMost = 20

// checkComplete answers "is the archive complete" for the window: every log
// file and digest the trail bucket holds since opts.Since must be in the
// archive (those younger than 15 minutes may still be on their way). A sample
// of the missing ones is looked at to say why: never replicated (written
// before the rule, or while it was off), FAILED, or PENDING too long.
func (ck *checker) checkComplete(ctx context.Context, a *Account, st *setup.SourceState, cl *awsapi.Clients, c *setup.Completeness) error {
	t, acct := st.Trail, st.Config.AccountID
	a.SourceObjects = c.Source
	if n := len(c.Foreign); n > 0 {
		a.Foreign = n
		ck.add(a, Error, "foreign-replica", acct, "trailkeeper verify --account "+acct+" tells whether a digest lists them; ask who wrote them (the archive's server access logs or CloudTrail data events name the writer)",
			"%d objects in the archive under account %s's folders since %s are not in its bucket %s (written by another account, or deleted from the trail bucket after they replicated), first %s",
			n, acct, ck.opts.Since.Format("2006-01-02"), t.Bucket, c.Foreign[0])
	}
	// Young objects may still be on their way, unless S3 says they never will
	// be (NONE: no rule applied when they were written; FAILED).
	why := map[string]int{}
	var missing []setup.Log
	for i, l := range c.All() {
		status := ""
		if i < classifyAtMost {
			h, err := cl.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &t.Bucket, Key: aws.String(l.Key)})
			if err != nil {
				return accessOr(acct, "read the trail's log files (s3:GetObject, for HeadObject)", err)
			}
			if status = string(h.ReplicationStatus); status == "" {
				status = "NONE"
			}
		}
		if young := ck.opts.Now.Sub(l.At) <= setup.InFlight; young && (status == "" || status == "PENDING") {
			a.InFlight++
			continue
		}
		why[status]++
		missing = append(missing, l)
	}
	a.Missing = len(missing)
	if len(missing) == 0 {
		return nil
	}
	var parts []string
	for _, s := range []struct{ status, words string }{{"NONE", "never replicated"}, {"FAILED", "FAILED"}, {"PENDING", "PENDING for over 15 minutes"}, {"COMPLETED", "COMPLETED but not in the archive (deleted there, or a delete marker)"}} {
		if n := why[s.status]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s.words))
		}
	}
	fix := "trailkeeper backfill --account " + acct
	if why["FAILED"] > 0 {
		fix = "trailkeeper apply, then " + fix + " (it reports why each failed)"
	} else if why["PENDING"] == len(missing) {
		fix = "check the rule's OperationsPendingReplication metric in CloudWatch (AWS/S3, RuleId " + setup.RuleID + ")"
	}
	if n := why[""]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d not looked at", n))
	}
	ck.add(a, Error, "archive-incomplete", acct, fix, "%d of %d log files and digests since %s are not in the archive (%s), oldest %s",
		len(missing), c.Source, ck.opts.Since.Format("2006-01-02"), strings.Join(parts, ", "), missing[0].Key)
	return nil
}

// accessOr turns a denied request into an access error (exit 3) that names
// what status needs; other errors pass through.
func accessOr(account, need string, err error) error {
	if awsapi.IsAccess(err) || strings.Contains(err.Error(), "StatusCode: 403") {
		return &awsapi.AccessError{Account: account, Err: err, Hint: "status needs to " + need + " (docs/security.md)"}
	}
	return err
}
