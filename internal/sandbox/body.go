package sandbox

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
)

const maxObjectSize = 5 << 30

// readBody returns the decoded payload of an upload: aws-chunked bodies (signed
// chunks or unsigned with trailing checksums) are decoded, and every checksum the
// client sent is verified. It returns the checksums to store.
func readBody(r *http.Request) ([]byte, map[string]string, error) {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	chunked := strings.HasPrefix(sha, "STREAMING-") || strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked")
	var data []byte
	trailers := http.Header{}
	var err error
	// The body is read into a buffer of its announced size at once: grown by
	// doubling, eight 100 MB PUTs took 1.7 GB. The decoded length of a chunked
	// body is trusted only up to the bytes actually sent (Content-Length).
	switch {
	case chunked:
		size := int64(0)
		if dl, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64); err == nil && dl > 0 && r.ContentLength > 0 {
			size = min(dl, r.ContentLength, maxObjectSize)
		}
		data, err = decodeChunked(bufio.NewReader(io.LimitReader(r.Body, maxObjectSize+1<<20)), trailers, size)
	case r.ContentLength > 0 && r.ContentLength <= maxObjectSize:
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, data)
	default:
		data, err = io.ReadAll(io.LimitReader(r.Body, maxObjectSize+1))
	}
	if err != nil {
		return nil, nil, errorf(400, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header: %v", err)
	}
	if len(data) > maxObjectSize {
		return nil, nil, errorf(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
	}
	if dl := r.Header.Get("X-Amz-Decoded-Content-Length"); chunked && dl != "" && dl != strconv.Itoa(len(data)) {
		return nil, nil, errorf(400, "IncompleteBody", "The decoded content length does not match X-Amz-Decoded-Content-Length")
	}
	if md := r.Header.Get("Content-MD5"); md != "" {
		sum := md5.Sum(data)
		if md != base64.StdEncoding.EncodeToString(sum[:]) {
			return nil, nil, errorf(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
		}
	}
	if len(sha) == 64 {
		sum := sha256.Sum256(data)
		if sha != string(hexBytes(sum[:])) {
			return nil, nil, errorf(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}
	sums := map[string]string{}
	for _, alg := range checksumAlgorithms {
		h := "X-Amz-Checksum-" + alg
		want := r.Header.Get(h)
		if want == "" {
			want = trailers.Get(h)
		}
		if want == "" {
			continue
		}
		got := checksum(alg, data)
		if got != want {
			return nil, nil, errorf(400, "BadDigest", "The %s you specified did not match the calculated checksum.", strings.ToUpper(alg))
		}
		sums[strings.ToUpper(alg)] = got
	}
	return data, sums, nil
}

var checksumAlgorithms = []string{"Crc32", "Crc32c", "Crc64nvme", "Sha1", "Sha256"}

var crc64nvme = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// checksum computes an S3 checksum: base64 of the big-endian digest.
func checksum(alg string, data []byte) string {
	var h hash.Hash
	switch strings.ToLower(alg) {
	case "crc32":
		h = crc32.NewIEEE()
	case "crc32c":
		h = crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "crc64nvme":
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], crc64.Checksum(data, crc64nvme))
		return base64.StdEncoding.EncodeToString(b[:])
	case "sha1":
		h = sha1.New()
	default:
		h = sha256.New()
	}
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// decodeChunked reads "hex-size[;chunk-signature=...]\r\n data \r\n" chunks up
// to the zero chunk, then trailer lines "name:value".
func decodeChunked(br *bufio.Reader, trailers http.Header, size int64) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(int(size))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimSpace(line)
		sizeHex, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || n < 0 || n > maxObjectSize {
			return nil, io.ErrUnexpectedEOF
		}
		if n == 0 {
			break
		}
		if _, err := io.CopyN(&out, br, n); err != nil {
			return nil, err
		}
		if crlf, err := br.ReadString('\n'); err != nil || strings.TrimSpace(crlf) != "" {
			return nil, io.ErrUnexpectedEOF
		}
	}
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimSpace(line)
		if name, val, ok := strings.Cut(line, ":"); ok && !strings.EqualFold(name, "x-amz-trailer-signature") {
			trailers.Set(name, strings.TrimSpace(val))
		}
		if err != nil {
			break
		}
	}
	return out.Bytes(), nil
}
