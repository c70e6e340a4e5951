package store

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
)

type writable interface {
	Store
	Writer
}

// conformance is what every store must do; each implementation runs it.
func conformance(t *testing.T, s writable) {
	ctx := context.Background()
	put := func(key, data string, meta map[string]string) {
		if err := s.Put(ctx, key, []byte(data), meta); err != nil {
			t.Fatal(err)
		}
	}
	put("AWSLogs/1/a", "one", map[string]string{"signature": "abc"})
	put("AWSLogs/1/b/c", "two", nil)
	put("AWSLogs/2/x", "three", nil)
	put("AWSLogs/1/a", "one-shadow", nil)

	prefixes, err := s.Prefixes(ctx, "AWSLogs/")
	if err != nil || len(prefixes) != 2 || prefixes[0] != "AWSLogs/1/" || prefixes[1] != "AWSLogs/2/" {
		t.Fatalf("Prefixes: %v %v", prefixes, err)
	}
	if sub, _ := s.Prefixes(ctx, "AWSLogs/1/"); len(sub) != 1 || sub[0] != "AWSLogs/1/b/" {
		t.Fatalf("sub prefixes: %v", sub)
	}
	var got []Version
	if err := s.Versions(ctx, "AWSLogs/1/", func(v Version) error { got = append(got, v); return nil }); err != nil {
		t.Fatal(err)
	}
	wantVersions := 2
	if s.Versioned() {
		wantVersions = 3
	}
	if len(got) != wantVersions || got[0].Key != "AWSLogs/1/a" || !got[0].Latest || got[len(got)-1].Key != "AWSLogs/1/b/c" {
		t.Fatalf("Versions: %+v", got)
	}
	read := func(key, version string) (string, map[string]string) {
		r, meta, err := s.Open(ctx, key, version)
		if err != nil {
			t.Fatalf("Open %s %s: %v", key, version, err)
		}
		defer r.Close()
		data, _ := io.ReadAll(r)
		return string(data), meta
	}
	if data, _ := read("AWSLogs/1/a", ""); data != "one-shadow" {
		t.Fatalf("latest: %q", data)
	}
	if s.Versioned() {
		if data, meta := read("AWSLogs/1/a", got[1].VersionID); data != "one" || meta["signature"] != "abc" || got[1].Latest {
			t.Fatalf("older version: %q %v", data, meta)
		}
	}
	if _, _, err := s.Open(ctx, "AWSLogs/1/missing", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	// One level: the folder and the file beside it, each version of it.
	folders, objects, err := s.Level(ctx, "AWSLogs/1/")
	if err != nil || len(folders) != 1 || folders[0] != "AWSLogs/1/b/" {
		t.Fatalf("Level folders: %v %v", folders, err)
	}
	if len(objects) != wantVersions-1 || objects[0].Key != "AWSLogs/1/a" || !objects[0].Latest || objects[0].ETag == "" {
		t.Fatalf("Level objects: %+v", objects)
	}
	if s.Versioned() && objects[0].ETag == objects[1].ETag {
		t.Fatalf("two versions of other bytes share an ETag: %+v", objects)
	}

	// A key S3 can hold and XML 1.0 cannot carry (a control character),
	// beside the characters URL encoding changes, is listed as it is.
	const odd = "AWSLogs/3 +%41\x01/k\x02 b+c%2F&<é.json.gz"
	put(odd, "four", nil)
	if prefixes, err := s.Prefixes(ctx, "AWSLogs/"); err != nil || len(prefixes) != 3 || prefixes[2] != "AWSLogs/3 +%41\x01/" {
		t.Fatalf("Prefixes of an odd key: %q %v", prefixes, err)
	}
	if _, objects, err := s.Level(ctx, "AWSLogs/3 +%41\x01/"); err != nil || len(objects) != 1 || objects[0].Key != odd {
		t.Fatalf("Level of an odd key: %+v %v", objects, err)
	}
	got = nil
	if err := s.Versions(ctx, "AWSLogs/3", func(v Version) error { got = append(got, v); return nil }); err != nil || len(got) != 1 || got[0].Key != odd {
		t.Fatalf("Versions of an odd key: %+v %v", got, err)
	}
	if data, _ := read(odd, ""); data != "four" {
		t.Fatalf("odd key: %q", data)
	}
}

func TestMemory(t *testing.T) { conformance(t, NewMemory()) }

func TestDir(t *testing.T) { conformance(t, Dir{Root: t.TempDir()}) }

func TestDirRefusesKeysOutsideTheRoot(t *testing.T) {
	if _, _, err := (Dir{Root: t.TempDir()}).Open(context.Background(), "../../etc/passwd", ""); err == nil {
		t.Fatal("opened a key outside the root")
	}
}

// `verify .` from inside a copy: the root "." must work.
func TestDirRootedAtTheWorkingDirectory(t *testing.T) {
	t.Chdir(t.TempDir())
	d := Dir{Root: "."}
	if err := d.Put(context.Background(), "AWSLogs/1/a", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	r, _, err := d.Open(context.Background(), "AWSLogs/1/a", "")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

func TestS3(t *testing.T) {
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	srv, _ := sb.Start("127.0.0.1:0", false)
	defer srv.Close()
	c := s3.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("999999999999", "x", "")}, func(o *s3.Options) { o.UsePathStyle = true })
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("archive")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("archive"),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	conformance(t, S3{Client: c, Bucket: "archive"})
}
