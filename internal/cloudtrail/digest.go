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

// MaxDigestSize bounds how much of a digest file is read: a real digest lists
// the log files of one hour, a few hundred kilobytes at most.
const MaxDigestSize = 64 << 20

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
		return nil, errors.New("larger than any digest file")
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
// the hash digests list, without holding the file in memory.
func HashLog(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := Gunzip(h, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
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
