package sandbox

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInventoryWithTheCLI configures S3 Inventory with the AWS CLI, as a
// user would, and reads the reports the sandbox delivers as S3 documents
// them: the manifest and its MD5, the data files and their MD5s, one row
// per version with the Object Lock fields.
func TestInventoryWithTheCLI(t *testing.T) {
	e := newEnv(t, Options{})
	c := newCLI(t, e.url)
	c.ok(archiveAcct, "s3api", "create-bucket", "--bucket", "archive", "--create-bucket-configuration", "LocationConstraint="+region, "--object-lock-enabled-for-bucket")
	c.ok(archiveAcct, "s3api", "create-bucket", "--bucket", "inv", "--create-bucket-configuration", "LocationConstraint="+region)
	c.ok(archiveAcct, "s3api", "put-object-lock-configuration", "--bucket", "archive", "--object-lock-configuration",
		`{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":400}}}`)
	body := strings.TrimPrefix(c.file("body", "log"), "file://")
	key := "AWSLogs/" + sourceAcct + "/CloudTrail/" + region + "/2026/12/01/a b+c.json.gz" // URL-encoded in CSV
	c.ok(archiveAcct, "s3api", "put-object", "--bucket", "archive", "--key", key, "--body", body)
	c.ok(archiveAcct, "s3api", "put-object", "--bucket", "archive", "--key", key, "--body", body)
	c.ok(archiveAcct, "s3api", "delete-object", "--bucket", "archive", "--key", "AWSLogs/x")

	config := func(id, format string) string {
		return c.file(id+".json", `{"Id":"`+id+`","IsEnabled":true,"Destination":{"S3BucketDestination":{"Bucket":"arn:aws:s3:::inv","Format":"`+format+`","Prefix":"reports"}},
"IncludedObjectVersions":"All","Schedule":{"Frequency":"Daily"},"OptionalFields":["Size","LastModifiedDate","ETag","ObjectLockRetainUntilDate","ObjectLockMode"]}`)
	}
	c.ok(archiveAcct, "s3api", "put-bucket-inventory-configuration", "--bucket", "archive", "--id", "pq", "--inventory-configuration", config("pq", "Parquet"))
	c.ok(archiveAcct, "s3api", "put-bucket-inventory-configuration", "--bucket", "archive", "--id", "csv", "--inventory-configuration", config("csv", "CSV"))
	if out := c.ok(archiveAcct, "s3api", "list-bucket-inventory-configurations", "--bucket", "archive", "--query", "InventoryConfigurationList[].Id", "--output", "text"); strings.Fields(out)[0] != "csv" || strings.Fields(out)[1] != "pq" {
		t.Fatalf("list: %q", out)
	}
	if out := c.ok(archiveAcct, "s3api", "get-bucket-inventory-configuration", "--bucket", "archive", "--id", "pq", "--query", "InventoryConfiguration.OptionalFields", "--output", "text"); !strings.Contains(out, "ObjectLockRetainUntilDate") {
		t.Fatalf("get: %q", out)
	}
	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"get-bucket-inventory-configuration", "--bucket", "archive", "--id", "none"}, "NoSuchConfiguration"},
		{[]string{"put-bucket-inventory-configuration", "--bucket", "archive", "--id", "other", "--inventory-configuration", config("pq", "Parquet")}, "InvalidArgument"},
		{[]string{"put-bucket-inventory-configuration", "--bucket", "archive", "--id", "h", "--inventory-configuration", `{"Id":"h","IsEnabled":true,"Destination":{"S3BucketDestination":{"Bucket":"arn:aws:s3:::inv","Format":"CSV"}},"IncludedObjectVersions":"All","Schedule":{"Frequency":"Hourly"}}`}, "MalformedXML"},
	} {
		out, err := c.run(archiveAcct, append([]string{"s3api"}, tc.args...)...)
		if err == nil || !strings.Contains(out+err.Error(), tc.code) {
			t.Errorf("%v: %v %s", tc.args, err, out)
		}
	}
	if out, err := c.run(sourceAcct, "s3api", "get-bucket-inventory-configuration", "--bucket", "archive", "--id", "pq"); err == nil || !strings.Contains(out+err.Error(), "AccessDenied") {
		t.Errorf("another account read the configuration: %v %s", err, out)
	}

	// Without a policy that lets S3 write, nothing is delivered.
	if err := e.sb.DeliverInventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := c.ok(archiveAcct, "s3api", "list-objects-v2", "--bucket", "inv", "--query", "length(Contents || `[]`)"); strings.TrimSpace(out) != "0" {
		t.Fatalf("delivered without the destination's permission: %s", out)
	}
	c.ok(archiveAcct, "s3api", "put-bucket-policy", "--bucket", "inv", "--policy", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
"Principal":{"Service":"s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::inv/*",
"Condition":{"StringEquals":{"aws:SourceAccount":"`+archiveAcct+`","s3:x-amz-acl":"bucket-owner-full-control"},"ArnLike":{"aws:SourceArn":"arn:aws:s3:::archive"}}}]}`)
	if err := e.sb.DeliverInventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	var versions struct{ Versions, DeleteMarkers []map[string]any }
	json.Unmarshal([]byte(c.ok(archiveAcct, "s3api", "list-object-versions", "--bucket", "archive")), &versions)

	get := func(key string) []byte {
		p := filepath.Join(c.dir, "got")
		c.ok(archiveAcct, "s3api", "get-object", "--bucket", "inv", "--key", key, p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, id := range []string{"pq", "csv"} {
		folder := strings.TrimSpace(c.ok(archiveAcct, "s3api", "list-objects-v2", "--bucket", "inv", "--prefix", "reports/archive/"+id+"/", "--delimiter", "/",
			"--query", "CommonPrefixes[?ends_with(Prefix, 'Z/')].Prefix | [0]", "--output", "text"))
		if _, err := time.Parse("2006-01-02T15-04Z/", strings.TrimPrefix(folder, "reports/archive/"+id+"/")); err != nil {
			t.Fatalf("%s: report folder %q: %v", id, folder, err)
		}
		manifest := get(folder + "manifest.json")
		sum := md5.Sum(manifest)
		if got := string(get(folder + "manifest.checksum")); got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: manifest.checksum %q, MD5 of manifest.json %x", id, got, sum)
		}
		var m struct {
			SourceBucket, DestinationBucket, FileFormat, FileSchema, CreationTimestamp string
			Files                                                                      []struct {
				Key         string
				Size        int64
				MD5checksum string
			}
		}
		if err := json.Unmarshal(manifest, &m); err != nil || m.SourceBucket != "archive" || m.DestinationBucket != "arn:aws:s3:::inv" || len(m.Files) != 1 {
			t.Fatalf("%s: manifest %s: %v", id, manifest, err)
		}
		data := get(m.Files[0].Key)
		fsum := md5.Sum(data)
		if int64(len(data)) != m.Files[0].Size || hex.EncodeToString(fsum[:]) != m.Files[0].MD5checksum {
			t.Errorf("%s: data file %d bytes MD5 %x, manifest says %d %s", id, len(data), fsum, m.Files[0].Size, m.Files[0].MD5checksum)
		}
		var rows [][]string
		if id == "csv" {
			if m.FileSchema != "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, ObjectLockRetainUntilDate, ObjectLockMode" {
				t.Errorf("CSV schema %q", m.FileSchema)
			}
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(zr)
			if rows, err = csv.NewReader(bytes.NewReader(raw)).ReadAll(); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if r[1], err = url.QueryUnescape(r[1]); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			if !strings.HasPrefix(m.FileSchema, "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8);") {
				t.Errorf("Parquet schema %q", m.FileSchema)
			}
			p := filepath.Join(c.dir, "data.parquet")
			os.WriteFile(p, data, 0o600)
			db, err := sql.Open("duckdb", "")
			if err != nil {
				t.Fatal(err)
			}
			rs, err := db.Query(`SELECT bucket, key, coalesce(version_id, ''), is_latest::VARCHAR, is_delete_marker::VARCHAR, coalesce(size::VARCHAR, ''),
				strftime(last_modified_date, '%Y-%m-%dT%H:%M:%S.%gZ'), coalesce(e_tag, ''), coalesce(strftime(object_lock_retain_until_date, '%Y-%m-%dT%H:%M:%S.%gZ'), ''), coalesce(object_lock_mode, '') FROM read_parquet(?)`, p)
			if err != nil {
				t.Fatal(err)
			}
			for rs.Next() {
				r := make([]string, 10)
				ptrs := make([]any, 10)
				for i := range r {
					ptrs[i] = &r[i]
				}
				if err := rs.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				rows = append(rows, r)
			}
			db.Close()
		}
		if len(rows) != len(versions.Versions)+len(versions.DeleteMarkers) {
			t.Fatalf("%s: %d rows for %d versions and %d delete markers", id, len(rows), len(versions.Versions), len(versions.DeleteMarkers))
		}
		for _, v := range versions.Versions {
			found := false
			for _, r := range rows {
				if r[1] == v["Key"] && r[2] == v["VersionId"] {
					found = true
					if r[7] != strings.Trim(v["ETag"].(string), `"`) || r[4] != "false" || r[9] != "GOVERNANCE" || r[8] == "" || r[5] != "3" {
						t.Errorf("%s: row %v for version %v", id, r, v)
					}
				}
			}
			if !found {
				t.Errorf("%s: no row for version %v", id, v)
			}
		}
		for _, r := range rows {
			if r[1] == "AWSLogs/x" && (r[4] != "true" || r[3] != "true" || r[5] != "") {
				t.Errorf("%s: delete marker row %v", id, r)
			}
		}
	}
}
