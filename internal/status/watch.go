package status

import (
	"context"

	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// Watch is the state of the tamper alerts (the config's watch:).
type Watch struct {
	Bus          string `json:"bus"`          // the archive's event bus
	BusExists    bool   `json:"busExists"`    //
	Wired        bool   `json:"wired"`        // its rules tell the alert topic
	SourcesWired int    `json:"sourcesWired"` // sources whose calls reach the bus
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
