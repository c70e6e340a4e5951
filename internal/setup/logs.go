package setup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/cost"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Log is one log file in a source bucket.
type Log struct {
	Key  string
	Size int64
	At   time.Time
}

// Regions are the regions whose folders a trail has in its bucket: log files
// where something happened, digests (with validation) in every region the
// trail logs, so a region may have digests only.
type Regions struct{ Logs, Digests []string }

// Count is how many regions have either.
func (r Regions) Count() int {
	set := map[string]bool{}
	for _, x := range append(append([]string{}, r.Logs...), r.Digests...) {
		set[x] = true
	}
	return len(set)
}

// TrailRegions lists the region folders of a multi-region trail (one listing
// for logs, one for digests when validation is on); a single-region trail has
// its home region only.
func TrailRegions(ctx context.Context, cl *awsapi.Clients, t Trail, account string) (Regions, error) {
	home := []string{t.HomeRegion}
	if !t.MultiRegion {
		r := Regions{Logs: home}
		if t.Validation {
			r.Digests = home
		}
		return r, nil
	}
	list := func(kind string) ([]string, error) {
		base := t.LogPrefix() + account + "/" + kind
		found, err := (store.S3{Client: cl.S3, Bucket: t.Bucket}).Prefixes(ctx, base)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", account, err)
		}
		var out []string
		for _, p := range found {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(p, base), "/"))
		}
		return out, nil
	}
	var r Regions
	var err error
	if r.Logs, err = list("CloudTrail/"); err != nil || !t.Validation {
		return r, err
	}
	r.Digests, err = list("CloudTrail-Digest/")
	return r, err
}

// LastDay is what a cost estimate scales to a month: the count and sizes of
// the log files delivered in the 24 hours before now (today's and yesterday's
// folders), and the digests.
func LastDay(ctx context.Context, cl *awsapi.Clients, t Trail, account string, now time.Time) (cost.Source, error) {
	src := cost.Source{Account: account, Region: t.HomeRegion}
	regions, err := TrailRegions(ctx, cl, t, account)
	if err != nil {
		return src, err
	}
	src.DigestRegions = len(regions.Digests)
	base := t.LogPrefix() + account + "/CloudTrail/"
	for _, r := range regions.Logs {
		prefix := base + r + "/"
		err := listFrom(ctx, cl, t.Bucket, prefix, prefix+now.UTC().AddDate(0, 0, -1).Format("2006/01/02/"), func(l Log) {
			if now.Sub(l.At) <= 24*time.Hour {
				src.Day.Add(l.Size)
			}
		})
		if err != nil {
			return src, fmt.Errorf("account %s: %w", account, err)
		}
	}
	return src, nil
}
