package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithytime "github.com/aws/smithy-go/time"
)

// versionsPage is one page of ListObjectVersions.
type versionsPage struct {
	versions               []Version // versions and delete markers, in the order S3 sent them
	prefixes               []string
	truncated              bool
	nextKey, nextVersionID string
	encoding               string // "url": S3 URL-encoded the keys, prefixes and next key marker
}

// maxListPage caps a listing's body: S3's page of 1,000 versions is under 1 MB.
const maxListPage = 32 << 20

// listVersions is ListObjectVersions for verify's listings, which read every
// version of an archive: the SDK's XML decoder spends tens of microseconds
// on each version, more than reading a small object costs. Same signing,
// retries and errors as the lean GET.
func (g *signedGet) listVersions(ctx context.Context, bucket, prefix, delimiter, keyMarker, versionIDMarker string) (*versionsPage, error) {
	base, err := g.endpoint(ctx, bucket)
	if err != nil {
		return nil, err
	}
	target := base + "?versions=&encoding-type=url&prefix=" + escape(prefix, false)
	for _, p := range [][2]string{{"delimiter", delimiter}, {"key-marker", keyMarker}, {"version-id-marker", versionIDMarker}} {
		if p[1] != "" {
			target += "&" + p[0] + "=" + escape(p[1], false)
		}
	}
	resp, err := g.get(ctx, target)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxListPage+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxListPage {
		return nil, fmt.Errorf("a page of the listing is larger than %d MiB", maxListPage>>20)
	}
	return parseVersionsPage(data)
}

// parseVersionsPage reads a ListVersionsResult as the SDK's decoder does
// (element names matched without case, the last of two wins) from the XML
// S3 writes: elements, text, the five entities and character references,
// attributes on the root only. Anything else, which S3 does not send, is
// refused rather than guessed.
func parseVersionsPage(data []byte) (*versionsPage, error) {
	s := &xmlScanner{data: data}
	if err := s.prolog(); err != nil {
		return nil, err
	}
	root, empty, err := s.startTag(true)
	if err != nil {
		return nil, err
	}
	if root != "ListVersionsResult" {
		return nil, fmt.Errorf("the listing is a <%s>, not a <ListVersionsResult>", root)
	}
	p := &versionsPage{}
	err = s.children(root, empty, 1, func(name string, empty bool) error {
		switch {
		case strings.EqualFold(name, "Version"), strings.EqualFold(name, "DeleteMarker"):
			v := Version{DeleteMarker: strings.EqualFold(name, "DeleteMarker")}
			if err := fields(s, name, empty, versionFields, &v); err != nil {
				return err
			}
			p.versions = append(p.versions, v)
			return nil
		case strings.EqualFold(name, "CommonPrefixes"):
			var cp struct{ prefix string }
			err := fields(s, name, empty, prefixFields, &cp)
			p.prefixes = append(p.prefixes, cp.prefix)
			return err
		}
		return field(s, name, empty, 2, pageFields, p)
	})
	if err != nil {
		return nil, err
	}
	s.space()
	if s.pos != len(s.data) {
		return nil, s.errorf("text after the end of the listing")
	}
	return p, nil
}

// urlDecode undoes S3's encoding-type=url on what S3 encodes in a version
// listing: keys, common prefixes and the next key marker.
func (p *versionsPage) urlDecode() error {
	enc := s3types.EncodingType(p.encoding)
	var err error
	for i := range p.versions {
		if p.versions[i].Key, err = ListedKey(enc, p.versions[i].Key); err != nil {
			return err
		}
	}
	for i := range p.prefixes {
		if p.prefixes[i], err = ListedKey(enc, p.prefixes[i]); err != nil {
			return err
		}
	}
	p.nextKey, err = ListedKey(enc, p.nextKey)
	return err
}

// ListedKey is a key or folder as a listing gave it, URL-decoded when the
// listing says S3 encoded it ('+' a space, as botocore reads it). Every
// listing of an archive asks for encoding-type=url: a key may hold
// characters XML 1.0 cannot carry (a control character), which S3 only
// sends encoded. A store that does not encode (moto's version listing)
// does not say so, and its keys are taken as they are.
func ListedKey(encoding s3types.EncodingType, s string) (string, error) {
	if encoding != s3types.EncodingTypeUrl || !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	k, err := url.QueryUnescape(s)
	if err != nil {
		return "", fmt.Errorf("a key in the listing is not URL-encoded as asked (%q): %w", s, err)
	}
	return k, nil
}

// A fieldSetter sets a field of T from an element's text, or reads the
// element's children. An empty element is an empty string, and no bool,
// number or time (as the SDK reads it). Typed fields the tool does not use
// are checked as the SDK checks them, so that the lean listing accepts no
// page the SDK would refuse.
type fieldSetter[T any] struct {
	name     string
	set      func(*T, []byte) error
	children []fieldSetter[T] // when set is nil
}

func checkBool[T any](_ *T, t []byte) error { _, err := strconv.ParseBool(string(t)); return err }
func checkInt[T any](_ *T, t []byte) error  { _, err := strconv.ParseInt(string(t), 10, 64); return err }
func checkTime[T any](_ *T, t []byte) error {
	_, err := smithytime.ParseDateTime(string(t))
	return err
}

var (
	pageFields = []fieldSetter[versionsPage]{
		{name: "IsTruncated", set: func(p *versionsPage, t []byte) (err error) {
			p.truncated, err = strconv.ParseBool(string(t))
			return err
		}},
		{name: "NextKeyMarker", set: func(p *versionsPage, t []byte) error { p.nextKey = string(t); return nil }},
		{name: "NextVersionIdMarker", set: func(p *versionsPage, t []byte) error { p.nextVersionID = string(t); return nil }},
		{name: "EncodingType", set: func(p *versionsPage, t []byte) error { p.encoding = string(t); return nil }},
		{name: "MaxKeys", set: checkInt[versionsPage]},
	}
	versionFields = []fieldSetter[Version]{
		{name: "Key", set: func(v *Version, t []byte) error { v.Key = string(t); return nil }},
		{name: "VersionId", set: func(v *Version, t []byte) error { v.VersionID = string(t); return nil }},
		{name: "IsLatest", set: func(v *Version, t []byte) (err error) { v.Latest, err = strconv.ParseBool(string(t)); return err }},
		{name: "Size", set: func(v *Version, t []byte) (err error) { v.Size, err = strconv.ParseInt(string(t), 10, 64); return err }},
		{name: "ETag", set: func(v *Version, t []byte) error { v.ETag = strings.Trim(string(t), `"`); return nil }},
		{name: "LastModified", set: func(v *Version, t []byte) (err error) {
			v.LastModified, err = smithytime.ParseDateTime(string(t))
			return err
		}},
		{name: "RestoreStatus", children: []fieldSetter[Version]{
			{name: "IsRestoreInProgress", set: checkBool[Version]},
			{name: "RestoreExpiryDate", set: checkTime[Version]},
		}},
	}
	prefixFields = []fieldSetter[struct{ prefix string }]{
		{name: "Prefix", set: func(p *struct{ prefix string }, t []byte) error { p.prefix = string(t); return nil }},
	}
)

// fields reads the children of the element name just opened into into.
func fields[T any](s *xmlScanner, name string, empty bool, known []fieldSetter[T], into *T) error {
	return s.children(name, empty, 2, func(child string, empty bool) error { return field(s, child, empty, 3, known, into) })
}

// field reads one element: a known one's text into its field, any other
// read past.
func field[T any](s *xmlScanner, name string, empty bool, depth int, known []fieldSetter[T], into *T) error {
	for _, f := range known {
		if !strings.EqualFold(name, f.name) {
			continue
		}
		if f.set == nil {
			return s.children(name, empty, depth, func(child string, empty bool) error { return field(s, child, empty, depth+1, f.children, into) })
		}
		t, err := s.leaf(name, empty)
		if err != nil {
			return err
		}
		if err := f.set(into, t); err != nil {
			return s.errorf("<%s>: %v", name, err)
		}
		return nil
	}
	return s.skip(name, empty, depth)
}

// xmlScanner walks an XML document held in memory.
type xmlScanner struct {
	data []byte
	pos  int
}

// maxDepth bounds nesting in elements the listing does not use.
const maxDepth = 16

func (s *xmlScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("malformed listing at byte %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *xmlScanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// prolog skips the XML declaration S3 writes: version 1.0, UTF-8 if it
// names an encoding.
func (s *xmlScanner) prolog() error {
	if !bytes.HasPrefix(s.data, []byte("<?xml")) {
		s.space()
		return nil
	}
	end := bytes.Index(s.data, []byte("?>"))
	if end < 0 {
		return s.errorf("unterminated XML declaration")
	}
	for i, f := range strings.Fields(string(s.data[len("<?xml"):end])) {
		name, value, _ := strings.Cut(f, "=")
		if len(value) < 2 || value[0] != value[len(value)-1] || value[0] != '"' && value[0] != '\'' {
			return s.errorf("malformed XML declaration")
		}
		switch value = value[1 : len(value)-1]; {
		case i == 0 && name == "version" && value == "1.0":
		case i == 1 && name == "encoding" && strings.EqualFold(value, "utf-8"):
		default:
			return s.errorf("an XML declaration other than S3's: %s", f)
		}
	}
	s.pos = end + 2
	s.space()
	return nil
}

// name reads an element or attribute name: ASCII letters, digits, '_', '-', '.'
// (and ':' in an attribute's, for xmlns:prefix).
func (s *xmlScanner) name(attr bool) (string, error) {
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || s.pos > start && ('0' <= c && c <= '9' || c == '-' || c == '.') || attr && c == ':' {
			s.pos++
			continue
		}
		break
	}
	if s.pos == start {
		return "", s.errorf("expected a name")
	}
	if n, ok := knownNames[string(s.data[start:s.pos])]; ok {
		return n, nil // no copy of the names every version repeats
	}
	return string(s.data[start:s.pos]), nil
}

var knownNames = map[string]string{}

func init() {
	for _, n := range strings.Fields("ListVersionsResult Version DeleteMarker Key VersionId IsLatest LastModified ETag Size StorageClass Owner ID DisplayName CommonPrefixes Prefix ChecksumAlgorithm ChecksumType") {
		knownNames[n] = n
	}
}

// startTag reads "<name>" or "<name/>"; only the root may carry attributes.
func (s *xmlScanner) startTag(root bool) (name string, empty bool, err error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '<' {
		return "", false, s.errorf("expected an element")
	}
	s.pos++
	if name, err = s.name(false); err != nil {
		return "", false, err
	}
	for {
		before := s.pos
		s.space()
		if s.pos >= len(s.data) {
			return "", false, s.errorf("unterminated <%s>", name)
		}
		switch s.data[s.pos] {
		case '>':
			s.pos++
			return name, false, nil
		case '/':
			if s.pos+1 < len(s.data) && s.data[s.pos+1] == '>' {
				s.pos += 2
				return name, true, nil
			}
			return "", false, s.errorf("stray '/' in <%s>", name)
		}
		if !root || s.pos == before {
			return "", false, s.errorf("unexpected attribute in <%s>", name)
		}
		if _, err := s.name(true); err != nil {
			return "", false, err
		}
		s.space()
		if s.pos+1 >= len(s.data) || s.data[s.pos] != '=' {
			return "", false, s.errorf("attribute without a value in <%s>", name)
		}
		s.pos++
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' && s.data[s.pos] != '\'' {
			return "", false, s.errorf("unquoted attribute in <%s>", name)
		}
		q := s.data[s.pos]
		end := bytes.IndexByte(s.data[s.pos+1:], q)
		if end < 0 {
			return "", false, s.errorf("unterminated attribute in <%s>", name)
		}
		value := s.data[s.pos+1 : s.pos+1+end]
		if bytes.ContainsAny(value, "<&") || !validText(value) {
			return "", false, s.errorf("unsupported attribute value in <%s>", name)
		}
		s.pos += end + 2
	}
}

// endTag reads "</name>".
func (s *xmlScanner) endTag(name string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte("</")) {
		return s.errorf("expected </%s>", name)
	}
	s.pos += 2
	got, err := s.name(false)
	if err != nil {
		return err
	}
	s.space()
	if got != name || s.pos >= len(s.data) || s.data[s.pos] != '>' {
		return s.errorf("expected </%s>", name)
	}
	s.pos++
	return nil
}

// children calls child for each element inside the element name just
// opened, then reads its end tag. Only white space may lie between them.
func (s *xmlScanner) children(name string, empty bool, depth int, child func(name string, empty bool) error) error {
	if empty {
		return nil
	}
	if depth > maxDepth {
		return s.errorf("elements nested too deep")
	}
	for {
		s.space()
		if s.pos >= len(s.data) {
			return s.errorf("unterminated <%s>", name)
		}
		if s.data[s.pos] != '<' {
			return s.errorf("text in <%s>", name)
		}
		if s.pos+1 < len(s.data) && s.data[s.pos+1] == '/' {
			return s.endTag(name)
		}
		c, e, err := s.startTag(false)
		if err != nil {
			return err
		}
		if err := child(c, e); err != nil {
			return err
		}
	}
}

// leaf reads the text of the element name just opened and its end tag.
func (s *xmlScanner) leaf(name string, empty bool) ([]byte, error) {
	if empty {
		return []byte{}, nil
	}
	text, err := s.text()
	if err != nil {
		return nil, err
	}
	return text, s.endTag(name)
}

// skip reads past an element the listing does not use, checking its form.
func (s *xmlScanner) skip(name string, empty bool, depth int) error {
	if empty {
		return nil
	}
	if _, err := s.text(); err != nil {
		return err
	}
	if s.pos+1 < len(s.data) && s.data[s.pos+1] == '/' {
		return s.endTag(name)
	}
	return s.children(name, false, depth, func(child string, empty bool) error { return s.skip(child, empty, depth+1) })
}

// text reads character data up to the next '<', resolving references and
// turning line ends into "\n" as XML does. Without either it is a slice of
// the document.
func (s *xmlScanner) text() ([]byte, error) {
	end := bytes.IndexByte(s.data[s.pos:], '<')
	if end < 0 {
		return nil, s.errorf("unterminated text")
	}
	raw := s.data[s.pos : s.pos+end]
	if !validText(raw) {
		return nil, s.errorf("a character XML does not allow")
	}
	if bytes.IndexByte(raw, '&') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		s.pos += end
		return raw, nil
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '\r':
			out = append(out, '\n')
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
		case '&':
			semi := bytes.IndexByte(raw[i:], ';')
			if semi < 0 {
				return nil, s.errorf("unterminated reference")
			}
			r, ok := reference(string(raw[i+1 : i+semi]))
			if !ok {
				return nil, s.errorf("unknown reference &%s;", raw[i+1:i+semi])
			}
			out = utf8.AppendRune(out, r)
			i += semi
		default:
			out = append(out, c)
		}
	}
	s.pos += end
	return out, nil
}

// reference resolves an entity or character reference (without & and ;).
func reference(ref string) (rune, bool) {
	switch ref {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	num, ok := strings.CutPrefix(ref, "#")
	if !ok || num == "" {
		return 0, false
	}
	base := 10
	if hex, ok := strings.CutPrefix(num, "x"); ok {
		num, base = hex, 16
	}
	if num == "" || num[0] == '+' || num[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(num, base, 32)
	if err != nil || !xmlChar(rune(n)) {
		return 0, false
	}
	return rune(n), true
}

// validText says whether b is UTF-8 made of characters XML allows.
func validText(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 || !xmlChar(r) {
			return false
		}
		b = b[n:]
	}
	return true
}

func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
