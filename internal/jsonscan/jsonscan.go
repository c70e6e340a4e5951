// Package jsonscan finds where JSON values begin and end without decoding
// them: enough to split a CloudTrail log into its records, read a record's
// top-level fields, or walk it by a schema, at the speed of a byte loop.
// It honours strings and escapes and checks nesting; it does not check that
// numbers and literals are well formed (those who decode a scalar do).
package jsonscan

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrNotObject means a key or a colon is missing where an object needs one.
var ErrNotObject = errors.New("malformed: not a JSON object")

// Members walks the object that starts at b[i]: fn hears each key and where
// its value starts, and says where the value ends (0: skip it) or to stop.
// what names the object in errors.
func Members(b []byte, i int, what string, fn func(key []byte, at int) (end int, stop bool, err error)) error {
	if i = Space(b, i+1); i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		end, err := String(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = Space(b, end)
		if i >= len(b) || b[i] != ':' {
			return ErrNotObject
		}
		i = Space(b, i+1)
		if i >= len(b) {
			return fmt.Errorf("truncated: %s does not end", what)
		}
		vend, stop, err := fn(key, i)
		if stop || err != nil {
			return err
		}
		if vend == 0 {
			if vend, err = Value(b, i); err != nil {
				return err
			}
		}
		var done bool
		if i, done, err = after(b, vend, '}', what); done || err != nil {
			return err
		}
	}
}

// Elements calls fn with each element of the array that starts at b[i].
// what names the array in errors.
func Elements(b []byte, i int, what string, fn func(elem []byte) error) error {
	i = Space(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for {
		end, err := Value(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:end]); err != nil {
			return err
		}
		var done bool
		if i, done, err = after(b, end, ']', what); done || err != nil {
			return err
		}
	}
}

// after moves past the separator that follows a member of an array or an
// object: it reports done at the closer.
func after(b []byte, i int, closer byte, what string) (next int, done bool, err error) {
	i = Space(b, i)
	switch {
	case i >= len(b):
		return 0, false, fmt.Errorf("truncated: %s does not end", what)
	case b[i] == ',':
		return Space(b, i+1), false, nil
	case b[i] == closer:
		return i + 1, true, nil
	}
	return 0, false, fmt.Errorf("malformed: %q in %s", b[i], what)
}

// Space returns the index of the first byte at or after i that is not
// JSON whitespace.
func Space(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// String returns the index after the string that starts at b[i].
func String(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, ErrNotObject
	}
	for j := i + 1; ; j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, fmt.Errorf("truncated: a string does not end")
		}
		j += k
		// The quote ends the string unless an odd run of backslashes escapes it.
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1, nil
		}
	}
}

// Value returns the index after the JSON value that starts at b[i].
func Value(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("truncated: a value is missing")
	}
	switch b[i] {
	case '"':
		return String(b, i)
	case '{', '[':
		var closers []byte // what each open object or array must end with
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := String(b, j)
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
