package index

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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

// CountSQL is search's filter as a count over the index, or ok false for
// filters whose meaning the index's columns cannot keep exactly (--resource
// looks into the strings of requestParameters, not its JSON text).
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
			q[i] = literal(v)
		}
		where = append(where, fmt.Sprintf("%s IN (%s)", col, strings.Join(q, ", ")))
	}
	in("eventname", f.EventNames)
	in("account", f.Accounts)
	in("region", f.Regions)
	if f.EventSource != "" {
		where = append(where, "eventsource = "+literal(f.EventSource))
	}
	if f.AccessKey != "" {
		where = append(where, "useridentity.accesskeyid = "+literal(f.AccessKey))
	}
	if f.SourceIP != "" {
		where = append(where, "sourceipaddress = "+literal(f.SourceIP))
	}
	if f.AnyError {
		where = append(where, "coalesce(errorcode, '') <> ''") // search counts an empty errorCode as none
	}
	if f.ErrorCode != "" {
		where = append(where, "errorcode = "+literal(f.ErrorCode))
	}
	if p := f.Principal; p != "" {
		where = append(where, fmt.Sprintf("(contains(coalesce(useridentity.arn, ''), %[1]s) OR contains(coalesce(useridentity.username, ''), %[1]s) OR contains(coalesce(useridentity.sessioncontext.sessionissuer.username, ''), %[1]s))", literal(p)))
	}
	// Times as search compares them: on the instant, whatever the offset.
	if !f.Since.IsZero() {
		where = append(where, "day >= "+literal(f.Since.UTC().Format("2006/01/02")), "try_cast(eventtime AS TIMESTAMPTZ) >= "+literal(f.Since.UTC().Format(time.RFC3339Nano)))
	}
	if !f.Until.IsZero() {
		where = append(where, "day <= "+literal(f.Until.UTC().Format("2006/01/02")), "try_cast(eventtime AS TIMESTAMPTZ) < "+literal(f.Until.UTC().Format(time.RFC3339Nano)))
	}
	sql = "SELECT count(*) FROM events"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	return sql, true
}
