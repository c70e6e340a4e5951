package search

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// errNotCloudTrail means a file is neither {"Records":[...]} nor a JSON array.
var errNotCloudTrail = errors.New(`not a CloudTrail log: expected {"Records":[...]} or an array of events`)

// records calls fn with the bytes of each record of a CloudTrail log file,
// without decoding them: {"Records":[{...},...]} as CloudTrail writes it, or a
// plain array of events (as some exports are). It only finds where each
// record begins and ends, honouring strings and escapes.
func records(b []byte, fn func(rec []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return errNotCloudTrail
	}
	switch b[i] {
	case '[':
		return elements(b, i, fn)
	case '{':
	default:
		return errNotCloudTrail
	}
	found := false
	err := members(b, i, "the log file", func(key []byte, at int) (int, bool, error) {
		if string(key) != "Records" {
			return 0, false, nil
		}
		if b[at] != '[' {
			return 0, true, errNotCloudTrail
		}
		found = true
		return 0, true, elements(b, at, fn)
	})
	if err == nil && !found {
		err = errNotCloudTrail
	}
	return err
}

// members walks the object that starts at b[i]: fn hears each key and where
// its value starts, and says where the value ends (0: skip it) or to stop.
func members(b []byte, i int, what string, fn func(key []byte, at int) (end int, stop bool, err error)) error {
	if i = skipSpace(b, i+1); i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errNotCloudTrail
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return fmt.Errorf("truncated: %s does not end", what)
		}
		vend, stop, err := fn(key, i)
		if stop || err != nil {
			return err
		}
		if vend == 0 {
			if vend, err = skipValue(b, i); err != nil {
				return err
			}
		}
		var done bool
		if i, done, err = after(b, vend, '}', what); done || err != nil {
			return err
		}
	}
}

// elements calls fn with each element of the array that starts at b[i].
func elements(b []byte, i int, fn func([]byte) error) error {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if b[i] == '{' {
			if err := fn(b[i:end]); err != nil {
				return err
			}
		}
		var done bool
		if i, done, err = after(b, end, ']', "the array of records"); done || err != nil {
			return err
		}
	}
}

// after moves past the separator that follows a member of an array or an
// object: it reports done at the closer.
func after(b []byte, i int, closer byte, what string) (next int, done bool, err error) {
	i = skipSpace(b, i)
	switch {
	case i >= len(b):
		return 0, false, fmt.Errorf("truncated: %s does not end", what)
	case b[i] == ',':
		return skipSpace(b, i+1), false, nil
	case b[i] == closer:
		return i + 1, true, nil
	}
	return 0, false, fmt.Errorf("malformed: %q in %s", b[i], what)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errNotCloudTrail
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("truncated: a string does not end")
}

// skipValue returns the index after the JSON value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("truncated: a value is missing")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		var closers []byte // what each open object or array must end with
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{':
				closers = append(closers, '}')
			case '[':
				closers = append(closers, ']')
			case '}', ']':
				if b[j] != closers[len(closers)-1] {
					return 0, fmt.Errorf("malformed: %q closes %q", b[j], closers[len(closers)-1])
				}
				closers = closers[:len(closers)-1]
				if len(closers) == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("truncated: an object or array does not end")
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("malformed: unexpected %q", b[i])
	}
	return j, nil
}

// topLevel finds the values of a record's top-level string fields without
// decoding the record: the common filters (event name, source, error, IP,
// time, region, account) need nothing deeper. Values that are not strings, or
// that hold escapes, are decoded with encoding/json.
func topLevel(rec []byte, want func(key string) *string) error {
	i := skipSpace(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return errNotCloudTrail
	}
	return members(rec, i, "a record", func(key []byte, at int) (int, bool, error) {
		end, err := skipValue(rec, at)
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
