package status

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"

	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// Watch is the state of the tamper alerts (the config's watch:).
type Watch struct {
	Bus          string `json:"bus"` // the archive's event bus
	BusExists    bool   `json:"busExists"`
	Wired        bool   `json:"wired"`        // its rules tell the alert topic
	SourcesWired int    `json:"sourcesWired"` // sources whose calls reach the bus
	// The scheduled verdict: the function, its schedule, and what its last
	// run concluded (from trailkeeper/watch/verdict.json in the archive).
	Function    bool       `json:"function"`
	Schedule    string     `json:"schedule"`
	LastRun     *time.Time `json:"lastRun"`
	LastHealthy *bool      `json:"lastRunHealthy"`
}

// checkWatch follows the path a tampering call takes: the source's rule in
// each region its calls are emitted in, the archive bus's policy, the rules
// there, the alert topic's policy. After checkAlerts, which reads the topic.
func (ck *checker) checkWatch(ctx context.Context) error {
	c := ck.c
	if !c.Watch.Enabled {
		return nil
	}
	w, err := setup.ObserveWatch(ctx, c, ck.e.Archive)
	if err != nil {
		return accessOr(c.Archive.AccountID, "read the watch bus and its rules (events:DescribeEventBus, events:DescribeRule, events:ListTargetsByRule)", err)
	}
	ck.archive.Watch = w
	report := &Watch{Bus: setup.WatchBusARN(c), BusExists: w.Bus}
	acct := c.Archive.AccountID
	if why := setup.ArchiveWatchProblem(c, w, ck.archive.Topics[c.Archive.Region]); why != "" {
		ck.add(nil, Error, "watch-archive-unwired", acct, applyFix, "a tampering call in a source account reaches nobody: %s", why)
	} else {
		report.Wired = true
	}
	report.Function = w.Function != nil
	if w.Schedule != nil && w.Schedule.Enabled {
		report.Schedule = w.Schedule.Schedule
	}
	if w.Function == nil || !w.Function.Scheduled || report.Schedule == "" {
		ck.add(nil, Error, "watch-function-unscheduled", acct, applyFix,
			"the watch function %s does not run on a schedule: a trail stopped where EventBridge hears nothing is seen only when someone runs status", setup.WatchFunctionName)
	}
	if v, err := lastVerdict(ctx, ck); err != nil {
		return accessOr(acct, "read "+setup.WatchPrefix+"verdict.json in the archive (s3:GetObject)", err)
	} else if v != nil {
		report.LastRun, report.LastHealthy = &v.CheckedAt, &v.Healthy
	}
	for _, a := range ck.report.Accounts {
		st := ck.states[a.Account]
		if st == nil {
			continue
		}
		if why := setup.WatchProblem(c, st, w); why != "" {
			ck.add(a, Error, "watch-unwired", a.Account, applyFix, "a StopLogging or a deleted replication rule in account %s would reach nobody: %s", a.Account, why)
			continue
		}
		a.WatchWired = true
		report.SourcesWired++
	}
	ck.report.Watch = report
	return nil
}

// verdict is what status reads of the watch function's verdict.json (the
// watch package, which writes it, runs status: it cannot be imported here).
type verdict struct {
	CheckedAt time.Time `json:"checkedAt"`
	Healthy   bool      `json:"healthy"`
}

// lastVerdict reads what the watch function concluded last, nil before its
// first run.
func lastVerdict(ctx context.Context, ck *checker) (*verdict, error) {
	out, err := ck.e.Archive.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &ck.c.Archive.Bucket, Key: aws.String(setup.WatchPrefix + "verdict.json")})
	if code := awsapi.Code(err); code == "NoSuchKey" || code == "NoSuchBucket" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	v := &verdict{}
	if err := json.NewDecoder(io.LimitReader(out.Body, 1<<20)).Decode(v); err != nil {
		return nil, nil // not one the function wrote: as if none
	}
	return v, nil
}
