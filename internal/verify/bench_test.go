package verify

import (
	"fmt"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// BenchmarkLocalCopy: the CPU cost per object of verifying a local copy of 100
// chains of 24 hourly digests with one small log each.
func BenchmarkLocalCopy(b *testing.B) {
	k, _ := keys(nil)
	dir := store.Dir{Root: b.TempDir()}
	fb := fixture.Builder{Key: k, W: dir}
	for i := range 100 {
		acct := fmt.Sprintf("%012d", 100000000000+i)
		if _, err := fb.Write(ctx, fixture.Chain{Account: acct, Region: "us-east-1", Trail: "Members", Bucket: bucket + acct, Start: start, Digests: 24, LogsPerDigest: 1}); err != nil {
			b.Fatal(err)
		}
	}
	ks := StaticKeys([]string{"us-east-1"}, fb.PublicKeyDER())
	b.ResetTimer()
	for range b.N {
		r, err := Run(ctx, dir, Options{Keys: ks, AcceptUnsignedTail: true})
		if err != nil || !r.Valid() {
			b.Fatal(err, failing(r))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*4800), "µs/object")
}
