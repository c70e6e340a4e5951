// Package report renders one self-contained HTML page (no scripts, nothing
// fetched): the status table, a heatmap of accounts by hour showing whether log
// files and digests exist in each source and in the archive, and replication lag
// over time where Last-Modified shows it, so that a gap is visible at a glance.
// S3 gives a replica its source's creation time, so on AWS (and the sandbox)
// the lag chart stays hidden; CloudWatch's ReplicationLatency has the real lag.
package report

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/status"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
)

// Cell states, also the CSS classes of the heatmap.
const (
	OK          = "ok"           // in the source and in the archive
	Stall       = "stall"        // in the source, not (yet) in the archive
	Gap         = "gap"          // neither log files nor digests anywhere, while the trail was delivering
	ArchiveOnly = "archive-only" // in the archive only: the source lost it, the archive kept it
	Undigested  = "undigested"   // log files but no digest
	Empty       = "empty"        // before the first delivery seen
)

// Cell is one account-hour.
type Cell struct {
	Hour                        time.Time
	SourceLogs, ArchiveLogs     int
	SourceDigests, ArchiveDigst int
	State                       string
	LagSeconds                  float64 // max replica Last-Modified minus source Last-Modified; -1 unknown
}

// Row is one account (and region) across the hours.
type Row struct {
	Account, Region string
	Cells           []Cell
}

// Data is what the page shows.
type Data struct {
	Generated time.Time
	Days      int
	Hours     []time.Time
	Rows      []Row
	Status    *status.Report
	// Verify is verify's report over the same days, or nil with VerifyError
	// saying why it was not checked.
	Verify      *verify.Report
	VerifyError string
}

// Options of a collection.
type Options struct {
	Days     int
	Now      time.Time
	Parallel int
}

type object struct {
	hour time.Time
	key  string
	at   time.Time
	kind ct.Kind
}

// Collect lists, for each source, its log and digest folders of the last days in
// its own bucket and in the archive, one list per region and day.
func Collect(ctx context.Context, e *setup.Env, st *status.Report, opts Options) (*Data, error) {
	if opts.Days <= 0 {
		opts.Days = 7
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now().UTC()
	}
	end := opts.Now.Truncate(time.Hour)
	start := end.Add(-time.Duration(opts.Days*24-1) * time.Hour)
	d := &Data{Generated: opts.Now, Days: opts.Days, Status: st}
	for h := start; !h.After(end); h = h.Add(time.Hour) {
		d.Hours = append(d.Hours, h)
	}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, opts.Parallel))
	for _, a := range st.Accounts {
		if a.Bucket == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rows, err := collectAccount(ctx, e, a, d.Hours)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			d.Rows = append(d.Rows, rows...)
		}()
	}
	wg.Wait()
	sort.Slice(d.Rows, func(i, j int) bool { return d.Rows[i].Account+d.Rows[i].Region < d.Rows[j].Account+d.Rows[j].Region })
	return d, firstErr
}

func collectAccount(ctx context.Context, e *setup.Env, a *status.Account, hours []time.Time) ([]Row, error) {
	cl := e.Sources[a.Account]
	prefix := ""
	if a.KeyPrefix != "" {
		prefix = strings.TrimSuffix(a.KeyPrefix, "/") + "/"
	}
	base := prefix + "AWSLogs/" + a.Account + "/"
	folders, err := (store.S3{Client: cl.S3, Bucket: a.Bucket}).Prefixes(ctx, base+"CloudTrail/")
	if err != nil {
		return nil, err
	}
	var regions []string
	for _, f := range folders {
		regions = append(regions, strings.TrimSuffix(strings.TrimPrefix(f, base+"CloudTrail/"), "/"))
	}
	if len(regions) == 0 {
		regions = []string{a.Region}
	}
	var rows []Row
	for _, region := range regions {
		var srcObjs, archObjs []object
		for day := hours[0].Truncate(24 * time.Hour); !day.After(hours[len(hours)-1]); day = day.AddDate(0, 0, 1) {
			for _, folder := range []string{ct.LogFolder(prefix, a.Account, region), ct.DigestFolder(prefix, a.Account, region)} {
				p := folder + day.Format("2006/01/02/")
				so, err := list(ctx, cl.S3, a.Bucket, p)
				if err != nil {
					return nil, fmt.Errorf("account %s: %w", a.Account, err)
				}
				ao, err := list(ctx, e.Archive.S3, e.Config.Archive.Bucket, p)
				if err != nil {
					return nil, fmt.Errorf("archive: %w", err)
				}
				srcObjs, archObjs = append(srcObjs, so...), append(archObjs, ao...)
			}
		}
		rows = append(rows, Row{Account: a.Account, Region: region, Cells: cells(hours, srcObjs, archObjs)})
	}
	return rows, nil
}

func list(ctx context.Context, c *s3.Client, bucket, prefix string) ([]object, error) {
	var out []object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			k, err := ct.ParseKey(aws.ToString(o.Key))
			if err != nil {
				continue
			}
			out = append(out, object{hour: HourOf(k), key: k.Raw, at: aws.ToTime(o.LastModified), kind: k.Kind})
		}
	}
	return out, nil
}

// HourOf is the hour a file belongs to: a log file's delivery hour, and for a
// digest the hour it covers (it is named after its end, about an hour later).
func HourOf(k ct.Key) time.Time {
	if k.Kind == ct.Digest {
		return k.Time.Add(-30 * time.Minute).Truncate(time.Hour)
	}
	return k.Time.Truncate(time.Hour)
}

// cells decides each hour's state from what the source and the archive hold.
func cells(hours []time.Time, src, arch []object) []Cell {
	idx := map[time.Time]int{}
	out := make([]Cell, len(hours))
	for i, h := range hours {
		idx[h] = i
		out[i] = Cell{Hour: h, LagSeconds: -1}
	}
	srcAt := map[string]time.Time{}
	for _, o := range src {
		i, ok := idx[o.hour]
		if !ok {
			continue
		}
		if o.kind == ct.Digest {
			out[i].SourceDigests++
		} else {
			out[i].SourceLogs++
			srcAt[o.key] = o.at
		}
	}
	for _, o := range arch {
		i, ok := idx[o.hour]
		if !ok {
			continue
		}
		if o.kind == ct.Digest {
			out[i].ArchiveDigst++
		} else {
			out[i].ArchiveLogs++
			if s, ok := srcAt[o.key]; ok {
				out[i].LagSeconds = max(out[i].LagSeconds, o.at.Sub(s).Seconds())
			}
		}
	}
	seen := false
	for i := range out {
		c := &out[i]
		any := c.SourceLogs+c.SourceDigests+c.ArchiveLogs+c.ArchiveDigst > 0
		switch {
		case !any && (!seen || i == len(out)-1):
			c.State = Empty // before the first delivery, or the hour still under way
		case !any:
			c.State = Gap
		case c.SourceLogs > c.ArchiveLogs || c.SourceDigests > c.ArchiveDigst:
			c.State = Stall
		case c.ArchiveLogs > c.SourceLogs || c.ArchiveDigst > c.SourceDigests:
			c.State = ArchiveOnly
		case c.SourceLogs > 0 && c.SourceDigests == 0:
			c.State = Undigested
		default:
			c.State = OK
		}
		seen = seen || any
	}
	return out
}
