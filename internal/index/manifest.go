package index

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/store"
)

// manifest is what the index holds: objects.tsv, one line per log object
// read to its end, "batch key identity", appended and fsync'd after the
// batch's Parquet files are written. A batch without lines was interrupted:
// its files are removed and its objects read again.
type manifest struct {
	dir     string
	file    *os.File
	objects map[string]string // key -> identity
	batches map[int]bool      // committed
	next    int
}

const manifestName = "objects.tsv"

// identity says which version of a key was read: the version id where the
// store keeps versions, else size and modification time.
func identity(v store.Version) string {
	if v.VersionID != "" {
		return v.VersionID
	}
	return strconv.FormatInt(v.Size, 10) + "@" + v.LastModified.UTC().Format(time.RFC3339Nano)
}

func openManifest(dir string) (*manifest, error) {
	m := &manifest{dir: dir, objects: map[string]string{}, batches: map[int]bool{}}
	path := filepath.Join(dir, manifestName)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// A line without its newline was cut by a crash: its batch never committed.
	if i := bytes.LastIndexByte(data, '\n'); i+1 != len(data) {
		data = data[:i+1]
		if err := os.Truncate(path, int64(len(data))); err != nil {
			return nil, err
		}
	}
	if err := m.parse(data); err != nil {
		return nil, err
	}
	if err := m.finishCompactions(); err != nil {
		return nil, err
	}
	if err := m.removeUncommitted(); err != nil {
		return nil, err
	}
	m.file, err = os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	return m, err
}

// parse reads objects.tsv's complete lines.
func (m *manifest) parse(data []byte) error {
	for n, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		batch, err := strconv.Atoi(f[0])
		if len(f) != 3 || err != nil {
			return fmt.Errorf("%s line %d is damaged; remove the index folder %s to build it again", filepath.Join(m.dir, manifestName), n+1, m.dir)
		}
		m.objects[unescape(f[1])] = f[2]
		m.batches[batch] = true
		m.next = max(m.next, batch+1)
	}
	return nil
}

var partFileRE = regexp.MustCompile(`^b(\d+)_\d+\.parquet$`)

// removeUncommitted deletes Parquet files of batches whose objects were never
// recorded, so that reading those objects again does not count them twice.
func (m *manifest) removeUncommitted() error {
	root := filepath.Join(m.dir, "events")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if p := partFileRE.FindStringSubmatch(d.Name()); p != nil {
			b, _ := strconv.Atoi(p[1])
			if !m.batches[b] {
				m.next = max(m.next, b+1) // never reuse a name a reader may still hold
				return os.Remove(path)
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// commit records a written batch's objects.
func (m *manifest) commit(batch int, objs []store.Version) error {
	var b strings.Builder
	for _, v := range objs {
		fmt.Fprintf(&b, "%d\t%s\t%s\n", batch, escape(v.Key), identity(v))
	}
	w := bufio.NewWriter(m.file)
	if _, err := w.WriteString(b.String()); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := m.file.Sync(); err != nil {
		return err
	}
	for _, v := range objs {
		m.objects[v.Key] = identity(v)
	}
	m.batches[batch] = true
	return nil
}

func (m *manifest) close() error { return m.file.Close() }

// Keys may hold tabs or newlines; the manifest's lines may not.
var keyEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`)

func escape(k string) string { return keyEscaper.Replace(k) }

func unescape(k string) string {
	if !strings.Contains(k, `\`) {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] == '\\' && i+1 < len(k) {
			i++
			switch k[i] {
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(k[i])
			}
			continue
		}
		b.WriteByte(k[i])
	}
	return b.String()
}
