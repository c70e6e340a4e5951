package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3API is the part of the S3 client a store uses.
type S3API interface {
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	ListObjectVersions(context.Context, *s3.ListObjectVersionsInput, ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3 is an archive bucket.
type S3 struct {
	Client S3API
	Bucket string
}

func (b S3) String() string  { return "s3://" + b.Bucket }
func (b S3) Versioned() bool { return true }

func (b S3) Prefixes(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: &b.Bucket, Prefix: &prefix, Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", b.Bucket, prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, aws.ToString(cp.Prefix))
		}
	}
	return out, nil
}

func (b S3) Versions(ctx context.Context, prefix string, fn func(Version) error) error {
	in := &s3.ListObjectVersionsInput{Bucket: &b.Bucket, Prefix: &prefix}
	for {
		page, err := b.Client.ListObjectVersions(ctx, in)
		if err != nil {
			return fmt.Errorf("list versions of s3://%s/%s: %w", b.Bucket, prefix, err)
		}
		// S3 lists versions and delete markers apart; merge them back into key
		// order, newest first, as the interface promises.
		var batch []Version
		for _, v := range page.Versions {
			batch = append(batch, Version{Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), Latest: aws.ToBool(v.IsLatest),
				Size: aws.ToInt64(v.Size), LastModified: aws.ToTime(v.LastModified)})
		}
		for _, m := range page.DeleteMarkers {
			batch = append(batch, Version{Key: aws.ToString(m.Key), VersionID: aws.ToString(m.VersionId), Latest: aws.ToBool(m.IsLatest),
				DeleteMarker: true, LastModified: aws.ToTime(m.LastModified)})
		}
		sortVersions(batch)
		for _, v := range batch {
			if err := fn(v); err != nil {
				return err
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.VersionIdMarker = page.NextKeyMarker, page.NextVersionIdMarker
	}
}

func sortVersions(vs []Version) {
	// Stable by key, newest first within a key.
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && less(vs[j], vs[j-1]); j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}

func less(a, b Version) bool {
	if a.Key != b.Key {
		return a.Key < b.Key
	}
	return a.LastModified.After(b.LastModified)
}

func (b S3) Open(ctx context.Context, key, versionID string) (io.ReadCloser, map[string]string, error) {
	in := &s3.GetObjectInput{Bucket: &b.Bucket, Key: &key}
	if versionID != "" {
		in.VersionId = &versionID
	}
	// Callers hash what they read against signed digests; the SDK's own CRC
	// of every response would only repeat that work.
	out, err := b.Client.GetObject(ctx, in, func(o *s3.Options) { o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired })
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NoSuchVersion" || api.ErrorCode() == "MethodNotAllowed") {
			return nil, nil, fmt.Errorf("s3://%s/%s: %w", b.Bucket, key, ErrNotFound)
		}
		return nil, nil, fmt.Errorf("get s3://%s/%s: %w", b.Bucket, key, err)
	}
	meta := map[string]string{}
	for k, v := range out.Metadata {
		meta[strings.ToLower(k)] = v
	}
	return out.Body, meta, nil
}

func (b S3) Put(ctx context.Context, key string, data []byte, meta map[string]string) error {
	_, err := b.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.Bucket, Key: &key, Body: bytes.NewReader(data), Metadata: meta,
		ContentType: aws.String("application/json"), ContentEncoding: aws.String("gzip"), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
	return err
}
