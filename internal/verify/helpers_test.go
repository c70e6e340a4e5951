package verify

import (
	"bytes"
	"compress/gzip"
	"io"
)

func mustGunzip(data []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		panic(err)
	}
	out, _ := io.ReadAll(zr)
	return out
}
