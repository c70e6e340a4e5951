//go:build unix

package store

import (
	"os"
	"syscall"
)

// openRegular opens a file only if it is a regular one. O_NONBLOCK keeps the
// open of a FIFO from waiting for a writer; it changes nothing for files.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return nil, ErrNotRegular // a link, refused by O_NOFOLLOW
		}
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, ErrNotRegular
	}
	return f, nil
}
