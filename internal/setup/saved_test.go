package setup

import (
	"encoding/json"
	"strings"
	"testing"
)

// A saved plan is a file a person may have edited or truncated: reading it
// never panics, and what it refuses it names.
func FuzzReadSaved(f *testing.F) {
	ok, _ := json.Marshal(Saved{Kind: savedKind, Format: SavedFormat, Trailkeeper: "dev",
		Steps: []SavedStep{{Step: Step{Account: "111111111111", Resource: "bucket policy", Op: opOf("archive.putPolicy", policyArgs{Want: `{"Version":"2012-10-17"}`})}}}})
	for _, seed := range []string{string(ok), `{"kind":"trailkeeper-plan","format":1,"trailkeeper":"dev","steps":[{"op":{"kind":"x","args":[}}]}`,
		`{"kind":"trailkeeper-plan","format":99}`, `[]`, `{"kind":"trailkeeper-plan","format":1,"trailkeeper":"dev","steps":[null]}`, ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadSaved(data, "p.json", "dev")
		if err != nil {
			if !strings.Contains(err.Error(), "p.json") {
				t.Fatalf("an error that does not name the file: %v", err)
			}
			return
		}
		_ = s.Plan() // what show prints
	})
}
