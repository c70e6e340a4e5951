package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzValue: where a JSON value ends is where encoding/json's decoder says
// it ends, for every valid value; invalid input is an error or an end, never
// a panic or an end beyond the input.
func FuzzValue(f *testing.F) {
	for _, s := range []string{`"a\"b"`, `"\\"`, `"\\\""`, `{"a":["]",{"b":"\\\\"}]}`, `[1,2]`, `"x`, `{"a":"}`, `tru`, `{]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, err := Value(b, 0)
		if err != nil {
			return
		}
		if end > len(b) || end <= 0 {
			t.Fatalf("%q: end %d", b, end)
		}
		if json.Valid(b) {
			var raw json.RawMessage
			d := json.NewDecoder(bytes.NewReader(b))
			if d.Decode(&raw) == nil && d.InputOffset() != int64(end) {
				t.Fatalf("%q: ends at %d, encoding/json says %d", b, end, d.InputOffset())
			}
		}
	})
}

// FuzzValid: Valid says what json.Valid says, and reports whitespace
// exactly when json.Compact would remove some.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e+3,true,false,null,"\u00e9\n"]}`, ` {"a" : 1} `, `[01]`, `"\x"`, `{"a":1,}`, `[1 2]`, `"` + "\x01" + `"`, `1.`, `-`, `{"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok, spaced := Valid(b)
		if ok != json.Valid(b) {
			t.Fatalf("%q: Valid %v, json.Valid %v", b, ok, !ok)
		}
		if ok {
			var c bytes.Buffer
			json.Compact(&c, b)
			if spaced != (c.Len() != len(b)) {
				t.Fatalf("%q: spaced %v, compacted %q", b, spaced, c.Bytes())
			}
		}
	})
}
