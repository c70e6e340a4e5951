package eventschema

import (
	"fmt"
	"testing"
)

// A view is named by its whole name in any case, not by a longer word.
func TestViewsNamed(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT * FROM errors":                             "[errors]",
		"select * from ERRORS, console_logins":             "[errors console_logins]",
		"SELECT count(*) AS error_count, my_errors FROM x": "[]",
		"SELECT errors_x, errors FROM events":              "[errors]",
	} {
		var names []string
		for _, v := range ViewsNamed(sql) {
			names = append(names, v.Name)
		}
		if got := fmt.Sprint(names); got != want {
			t.Errorf("ViewsNamed(%q) = %s, want %s", sql, got, want)
		}
	}
}
