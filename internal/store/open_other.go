//go:build !unix

package store

import "os"

// openRegular opens a file only if it is a regular one.
func openRegular(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, ErrNotRegular
	}
	return os.Open(path)
}
