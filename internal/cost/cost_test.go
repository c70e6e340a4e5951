package cost

import (
	"math"
	"testing"
)

// The estimate of a small fixture against a computation by hand, with the
// prices of prices.json (ap-northeast-1 archive, us-east-1 for transfer out).
//
// Account A (Tokyo, like the archive): 288 log files a day of 2 KiB.
// Account B (us-east-1): 100 log files a day of 200 KiB.
// A month is 30 days: 11,640 objects; 30 x (589,824 + 20,480,000) = 632,094,720
// bytes = 0.588684082 GB (GiB, as AWS bills).
//
//	replication PUTs in STANDARD_IA: 11,640 / 1,000 x $0.01              = $0.1164
//	RTC: 0.588684082 GB x $0.015                                           = $0.008830261
//	transfer, B only: 614,400,000 B = 0.572204590 GB x $0.02               = $0.011444092
//	STANDARD_IA storage: A's 8,640 files billed at 128 KiB each:
//	  632,094,720 + 8,640 x 131,072 - 17,694,720 = 1,746,862,080 B
//	  = 1.626892090 GB x $0.0138                                           = $0.022451111
//	STANDARD storage: 0.588684082 GB x $0.025                              = $0.014717102
//	after a year: 12 x 0.022451111 + 0.1164 + 0.008830261 + 0.011444092    = $0.406087684
func TestEstimateByHand(t *testing.T) {
	var a, b Day
	for range 288 {
		a.Add(2048)
	}
	for range 100 {
		b.Add(200 << 10)
	}
	e := Load().Make(Input{ArchiveRegion: "ap-northeast-1", Class: "STANDARD_IA", RTC: true,
		Sources: []Source{{Account: "111111111111", Region: "ap-northeast-1", Day: a}, {Account: "222222222222", Region: "us-east-1", Day: b}}})
	for name, c := range map[string]struct{ got, want float64 }{
		"objects":          {float64(e.ObjectsPerMonth), 11640},
		"replication":      {e.Replication, 0.1164},
		"rtc":              {e.RTC, 0.008830261},
		"transfer":         {e.Transfer, 0.011444092},
		"storage IA":       {e.Storage, 0.022451111},
		"storage STANDARD": {e.StorageByClass["STANDARD"], 0.014717102},
		"after a year":     {e.AfterAYear, 0.406087684},
		"backfill":         {e.Backfill(2, 3_000_000), 2*0.25 + 3*1.0},
		"IA over STANDARD": {e.Costlier() / 1000, 0.022451111 / 0.014717102 / 1000}, // 1.5255, to 3 places
	} {
		if math.Abs(c.got-c.want) > 1e-6 { // the estimate keeps millionths of a dollar
			t.Errorf("%s = %.9f, by hand %.9f", name, c.got, c.want)
		}
	}
}

// CloudTrail's small files: in the classes with a 128 KB minimum, a median
// log file (1.5 KB) costs far more than in STANDARD; STANDARD is cheapest of
// the classes without a retrieval delay.
func TestSmallFilesMakeIAExpensive(t *testing.T) {
	var d Day
	for range 1000 {
		d.Add(1536)
	}
	e := Load().Make(Input{ArchiveRegion: "us-east-1", Class: "STANDARD_IA", Sources: []Source{{Account: "1", Region: "us-east-1", Day: d}}})
	if r := e.Costlier(); r < 40 {
		t.Fatalf("IA for 1.5 KB files costs %.1fx STANDARD, want over 40x", r)
	}
	for _, c := range []string{"STANDARD_IA", "ONEZONE_IA", "GLACIER_IR"} {
		if e.StorageByClass[c] <= e.StorageByClass["STANDARD"] {
			t.Errorf("%s is not costlier than STANDARD for 1.5 KB files", c)
		}
	}
	if e.StorageByClass["INTELLIGENT_TIERING"] != e.StorageByClass["STANDARD"] {
		t.Error("INTELLIGENT_TIERING keeps objects under 128 KB at STANDARD's price")
	}
}

// Every region in the file prices every class, and unknown regions fall back.
func TestPricesAreComplete(t *testing.T) {
	p := Load()
	if p.Date == "" || p.Source == "" {
		t.Fatal("prices.json has no date or source")
	}
	classes := []string{"STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"}
	for region, r := range p.Regions {
		for _, c := range classes {
			if r.StoragePerGBMonth[c] <= 0 || r.PutPer1000[c] <= 0 {
				t.Errorf("%s: no price for %s", region, c)
			}
		}
		if r.TransferPerGB <= 0 {
			t.Errorf("%s: no transfer price", region)
		}
	}
	if _, from := p.In("eu-west-1"); from != p.FallbackRegion || p.Regions[from].StoragePerGBMonth == nil {
		t.Errorf("eu-west-1 falls back to %q", from)
	}
}

// Digests replicate too: 24 a day for each region of a trail with validation.
func TestDigestsAreCounted(t *testing.T) {
	e := Load().Make(Input{ArchiveRegion: "us-east-1", Class: "STANDARD", Sources: []Source{{Account: "1", Region: "us-east-1", DigestRegions: 17}}})
	if e.ObjectsPerMonth != 30*24*17 {
		t.Fatalf("%d objects a month for 17 regions' digests, want %d", e.ObjectsPerMonth, 30*24*17)
	}
}

// watch's hourly function is in the estimate when the config has watch:,
// growing with the sources it reads, and nothing without it.
func TestWatchCost(t *testing.T) {
	p := Load()
	in := func(n int, watch bool) Estimate {
		var sources []Source
		for range n {
			sources = append(sources, Source{Account: "111111111111", Region: "us-east-1"})
		}
		return p.Make(Input{ArchiveRegion: "us-east-1", Class: "STANDARD", Sources: sources, Watch: watch})
	}
	if e := in(10, false); e.Watch != 0 {
		t.Fatalf("without watch: %v a month", e.Watch)
	}
	one, thousand := in(1, true), in(1000, true)
	if one.Watch <= 0 || thousand.Watch <= 100*one.Watch/2 || thousand.AfterAYear < thousand.Watch {
		t.Fatalf("watch for 1 source %v, for 1,000 %v (after a year %v)", one.Watch, thousand.Watch, thousand.AfterAYear)
	}
	t.Logf("watch a month: 1 source $%.4f, 1,000 sources $%.2f", one.Watch, thousand.Watch)
}
