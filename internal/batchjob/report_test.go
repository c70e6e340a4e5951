package batchjob

import "testing"

// Both column orders the User Guide shows for a failed task's row.
func TestFailureCodeByMeaning(t *testing.T) {
	for _, tc := range []struct {
		row  []string
		want string
	}{
		{[]string{"trail-bucket", "AWSLogs/1/x.json.gz", "v1", "failed", "DstPutObjectNotPermitted", "403", "Access denied"}, "DstPutObjectNotPermitted"},
		{[]string{"awsexamplebucket1", "image_14975", "", "failed", "200", "PermanentFailure", "Lambda returned function error"}, "PermanentFailure"},
		{[]string{"b", "k", "", "failed", "500", "", "internal"}, ""},
		{[]string{"b", "k", "", "failed"}, ""},
		{[]string{"b", "k", "", "failed", "SrcObjectNotEligible"}, "SrcObjectNotEligible"},
	} {
		if got := failureCode(tc.row); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.row, got, tc.want)
		}
	}
}
