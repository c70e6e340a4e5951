// Package eventparquet writes CloudTrail records as Parquet in the events
// table's shape (eventschema: Athena's column names, structs, a list of
// resources, JSON kept as text, and the day of eventTime), streaming: a
// record is appended as it is read, a few hundred rows are buffered at a
// time, and each file's row group is encoded as it grows, so memory follows
// the compressed size of what one file holds, not the records' text.
package eventparquet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/trailkeeper/trailkeeper/internal/eventschema"
	"github.com/trailkeeper/trailkeeper/internal/jsonscan"
)

// Unknown is the day of a record whose eventTime is missing or not a time.
const Unknown = "unknown/unknown/unknown"

// rowGroup is how many rows a row group holds at most. A row group is kept
// in memory, encoded, until it is complete (its columns are written one
// after the other), so it bounds what a file being written costs: about
// 3 MB for CloudTrail's records, against 20 for DuckDB's 122,880 rows.
const rowGroup = 16_384

// pageSize bounds a data page and a dictionary before they are compressed:
// each column of each file being written holds one.
const pageSize = 256 << 10

// unique are the columns whose values rarely repeat, the JSON text ones
// and these: a dictionary of them would cost a hash of every value and be
// dropped when it grew too large.
var unique = []string{"eventtime", "eventid", "requestid", "sharedeventid"}

// chunk is how many rows are buffered before they are encoded.
const chunk = 512

// Schema is the events table's schema: eventschema.Columns, then day.
var Schema = arrow.NewSchema(append(fields(eventschema.Columns), arrow.Field{Name: "day", Type: arrow.BinaryTypes.String, Nullable: true}), nil)

func fields(fs []eventschema.Field) []arrow.Field {
	out := make([]arrow.Field, len(fs))
	for i, f := range fs {
		out[i] = arrow.Field{Name: f.Name, Type: arrowType(f), Nullable: true}
	}
	return out
}

func arrowType(f eventschema.Field) arrow.DataType {
	switch f.Kind {
	case eventschema.Struct:
		return arrow.StructOf(fields(f.Fields)...)
	case eventschema.StructArray:
		return arrow.ListOf(arrow.StructOf(fields(f.Fields)...))
	case eventschema.StringMap:
		return arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)
	}
	return arrow.BinaryTypes.String
}

// Writer writes one Parquet file of events.
type Writer struct {
	fw   *pqarrow.FileWriter
	rb   *array.RecordBuilder
	top  *node // the record, as a struct of the columns
	day  *array.StringBuilder
	rows int // buffered in rb

	// The record being appended: its planned builder calls, the text
	// they append that is not in the record as it is, and which call is
	// eventTime's (-1: none).
	ops       []op
	arena     []byte
	timeOp    int
	eventTime *node
}

// NewWriter starts a file on w.
func NewWriter(w io.Writer) (*Writer, error) {
	if err := useSmallWindow(); err != nil {
		return nil, err
	}
	opts := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(rowGroup),
		parquet.WithDataPageSize(pageSize),
		parquet.WithDictionaryPageSizeLimit(pageSize),
		parquet.WithCreatedBy("trailkeeper"),
	}
	for _, c := range eventschema.Columns {
		if c.Kind == eventschema.JSONText || slices.Contains(unique, c.Name) {
			opts = append(opts, parquet.WithDictionaryFor(c.Name, false))
		}
	}
	props := parquet.NewWriterProperties(opts...)
	fw, err := pqarrow.NewFileWriter(Schema, w, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		return nil, err
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, Schema)
	// The record is a struct of the columns whose builders are the record batch's.
	top := structNode(eventschema.Field{Kind: eventschema.Struct, Fields: eventschema.Columns}, nil, rb.Field)
	return &Writer{fw: fw, rb: rb, top: top, day: rb.Field(len(eventschema.Columns)).(*array.StringBuilder), eventTime: top.children[eventTime]}, nil
}

// Append adds one record (a JSON object). A field that is not of its type
// (userIdentity a string, resources an object) is NULL; a record that is not
// JSON where it is read (a broken escape, "tru") is an error, and nothing of
// it is added.
func (w *Writer) Append(rec []byte) error {
	i := jsonscan.Space(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return errors.New("a record is not a JSON object")
	}
	rec = rec[i:]
	w.ops, w.arena, w.timeOp = w.ops[:0], w.arena[:0], -1
	if err := w.put(w.top, rec); err != nil {
		return err
	}
	w.apply()
	day := Unknown
	if w.timeOp >= 0 {
		day = Day(string(w.opText(w.ops[w.timeOp])))
	}
	w.day.Append(day)
	w.rows++
	if w.rows == chunk {
		return w.flush()
	}
	return nil
}

// eventTime is the column's index in eventschema.Columns.
var eventTime = func() int {
	for i, c := range eventschema.Columns {
		if c.Key == "eventTime" {
			return i
		}
	}
	panic("eventschema has no eventTime")
}()

func (w *Writer) flush() error {
	if w.rows == 0 {
		return nil
	}
	rec := w.rb.NewRecordBatch()
	defer rec.Release()
	w.rows = 0
	return w.fw.WriteBuffered(rec)
}

// Close writes what is buffered and the file's footer, and closes the
// io.Writer the Writer was made with when it is an io.Closer.
func (w *Writer) Close() error {
	err := w.flush()
	w.rb.Release()
	if cerr := w.fw.Close(); err == nil {
		err = cerr
	}
	return err
}

// Day is the UTC day of an eventTime as CloudTrail's folders write it
// (2026/12/03), or Unknown.
func Day(eventTime string) string {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, eventTime); err == nil {
			return t.UTC().Format("2006/01/02")
		}
	}
	return Unknown
}

// node is a field of the schema with its builder.
type node struct {
	field    eventschema.Field
	b        array.Builder
	children []*node        // a struct's fields, or a list's element's
	keys     map[string]int // child by CloudTrail's key
}

func newNode(f eventschema.Field, b array.Builder) *node {
	switch f.Kind {
	case eventschema.Struct:
		return structNode(f, b, b.(*array.StructBuilder).FieldBuilder)
	case eventschema.StructArray:
		sb := b.(*array.ListBuilder).ValueBuilder().(*array.StructBuilder)
		elem := eventschema.Field{Kind: eventschema.Struct, Fields: f.Fields}
		return &node{field: f, b: b, children: []*node{newNode(elem, sb)}}
	}
	return &node{field: f, b: b}
}

// structNode is a struct field whose i-th field appends to field(i).
func structNode(f eventschema.Field, b array.Builder, field func(i int) array.Builder) *node {
	n := &node{field: f, b: b, keys: make(map[string]int, len(f.Fields))}
	for i, c := range f.Fields {
		n.children = append(n.children, newNode(c, field(i)))
		n.keys[c.Key] = i
	}
	return n
}

// op is one builder call of a record, kept until the whole record is known
// to be JSON where it is read, so that a refused record leaves nothing.
type op struct {
	b        array.Builder
	kind     opKind
	text     []byte // opText: in the record, or nil when it is w.arena[from:to]
	from, to int
}

type opKind uint8

const (
	opNull  opKind = iota
	opValid        // a struct, list or map that is not NULL
	opText
)

// put plans the builder calls for v (a JSON value, or nil for a missing one).
func (w *Writer) put(n *node, v []byte) error {
	if v == nil || isNull(v) || !fits(n.field.Kind, v[0]) {
		w.ops = append(w.ops, op{b: n.b, kind: opNull})
		return nil
	}
	switch n.field.Kind {
	case eventschema.Struct:
		at := make([][]byte, len(n.children)) // each field's value, or nil
		err := jsonscan.Members(v, 0, n.name(), func(key []byte, from int) (int, bool, error) {
			if i, ok := n.keys[string(key)]; ok && at[i] == nil { // the first of repeated keys, as DuckDB
				end, err := jsonscan.Value(v, from)
				if err != nil {
					return 0, true, err
				}
				at[i] = v[from:end]
				return end, false, nil
			}
			return 0, false, nil
		})
		if err != nil {
			return err
		}
		if n.b != nil { // the record's own columns are the record batch's
			w.ops = append(w.ops, op{b: n.b, kind: opValid})
		}
		for i, c := range n.children {
			if err := w.put(c, at[i]); err != nil {
				return err
			}
		}
		return nil
	case eventschema.StructArray:
		w.ops = append(w.ops, op{b: n.b, kind: opValid})
		return jsonscan.Elements(v, 0, n.name(), func(elem []byte) error {
			return w.put(n.children[0], elem)
		})
	case eventschema.StringMap:
		mb := n.b.(*array.MapBuilder)
		w.ops = append(w.ops, op{b: n.b, kind: opValid})
		return jsonscan.Members(v, 0, n.name(), func(key []byte, at int) (int, bool, error) {
			end, err := jsonscan.Value(v, at)
			if err != nil {
				return 0, true, err
			}
			if err := w.text(mb.KeyBuilder(), key, unquote); err != nil {
				return 0, true, fmt.Errorf("%s: %w", n.name(), err)
			}
			if isNull(v[at:end]) {
				w.ops = append(w.ops, op{b: mb.ItemBuilder(), kind: opNull})
			} else if err := w.text(mb.ItemBuilder(), v[at:end], scalarText); err != nil {
				return 0, true, fmt.Errorf("%s: %w", n.name(), err)
			}
			return end, false, nil
		})
	}
	conv := scalarText
	if n.field.Kind == eventschema.JSONText {
		conv = jsonText
	}
	if err := w.text(n.b, v, conv); err != nil {
		return fmt.Errorf("%s: %w", n.name(), err)
	}
	if n == w.eventTime {
		w.timeOp = len(w.ops) - 1
	}
	return nil
}

// text plans a string: conv returns v's text, a part of v itself when it
// can, or else what it appended to the arena it is given.
func (w *Writer) text(b array.Builder, v []byte, conv func(arena, v []byte) ([]byte, bool, error)) error {
	from := len(w.arena)
	t, inArena, err := conv(w.arena, v)
	if err != nil {
		return err
	}
	if inArena {
		w.arena = t
		w.ops = append(w.ops, op{b: b, kind: opText, from: from, to: len(t)})
	} else {
		w.ops = append(w.ops, op{b: b, kind: opText, text: t})
	}
	return nil
}

// apply makes the planned calls.
func (w *Writer) apply() {
	for _, o := range w.ops {
		switch o.kind {
		case opNull:
			o.b.AppendNull()
		case opValid:
			switch b := o.b.(type) {
			case *array.StructBuilder:
				b.Append(true)
			case *array.ListBuilder:
				b.Append(true)
			case *array.MapBuilder:
				b.Append(true)
			}
		case opText:
			o.b.(*array.StringBuilder).BinaryBuilder.Append(w.opText(o))
		}
	}
}

func (w *Writer) opText(o op) []byte {
	if o.text != nil {
		return o.text
	}
	return w.arena[o.from:o.to]
}

func (n *node) name() string {
	if n.field.Key == "" {
		return "a record"
	}
	return n.field.Key
}

func isNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

// fits says whether a value that starts with c can be of kind k: a struct
// given a string, say, is NULL, and the rest of the record is kept.
func fits(k eventschema.Kind, c byte) bool {
	switch k {
	case eventschema.Struct, eventschema.StringMap:
		return c == '{'
	case eventschema.StructArray:
		return c == '['
	}
	return true
}

// scalarText is a value as a VARCHAR column holds it: a string decoded, a
// number or literal as written, an object or array as its JSON text. It is
// a part of v, or appended to arena (inArena).
func scalarText(arena, v []byte) (text []byte, inArena bool, err error) {
	switch v[0] {
	case '"':
		return unquote(arena, v[1:len(v)-1])
	case '{', '[':
		return jsonText(arena, v)
	case 't', 'f':
		if string(v) != "true" && string(v) != "false" {
			return nil, false, fmt.Errorf("not JSON: %.20q", v)
		}
		return v, false, nil
	}
	if !jsonscan.Number(v) {
		return nil, false, fmt.Errorf("not JSON: %.20q", v)
	}
	return v, false, nil
}

// jsonText is a value's JSON text without insignificant whitespace, as
// DuckDB's JSON type and Athena's STRING over JSON keep it.
func jsonText(arena, v []byte) (text []byte, inArena bool, err error) {
	ok, spaced := jsonscan.Valid(v)
	if !ok {
		return nil, false, fmt.Errorf("not JSON: %.20q", v)
	}
	if !utf8.Valid(v) { // a Parquet string is UTF-8, as encoding/json decodes it
		v = bytes.ToValidUTF8(v, []byte("\uFFFD"))
	}
	if !spaced {
		return v, false, nil
	}
	b := bytes.NewBuffer(arena)
	err = json.Compact(b, v)
	return b.Bytes(), true, err
}

// unquote decodes the inside of a JSON string: s itself when it has no
// escapes, else appended to arena.
func unquote(arena, s []byte) (text []byte, inArena bool, err error) {
	plain := true
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain && utf8.Valid(s) {
		return s, false, nil
	}
	var out string
	q := make([]byte, 0, len(s)+2)
	q = append(append(append(q, '"'), s...), '"')
	if err := json.Unmarshal(q, &out); err != nil {
		return nil, false, fmt.Errorf("not a JSON string: %.20q", s)
	}
	return append(arena, out...), true, nil
}
