// Package cost estimates what the archive costs a month, from the log files
// trailkeeper observes (a day's count and sizes per source account) and the
// prices in prices.json. CloudTrail files are small (the real logs in
// ../shared/data: median 1.5 KB), so the classes that bill each object as at
// least 128 KB cost many times STANDARD's price for them.
package cost

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

//go:embed prices.json
var pricesJSON []byte

// Prices is prices.json: list prices in USD, with their date and source.
type Prices struct {
	Date            string                      `json:"date"`
	Source          string                      `json:"source"`
	Caution         string                      `json:"caution"`
	Regions         map[string]RegionPrices     `json:"regions"`
	FallbackRegion  string                      `json:"fallbackRegion"`
	RTCPerGB        float64                     `json:"replicationTimeControlPerGB"`
	BatchPerJob     float64                     `json:"batchOperationsPerJob"`
	BatchPerMillion float64                     `json:"batchOperationsPerMillionObjects"`
	MinimumBytes    map[string]int64            `json:"minimumBillableBytes"`
	OverheadBytes   map[string]map[string]int64 `json:"perObjectOverheadBytes"`
	Watch           WatchPrices                 `json:"watch"`
}

// WatchPrices are what watch's hourly function costs: its runs, and the
// requests of the status it runs.
type WatchPrices struct {
	GetPer1000        float64 `json:"s3GetPer1000"`
	ListPer1000       float64 `json:"s3ListPer1000"`
	PerGBSecond       float64 `json:"lambdaPerGBSecond"`
	PerMillionInvokes float64 `json:"lambdaPerMillionRequests"`
}

// RegionPrices are the prices that differ by region.
type RegionPrices struct {
	StoragePerGBMonth map[string]float64 `json:"storagePerGBMonth"`
	PutPer1000        map[string]float64 `json:"putPer1000"`
	TransferPerGB     float64            `json:"transferOutToOtherRegionPerGB"`
}

// Load parses the embedded prices.
func Load() Prices {
	var p Prices
	if err := json.Unmarshal(pricesJSON, &p); err != nil {
		panic("cost: prices.json: " + err.Error()) // embedded; TestPricesAreComplete guards it
	}
	return p
}

// In returns the prices of region, or of the fallback region when the file
// has none for it, and the region whose prices they are.
func (p Prices) In(region string) (RegionPrices, string) {
	if r, ok := p.Regions[region]; ok {
		return r, region
	}
	return p.Regions[p.FallbackRegion], p.FallbackRegion
}

// Day is one day of log files of one source account: their count and sizes.
type Day struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// Below the 128 KB that IA and Glacier IR bill at least.
	SmallObjects int64 `json:"smallObjects"`
	SmallBytes   int64 `json:"smallBytes"`
}

const minimumIA = 128 << 10

// Add counts one log file.
func (d *Day) Add(size int64) {
	d.Objects++
	d.Bytes += size
	if size < minimumIA {
		d.SmallObjects++
		d.SmallBytes += size
	}
}

// Plus is the sum of two days' volumes.
func (d Day) Plus(o Day) Day {
	return Day{d.Objects + o.Objects, d.Bytes + o.Bytes, d.SmallObjects + o.SmallObjects, d.SmallBytes + o.SmallBytes}
}

// Source is a source account's observed day of log files, the region they
// are replicated from, and the regions whose hourly digests replicate too.
type Source struct {
	Account       string
	Region        string
	Day           Day
	DigestRegions int
}

// CloudTrail delivers a digest every hour for every region of a trail with
// validation on, empty or not; they are small and counted at this size.
const (
	digestsPerDay = 24
	digestBytes   = 2 << 10
)

// Estimate is the archive's cost for a month (30 days) of the observed volume.
type Estimate struct {
	Class        string `json:"storageClass"`
	PricesRegion string `json:"pricesRegion"`
	PricesDate   string `json:"pricesDate"`
	Accounts     int    `json:"accounts"`
	// What a month brings in.
	ObjectsPerMonth int64   `json:"objectsPerMonth"`
	GBPerMonth      float64 `json:"gbPerMonth"`
	// Monthly charges that do not grow: replication PUTs, RTC, transfer between regions.
	Replication float64 `json:"replicationPerMonth"`
	RTC         float64 `json:"rtcPerMonth"`
	Transfer    float64 `json:"transferPerMonth"`
	// Storage of one month of logs, per month it is kept: the bill grows by
	// this much every month, since Object Lock keeps everything.
	Storage float64 `json:"storagePerMonthOfLogs"`
	// The monthly bill once a year of logs is kept.
	AfterAYear float64 `json:"monthlyAfterAYear"`
	// Storage of one month of logs in each class, to compare.
	StorageByClass map[string]float64 `json:"storagePerMonthOfLogsByClass"`
	// Watch is the hourly watch function a month (0 without watch:): its
	// Lambda time and the S3 requests of its status runs. Rules, AWS's events
	// and the rare tampering lines cost next to nothing (docs/watch.md).
	Watch float64 `json:"watchPerMonth"`
	// S3 Batch Replication (backfill): per job (one per account) and per object.
	BackfillPerJob     float64 `json:"backfillPerJob"`
	BackfillPerMillion float64 `json:"backfillPerMillionObjects"`
}

// Input is what an estimate is made from.
type Input struct {
	ArchiveRegion string
	Class         string // replicas' storage class
	RTC           bool
	Sources       []Source
	Watch         bool // the config has watch: (an hourly function runs status)
}

// What one status run costs per source, as the function runs it hourly:
// bench/apply measured 18.9 AWS calls per account (2026-12-07), of which
// about 4 list; the function's duration is assumed (2 s, then 60 ms a
// source, at 1 GB), not measured on AWS.
const (
	watchRunsPerMonth   = 730
	watchGetsPerSource  = 16
	watchListsPerSource = 4
	watchBaseSeconds    = 2.0
	watchSecondsPerSrc  = 0.06
	watchMemoryGB       = 1.0
)

// Make estimates a month (30 days) of the observed days.
func (p Prices) Make(in Input) Estimate {
	rp, pricesRegion := p.In(in.ArchiveRegion)
	var total Day
	e := Estimate{Class: in.Class, PricesRegion: pricesRegion, PricesDate: p.Date, Accounts: len(in.Sources),
		BackfillPerJob: p.BatchPerJob, BackfillPerMillion: p.BatchPerMillion, StorageByClass: map[string]float64{}}
	for _, s := range in.Sources {
		for range s.DigestRegions * digestsPerDay {
			s.Day.Add(digestBytes)
		}
		total = total.Plus(s.Day)
		if s.Region != "" && s.Region != in.ArchiveRegion {
			src, _ := p.In(s.Region)
			e.Transfer += 30 * gb(s.Day.Bytes) * src.TransferPerGB
		}
	}
	month := Day{30 * total.Objects, 30 * total.Bytes, 30 * total.SmallObjects, 30 * total.SmallBytes}
	e.ObjectsPerMonth, e.GBPerMonth = month.Objects, gb(month.Bytes)
	e.Replication = float64(month.Objects) / 1000 * rp.PutPer1000[in.Class]
	if in.RTC {
		e.RTC = e.GBPerMonth * p.RTCPerGB
	}
	for class := range rp.StoragePerGBMonth {
		e.StorageByClass[class] = p.storage(rp, class, month)
	}
	e.Storage = e.StorageByClass[in.Class]
	if in.Watch {
		n, w := float64(len(in.Sources)), p.Watch
		e.Watch = watchRunsPerMonth * (n*watchGetsPerSource/1000*w.GetPer1000 + n*watchListsPerSource/1000*w.ListPer1000 +
			(watchBaseSeconds+n*watchSecondsPerSrc)*watchMemoryGB*w.PerGBSecond + w.PerMillionInvokes/1e6)
	}
	e.AfterAYear = 12*e.Storage + e.Replication + e.RTC + e.Transfer + e.Watch
	// Millionths of a dollar are plenty, and JSON readers see short numbers.
	for _, v := range []*float64{&e.GBPerMonth, &e.Replication, &e.RTC, &e.Transfer, &e.Storage, &e.AfterAYear, &e.Watch} {
		*v = round6(*v)
	}
	for c, v := range e.StorageByClass {
		e.StorageByClass[c] = round6(v)
	}
	return e
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// storage is what S3 bills a month for keeping volume d in class: objects
// below the class's minimum billed at the minimum, Glacier's per-object
// overhead added (part of it at STANDARD's price).
func (p Prices) storage(rp RegionPrices, class string, d Day) float64 {
	bytes := float64(d.Bytes)
	if min := p.MinimumBytes[class]; min > 0 {
		bytes += float64(d.SmallObjects*min - d.SmallBytes)
	}
	cost := gb(int64(bytes)) * rp.StoragePerGBMonth[class]
	for billedAs, per := range p.OverheadBytes[class] {
		cost += gb(d.Objects*per) * rp.StoragePerGBMonth[billedAs]
	}
	return cost
}

func gb(bytes int64) float64 { return float64(bytes) / (1 << 30) }

// Backfill is what S3 Batch Replication costs for objects spread over jobs
// (one job per source account).
func (e Estimate) Backfill(jobs int, objects int64) float64 {
	return float64(jobs)*e.BackfillPerJob + float64(objects)/1e6*e.BackfillPerMillion
}

// Costlier says, for a class that bills small objects up, how many times
// STANDARD's storage it costs for the observed files; 0 when it does not.
func (e Estimate) Costlier() float64 {
	std := e.StorageByClass["STANDARD"]
	if std == 0 || e.Storage <= std {
		return 0
	}
	return e.Storage / std
}

// Dollars writes an amount the way people read a bill: cents, or more
// digits for amounts under a cent.
func Dollars(v float64) string {
	switch {
	case v == 0:
		return "$0"
	case v < 0.0001:
		return "under $0.0001"
	case v < 0.01:
		return fmt.Sprintf("$%.4f", v)
	case v < 1000:
		return fmt.Sprintf("$%.2f", v)
	}
	return "$" + Thousands(int64(math.Round(v)))
}

// Thousands writes n with comma separators.
func Thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Classes lists the classes the prices know, cheapest storage first.
func (e Estimate) Classes() []string {
	var out []string
	for c := range e.StorageByClass {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return e.StorageByClass[out[i]] < e.StorageByClass[out[j]] })
	return out
}
