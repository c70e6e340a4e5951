// Package inventory reads the archive's S3 Inventory report: every object
// version with its ETag, size and Object Lock fields, written daily by S3
// into a destination bucket. It stands in for a listing of the archive's
// older days, which at hundreds of millions of objects is too slow to
// repeat nightly, and carries the retention a listing does not.
package inventory

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver "duckdb"

	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Fields are the optional fields a report must carry to stand in for a
// listing and to show each version's retention.
var Fields = []string{"Size", "LastModifiedDate", "ETag", "ObjectLockRetainUntilDate", "ObjectLockMode"}

// Caps on what is read from the destination bucket: a manifest lists a few
// hundred bytes per data file, and S3 writes data files of a few GB at most.
const (
	maxManifest = 64 << 20
	maxChecksum = 64
	maxDataFile = 32 << 30
	maxReport   = 512 << 30 // Parquet takes well under 100 bytes an object: billions of versions
)

// ErrNone says the archive has no usable inventory configuration or report.
var ErrNone = errors.New("no usable S3 Inventory report")

// Report is one delivered inventory report, loaded into an embedded DuckDB
// database on disk (sorted by key, as a listing is), so that memory stays
// bounded whatever the archive holds.
type Report struct {
	Source   string    // the archive bucket
	Manifest string    // s3://bucket/key of its manifest.json
	At       time.Time // when S3 began scanning the bucket
	Rows     int64
	dir      string
	db       *sql.DB
}

// manifest is manifest.json.
type manifest struct {
	SourceBucket      string `json:"sourceBucket"`
	DestinationBucket string `json:"destinationBucket"`
	CreationTimestamp string `json:"creationTimestamp"`
	FileFormat        string `json:"fileFormat"`
	FileSchema        string `json:"fileSchema"`
	Files             []struct {
		Key         string `json:"key"`
		Size        int64  `json:"size"`
		MD5checksum string `json:"MD5checksum"`
	} `json:"files"`
}

// Usable says why a configuration cannot stand in for a listing of the
// whole bucket with retention, or "" when it can.
func Usable(c s3types.InventoryConfiguration) string {
	d := c.Destination.S3BucketDestination
	switch {
	case !aws.ToBool(c.IsEnabled):
		return "it is disabled"
	case c.IncludedObjectVersions != s3types.InventoryIncludedObjectVersionsAll:
		return "it lists current versions only (a new version over an old log would hide the old one)"
	case c.Filter != nil && aws.ToString(c.Filter.Prefix) != "":
		return "it lists only the prefix " + aws.ToString(c.Filter.Prefix)
	case d == nil || (d.Format != s3types.InventoryFormatParquet && d.Format != s3types.InventoryFormatCsv):
		return "its format is not Parquet or CSV"
	}
	for _, f := range Fields {
		if !slices.Contains(c.OptionalFields, s3types.InventoryOptionalField(f)) {
			return "it lacks the field " + f
		}
	}
	return ""
}

// Latest finds the newest report of the archive bucket source: of each
// usable configuration, the newest delivered manifest whose checksum holds.
// The destination bucket is read with the same credentials: apply puts it in
// the archive account. The report is loaded under tmp.
func Latest(ctx context.Context, cl *s3.Client, source, tmp string) (*Report, error) {
	var configs []s3types.InventoryConfiguration
	var why []string
	var token *string
	for {
		out, err := cl.ListBucketInventoryConfigurations(ctx, &s3.ListBucketInventoryConfigurationsInput{Bucket: &source, ContinuationToken: token})
		if err != nil {
			return nil, fmt.Errorf("list the inventory configurations of s3://%s: %w", source, err)
		}
		for _, c := range out.InventoryConfigurationList {
			if r := Usable(c); r != "" {
				why = append(why, aws.ToString(c.Id)+": "+r)
				continue
			}
			configs = append(configs, c)
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		token = out.NextContinuationToken
	}
	if len(configs) == 0 {
		if len(why) == 0 {
			why = []string{"it has none"}
		}
		return nil, fmt.Errorf("%w: s3://%s: %s", ErrNone, source, strings.Join(why, "; "))
	}
	var best *Report
	var bestManifest *manifest
	for _, c := range configs {
		d := c.Destination.S3BucketDestination
		bucket := strings.TrimPrefix(aws.ToString(d.Bucket), "arn:aws:s3:::")
		base := source + "/" + aws.ToString(c.Id) + "/"
		if p := strings.TrimSuffix(aws.ToString(d.Prefix), "/"); p != "" {
			base = p + "/" + base
		}
		r, m, err := newest(ctx, cl, bucket, base, source)
		if err != nil {
			return nil, err
		}
		if r != nil && (best == nil || r.At.After(best.At)) {
			best, bestManifest = r, m
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: s3://%s: no report delivered yet (S3 delivers the first within 48 hours of the configuration)", ErrNone, source)
	}
	if err := best.load(ctx, cl, bestManifest, tmp); err != nil {
		best.Close()
		return nil, err
	}
	return best, nil
}

var reportFolderRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z/$`)

// newest reads the newest manifest under base whose manifest.checksum
// matches; nil when none was delivered.
func newest(ctx context.Context, cl *s3.Client, bucket, base, source string) (*Report, *manifest, error) {
	var folders []string
	pages := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &base, Delimiter: aws.String("/")})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list s3://%s/%s: %w", bucket, base, err)
		}
		for _, p := range out.CommonPrefixes {
			if name := strings.TrimPrefix(aws.ToString(p.Prefix), base); reportFolderRE.MatchString(name) {
				folders = append(folders, aws.ToString(p.Prefix))
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(folders)))
	for _, f := range folders {
		sum, err := get(ctx, cl, bucket, f+"manifest.checksum", maxChecksum)
		if isMissing(err) {
			continue // S3 is still writing it
		}
		if err != nil {
			return nil, nil, err
		}
		data, err := get(ctx, cl, bucket, f+"manifest.json", maxManifest)
		if err != nil {
			return nil, nil, err
		}
		at := "s3://" + bucket + "/" + f + "manifest.json"
		m, taken, err := parseManifest(data, strings.TrimSpace(string(sum)), source, bucket)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", at, err)
		}
		return &Report{Source: source, Manifest: at, At: taken}, m, nil
	}
	return nil, nil, nil
}

// parseManifest checks a manifest against its checksum and the buckets it
// must name.
func parseManifest(data []byte, checksum, source, dest string) (*manifest, time.Time, error) {
	sum := md5.Sum(data)
	if !strings.EqualFold(checksum, hex.EncodeToString(sum[:])) {
		return nil, time.Time{}, fmt.Errorf("its MD5 is %x, manifest.checksum says %q: not the manifest S3 wrote", sum, checksum)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, time.Time{}, fmt.Errorf("not an S3 Inventory manifest: %v", err)
	}
	ms, err := strconv.ParseInt(m.CreationTimestamp, 10, 64)
	switch {
	case m.SourceBucket != source:
		return nil, time.Time{}, fmt.Errorf("a report of bucket %q, not of %s", m.SourceBucket, source)
	case m.DestinationBucket != "arn:aws:s3:::"+dest:
		return nil, time.Time{}, fmt.Errorf("names destination %q, but lies in %s", m.DestinationBucket, dest)
	case err != nil || ms <= 0:
		return nil, time.Time{}, fmt.Errorf("creationTimestamp %q is not a time in milliseconds", m.CreationTimestamp)
	case m.FileFormat != "Parquet" && m.FileFormat != "CSV":
		return nil, time.Time{}, fmt.Errorf("format %q: trailkeeper reads Parquet and CSV reports", m.FileFormat)
	}
	var total int64
	for _, f := range m.Files {
		if f.Key == "" || f.Size < 0 || f.Size > maxDataFile || len(f.MD5checksum) != 32 {
			return nil, time.Time{}, fmt.Errorf("file entry %q (size %d, MD5 %q) is not one S3 writes", f.Key, f.Size, f.MD5checksum)
		}
		if total += f.Size; total > maxReport {
			return nil, time.Time{}, fmt.Errorf("its data files add up to more than %d GiB: not a report trailkeeper downloads", maxReport>>30)
		}
	}
	if _, err := columns(&m); err != nil {
		return nil, time.Time{}, err
	}
	return &m, time.UnixMilli(ms).UTC(), nil
}

// needed are the columns read, by their Parquet names.
var needed = []string{"key", "version_id", "is_latest", "is_delete_marker", "size", "last_modified_date", "e_tag", "object_lock_retain_until_date", "object_lock_mode"}

// columns maps each needed column to its position in a CSV row (the
// manifest's schema names them), or checks a Parquet schema names them all.
func columns(m *manifest) (map[string]int, error) {
	at := map[string]int{}
	if m.FileFormat == "CSV" {
		for i, name := range strings.Split(m.FileSchema, ",") {
			col := strings.TrimSpace(name)
			switch col {
			case "ETag":
				col = "e_tag"
			case "VersionId":
				col = "version_id"
			default:
				var sb strings.Builder
				for j, r := range col {
					if j > 0 && r >= 'A' && r <= 'Z' {
						sb.WriteByte('_')
					}
					sb.WriteRune(r)
				}
				col = strings.ToLower(sb.String())
			}
			at[col] = i
		}
	} else {
		for _, w := range strings.FieldsFunc(m.FileSchema, func(r rune) bool { return r == ' ' || r == ';' || r == '{' || r == '}' || r == '(' }) {
			at[w] = 0
		}
	}
	for _, c := range needed {
		if _, ok := at[c]; !ok {
			return nil, fmt.Errorf("its schema has no %s column: configure the report with every version and the fields %s", c, strings.Join(Fields, ", "))
		}
	}
	return at, nil
}

// load downloads the data files (checking each one's size and MD5) and
// loads them, sorted by key and newest version first, into a DuckDB file.
func (r *Report) load(ctx context.Context, cl *s3.Client, m *manifest, tmp string) error {
	dir, err := os.MkdirTemp(tmp, "trailkeeper-inventory-")
	if err != nil {
		return err
	}
	r.dir = dir
	bucket := strings.TrimPrefix(m.DestinationBucket, "arn:aws:s3:::")
	var files []string
	for i, f := range m.Files {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := download(ctx, cl, bucket, f.Key, f.Size, f.MD5checksum, p); err != nil {
			return err
		}
		files = append(files, p)
	}
	if r.db, err = sql.Open("duckdb", filepath.Join(dir, "inventory.duckdb")); err != nil {
		return err
	}
	setup := fmt.Sprintf("SET threads=2; SET memory_limit='1GB'; SET temp_directory=%s; SET preserve_insertion_order=true", quote(dir))
	if _, err := r.db.ExecContext(ctx, setup); err != nil {
		return err
	}
	list := make([]string, len(files))
	for i, f := range files {
		list[i] = quote(f)
	}
	src := "read_parquet([" + strings.Join(list, ", ") + "])"
	key := "key"
	if m.FileFormat == "CSV" {
		at, _ := columns(m)
		cols := make([]string, len(at))
		for name, i := range at {
			if i < len(cols) {
				cols[i] = fmt.Sprintf("%s: 'VARCHAR'", quote(name))
			}
		}
		for i := range cols {
			if cols[i] == "" {
				cols[i] = fmt.Sprintf("'unused_%d': 'VARCHAR'", i)
			}
		}
		src = fmt.Sprintf("(SELECT * REPLACE (CAST(is_latest AS BOOLEAN) AS is_latest, CAST(is_delete_marker AS BOOLEAN) AS is_delete_marker, CAST(size AS BIGINT) AS size, "+
			"CAST(last_modified_date AS TIMESTAMP) AS last_modified_date, CAST(object_lock_retain_until_date AS TIMESTAMP) AS object_lock_retain_until_date) "+
			"FROM read_csv([%s], header=false, columns={%s}, nullstr='', quote='\"', escape='\"', compression='gzip'))", strings.Join(list, ", "), strings.Join(cols, ", "))
		key = "url_decode(replace(key, '+', ' '))" // S3 encodes keys as a URL query does
	}
	q := fmt.Sprintf(`CREATE TABLE inventory AS SELECT * FROM (SELECT %s AS key, coalesce(nullif(version_id, ''), 'null') AS version_id, coalesce(is_latest, true) AS is_latest,
		coalesce(is_delete_marker, false) AS is_delete_marker, coalesce(size, 0) AS size, last_modified_date, coalesce(e_tag, '') AS e_tag,
		object_lock_retain_until_date, upper(coalesce(object_lock_mode, '')) AS object_lock_mode
		FROM %s) ORDER BY key, is_latest DESC, last_modified_date DESC, version_id DESC`, key, src)
	if _, err := r.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: reading its data files: %w", r.Manifest, err)
	}
	return r.db.QueryRowContext(ctx, "SELECT count(*) FROM inventory").Scan(&r.Rows)
}

// Taken is when S3 began scanning the bucket for the report.
func (r *Report) Taken() time.Time { return r.At }

// String names the report by its manifest.
func (r *Report) String() string { return r.Manifest }

// Versions calls fn with every version under prefix, in key order and
// newest version first, as ListObjectVersions gives them, with its Object
// Lock retention (zero: none) and mode.
func (r *Report) Versions(ctx context.Context, prefix string, fn func(v store.Version, retainUntil time.Time, mode string) error) error {
	if prefix == "" {
		return errors.New("inventory: an empty prefix")
	}
	// Keys sort bytewise; everything under "a/" sorts before "a0".
	upper := prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
	rs, err := r.db.QueryContext(ctx, `SELECT key, version_id, is_latest, is_delete_marker, size, last_modified_date, e_tag, object_lock_retain_until_date, object_lock_mode
		FROM inventory WHERE key >= ? AND key < ? ORDER BY key, is_latest DESC, last_modified_date DESC, version_id DESC`, prefix, upper)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var v store.Version
		var mode string
		var modified, until sql.NullTime
		if err := rs.Scan(&v.Key, &v.VersionID, &v.Latest, &v.DeleteMarker, &v.Size, &modified, &v.ETag, &until, &mode); err != nil {
			return err
		}
		v.LastModified = modified.Time.UTC()
		if err := fn(v, until.Time.UTC(), mode); err != nil {
			return err
		}
	}
	return rs.Err()
}

// Close removes the downloaded report.
func (r *Report) Close() {
	if r.db != nil {
		r.db.Close()
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func isMissing(err error) bool {
	return errors.Is(err, store.ErrNotFound)
}

// get reads a small object whole, refusing one larger than limit.
func get(ctx context.Context, cl *s3.Client, bucket, key string, limit int64) ([]byte, error) {
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		var nk *s3types.NoSuchKey
		if errors.As(err, &nk) {
			return nil, fmt.Errorf("s3://%s/%s: %w", bucket, key, store.ErrNotFound)
		}
		return nil, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("s3://%s/%s is larger than %d bytes: not what S3 Inventory writes", bucket, key, limit)
	}
	return data, nil
}

// download writes one data file to path, checking its size and MD5 against
// the manifest.
func download(ctx context.Context, cl *s3.Client, bucket, key string, size int64, sum, path string) error {
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("get s3://%s/%s (listed in the manifest): %w", bucket, key, err)
	}
	defer out.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(out.Body, size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != strings.ToLower(sum) {
		return fmt.Errorf("s3://%s/%s: %d bytes with MD5 %x, the manifest says %d bytes with MD5 %s: not the file S3 wrote", bucket, key, n, h.Sum(nil), size, sum)
	}
	return nil
}
