package sandbox

import (
	"encoding/base64"
	"encoding/xml"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sortedKeys lists the bucket's keys under prefix in S3's order (UTF-8
// binary), from an index kept until a key comes or goes, so that listing one
// day of a large archive does not scan all of it. Callers hold s.mu and do
// not change the result.
func sortedKeys(b *bucket, prefix string) []string {
	if b.sorted == nil {
		b.sorted = make([]string, 0, len(b.Objects))
		for k := range b.Objects {
			b.sorted = append(b.sorted, k)
		}
		sort.Strings(b.sorted)
	}
	i := sort.SearchStrings(b.sorted, prefix)
	j := i
	for j < len(b.sorted) && strings.HasPrefix(b.sorted[j], prefix) {
		j++
	}
	return b.sorted[i:j:j]
}

type listEntry struct {
	Key          string
	LastModified string
	ETag         string
	Size         int64
	StorageClass string
	Owner        *ownerXML `xml:",omitempty"`
}

type ownerXML struct{ ID, DisplayName string }

type commonPrefix struct{ Prefix string }

func (s *Sandbox) maxKeys(q url.Values) (int, error) {
	mk := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, errorf(400, "InvalidArgument", "Provided max-keys not an integer or within integer range")
		}
		mk = min(n, 1000)
	}
	if s.opts.PageSize > 0 {
		mk = min(mk, s.opts.PageSize)
	}
	return mk, nil
}

// keyEncoding is how a listing writes keys: as they are, or with
// encoding-type=url as S3 encodes them, a space as '+' and '/' left as it is
// (S3 lists "a+ b.txt" as "a%2B+b.txt" and "한글/x.txt" as
// "%ED%95%9C%EA%B8%80/x.txt"). Any other encoding is S3's InvalidArgument.
func keyEncoding(q url.Values) (func(string) string, error) {
	switch e := q.Get("encoding-type"); e {
	case "":
		return func(k string) string { return k }, nil
	case "url":
		return func(k string) string { return strings.ReplaceAll(url.QueryEscape(k), "%2F", "/") }, nil
	default:
		return nil, errorf(400, "InvalidArgument", "Invalid Encoding Method specified in Request")
	}
}

// walk visits keys after marker, folding those with a delimiter after the prefix
// into common prefixes, until max entries; it returns the last key or prefix seen
// and whether more remain.
func walk(keys []string, prefix, delim, marker string, limit int, visit func(key string, isPrefix bool) int) (string, bool) {
	count, last := 0, ""
	seen := map[string]bool{}
	for _, k := range keys {
		if k <= marker {
			continue
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				cp := k[:len(prefix)+i+len(delim)]
				if seen[cp] || cp <= marker {
					continue
				}
				if count >= limit {
					return last, true
				}
				seen[cp] = true
				count += visit(cp, true)
				last = cp
				continue
			}
		}
		if count >= limit {
			return last, true
		}
		n := visit(k, false)
		count += n
		if n > 0 {
			last = k
		}
	}
	return last, false
}

func (s *Sandbox) listObjects(c *call, bkt string, q url.Values) error {
	limit, err := s.maxKeys(q)
	if err != nil {
		return err
	}
	esc, err := keyEncoding(q)
	if err != nil {
		return err
	}
	v2 := q.Get("list-type") == "2"
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	marker := q.Get("marker")
	if v2 {
		marker = q.Get("start-after")
		if tok := q.Get("continuation-token"); tok != "" {
			// Opaque, as S3's: the last key handed out, in base64, so
			// that a key XML cannot carry survives the round trip.
			last, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil {
				return errorf(400, "InvalidArgument", "The continuation token provided is incorrect")
			}
			marker = string(last)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, "s3:ListBucket", "", map[string][]string{"s3:prefix": {prefix}, "s3:delimiter": {delim}, "s3:max-keys": {strconv.Itoa(limit)}})
	if err != nil {
		return err
	}
	var contents []listEntry
	var prefixes []commonPrefix
	last, truncated := walk(sortedKeys(b, prefix), prefix, delim, marker, limit, func(k string, isPrefix bool) int {
		if isPrefix {
			prefixes = append(prefixes, commonPrefix{esc(k)})
			return 1
		}
		v := findVersion(b, k, "")
		if v.DeleteMarker {
			return 0
		}
		e := listEntry{Key: esc(k), LastModified: v.LastModified.Format(time.RFC3339Nano), ETag: v.ETag, Size: v.Size, StorageClass: storageClass(v)}
		if !v2 || q.Get("fetch-owner") == "true" {
			e.Owner = &ownerXML{canonicalID(v.Owner), v.Owner}
		}
		contents = append(contents, e)
		return 1
	})
	common := struct {
		Name           string
		Prefix         string
		Delimiter      string `xml:",omitempty"`
		MaxKeys        int
		EncodingType   string `xml:",omitempty"`
		IsTruncated    bool
		Contents       []listEntry
		CommonPrefixes []commonPrefix
	}{bkt, esc(prefix), esc(delim), limit, q.Get("encoding-type"), truncated, contents, prefixes}
	if v2 {
		out := struct {
			Name                  string
			Prefix                string
			Delimiter             string `xml:",omitempty"`
			MaxKeys               int
			EncodingType          string `xml:",omitempty"`
			IsTruncated           bool
			KeyCount              int
			ContinuationToken     string `xml:",omitempty"`
			NextContinuationToken string `xml:",omitempty"`
			StartAfter            string `xml:",omitempty"`
			Contents              []listEntry
			CommonPrefixes        []commonPrefix
		}{common.Name, common.Prefix, common.Delimiter, limit, common.EncodingType, truncated, len(contents) + len(prefixes),
			q.Get("continuation-token"), "", esc(q.Get("start-after")), contents, prefixes}
		if truncated {
			out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
		}
		return writeXML(c, "ListBucketResult", out)
	}
	out := struct {
		Name           string
		Prefix         string
		Marker         string
		NextMarker     string `xml:",omitempty"`
		Delimiter      string `xml:",omitempty"`
		MaxKeys        int
		EncodingType   string `xml:",omitempty"`
		IsTruncated    bool
		Contents       []listEntry
		CommonPrefixes []commonPrefix
	}{common.Name, common.Prefix, esc(marker), "", common.Delimiter, limit, common.EncodingType, truncated, contents, prefixes}
	if truncated && delim != "" {
		out.NextMarker = esc(last)
	}
	return writeXML(c, "ListBucketResult", out)
}

func storageClass(v *version) string {
	if v.StorageClass == "" {
		return "STANDARD"
	}
	return v.StorageClass
}

type versionEntry struct {
	XMLName      xml.Name // Version or DeleteMarker: they interleave in one list
	Key          string
	VersionId    string
	IsLatest     bool
	LastModified string
	ETag         string `xml:",omitempty"`
	Size         *int64 `xml:",omitempty"`
	StorageClass string `xml:",omitempty"`
	Owner        ownerXML
}

func (s *Sandbox) listVersions(c *call, bkt string, q url.Values) error {
	limit, err := s.maxKeys(q)
	if err != nil {
		return err
	}
	esc, err := keyEncoding(q)
	if err != nil {
		return err
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	keyMarker, vidMarker := q.Get("key-marker"), q.Get("version-id-marker")
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, "s3:ListBucketVersions", "", map[string][]string{"s3:prefix": {prefix}})
	if err != nil {
		return err
	}
	var entries []versionEntry
	var prefixes []commonPrefix
	var nextKey, nextVid string
	truncated := false
	count := 0
	seen := map[string]bool{}
	for _, k := range sortedKeys(b, prefix) {
		if k < keyMarker || (k == keyMarker && vidMarker == "") {
			continue
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				cp := k[:len(prefix)+i+len(delim)]
				if !seen[cp] && cp > keyMarker { // a folder handed out as the marker is done
					if count >= limit {
						truncated = true
						break
					}
					seen[cp] = true
					prefixes = append(prefixes, commonPrefix{esc(cp)})
					nextKey, nextVid = cp, ""
					count++
				}
				continue
			}
		}
		vs := b.Objects[k]
		skipping := k == keyMarker && vidMarker != ""
		for i := len(vs) - 1; i >= 0 && !truncated; i-- {
			v := vs[i]
			if skipping {
				if v.ID == vidMarker {
					skipping = false
				}
				continue
			}
			if count >= limit {
				truncated = true
				break
			}
			e := versionEntry{XMLName: xml.Name{Local: "Version"}, Key: esc(k), VersionId: v.ID, IsLatest: i == len(vs)-1, LastModified: v.LastModified.Format(time.RFC3339Nano),
				Owner: ownerXML{canonicalID(v.Owner), v.Owner}}
			if v.DeleteMarker {
				e.XMLName.Local = "DeleteMarker"
			} else {
				size := v.Size
				e.ETag, e.Size, e.StorageClass = v.ETag, &size, storageClass(v)
			}
			entries = append(entries, e)
			nextKey, nextVid = k, v.ID
			count++
		}
		if truncated {
			break
		}
	}
	out := struct {
		Name                string
		Prefix              string
		KeyMarker           string
		VersionIdMarker     string
		NextKeyMarker       string `xml:",omitempty"`
		NextVersionIdMarker string `xml:",omitempty"`
		MaxKeys             int
		Delimiter           string `xml:",omitempty"`
		EncodingType        string `xml:",omitempty"`
		IsTruncated         bool
		Entries             []versionEntry
		CommonPrefixes      []commonPrefix
	}{Name: bkt, Prefix: esc(prefix), KeyMarker: esc(keyMarker), VersionIdMarker: vidMarker, MaxKeys: limit, Delimiter: esc(delim),
		EncodingType: q.Get("encoding-type"), IsTruncated: truncated, Entries: entries, CommonPrefixes: prefixes}
	if truncated {
		out.NextKeyMarker, out.NextVersionIdMarker = esc(nextKey), nextVid
	}
	return writeXML(c, "ListVersionsResult", out)
}

// page cuts a sorted list as the paginated APIs do: up to limit items after
// the one the token names (the token is the last item handed out, opaque to
// clients), capped by Options.PageSize, and the next token, "" at the end.
func (s *Sandbox) page(items []string, token string, limit int) ([]string, string) {
	if s.opts.PageSize > 0 {
		limit = min(limit, s.opts.PageSize)
	}
	start := 0
	if token != "" {
		after, _ := base64.RawURLEncoding.DecodeString(token)
		start, _ = slices.BinarySearch(items, string(after))
		if start < len(items) && items[start] == string(after) {
			start++
		}
	}
	end := min(len(items), start+max(1, limit))
	if end == len(items) {
		return items[start:end], ""
	}
	return items[start:end], base64.RawURLEncoding.EncodeToString([]byte(items[end-1]))
}
