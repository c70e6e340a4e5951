package sandbox

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Uploads above Options.SpillAbove are streamed to a file and never held
// whole in memory; what is stored, replicated, copied, read by range and
// joined from parts is still the bytes sent, in memory mode and with a data
// dir. A refused upload leaves no file behind, and a memory-mode sandbox
// removes its spill directory when it closes.
func TestLargeUploadsAreStreamedToDisk(t *testing.T) {
	for _, dataDir := range []bool{false, true} {
		name := map[bool]string{false: "in memory", true: "data dir"}[dataDir]
		t.Run(name, func(t *testing.T) {
			opts := Options{SpillAbove: 64 << 10}
			if dataDir {
				opts.DataDir = t.TempDir()
			}
			e := newEnv(t, opts)
			sb := e.sb
			spill, err := sb.blobs.spillDir()
			if err != nil {
				t.Fatal(err)
			}
			files := func() int {
				n, _ := filepath.Glob(filepath.Join(spill, "*"))
				return len(n)
			}
			p := newPair(t, e)
			p.grant(t, sourceAcct)
			src := e.s3(sourceAcct)
			big := make([]byte, 1<<20)
			rand.Read(big)
			key := "AWSLogs/" + sourceAcct + "/big.json.gz"
			put := must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &key, Body: bytes.NewReader(big)})).OK(t)
			sum := md5.Sum(big)
			if aws.ToString(put.ETag) != `"`+hex.EncodeToString(sum[:])+`"` {
				t.Fatalf("ETag %s", aws.ToString(put.ETag))
			}
			if b, err := sb.blobs.open(blobID(p.source, aws.ToString(put.VersionId), key)); err != nil {
				t.Fatal(err)
			} else if _, inFile := b.(fileBlob); b.Close() == nil && !inFile {
				t.Fatal("a 1 MiB upload is held in memory above a 64 KiB SpillAbove")
			}
			e.waitReplication()
			if got := e.get(archiveAcct, p.archive, key); !bytes.Equal(got, big) {
				t.Fatal("the replica's bytes differ from the upload's")
			}
			rg := must(src.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: &key, Range: aws.String("bytes=1000-1999")})).OK(t)
			part, _ := io.ReadAll(rg.Body)
			if !bytes.Equal(part, big[1000:2000]) || aws.ToString(rg.ContentRange) != "bytes 1000-1999/1048576" {
				t.Fatalf("range read: %d bytes, %s", len(part), aws.ToString(rg.ContentRange))
			}
			cp := must(src.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &p.source, Key: aws.String("copy"), CopySource: aws.String(p.source + "/" + key)})).OK(t)
			if got := e.get(sourceAcct, p.source, "copy"); !bytes.Equal(got, big) || aws.ToString(cp.CopyObjectResult.ETag) != aws.ToString(put.ETag) {
				t.Fatal("the copy differs")
			}
			// Two parts, joined through a spool.
			up := must(src.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &p.source, Key: aws.String("mp")})).OK(t)
			first := bytes.Repeat(big, 5)
			var parts []types.CompletedPart
			for i, data := range [][]byte{first, big} {
				out := must(src.UploadPart(ctx, &s3.UploadPartInput{Bucket: &p.source, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(data)})).OK(t)
				parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
			}
			must(src.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &p.source, Key: aws.String("mp"), UploadId: up.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})).OK(t)
			if got := e.get(sourceAcct, p.source, "mp"); !bytes.Equal(got, append(first, big...)) {
				t.Fatal("the joined parts differ")
			}
			// A refused upload leaves no spill file.
			before := files()
			wrong := md5.Sum([]byte("other"))
			if _, err := src.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: aws.String("bad"), Body: bytes.NewReader(big),
				ContentMD5: aws.String(base64.StdEncoding.EncodeToString(wrong[:]))}); errCode(err) != "BadDigest" {
				t.Fatalf("a wrong Content-MD5: %v", err)
			}
			if after := files(); after != before {
				t.Fatalf("a refused upload left %d files behind", after-before)
			}
			if err := sb.Close(); err != nil { // before newEnv's cleanup, to see the spill directory go
				t.Fatal(err)
			}
			if _, err := os.Stat(spill); dataDir == os.IsNotExist(err) {
				t.Fatalf("after Close, the spill directory %s: %v (data dir %v)", spill, err, dataDir)
			}
		})
	}
}
