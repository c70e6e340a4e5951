package inventory

import (
	"crypto/md5"
	"encoding/hex"
	"testing"
)

// FuzzParseManifest: whatever lies in the destination bucket, reading a
// manifest never panics, and one it accepts names the archive, a time and
// files of bounded size.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"sourceBucket":"archive","destinationBucket":"arn:aws:s3:::inv","version":"2016-11-30","creationTimestamp":"1514944800000","fileFormat":"Parquet",
"fileSchema":"message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional int64 object_lock_retain_until_date (TIMESTAMP_MILLIS); optional binary object_lock_mode (UTF8); }",
"files":[{"key":"inventory/archive/trailkeeper/data/a.parquet","size":56291,"MD5checksum":"5825f2e18e1695c2d030b9f6e0000000"}]}`))
	f.Add([]byte(`{"sourceBucket":"archive","destinationBucket":"arn:aws:s3:::inv","creationTimestamp":"1","fileFormat":"CSV","fileSchema":"Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, ObjectLockRetainUntilDate, ObjectLockMode","files":[]}`))
	f.Add([]byte(`{"files":[{"size":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sum := md5.Sum(data)
		m, at, err := parseManifest(data, hex.EncodeToString(sum[:]), "archive", "inv")
		if err != nil {
			return
		}
		if m.SourceBucket != "archive" || at.IsZero() {
			t.Fatalf("accepted %s", data)
		}
		var total int64
		for _, f := range m.Files {
			if total += f.Size; f.Size < 0 || f.Size > maxDataFile || total > maxReport {
				t.Fatalf("accepted a file of %d bytes (%d in all)", f.Size, total)
			}
		}
		if _, _, err := parseManifest(data, "0", "archive", "inv"); err == nil {
			t.Fatal("accepted a manifest whose checksum does not match")
		}
	})
}
