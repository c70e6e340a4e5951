package index

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/parallel"
)

// Putter writes objects.
type Putter interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Published is what a publish did.
type Published struct {
	To    string `json:"to"`
	Files int    `json:"filesUploaded"`
	Bytes int64  `json:"bytesUploaded"`
	Held  int    `json:"filesAlreadyThere"`
}

const publishedName = "published.tsv"

// Publish copies the index's Parquet files that s3://bucket/prefix does not
// have yet to prefix/events/..., keeping the index's layout, for Athena's
// table over it (trailkeeper athena --parquet). Files are never rewritten
// once written, so each is uploaded once; published.tsv records them.
func Publish(ctx context.Context, client Putter, dir, bucket, prefix string, workers int) (*Published, error) {
	to := "s3://" + strings.TrimSuffix(bucket+"/"+strings.Trim(prefix, "/"), "/")
	res := &Published{To: to}
	done := map[string]bool{}
	if data, err := os.ReadFile(filepath.Join(dir, publishedName)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if dest, file, ok := strings.Cut(line, "\t"); ok && dest == to {
				done[file] = true
			}
		}
	}
	var todo []string
	root := filepath.Join(dir, "events")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel = filepath.ToSlash(rel); done[rel] {
			res.Held++
		} else {
			todo = append(todo, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	sort.Strings(todo)
	log, err := os.OpenFile(filepath.Join(dir, publishedName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	w := bufio.NewWriter(log)
	var mu sync.Mutex
	err = parallel.For(ctx, max(1, workers), len(todo), func(ctx context.Context, i int) error {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(todo[i])))
		if err != nil {
			return err
		}
		key := strings.TrimPrefix(strings.Trim(prefix, "/")+"/"+todo[i], "/")
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data),
			ContentType: aws.String("application/vnd.apache.parquet"), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32}); err != nil {
			return fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
		}
		mu.Lock()
		defer mu.Unlock()
		res.Files++
		res.Bytes += int64(len(data))
		fmt.Fprintf(w, "%s\t%s\n", to, todo[i])
		return nil
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return res, err
}
