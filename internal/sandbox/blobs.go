package sandbox

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// blobStore keeps object bytes by blob id. Blobs are immutable: a write
// makes a new file or slice and never changes one in place, so that two ids
// may share the same bytes (a replica and its source, a copy).
type blobStore interface {
	put(id string, data []byte) error
	// adopt takes a payload's bytes, moving its spill file rather than
	// reading it.
	adopt(id string, p *payload) error
	open(id string) (blob, error)
	// link makes dst hold the bytes of src without reading them.
	link(dst, src string) error
	del(id string)
	// spillDir is where uploads too large for memory are spooled: on the
	// same file system as the store, so that adopt is a rename.
	spillDir() (string, error)
}

// blob is a stored object's bytes, read at any offset.
type blob interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// readBlob reads a whole blob, for small ones (function code, manifests).
func readBlob(bs blobStore, id string) ([]byte, error) {
	b, err := bs.open(id)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data := make([]byte, b.Size())
	_, err = b.ReadAt(data, 0)
	if err == io.EOF {
		err = nil
	}
	return data, err
}

type memBlob struct {
	data []byte
	file string // set instead of data for a spilled upload
}

type bytesBlob struct{ *bytes.Reader }

func (bytesBlob) Close() error { return nil }

type fileBlob struct{ *os.File }

func (f fileBlob) Size() int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

func openFile(path string) (blob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return fileBlob{f}, nil
}

// memBlobs keeps small blobs in memory and spilled uploads as files in a
// temporary directory that Close removes.
type memBlobs struct {
	mu    sync.RWMutex
	m     map[string]memBlob
	dir   string
	dirMu sync.Mutex
}

func (b *memBlobs) set(id string, e memBlob) {
	b.mu.Lock()
	old := b.m[id]
	b.m[id] = e
	b.mu.Unlock()
	if old.file != "" && old.file != e.file {
		os.Remove(old.file)
	}
}

func (b *memBlobs) put(id string, data []byte) error {
	b.set(id, memBlob{data: data})
	return nil
}

func (b *memBlobs) adopt(id string, p *payload) error {
	if p.file == "" {
		return b.put(id, p.data)
	}
	b.set(id, memBlob{file: p.file})
	p.file = ""
	return nil
}

func (b *memBlobs) open(id string) (blob, error) {
	b.mu.RLock()
	e, ok := b.m[id]
	b.mu.RUnlock()
	switch {
	case !ok:
		return nil, errors.New("blob not found")
	case e.file != "":
		return openFile(e.file)
	}
	return bytesBlob{bytes.NewReader(e.data)}, nil
}

func (b *memBlobs) link(dst, src string) error {
	b.mu.RLock()
	e, ok := b.m[src]
	b.mu.RUnlock()
	if !ok {
		return errors.New("blob not found")
	}
	if e.file != "" {
		dir, err := b.spillDir()
		if err != nil {
			return err
		}
		file := filepath.Join(dir, dst)
		if err := linkFile(e.file, file); err != nil {
			return err
		}
		e.file = file
	}
	b.set(dst, e)
	return nil
}

func (b *memBlobs) del(id string) {
	b.mu.Lock()
	e := b.m[id]
	delete(b.m, id)
	b.mu.Unlock()
	if e.file != "" {
		os.Remove(e.file)
	}
}

func (b *memBlobs) spillDir() (string, error) {
	b.dirMu.Lock()
	defer b.dirMu.Unlock()
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "trailkeeper-sandbox-")
		if err != nil {
			return "", err
		}
		b.dir = dir
	}
	return b.dir, nil
}

func (b *memBlobs) close() {
	b.dirMu.Lock()
	defer b.dirMu.Unlock()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// dirBlobs keeps every blob as a file under --data-dir.
type dirBlobs struct{ dir string }

func (b dirBlobs) path(id string) string { return filepath.Join(b.dir, id) }

func (b dirBlobs) put(id string, data []byte) error {
	tmp := b.path(id) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, b.path(id))
}

func (b dirBlobs) adopt(id string, p *payload) error {
	if p.file == "" {
		return b.put(id, p.data)
	}
	if err := os.Rename(p.file, b.path(id)); err != nil {
		return err
	}
	p.file = ""
	return nil
}

func (b dirBlobs) open(id string) (blob, error) { return openFile(b.path(id)) }

func (b dirBlobs) link(dst, src string) error {
	tmp := b.path(dst) + ".tmp"
	os.Remove(tmp)
	if err := linkFile(b.path(src), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, b.path(dst))
}

func (b dirBlobs) del(id string)             { os.Remove(b.path(id)) }
func (b dirBlobs) spillDir() (string, error) { return b.dir, nil }

// linkFile gives src's bytes a second name: a hard link where the file
// system has them, else a copy.
func linkFile(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}
