// Package store is the archive as verify and search read it: an S3 bucket
// (versions and metadata), a local directory (an `aws s3 sync` copy: latest
// bytes only), or memory for tests; one interface, one conformance suite.
package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Version is one version of one key (or a delete marker).
type Version struct {
	Key          string
	VersionID    string // "" where the store keeps no versions
	Latest       bool
	DeleteMarker bool
	Size         int64
	LastModified time.Time
	// ETag is S3's entity tag; a local copy has none and uses size and time.
	ETag string
	// Special is a local copy's entry that is not a regular file (a FIFO,
	// device, socket or symbolic link): never written by S3, never read.
	Special bool
}

// StatePrefix is where trailkeeper keeps its own records in a bucket, beside
// AWSLogs/ (the policy lease, watch's verdicts, backfill's and retention's
// jobs): never logs.
const StatePrefix = "trailkeeper/"

// Store reads an archive.
type Store interface {
	// String names the store in messages: s3://bucket or a directory.
	String() string
	// Versioned reports whether the store keeps versions and user metadata.
	Versioned() bool
	// Live reports whether the store is the archive as it is now (a bucket),
	// not a copy taken at some time: a live archive's chains must reach now.
	Live() bool
	// Prefixes lists the "folders" directly under prefix (which ends in "/" or is "").
	Prefixes(ctx context.Context, prefix string) ([]string, error)
	// Versions calls fn for every version under prefix: keys in order, each
	// key's versions newest first.
	Versions(ctx context.Context, prefix string, fn func(Version) error) error
	// Level lists one level under prefix (which ends in "/"): the folders and
	// the versions of the objects directly in it, so that a file beside the
	// folders a walk descends into is seen too.
	Level(ctx context.Context, prefix string) (folders []string, objects []Version, err error)
	// Open reads one version ("" for the latest). Metadata names are lower case
	// without x-amz-meta-; nil where the store keeps none. A bucket's answer
	// also gives the version's Object Lock retain-until date under RetainUntil.
	Open(ctx context.Context, key, versionID string) (io.ReadCloser, map[string]string, error)
}

// RetainUntil names, in Open's metadata, the Object Lock retain-until date
// (RFC 3339) S3 sent with the object: only to a caller allowed
// s3:GetObjectRetention, so its absence says nothing. No user metadata has
// this name (a header name has no space).
const RetainUntil = "object lock retain-until"

// Writer adds objects; fixtures and tests write archives with it.
type Writer interface {
	Put(ctx context.Context, key string, data []byte, meta map[string]string) error
}

// ErrNotFound is returned by Open for a key or version that does not exist.
var ErrNotFound = errors.New("not found")

// Bases finds the key prefixes under which AWSLogs/ lives (a trail's
// S3KeyPrefix, one to three folders deep), under root ("" or ending in "/").
func Bases(ctx context.Context, s Store, root string) ([]string, error) {
	return bases(ctx, s, root, 0)
}

func bases(ctx context.Context, s Store, prefix string, depth int) ([]string, error) {
	ps, err := s.Prefixes(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ps {
		if p[len(prefix):] == "AWSLogs/" {
			out = append(out, prefix)
		} else if depth < 3 {
			sub, err := bases(ctx, s, p, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
	}
	return out, nil
}

// Dir is a local copy of an archive, one file per key.
type Dir struct{ Root string }

func (d Dir) String() string  { return d.Root }
func (d Dir) Versioned() bool { return false }
func (d Dir) Live() bool      { return false }

func (d Dir) path(key string) (string, error) {
	// A key such as ../x must not reach outside the copy; "." is a fine root.
	if !filepath.IsLocal(filepath.FromSlash(key)) {
		return "", fmt.Errorf("key %q leaves %s", key, d.Root)
	}
	return filepath.Join(d.Root, filepath.FromSlash(key)), nil
}

func (d Dir) Prefixes(ctx context.Context, prefix string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(d.Root, filepath.FromSlash(prefix)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, prefix+e.Name()+"/")
		}
	}
	return out, nil
}

func (d Dir) Level(ctx context.Context, prefix string) ([]string, []Version, error) {
	dir := filepath.Join(d.Root, filepath.FromSlash(prefix))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var folders []string
	var objects []Version
	for _, e := range entries {
		if e.IsDir() {
			folders = append(folders, prefix+e.Name()+"/")
			continue
		}
		v, err := dirVersion(prefix+e.Name(), e)
		if err != nil {
			return nil, nil, err
		}
		objects = append(objects, v)
	}
	return folders, objects, nil
}

// dirVersion describes one file of a local copy; its "ETag" is its size and
// modification time, which change when the file does.
func dirVersion(key string, e os.DirEntry) (Version, error) {
	info, err := e.Info()
	if err != nil {
		return Version{}, err
	}
	return Version{Key: key, Latest: true, Size: info.Size(), LastModified: info.ModTime(), Special: !info.Mode().IsRegular(),
		ETag: fmt.Sprintf("%d-%d", info.Size(), info.ModTime().UnixNano())}, nil
}

func (d Dir) Versions(ctx context.Context, prefix string, fn func(Version) error) error {
	dir := prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i+1]
	} else {
		dir = ""
	}
	var keys []Version
	root := filepath.Join(d.Root, filepath.FromSlash(dir))
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if e.IsDir() {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(d.Root, p)
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		v, err := dirVersion(key, e)
		if err != nil {
			return err
		}
		keys = append(keys, v)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Key < keys[j].Key })
	for _, v := range keys {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

func (d Dir) Open(ctx context.Context, key, versionID string) (io.ReadCloser, map[string]string, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, nil, err
	}
	if versionID != "" {
		return nil, nil, fmt.Errorf("%s: a local copy has no versions: %w", key, ErrNotFound)
	}
	f, err := openRegular(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", key, err)
	}
	return f, nil, nil
}

// ErrNotRegular is returned by Open for a FIFO, device, socket or link: reading
// one could block for ever or reach outside the copy.
var ErrNotRegular = errors.New("not a regular file")

func (d Dir) Put(ctx context.Context, key string, data []byte, meta map[string]string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// Memory is a versioned store in memory, for tests.
type Memory struct {
	mu   sync.Mutex
	objs map[string][]memVersion // oldest first
	seq  int
}

type memVersion struct {
	id     string
	data   []byte
	meta   map[string]string
	marker bool
	at     time.Time
}

func NewMemory() *Memory { return &Memory{objs: map[string][]memVersion{}} }

func (m *Memory) String() string  { return "memory" }
func (m *Memory) Versioned() bool { return true }
func (m *Memory) Live() bool      { return true }

func (m *Memory) Put(ctx context.Context, key string, data []byte, meta map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	m.objs[key] = append(m.objs[key], memVersion{id: fmt.Sprintf("v%06d", m.seq), data: append([]byte{}, data...), meta: meta, at: time.Now()})
	return nil
}

// Delete adds a delete marker, as S3 does in a versioned bucket.
func (m *Memory) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	m.objs[key] = append(m.objs[key], memVersion{id: fmt.Sprintf("v%06d", m.seq), marker: true, at: time.Now()})
}

// Purge removes every version of a key, as someone able to delete versions could.
func (m *Memory) Purge(key string) {
	m.mu.Lock()
	delete(m.objs, key)
	m.mu.Unlock()
}

func (m *Memory) keys(prefix string) []string {
	var out []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (m *Memory) Prefixes(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := map[string]bool{}
	for _, k := range m.keys(prefix) {
		if i := strings.Index(k[len(prefix):], "/"); i >= 0 {
			set[k[:len(prefix)+i+1]] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func (m *Memory) Level(ctx context.Context, prefix string) ([]string, []Version, error) {
	folders, err := m.Prefixes(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	var objects []Version
	err = m.Versions(ctx, prefix, func(v Version) error {
		if !strings.Contains(v.Key[len(prefix):], "/") {
			objects = append(objects, v)
		}
		return nil
	})
	return folders, objects, err
}

func (m *Memory) Versions(ctx context.Context, prefix string, fn func(Version) error) error {
	m.mu.Lock()
	var list []Version
	for _, k := range m.keys(prefix) {
		vs := m.objs[k]
		for i := len(vs) - 1; i >= 0; i-- {
			list = append(list, Version{Key: k, VersionID: vs[i].id, Latest: i == len(vs)-1, DeleteMarker: vs[i].marker, Size: int64(len(vs[i].data)),
				LastModified: vs[i].at, ETag: fmt.Sprintf("%x", md5.Sum(vs[i].data))})
		}
	}
	m.mu.Unlock()
	for _, v := range list {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

func (m *Memory) Open(ctx context.Context, key, versionID string) (io.ReadCloser, map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.objs[key]
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if versionID == "" || v.id == versionID {
			if v.marker {
				break
			}
			return io.NopCloser(bytes.NewReader(v.data)), v.meta, nil
		}
	}
	return nil, nil, fmt.Errorf("%s %s: %w", key, versionID, ErrNotFound)
}
