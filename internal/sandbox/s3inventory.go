package sandbox

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// S3 Inventory: PutBucketInventoryConfiguration and its siblings, and the
// reports S3 delivers. AWS delivers a daily report within 48 hours; the
// sandbox delivers one for every enabled configuration when asked
// (DeliverInventory, or POST /_sandbox/s3/deliver-inventory), as S3 writes
// them: the data files under DEST-PREFIX/SOURCE/CONFIG-ID/data/, then
// manifest.json and manifest.checksum (the MD5 of manifest.json) under
// DEST-PREFIX/SOURCE/CONFIG-ID/YYYY-MM-DDTHH-MMZ/, and hive/dt=.../symlink.txt.

// inventoryConfig is one configuration, as its XML names it.
type inventoryConfig struct {
	ID          string `xml:"Id"`
	IsEnabled   bool
	Destination struct {
		S3BucketDestination struct {
			AccountID  string `xml:"AccountId,omitempty"`
			Bucket     string
			Format     string
			Prefix     string `xml:",omitempty"`
			Encryption *struct {
				SSES3  *struct{} `xml:"SSE-S3,omitempty"`
				SSEKMS *struct {
					KeyID string `xml:"KeyId"`
				} `xml:"SSE-KMS,omitempty"`
			} `xml:",omitempty"`
		}
	}
	Filter *struct {
		Prefix string
	} `xml:",omitempty"`
	IncludedObjectVersions string
	OptionalFields         *struct {
		Field []string
	} `xml:",omitempty"`
	Schedule struct {
		Frequency string
	}
}

// inventoryFields are the optional fields in the order S3 writes their
// columns, with their Parquet names.
var inventoryFields = []struct{ name, column string }{
	{"Size", "size"}, {"LastModifiedDate", "last_modified_date"}, {"ETag", "e_tag"}, {"StorageClass", "storage_class"},
	{"IsMultipartUploaded", "is_multipart_uploaded"}, {"ReplicationStatus", "replication_status"}, {"EncryptionStatus", "encryption_status"},
	{"ObjectLockRetainUntilDate", "object_lock_retain_until_date"}, {"ObjectLockMode", "object_lock_mode"},
	{"ObjectLockLegalHoldStatus", "object_lock_legal_hold_status"}, {"IntelligentTieringAccessTier", "intelligent_tiering_access_tier"},
	{"BucketKeyStatus", "bucket_key_status"}, {"ChecksumAlgorithm", "checksum_algorithm"}, {"ObjectAccessControlList", "object_access_control_list"},
	{"ObjectOwner", "object_owner"},
}

var inventoryIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// maxInventoryConfigs is S3's limit per bucket.
const maxInventoryConfigs = 1000

func (s *Sandbox) getInventory(c *call, b *bucket) error {
	id := first(c.r.URL.Query(), "id")
	if id == "" {
		c.action = "ListBucketInventoryConfigurations"
		ids := make([]string, 0, len(b.Inventory))
		for id := range b.Inventory {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		after := first(c.r.URL.Query(), "continuation-token")
		out := struct {
			Configs   []*inventoryConfig `xml:"InventoryConfiguration"`
			IsTrunc   bool               `xml:"IsTruncated"`
			Token     string             `xml:"ContinuationToken,omitempty"`
			NextToken string             `xml:"NextContinuationToken,omitempty"`
		}{Token: after}
		for _, id := range ids {
			if id <= after && after != "" {
				continue
			}
			if len(out.Configs) == 100 { // S3 returns up to 100 a page
				out.IsTrunc, out.NextToken = true, out.Configs[99].ID
				break
			}
			out.Configs = append(out.Configs, b.Inventory[id])
		}
		return writeXML(c, "ListInventoryConfigurationsResult", out)
	}
	cfg := b.Inventory[id]
	if cfg == nil {
		return errorf(404, "NoSuchConfiguration", "The specified configuration does not exist.")
	}
	return writeXML(c, "InventoryConfiguration", cfg)
}

func (s *Sandbox) putInventory(c *call, b *bucket) error {
	id := first(c.r.URL.Query(), "id")
	if id == "" {
		return errorf(400, "InvalidArgument", "Missing required parameter: id")
	}
	var cfg inventoryConfig
	if err := readXML(c, &cfg); err != nil {
		return err
	}
	if err := validateInventory(id, &cfg); err != nil {
		return err
	}
	if b.Inventory == nil {
		b.Inventory = map[string]*inventoryConfig{}
	}
	if b.Inventory[id] == nil && len(b.Inventory) >= maxInventoryConfigs {
		return errorf(400, "TooManyConfigurations", "You are attempting to create a new configuration but have already reached the %d-configuration limit.", maxInventoryConfigs)
	}
	b.Inventory[id] = &cfg
	return nil
}

func (s *Sandbox) deleteInventory(c *call, b *bucket) error {
	id := first(c.r.URL.Query(), "id")
	if b.Inventory[id] == nil {
		return errorf(404, "NoSuchConfiguration", "The specified configuration does not exist.")
	}
	delete(b.Inventory, id)
	c.status = 204
	return nil
}

func validateInventory(id string, cfg *inventoryConfig) error {
	bad := func(format string, a ...any) error { return errorf(400, "InvalidArgument", format, a...) }
	malformed := errorf(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
	d := cfg.Destination.S3BucketDestination
	switch {
	case !inventoryIDRE.MatchString(id):
		return bad("The id is not valid: use up to 64 letters, digits, '.', '-' and '_'.")
	case cfg.ID != id:
		return bad("The Id in the configuration does not match the id in the request.")
	case !strings.HasPrefix(d.Bucket, "arn:aws:s3:::") || len(d.Bucket) == len("arn:aws:s3:::"):
		return malformed
	case d.Format != "CSV" && d.Format != "ORC" && d.Format != "Parquet":
		return malformed
	case cfg.IncludedObjectVersions != "All" && cfg.IncludedObjectVersions != "Current":
		return malformed
	case cfg.Schedule.Frequency != "Daily" && cfg.Schedule.Frequency != "Weekly":
		return malformed
	case d.AccountID != "" && !accountIDRE.MatchString(d.AccountID):
		return bad("Invalid destination account id.")
	}
	if cfg.OptionalFields != nil {
		for _, f := range cfg.OptionalFields.Field {
			if !slices.ContainsFunc(inventoryFields, func(x struct{ name, column string }) bool { return x.name == f }) {
				return malformed
			}
		}
	}
	return nil
}

var accountIDRE = regexp.MustCompile(`^\d{12}$`)

// inventoryJob is one report to write, taken under s.mu.
type inventoryJob struct {
	source, owner, region string
	cfg                   inventoryConfig
	columns               []string // Parquet names, in order
	rows                  [][]string
}

// DeliverInventory writes a report for every enabled inventory
// configuration, as of now. A destination that is missing, in another
// region, or whose policy does not let S3 write, gets nothing (AWS says so
// nowhere but in the report that never comes); ORC is not written.
func (s *Sandbox) DeliverInventory(ctx context.Context) error {
	now := time.Now().UTC()
	s.mu.Lock()
	var jobs []*inventoryJob
	names := make([]string, 0, len(s.st.Buckets))
	for n := range s.st.Buckets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := s.st.Buckets[n]
		ids := make([]string, 0, len(b.Inventory))
		for id := range b.Inventory {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			if cfg := b.Inventory[id]; cfg.IsEnabled && cfg.Destination.S3BucketDestination.Format != "ORC" {
				jobs = append(jobs, s.inventoryRows(b, cfg))
			}
		}
	}
	s.mu.Unlock()
	for _, j := range jobs {
		if err := s.writeInventory(ctx, j, now); err != nil {
			return fmt.Errorf("inventory %s of bucket %s: %w", j.cfg.ID, j.source, err)
		}
	}
	return nil
}

// inventoryRows lists a bucket as the configuration asks. Callers hold s.mu.
func (s *Sandbox) inventoryRows(b *bucket, cfg *inventoryConfig) *inventoryJob {
	j := &inventoryJob{source: b.Name, owner: b.Owner, region: b.Region, cfg: *cfg, columns: []string{"bucket", "key"}}
	all := cfg.IncludedObjectVersions == "All"
	if all {
		j.columns = append(j.columns, "version_id", "is_latest", "is_delete_marker")
	}
	var fields []string
	if cfg.OptionalFields != nil {
		fields = cfg.OptionalFields.Field
	}
	for _, f := range inventoryFields {
		if slices.Contains(fields, f.name) {
			j.columns = append(j.columns, f.column)
		}
	}
	prefix := ""
	if cfg.Filter != nil {
		prefix = cfg.Filter.Prefix
	}
	ms := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	for _, k := range sortedKeys(b, prefix) {
		vs := b.Objects[k]
		for i := len(vs) - 1; i >= 0; i-- {
			v := vs[i]
			latest := i == len(vs)-1
			if !all && (!latest || v.DeleteMarker) {
				continue
			}
			row := make([]string, 0, len(j.columns))
			for _, col := range j.columns {
				val := ""
				switch col {
				case "bucket":
					val = b.Name
				case "key":
					val = k
				case "version_id":
					if v.ID != "null" {
						val = v.ID
					}
				case "is_latest":
					val = strconv.FormatBool(latest)
				case "is_delete_marker":
					val = strconv.FormatBool(v.DeleteMarker)
				case "size":
					if !v.DeleteMarker {
						val = strconv.FormatInt(v.Size, 10)
					}
				case "last_modified_date":
					val = ms(v.LastModified)
				case "e_tag":
					val = strings.Trim(v.ETag, `"`) // the report's ETags have no quotes
				case "storage_class":
					if !v.DeleteMarker {
						val = storageClass(v)
					}
				case "is_multipart_uploaded":
					val = strconv.FormatBool(v.Parts > 0)
				case "replication_status":
					val = v.Replication
				case "encryption_status":
					val = map[string]string{"": "SSE-S3", "AES256": "SSE-S3", "aws:kms": "SSE-KMS", "aws:kms:dsse": "DSSE-KMS"}[v.SSE]
				case "object_lock_retain_until_date":
					val = ms(v.RetainUntil)
				case "object_lock_mode":
					val = v.LockMode
				case "object_lock_legal_hold_status":
					if b.ObjectLock {
						val = map[bool]string{true: "ON", false: "OFF"}[v.LegalHold]
					}
				}
				row = append(row, val)
			}
			j.rows = append(j.rows, row)
		}
	}
	return j
}

// writeInventory writes one report into its destination bucket.
func (s *Sandbox) writeInventory(ctx context.Context, j *inventoryJob, now time.Time) error {
	d := j.cfg.Destination.S3BucketDestination
	dest := strings.TrimPrefix(d.Bucket, "arn:aws:s3:::")
	base := j.source + "/" + j.cfg.ID + "/"
	if d.Prefix != "" {
		base = strings.TrimSuffix(d.Prefix, "/") + "/" + base
	}
	tmp, err := os.MkdirTemp("", "sandbox-inventory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var data []byte
	name := newUUID()
	switch d.Format {
	case "Parquet":
		data, err = inventoryParquet(ctx, j, tmp)
		name += ".parquet"
	default:
		data, err = inventoryCSV(j)
		name += ".csv.gz"
	}
	if err != nil {
		return err
	}
	dataKey := base + "data/" + name
	sum := md5.Sum(data)
	schema := inventorySchema(d.Format, j.columns)
	manifest, err := json.MarshalIndent(map[string]any{
		"sourceBucket": j.source, "destinationBucket": d.Bucket, "version": "2016-11-30",
		"creationTimestamp": strconv.FormatInt(now.UnixMilli(), 10), "fileFormat": d.Format, "fileSchema": schema,
		"files": []map[string]any{{"key": dataKey, "size": len(data), "MD5checksum": hex.EncodeToString(sum[:])}},
	}, "", "    ")
	if err != nil {
		return err
	}
	msum := md5.Sum(manifest)
	folder := base + now.Format("2006-01-02T15-04Z") + "/"
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.st.Buckets[dest]
	if b == nil || b.Region != j.region {
		return nil
	}
	as := &call{secure: true, caller: caller{Service: "s3.amazonaws.com"}}
	cond := map[string][]string{"aws:SourceArn": {bucketARN(j.source)}, "aws:SourceAccount": {j.owner}, "s3:x-amz-acl": {"bucket-owner-full-control"}}
	if s.authorize(as, b, "s3:PutObject", bucketARN(dest)+"/"+dataKey, cond) != nil {
		return nil
	}
	h := map[string]string{"x-amz-acl": "bucket-owner-full-control"}
	for _, o := range []struct {
		key  string
		body []byte
	}{
		{dataKey, data},
		{folder + "manifest.json", manifest},
		{folder + "manifest.checksum", []byte(hex.EncodeToString(msum[:]))},
		{base + "hive/dt=" + now.Format("2006-01-02-15-04") + "/symlink.txt", []byte("s3://" + dest + "/" + dataKey + "\n")},
	} {
		if err := s.putAsService(b, o.key, o.body, h); err != nil {
			return err
		}
	}
	s.changed()
	return nil
}

// inventorySchema is the manifest's fileSchema, as S3 writes it per format.
func inventorySchema(format string, columns []string) string {
	if format == "Parquet" {
		var sb strings.Builder
		sb.WriteString("message s3.inventory { ")
		for _, c := range columns {
			switch c {
			case "bucket", "key":
				fmt.Fprintf(&sb, "required binary %s (UTF8); ", c)
			case "is_latest", "is_delete_marker", "is_multipart_uploaded":
				fmt.Fprintf(&sb, "optional boolean %s; ", c)
			case "size":
				sb.WriteString("optional int64 size; ")
			case "last_modified_date", "object_lock_retain_until_date":
				fmt.Fprintf(&sb, "optional int64 %s (TIMESTAMP_MILLIS); ", c)
			default:
				fmt.Fprintf(&sb, "optional binary %s (UTF8); ", c)
			}
		}
		return sb.String() + "}"
	}
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = csvName(c)
	}
	return strings.Join(names, ", ")
}

// csvName is a column's name in a CSV schema: "e_tag" -> "ETag".
func csvName(column string) string {
	switch column {
	case "e_tag":
		return "ETag"
	case "version_id":
		return "VersionId"
	}
	var sb strings.Builder
	for _, part := range strings.Split(column, "_") {
		sb.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return sb.String()
}

// inventoryCSV is a gzip CSV without a header, every field quoted and the
// key URL-encoded, as S3 writes it.
func inventoryCSV(j *inventoryJob) ([]byte, error) {
	var raw bytes.Buffer
	for _, row := range j.rows {
		for i, v := range row {
			if i > 0 {
				raw.WriteByte(',')
			}
			if j.columns[i] == "key" {
				v = url.QueryEscape(v)
			}
			raw.WriteString(`"` + strings.ReplaceAll(v, `"`, `""`) + `"`)
		}
		raw.WriteByte('\n')
	}
	return gzipBytes(raw.Bytes()), nil
}

// inventoryParquet writes the rows as S3's Parquet schema (Snappy), through
// a CSV that the embedded DuckDB converts.
func inventoryParquet(ctx context.Context, j *inventoryJob, tmp string) ([]byte, error) {
	in, out := filepath.Join(tmp, "rows.csv"), filepath.Join(tmp, "rows.parquet")
	f, err := os.Create(in)
	if err != nil {
		return nil, err
	}
	w := csv.NewWriter(f)
	w.WriteAll(j.rows)
	if err := f.Close(); err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	cols, sel := make([]string, len(j.columns)), make([]string, len(j.columns))
	for i, c := range j.columns {
		cols[i] = fmt.Sprintf("'%s': 'VARCHAR'", c)
		typ := "VARCHAR"
		switch c {
		case "is_latest", "is_delete_marker", "is_multipart_uploaded":
			typ = "BOOLEAN"
		case "size":
			typ = "BIGINT"
		case "last_modified_date", "object_lock_retain_until_date":
			typ = "TIMESTAMP_MS"
		}
		sel[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", c, typ, c)
	}
	q := fmt.Sprintf("COPY (SELECT %s FROM read_csv(%s, header=false, columns={%s}, nullstr='', quote='\"', escape='\"')) TO %s (FORMAT parquet, COMPRESSION snappy)",
		strings.Join(sel, ", "), sqlString(in), strings.Join(cols, ", "), sqlString(out))
	if len(j.rows) == 0 {
		q = fmt.Sprintf("COPY (SELECT %s FROM (SELECT %s) WHERE false) TO %s (FORMAT parquet, COMPRESSION snappy)",
			strings.Join(sel, ", "), nullColumns(j.columns), sqlString(out))
	}
	if _, err := db.ExecContext(ctx, q); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

func nullColumns(columns []string) string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = "NULL::VARCHAR AS " + c
	}
	return strings.Join(out, ", ")
}
