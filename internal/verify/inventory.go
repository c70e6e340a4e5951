package verify

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/store"
)

// maxRetentionFindings bounds the retention findings of one account: a
// source whose default retention replaced the archive's shortens every
// replica it sent, and the first few say it.
const maxRetentionFindings = 10

// fromInventory sorts an account folder's versions: from the inventory
// report for everything but the day folders from inventoryFrom on, and those
// from a listing of the live bucket: one per kind and region folder,
// starting past the day before.
// Every version the report lists is held to the archive's retention.
func (l *lister) fromInventory(ctx context.Context, prefix string) error {
	v := l.v
	live, ok := v.s.(interface {
		VersionsAfter(ctx context.Context, prefix, after string, fn func(store.Version) error) error
	})
	if !ok {
		return fmt.Errorf("an inventory report vouches for an S3 bucket, not for %s", v.s)
	}
	fromDay := inventoryFrom(v.opts.Inventory).Format("2006/01/02/")
	folders := map[string]bool{}    // "KIND/REGION/" to list live
	for region := range l.folders { // the state's, even when the report has nothing of them
		for _, kind := range []string{"CloudTrail", "CloudTrail-Digest"} {
			folders[kind+"/"+region+"/"] = true
		}
	}
	short := 0
	err := v.opts.Inventory.Versions(ctx, prefix, func(ver store.Version, until time.Time, mode string) error {
		rel := ver.Key[len(prefix):]
		if v.opts.ShortRetention != nil && !ver.DeleteMarker && v.opts.ShortRetention(ver.LastModified, until) {
			if short++; short <= maxRetentionFindings {
				l.retentionShort(ver, rel, until, mode, short == maxRetentionFindings)
			}
		}
		if day, ok := dayFolder(rel); ok {
			parts := strings.SplitN(rel, "/", 3)
			folders[parts[0]+"/"+parts[1]+"/"] = true
			if day >= fromDay {
				return nil // listed live
			}
		}
		return l.collect(ver)
	})
	if err != nil {
		return fmt.Errorf("inventory of %s: %w", prefix, err)
	}
	list := make([]string, 0, len(folders))
	for f := range folders {
		list = append(list, f)
	}
	sort.Strings(list)
	return v.each(ctx, len(list), func(ctx context.Context, i int) error {
		var found []store.Version
		err := live.VersionsAfter(ctx, prefix+list[i], prefix+list[i]+strings.TrimSuffix(fromDay, "/"), func(ver store.Version) error {
			found = append(found, ver)
			return nil
		})
		if err != nil {
			return err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.collectAll(found)
		return nil
	})
}

// inventoryFrom is the first day listed live rather than taken from the
// report: the day before the report's (S3 scans a bucket for hours, and
// replicas can arrive late).
func inventoryFrom(inv Inventory) time.Time {
	return inv.Taken().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
}

func (l *lister) retentionShort(ver store.Version, rel string, until time.Time, mode string, last bool) {
	region := ""
	if parts := strings.SplitN(rel, "/", 3); len(parts) == 3 {
		region = parts[1]
	}
	f := retentionFinding(ver, l.account, region, until, mode, "S3 Inventory report")
	if last {
		f.Message += fmt.Sprintf("; further short versions of account %s are not listed one by one", l.account)
	}
	l.v.add(f)
}

// retentionFinding is a version locked for less than the archive's
// retention, as source told.
func retentionFinding(ver store.Version, account, region string, until time.Time, mode, source string) *Finding {
	locked := "is not locked"
	if !until.IsZero() {
		locked = fmt.Sprintf("is locked (%s) only until %s", mode, until.Format(time.DateOnly))
		if mode == "" {
			locked = "is locked only until " + until.Format(time.DateOnly)
		}
	}
	msg := fmt.Sprintf("created %s, it %s, short of the archive's retention: Object Lock stops protecting it early (%s)",
		ver.LastModified.Format(time.DateOnly), locked, source)
	return &Finding{Severity: Error, Code: RetentionShort, Account: account, Region: region, Key: ver.Key, VersionID: ver.VersionID, Message: msg}
}

// dayFolder is the day folder ("2026/12/05/") of a key relative to an
// account folder, KIND/REGION/YYYY/MM/DD/NAME, for CloudTrail's kinds.
func dayFolder(rel string) (string, bool) {
	parts := strings.SplitN(rel, "/", 6)
	if len(parts) < 6 || (parts[0] != "CloudTrail" && parts[0] != "CloudTrail-Digest" && parts[0] != "CloudTrail-Insight") ||
		!digits(parts[2]+"/", 4) || !digits(parts[3]+"/", 2) || !digits(parts[4]+"/", 2) {
		return "", false
	}
	return parts[2] + "/" + parts[3] + "/" + parts[4] + "/", true
}
