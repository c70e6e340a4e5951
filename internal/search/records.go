package search

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/trailkeeper/trailkeeper/internal/jsonscan"
)

// errNotCloudTrail means a file is neither {"Records":[...]} nor a JSON array.
var errNotCloudTrail = errors.New(`not a CloudTrail log: expected {"Records":[...]} or an array of events`)

// records calls fn with the bytes of each record of a CloudTrail log file,
// without decoding them: {"Records":[{...},...]} as CloudTrail writes it, or a
// plain array of events (as some exports are). It only finds where each
// record begins and ends, honouring strings and escapes.
func records(b []byte, fn func(rec []byte) error) error {
	i := jsonscan.Space(b, 0)
	if i >= len(b) {
		return errNotCloudTrail
	}
	switch b[i] {
	case '[':
		return objects(b, i, fn)
	case '{':
	default:
		return errNotCloudTrail
	}
	found := false
	err := jsonscan.Members(b, i, "the log file", func(key []byte, at int) (int, bool, error) {
		if string(key) != "Records" {
			return 0, false, nil
		}
		if b[at] != '[' {
			return 0, true, errNotCloudTrail
		}
		found = true
		return 0, true, objects(b, at, fn)
	})
	if errors.Is(err, jsonscan.ErrNotObject) || err == nil && !found {
		err = errNotCloudTrail
	}
	return err
}

// objects calls fn with each object in the array that starts at b[i].
func objects(b []byte, i int, fn func(rec []byte) error) error {
	return jsonscan.Elements(b, i, "the array of records", func(elem []byte) error {
		if elem[0] != '{' {
			return nil
		}
		return fn(elem)
	})
}

// topLevel finds the values of a record's top-level string fields without
// decoding the record: the common filters (event name, source, error, IP,
// time, region, account) need nothing deeper. Values that are not strings, or
// that hold escapes, are decoded with encoding/json.
func topLevel(rec []byte, want func(key string) *string) error {
	i := jsonscan.Space(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return errNotCloudTrail
	}
	return jsonscan.Members(rec, i, "a record", func(key []byte, at int) (int, bool, error) {
		end, err := jsonscan.Value(rec, at)
		if err != nil {
			return 0, true, err
		}
		if dst := want(string(key)); dst != nil && rec[at] == '"' {
			if v := rec[at+1 : end-1]; bytes.IndexByte(v, '\\') < 0 {
				*dst = string(v)
			} else if err := json.Unmarshal(rec[at:end], dst); err != nil {
				return 0, true, err
			}
		}
		return end, false, nil
	})
}
