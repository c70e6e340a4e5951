package sandbox

import (
	"bufio"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

const maxObjectSize = 5 << 30

// defaultSpillAbove is Options.SpillAbove's default.
const defaultSpillAbove = 8 << 20

// payload is an upload's decoded bytes with what every upload needs of
// them: in memory up to Options.SpillAbove, else in a spill file until a
// blob store adopts it.
type payload struct {
	data  []byte
	file  string
	size  int64
	md5   []byte
	crc64 string            // CRC64NVME, the checksum S3 gives an object uploaded without one
	sums  map[string]string // the client's checksums, verified, by upper-case algorithm
}

// discard removes a spill file no store adopted.
func (p *payload) discard() {
	if p != nil && p.file != "" {
		os.Remove(p.file)
		p.file = ""
	}
}

func (p *payload) etag() string { return `"` + string(hexBytes(p.md5)) + `"` }

// checksums are the object's stored checksums: the client's, or S3's default.
func (p *payload) checksums() map[string]string {
	if len(p.sums) > 0 {
		return p.sums
	}
	return map[string]string{"CRC64NVME": p.crc64}
}

// spool holds what is written to it in memory up to a limit, then in a file.
type spool struct {
	buf   []byte
	f     *os.File
	limit int64
	dir   func() (string, error)
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && int64(len(s.buf)+len(p)) > s.limit {
		dir, err := s.dir()
		if err != nil {
			return 0, err
		}
		if s.f, err = os.CreateTemp(dir, "upload-*.spool"); err != nil {
			return 0, err
		}
		if _, err := s.f.Write(s.buf); err != nil {
			return 0, err
		}
		s.buf = nil
	}
	if s.f != nil {
		return s.f.Write(p)
	}
	s.buf = append(s.buf, p...)
	return len(p), nil
}

// finish closes the spill file, if any, and says where the bytes are.
func (s *spool) finish() (data []byte, file string, err error) {
	if s.f == nil {
		return s.buf, "", nil
	}
	if err := s.f.Close(); err != nil {
		os.Remove(s.f.Name())
		return nil, "", err
	}
	return nil, s.f.Name(), nil
}

func (s *spool) abandon() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

// newSpool sizes a spool for an upload of announced bytes (0: unknown).
func (s *Sandbox) newSpool(announced int64) *spool {
	limit := s.opts.SpillAbove
	if limit <= 0 {
		limit = defaultSpillAbove
	}
	sp := &spool{limit: limit, dir: s.blobs.spillDir}
	if announced > 0 && announced <= limit {
		sp.buf = make([]byte, 0, announced) // grown by doubling, eight 100 MB PUTs took 1.7 GB
	}
	return sp
}

// readBody streams the decoded payload of an upload into a spool: aws-chunked
// bodies (signed chunks, or unsigned with trailing checksums) are decoded as
// they arrive, and every checksum the client sent, in a header or a declared
// trailer, is computed on the way and verified. Memory stays within
// Options.SpillAbove per upload whatever its size.
func (s *Sandbox) readBody(r *http.Request) (*payload, error) {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	chunked := strings.HasPrefix(sha, "STREAMING-") || strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked")
	trailers := http.Header{}
	var src io.Reader = io.LimitReader(r.Body, maxObjectSize+1)
	announced := r.ContentLength
	if chunked {
		src = &chunkReader{br: bufio.NewReader(io.LimitReader(r.Body, maxObjectSize+1<<20)), trailers: trailers}
		// The decoded length is trusted only up to the bytes actually sent.
		announced = 0
		if dl, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64); err == nil && dl > 0 && r.ContentLength > 0 {
			announced = min(dl, r.ContentLength)
		}
	}
	md5h, crc := md5.New(), crc64.New(crc64nvme)
	writers := []io.Writer{md5h, crc}
	var shaH hash.Hash
	if len(sha) == 64 {
		shaH = sha256.New()
		writers = append(writers, shaH)
	}
	// The algorithms to check: those the client sent as headers or
	// declared as trailers (X-Amz-Trailer).
	wanted := map[string]hash.Hash{}
	declared := strings.ToLower(r.Header.Get("X-Amz-Trailer"))
	for _, alg := range checksumAlgorithms {
		if r.Header.Get("X-Amz-Checksum-"+alg) != "" || strings.Contains(declared, "x-amz-checksum-"+strings.ToLower(alg)) {
			wanted[alg] = newChecksum(alg)
			writers = append(writers, wanted[alg])
		}
	}
	sp := s.newSpool(announced)
	n, err := io.Copy(io.MultiWriter(append([]io.Writer{sp}, writers...)...), src)
	if err == nil && !chunked && r.ContentLength >= 0 && n != r.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	fail := func(e error) (*payload, error) {
		sp.abandon()
		return nil, e
	}
	if n > maxObjectSize {
		return fail(errorf(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"))
	}
	if err != nil {
		return fail(errorf(400, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header: %v", err))
	}
	if dl := r.Header.Get("X-Amz-Decoded-Content-Length"); chunked && dl != "" && dl != strconv.FormatInt(n, 10) {
		return fail(errorf(400, "IncompleteBody", "The decoded content length does not match X-Amz-Decoded-Content-Length"))
	}
	p := &payload{size: n, md5: md5h.Sum(nil), crc64: base64.StdEncoding.EncodeToString(crc.Sum(nil)), sums: map[string]string{}}
	if md := r.Header.Get("Content-MD5"); md != "" && md != base64.StdEncoding.EncodeToString(p.md5) {
		return fail(errorf(400, "BadDigest", "The Content-MD5 you specified did not match what we received."))
	}
	if shaH != nil && sha != string(hexBytes(shaH.Sum(nil))) {
		return fail(errorf(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."))
	}
	for _, alg := range checksumAlgorithms {
		h := "X-Amz-Checksum-" + alg
		want := r.Header.Get(h)
		if want == "" {
			want = trailers.Get(h)
		}
		if want == "" {
			continue
		}
		if wanted[alg] == nil {
			return fail(errorf(400, "InvalidRequest", "The trailer %s was not declared in X-Amz-Trailer", strings.ToLower(h)))
		}
		got := base64.StdEncoding.EncodeToString(wanted[alg].Sum(nil))
		if got != want {
			return fail(errorf(400, "BadDigest", "The %s you specified did not match the calculated checksum.", strings.ToUpper(alg)))
		}
		p.sums[strings.ToUpper(alg)] = got
	}
	if p.data, p.file, err = sp.finish(); err != nil {
		return nil, errorf(500, "InternalError", "spooling the upload: %v", err)
	}
	return p, nil
}

var checksumAlgorithms = []string{"Crc32", "Crc32c", "Crc64nvme", "Sha1", "Sha256"}

var crc64nvme = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// newChecksum is the hash of an S3 checksum algorithm; its Sum is the
// big-endian digest S3 encodes in base64.
func newChecksum(alg string) hash.Hash {
	switch strings.ToLower(alg) {
	case "crc32":
		return crc32.NewIEEE()
	case "crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "crc64nvme":
		return crc64.New(crc64nvme)
	case "sha1":
		return sha1.New()
	}
	return sha256.New()
}

// checksum computes an S3 checksum of data: base64 of the big-endian digest.
func checksum(alg string, data []byte) string {
	h := newChecksum(alg)
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// bytesPayload is a payload of bytes already in memory (written by the
// sandbox itself, not uploaded).
func bytesPayload(data []byte) *payload {
	sum := md5.Sum(data)
	return &payload{data: data, size: int64(len(data)), md5: sum[:], crc64: checksum("crc64nvme", data)}
}

// chunkReader decodes an aws-chunked body as it is read:
// "hex-size[;chunk-signature=...]\r\n data \r\n" chunks up to the zero
// chunk, then trailer lines "name:value".
type chunkReader struct {
	br       *bufio.Reader
	trailers http.Header
	left     int64 // bytes left in the current chunk
	inChunk  bool  // a chunk's data was read, its CRLF not yet
	done     bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for r.left == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// next reads the end of the chunk before and the size line of the next; at
// the zero chunk, the trailers.
func (r *chunkReader) next() error {
	if r.inChunk {
		if crlf, err := r.br.ReadString('\n'); err != nil || strings.TrimSpace(crlf) != "" {
			return io.ErrUnexpectedEOF
		}
	}
	line, err := r.br.ReadString('\n')
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	sizeHex, _, _ := strings.Cut(strings.TrimSpace(line), ";")
	n, err := strconv.ParseInt(sizeHex, 16, 64)
	if err != nil || n < 0 || n > maxObjectSize {
		return fmt.Errorf("bad chunk size %q", sizeHex)
	}
	r.left, r.inChunk = n, true
	if n > 0 {
		return nil
	}
	r.done = true
	for {
		line, err := r.br.ReadString('\n')
		line = strings.TrimSpace(line)
		if name, val, ok := strings.Cut(line, ":"); ok && !strings.EqualFold(name, "x-amz-trailer-signature") {
			r.trailers.Set(name, strings.TrimSpace(val))
		}
		if err != nil {
			return nil
		}
	}
}
