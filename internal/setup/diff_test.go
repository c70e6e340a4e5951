package setup

import "testing"

func TestDiffPrintsRemovalsBeforeAdditions(t *testing.T) {
	got := diff("{\n  \"a\": 1,\n  \"b\": 2\n}", "{\n  \"a\": 1,\n  \"b\": 3\n}")
	want := "  {\n    \"a\": 1,\n-   \"b\": 2\n+   \"b\": 3\n  }\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
