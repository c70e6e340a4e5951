package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

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
func (b S3) Live() bool      { return true }

func (b S3) Prefixes(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: &b.Bucket, Prefix: &prefix, Delimiter: aws.String("/"),
		EncodingType: s3types.EncodingTypeUrl})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", b.Bucket, prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			folder, err := ListedKey(page.EncodingType, aws.ToString(cp.Prefix))
			if err != nil {
				return nil, fmt.Errorf("list s3://%s/%s: %w", b.Bucket, prefix, err)
			}
			out = append(out, folder)
		}
	}
	return out, nil
}

func (b S3) Versions(ctx context.Context, prefix string, fn func(Version) error) error {
	return b.VersionsAfter(ctx, prefix, "", fn)
}

// VersionsAfter lists the versions under prefix whose keys sort after
// after (S3's key-marker): the recent days of a folder in one request.
func (b S3) VersionsAfter(ctx context.Context, prefix, after string, fn func(Version) error) error {
	return b.pages(ctx, prefix, "", after, func(p *versionsPage) error {
		for _, v := range p.versions {
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b S3) Level(ctx context.Context, prefix string) ([]string, []Version, error) {
	var folders []string
	var objects []Version
	err := b.pages(ctx, prefix, "/", "", func(p *versionsPage) error {
		folders = append(folders, p.prefixes...)
		objects = append(objects, p.versions...)
		return nil
	})
	return folders, objects, err
}

// pages lists the versions under prefix page by page.
func (b S3) pages(ctx context.Context, prefix, delimiter, keyMarker string, fn func(*versionsPage) error) error {
	var versionIDMarker string
	for {
		p, err := b.page(ctx, prefix, delimiter, keyMarker, versionIDMarker)
		if err != nil {
			return fmt.Errorf("list versions of s3://%s/%s: %w", b.Bucket, prefix, err)
		}
		if err := fn(p); err != nil {
			return err
		}
		if !p.truncated {
			return nil
		}
		if p.nextKey == "" || p.nextKey == keyMarker && p.nextVersionID == versionIDMarker {
			return fmt.Errorf("list versions of s3://%s/%s: a truncated page without a next marker", b.Bucket, prefix)
		}
		keyMarker, versionIDMarker = p.nextKey, p.nextVersionID
	}
}

// page is one ListObjectVersions call: the lean one for the SDK's own client,
// the SDK's for anything else (and for what the lean one leaves to it).
func (b S3) page(ctx context.Context, prefix, delimiter, keyMarker, versionIDMarker string) (*versionsPage, error) {
	if c, ok := b.Client.(*s3.Client); ok {
		p, err := getterFor(c).listVersions(ctx, b.Bucket, prefix, delimiter, keyMarker, versionIDMarker)
		if err == nil {
			return p, p.inKeyOrder()
		}
		if !leftToSDK(err) {
			return nil, err
		}
	}
	in := &s3.ListObjectVersionsInput{Bucket: &b.Bucket, Prefix: &prefix, EncodingType: s3types.EncodingTypeUrl,
		Delimiter: optional(delimiter), KeyMarker: optional(keyMarker), VersionIdMarker: optional(versionIDMarker)}
	out, err := b.Client.ListObjectVersions(ctx, in)
	if err != nil {
		return nil, err
	}
	p := &versionsPage{versions: versionsOf(out), truncated: aws.ToBool(out.IsTruncated), nextKey: aws.ToString(out.NextKeyMarker),
		nextVersionID: aws.ToString(out.NextVersionIdMarker), encoding: string(out.EncodingType)}
	for _, cp := range out.CommonPrefixes {
		p.prefixes = append(p.prefixes, aws.ToString(cp.Prefix))
	}
	return p, p.inKeyOrder()
}

// inKeyOrder decodes the page's keys, then puts its versions in key order:
// S3's order is the keys', not their URL encodings' ("a b" before "a!",
// "a+b" after "a%21").
func (p *versionsPage) inKeyOrder() error {
	if err := p.urlDecode(); err != nil {
		return err
	}
	sortVersions(p.versions)
	return nil
}

// leftToSDK says whether a lean request's error is one the SDK handles:
// a request the lean path does not make, or a skewed clock, which the SDK
// corrects before it tries again.
func leftToSDK(err error) bool {
	var api smithy.APIError
	return errors.Is(err, errUseSDK) || errors.As(err, &api) && api.ErrorCode() == "RequestTimeTooSkewed"
}

// optional is nil for "", as the SDK leaves a parameter out.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// versionsOf gathers a page's versions and delete markers, which the SDK
// lists apart (inKeyOrder merges them back).
func versionsOf(page *s3.ListObjectVersionsOutput) []Version {
	var batch []Version
	for _, v := range page.Versions {
		batch = append(batch, Version{Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), Latest: aws.ToBool(v.IsLatest),
			Size: aws.ToInt64(v.Size), LastModified: aws.ToTime(v.LastModified), ETag: strings.Trim(aws.ToString(v.ETag), `"`)})
	}
	for _, m := range page.DeleteMarkers {
		batch = append(batch, Version{Key: aws.ToString(m.Key), VersionID: aws.ToString(m.VersionId), Latest: aws.ToBool(m.IsLatest),
			DeleteMarker: true, LastModified: aws.ToTime(m.LastModified)})
	}
	return batch
}

// sortVersions puts a page in key order, each key's newest first. S3's own
// order is kept where times tie (they have one-second resolution): only it
// knows which of two versions written in one second came last.
func sortVersions(batch []Version) {
	sort.SliceStable(batch, func(i, j int) bool {
		a, b := batch[i], batch[j]
		switch {
		case a.Key != b.Key:
			return a.Key < b.Key
		case a.Latest != b.Latest:
			return a.Latest
		}
		return a.LastModified.After(b.LastModified)
	})
}

func (b S3) Open(ctx context.Context, key, versionID string) (io.ReadCloser, map[string]string, error) {
	if c, ok := b.Client.(*s3.Client); ok {
		resp, err := getterFor(c).open(ctx, b.Bucket, key, versionID)
		if err == nil {
			meta := map[string]string{}
			for k, vs := range resp.Header {
				if name, ok := strings.CutPrefix(strings.ToLower(k), "x-amz-meta-"); ok && len(vs) > 0 {
					meta[name] = vs[0]
				}
			}
			if until := resp.Header.Get("X-Amz-Object-Lock-Retain-Until-Date"); until != "" {
				meta[RetainUntil] = until
			}
			return resp.Body, meta, nil
		}
		if !leftToSDK(err) {
			return nil, nil, b.getError(key, err)
		}
	}
	in := &s3.GetObjectInput{Bucket: &b.Bucket, Key: &key}
	if versionID != "" {
		in.VersionId = &versionID
	}
	// Callers hash what they read against signed digests; the SDK's own CRC
	// of every response would only repeat that work.
	out, err := b.Client.GetObject(ctx, in, func(o *s3.Options) { o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired })
	if err != nil {
		return nil, nil, b.getError(key, err)
	}
	meta := map[string]string{}
	for k, v := range out.Metadata {
		meta[strings.ToLower(k)] = v
	}
	if out.ObjectLockRetainUntilDate != nil {
		meta[RetainUntil] = out.ObjectLockRetainUntilDate.UTC().Format(time.RFC3339)
	}
	return out.Body, meta, nil
}

// getError names the object; a missing key or version (or a delete marker's) is ErrNotFound.
func (b S3) getError(key string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NoSuchVersion" || api.ErrorCode() == "MethodNotAllowed") {
		return fmt.Errorf("s3://%s/%s: %w", b.Bucket, key, ErrNotFound)
	}
	return fmt.Errorf("get s3://%s/%s: %w", b.Bucket, key, err)
}

func (b S3) Put(ctx context.Context, key string, data []byte, meta map[string]string) error {
	_, err := b.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.Bucket, Key: &key, Body: bytes.NewReader(data), Metadata: meta,
		ContentType: aws.String("application/json"), ContentEncoding: aws.String("gzip"), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
	return err
}
