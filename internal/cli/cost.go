package cli

import (
	"fmt"
	"io"

	"github.com/trailkeeper/trailkeeper/internal/cost"
)

// printCost writes the monthly cost estimate: what replication costs every
// month, and what each month of logs kept adds, since nothing is deleted.
func printCost(w io.Writer, e *cost.Estimate) {
	if e == nil {
		return
	}
	fmt.Fprintf(w, "\nCost at the last 24 hours' volume (%s log files, %s, %s; list prices of %s for %s, docs/cost.md):\n",
		thousands(int(e.ObjectsPerMonth/30)), byteSize(e.GBPerMonth/30*(1<<30)), plural(e.Accounts, "account", "accounts"), e.PricesDate, e.PricesRegion)
	fmt.Fprintf(w, "  %s a month to replicate (requests %s, RTC %s, between regions %s)\n",
		cost.Dollars(e.Replication+e.RTC+e.Transfer), cost.Dollars(e.Replication), cost.Dollars(e.RTC), cost.Dollars(e.Transfer))
	fmt.Fprintf(w, "  %s a month more for each month of logs kept in %s: %s a month after a year\n",
		cost.Dollars(e.Storage), e.Class, cost.Dollars(e.AfterAYear))
	if e.Watch > 0 {
		fmt.Fprintf(w, "  %s a month for watch's hourly function (Lambda time and the S3 requests of its status runs)\n", cost.Dollars(e.Watch))
	}
	fmt.Fprintf(w, "  backfill (S3 Batch Replication): %s per account, %s per million log files\n",
		cost.Dollars(e.BackfillPerJob), cost.Dollars(e.BackfillPerMillion))
}

// byteSize writes a size in the unit that gives it a few digits.
func byteSize(b float64) string {
	switch {
	case b < 1<<20:
		return fmt.Sprintf("%.1f KB", b/(1<<10))
	case b < 1<<30:
		return fmt.Sprintf("%.1f MB", b/(1<<20))
	}
	return fmt.Sprintf("%.1f GB", b/(1<<30))
}
