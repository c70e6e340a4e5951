//go:build unix

package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A FIFO in a local copy is listed as special and never opened: opening one
// for reading would wait for a writer for ever.
func TestDirNeverOpensAFIFO(t *testing.T) {
	d := Dir{Root: t.TempDir()}
	os.MkdirAll(filepath.Join(d.Root, "AWSLogs"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(d.Root, "AWSLogs", "pipe"), 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	os.Symlink("/etc/passwd", filepath.Join(d.Root, "AWSLogs", "link"))
	var special []string
	d.Versions(context.Background(), "AWSLogs/", func(v Version) error {
		if v.Special {
			special = append(special, v.Key)
		}
		return nil
	})
	if len(special) != 2 {
		t.Fatalf("special files listed: %v", special)
	}
	for _, key := range special {
		if _, _, err := d.Open(context.Background(), key, ""); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("open %s: %v", key, err)
		}
	}
}
