package cloudtrail

import (
	"bytes"
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// DigestFile is a CloudTrail digest file (AWS-FACTS.md section 7).
type DigestFile struct {
	AccountID          string    `json:"awsAccountId"`
	StartTime          string    `json:"digestStartTime"`
	EndTime            string    `json:"digestEndTime"`
	Bucket             string    `json:"digestS3Bucket"`
	Object             string    `json:"digestS3Object"`
	Fingerprint        string    `json:"digestPublicKeyFingerprint"`
	SignatureAlgorithm string    `json:"digestSignatureAlgorithm"`
	NewestEventTime    *string   `json:"newestEventTime"`
	OldestEventTime    *string   `json:"oldestEventTime"`
	PreviousBucket     *string   `json:"previousDigestS3Bucket"`
	PreviousObject     *string   `json:"previousDigestS3Object"`
	PreviousHash       *string   `json:"previousDigestHashValue"`
	PreviousHashAlg    *string   `json:"previousDigestHashAlgorithm"`
	PreviousSignature  *string   `json:"previousDigestSignature"`
	LogFiles           []LogFile `json:"logFiles"`

	Start, End time.Time `json:"-"`
	// RawHash is the SHA-256 in hex of the uncompressed file, which its
	// successor records and its signature covers.
	RawHash string `json:"-"`
}

// LogFile is one entry of a digest's logFiles.
type LogFile struct {
	Bucket        string `json:"s3Bucket"`
	Object        string `json:"s3Object"`
	HashValue     string `json:"hashValue"`
	HashAlgorithm string `json:"hashAlgorithm"`
	NewestEvent   string `json:"newestEventTime"`
	OldestEvent   string `json:"oldestEventTime"`
}

// MaxDigestSize bounds a digest file, compressed and inflated: a digest lists
// the log files one region delivered in one hour, about 330 bytes each, so
// 8 MiB is some 25,000 files an hour, far beyond what CloudTrail delivers (a
// file every few minutes per region). A larger object is not a digest, and is
// refused before it is read (verify) or as soon as it inflates past this.
const MaxDigestSize = 8 << 20

// LogInflateLimit is how far a log file of compressed size n may inflate
// before it is called altered. Real CloudTrail logs inflate 4 to 16 times
// (16 is the largest ratio among the 3,872 files of the shared SANS 504 set);
// 64 times plus 1 MiB stops a gzip bomb long before its end.
func LogInflateLimit(compressed int64) int64 { return 64*max(compressed, 0) + 1<<20 }

// ErrTooLarge is returned when a file inflates beyond its limit.
var ErrTooLarge = errors.New("inflates beyond what CloudTrail writes")

// ReadDigest gunzips and parses a digest file. Errors say what is wrong with it.
func ReadDigest(r io.Reader) (*DigestFile, error) {
	zr, err := gunzip(r)
	if err != nil {
		return nil, fmt.Errorf("not gzip: %w", err)
	}
	defer gzipReaders.Put(zr)
	raw, err := io.ReadAll(io.LimitReader(zr, MaxDigestSize+1))
	if err != nil {
		return nil, fmt.Errorf("truncated or corrupt gzip: %w", err)
	}
	if len(raw) > MaxDigestSize {
		return nil, fmt.Errorf("%w: a digest inflating past %d MiB", ErrTooLarge, MaxDigestSize>>20)
	}
	return ParseDigest(raw)
}

// ParseDigest parses an uncompressed digest file and checks its required fields.
func ParseDigest(raw []byte) (*DigestFile, error) {
	var d DigestFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("not a digest (JSON: %v)", err)
	}
	var err error
	switch {
	case d.AccountID == "" || d.Bucket == "" || d.Object == "" || d.Fingerprint == "":
		return nil, errors.New("not a digest: awsAccountId, digestS3Bucket, digestS3Object or digestPublicKeyFingerprint missing")
	case d.SignatureAlgorithm != "SHA256withRSA":
		return nil, fmt.Errorf("unknown signature algorithm %q", d.SignatureAlgorithm)
	}
	if d.Start, err = time.Parse(time.RFC3339, d.StartTime); err != nil {
		return nil, fmt.Errorf("bad digestStartTime %q", d.StartTime)
	}
	if d.End, err = time.Parse(time.RFC3339, d.EndTime); err != nil {
		return nil, fmt.Errorf("bad digestEndTime %q", d.EndTime)
	}
	if (d.PreviousObject == nil) != (d.PreviousSignature == nil) || (d.PreviousObject == nil) != (d.PreviousHash == nil) {
		return nil, errors.New("previous digest fields are partly null")
	}
	for _, l := range d.LogFiles {
		if l.Object == "" || len(l.HashValue) != 64 || l.HashAlgorithm != "SHA-256" {
			return nil, fmt.Errorf("log file entry %q without a SHA-256 hash", l.Object)
		}
	}
	sum := sha256.Sum256(raw)
	d.RawHash = hex.EncodeToString(sum[:])
	return &d, nil
}

// ChainStart reports whether the digest begins a chain (all previous* null).
func (d *DigestFile) ChainStart() bool { return d.PreviousObject == nil }

// SigningString is what CloudTrail signs, for the digest's ORIGINAL location
// (bucket and key inside it), which is why a copy can be verified anywhere.
func (d *DigestFile) SigningString() string {
	prev := "null"
	if d.PreviousSignature != nil {
		prev = *d.PreviousSignature
	}
	return d.EndTime + "\n" + d.Bucket + "/" + d.Object + "\n" + d.RawHash + "\n" + prev
}

// VerifySignature checks a hex signature over the signing string with key.
func (d *DigestFile) VerifySignature(signatureHex string, key *rsa.PublicKey) error {
	sig, err := hex.DecodeString(strings.TrimSpace(signatureHex))
	if err != nil || len(sig) == 0 {
		return errors.New("signature is not hex")
	}
	h := sha256.Sum256([]byte(d.SigningString()))
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, h[:], sig)
}

// ParsePublicKey reads a key as ListPublicKeys returns it: DER of a PKCS#1
// RSAPublicKey (SubjectPublicKeyInfo accepted too). It returns the key and its
// fingerprint (hex MD5 of the DER).
func ParsePublicKey(der []byte) (*rsa.PublicKey, string, error) {
	sum := md5.Sum(der)
	fp := hex.EncodeToString(sum[:])
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, fp, nil
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, "", fmt.Errorf("not an RSA public key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, "", errors.New("not an RSA public key")
	}
	return rk, fp, nil
}

// gzipReaders keeps decompressors for reuse: a new one costs more than
// inflating a typical 2 KB log file.
var gzipReaders sync.Pool

// gunzip returns a pooled reader of r; put it back when done.
func gunzip(r io.Reader) (*gzip.Reader, error) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	if zr == nil {
		return gzip.NewReader(r)
	}
	if err := zr.Reset(r); err != nil {
		gzipReaders.Put(zr)
		return nil, err
	}
	zr.Multistream(true)
	return zr, nil
}

// HashLog streams a gzipped log file through SHA-256 of its uncompressed bytes,
// the hash digests list, without holding the file in memory. It stops with
// ErrTooLarge once limit bytes have inflated (limit <= 0: no limit).
func HashLog(r io.Reader, limit int64) (string, int64, error) {
	h := sha256.New()
	var dst io.Writer = h
	if limit > 0 {
		dst = &capped{w: h, left: limit}
	}
	n, err := Gunzip(dst, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// capped fails a write that would pass its limit.
type capped struct {
	w    io.Writer
	left int64
}

func (c *capped) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, fmt.Errorf("%w: more than its limit", ErrTooLarge)
	}
	c.left -= int64(len(p))
	return c.w.Write(p)
}

// Gunzip streams the uncompressed bytes of a gzip file into dst with a pooled
// reader. Errors say whether it is not gzip or truncated, and wrap the cause
// (a network error stays visible to errors.As).
func Gunzip(dst io.Writer, src io.Reader) (int64, error) {
	zr, err := gunzip(src)
	if err != nil {
		return 0, fmt.Errorf("not gzip: %w", err)
	}
	defer gzipReaders.Put(zr)
	n, err := io.Copy(dst, zr)
	if err != nil {
		return n, fmt.Errorf("truncated or corrupt gzip: %w", err)
	}
	return n, nil
}
