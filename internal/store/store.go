// Package store is the archive as verify and search read it: an S3 bucket
// (versions and metadata), a local directory (an `aws s3 sync` copy: latest
// bytes only), or memory for tests; one interface, one conformance suite.
package store

import (
	"bytes"
	"context"
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
}

// Store reads an archive.
type Store interface {
	// String names the store in messages: s3://bucket or a directory.
	String() string
	// Versioned reports whether the store keeps versions and user metadata.
	Versioned() bool
	// Prefixes lists the "folders" directly under prefix (which ends in "/" or is "").
	Prefixes(ctx context.Context, prefix string) ([]string, error)
	// Versions calls fn for every version under prefix: keys in order, each
	// key's versions newest first.
	Versions(ctx context.Context, prefix string, fn func(Version) error) error
	// Open reads one version ("" for the latest). Metadata names are lower case
	// without x-amz-meta-; nil where the store keeps none.
	Open(ctx context.Context, key, versionID string) (io.ReadCloser, map[string]string, error)
}

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
		info, err := e.Info()
		if err != nil {
			return err
		}
		keys = append(keys, Version{Key: key, Latest: true, Size: info.Size(), LastModified: info.ModTime()})
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
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return f, nil, err
}

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

func (m *Memory) Versions(ctx context.Context, prefix string, fn func(Version) error) error {
	m.mu.Lock()
	var list []Version
	for _, k := range m.keys(prefix) {
		vs := m.objs[k]
		for i := len(vs) - 1; i >= 0; i-- {
			list = append(list, Version{Key: k, VersionID: vs[i].id, Latest: i == len(vs)-1, DeleteMarker: vs[i].marker, Size: int64(len(vs[i].data)), LastModified: vs[i].at})
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
