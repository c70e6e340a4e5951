package index

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/trailkeeper/trailkeeper/internal/query"
	"github.com/trailkeeper/trailkeeper/internal/search"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Holds reports whether the index in dir holds every one of the objects, each
// in the version listed: then a count over them may come from the index. It
// only reads: a build may be writing beside it.
func Holds(dir string, objects []store.Version) bool {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(data, '\n'); i+1 != len(data) {
		data = data[:i+1] // a line being written
	}
	m := &manifest{dir: dir, objects: map[string]string{}, batches: map[int]bool{}}
	if m.parse(data) != nil {
		return false
	}
	for _, v := range objects {
		if m.objects[v.Key] != identity(v) {
			return false
		}
	}
	return true
}

// CountSQL is search's filter as a count over the index narrowed to the
// filter's Scope (its accounts, regions and span), or ok false for filters
// whose meaning the index's columns cannot keep exactly (--resource looks
// into the strings of requestParameters, not its JSON text).
func CountSQL(f search.Filter) (sql string, ok bool) {
	if f.Resource != "" {
		return "", false
	}
	var where []string
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = query.Literal(v)
		}
		where = append(where, fmt.Sprintf("%s IN (%s)", col, strings.Join(q, ", ")))
	}
	in("eventname", f.EventNames)
	if f.EventSource != "" {
		where = append(where, "eventsource = "+query.Literal(f.EventSource))
	}
	if f.AccessKey != "" {
		where = append(where, "useridentity.accesskeyid = "+query.Literal(f.AccessKey))
	}
	if f.SourceIP != "" {
		where = append(where, "sourceipaddress = "+query.Literal(f.SourceIP))
	}
	if f.AnyError {
		where = append(where, "coalesce(errorcode, '') <> ''") // search counts an empty errorCode as none
	}
	if f.ErrorCode != "" {
		where = append(where, "errorcode = "+query.Literal(f.ErrorCode))
	}
	if p := f.Principal; p != "" {
		where = append(where, fmt.Sprintf("(contains(coalesce(useridentity.arn, ''), %[1]s) OR contains(coalesce(useridentity.username, ''), %[1]s) OR contains(coalesce(useridentity.sessioncontext.sessionissuer.username, ''), %[1]s))", query.Literal(p)))
	}
	sql = "SELECT count(*) FROM events"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	return sql, true
}

// Scope is the part of search's filter the index's folders and the events
// table's view narrow by: accounts, regions and the span, whose times are
// compared as search compares them, on the instant whatever the offset.
func Scope(f search.Filter) query.Scope {
	return query.Scope{Accounts: f.Accounts, Regions: f.Regions, Since: f.Since, Until: f.Until}
}
