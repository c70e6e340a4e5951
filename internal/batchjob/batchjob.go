// Package batchjob follows S3 Batch Operations jobs the way trailkeeper runs
// them (backfill's replication jobs in the sources, apply's retention jobs in
// the archive): describe a job until it ends, and count its failed tasks by
// failure code from the completion report.
package batchjob

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3control"
	s3ctypes "github.com/aws/aws-sdk-go-v2/service/s3control/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
)

// Describe reads a job of account.
func Describe(ctx context.Context, cl *awsapi.Clients, account, id string) (*s3ctypes.JobDescriptor, error) {
	out, err := cl.S3Control.DescribeJob(ctx, &s3control.DescribeJobInput{AccountId: aws.String(account), JobId: aws.String(id)})
	if err != nil {
		return nil, err
	}
	return out.Job, nil
}

// Wait describes the job until it ends or ctx does, telling progress how far
// it is on the way: first after a second, then twice as long each time up to
// poll (a job takes minutes on AWS, a moment on the sandbox).
func Wait(ctx context.Context, cl *awsapi.Clients, account, id string, poll time.Duration, progress func(done, total int)) (*s3ctypes.JobDescriptor, error) {
	wait := min(time.Second, poll)
	for {
		d, err := Describe(ctx, cl, account, id)
		if err != nil || Terminal(string(d.Status)) {
			return d, err
		}
		if progress != nil && d.ProgressSummary != nil {
			done, total := Progress(d)
			progress(done, total)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, poll)
	}
}

// Progress is how many of a job's tasks are done, and of how many.
func Progress(d *s3ctypes.JobDescriptor) (done, total int) {
	p := d.ProgressSummary
	if p == nil {
		return 0, 0
	}
	return int(aws.ToInt64(p.NumberOfTasksSucceeded) + aws.ToInt64(p.NumberOfTasksFailed)), int(aws.ToInt64(p.TotalNumberOfTasks))
}

// Failures lists why a job itself failed, as "Code: reason".
func Failures(d *s3ctypes.JobDescriptor) []string {
	var out []string
	for _, f := range d.FailureReasons {
		out = append(out, aws.ToString(f.FailureCode)+": "+aws.ToString(f.FailureReason))
	}
	return out
}

// NotFound says S3 does not know the job (AWS forgets jobs 90 days after they end).
func NotFound(err error) bool {
	var nf *s3ctypes.NotFoundException
	return errors.As(err, &nf)
}

// Terminal says a job's status is final ("Forgotten" is trailkeeper's own,
// for a job AWS no longer knows).
func Terminal(status string) bool {
	switch status {
	case "Complete", "Failed", "Cancelled", "Forgotten":
		return true
	}
	return false
}

// FailureCodes counts a job's failed tasks by failure code from its
// completion report: PREFIX/job-ID/manifest.json names the result CSVs.
func FailureCodes(ctx context.Context, cl *awsapi.Clients, bucket, prefix, jobID string) (map[string]int, error) {
	get := func(key string) ([]byte, error) {
		out, err := cl.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			return nil, fmt.Errorf("read the completion report s3://%s/%s: %w", bucket, key, err)
		}
		defer out.Body.Close()
		return io.ReadAll(io.LimitReader(out.Body, 256<<20))
	}
	if prefix = strings.TrimSuffix(prefix, "/"); prefix != "" {
		prefix += "/"
	}
	data, err := get(prefix + "job-" + jobID + "/manifest.json")
	if err != nil {
		return nil, err
	}
	var m struct {
		Results []struct{ TaskExecutionStatus, Key string }
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("the completion report of job %s: %v", jobID, err)
	}
	codes := map[string]int{}
	for _, res := range m.Results {
		if res.TaskExecutionStatus != "failed" {
			continue
		}
		data, err := get(res.Key)
		if err != nil {
			return nil, err
		}
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			return nil, fmt.Errorf("the completion report %s: %v", res.Key, err)
		}
		for _, row := range rows {
			if code := failureCode(row); code != "" {
				codes[code]++
			}
		}
	}
	return codes, nil
}

// failureCode reads a failed task's error code from a completion report row
// by what it is, not where: the User Guide names the columns Bucket, Key,
// VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage, while its
// own example rows put the HTTP status first (",failed,200,PermanentFailure,").
func failureCode(row []string) string {
	if len(row) < 5 {
		return ""
	}
	code := row[4]
	if len(row) >= 6 && isHTTPStatus(row[4]) && !isHTTPStatus(row[5]) {
		code = row[5]
	}
	if isHTTPStatus(code) {
		return ""
	}
	return code
}

func isHTTPStatus(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n < 600
}

// NoBatchOperations tells an endpoint without S3 Batch Operations (moto
// answers CreateJob with a bare 404 page) from an AWS error, which always
// carries a code: CreateJob has no "not found" answer of its own.
func NoBatchOperations(err error) bool {
	switch HTTPStatus(err) {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		code := awsapi.Code(err)
		return code == "" || code == "NotFound" || code == "NotImplemented" || code == "UnknownError"
	}
	return false
}

// HTTPStatus is the status code of an AWS response error, 0 if none.
func HTTPStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
