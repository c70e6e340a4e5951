package sandbox

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	regionlist "github.com/trailkeeper/trailkeeper/internal/regions"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// signingKey is one of CloudTrail's digest signing keys of a region. Keys
// rotate: the last of a region's keys signs, the others are retired and keep
// proving what they signed while they were valid.
type signingKey struct {
	priv    *rsa.PrivateKey
	created time.Time
	retired time.Time // zero for the current key
}

// keyLifetime is how long a key signs before CloudTrail moves to the next
// (the AWS CLI's list-public-keys example shows keys valid for 30 days).
const keyLifetime = 30 * 24 * time.Hour

var keysMu sync.Mutex // serialises slow key generation

// signingKey returns the region's current key, making the first one (and,
// after keyLifetime, the next) as CloudTrail would.
func (s *Sandbox) signingKey(region string) (*rsa.PrivateKey, error) {
	keysMu.Lock()
	defer keysMu.Unlock()
	s.mu.Lock()
	ks := s.keys[region]
	s.mu.Unlock()
	now := time.Now().UTC()
	if n := len(ks); n > 0 && (s.opts.SigningKey != nil || now.Before(ks[n-1].created.Add(keyLifetime))) {
		return ks[n-1].priv, nil
	}
	priv := s.opts.SigningKey
	if priv == nil || len(ks) > 0 {
		var err error
		if priv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.addKey(region, priv, now)
	s.mu.Unlock()
	return priv, nil
}

// addKey retires the region's current key and makes priv the current one.
// The first key's validity starts an hour back, so that a digest of the
// hour the sandbox started verifies. Callers hold s.mu.
func (s *Sandbox) addKey(region string, priv *rsa.PrivateKey, now time.Time) {
	ks := s.keys[region]
	created := now.Truncate(time.Second)
	switch {
	case len(ks) == 0 && s.opts.SigningKey != nil && priv == s.opts.SigningKey:
		// A key given to sign chains written into the past (benchmarks,
		// fixtures) is valid since log file validation began.
		created = time.Date(2015, 11, 1, 0, 0, 0, 0, time.UTC)
	case len(ks) == 0:
		created = created.Add(-time.Hour)
	default:
		ks[len(ks)-1].retired = created
	}
	s.keys[region] = append(ks, &signingKey{priv: priv, created: created})
	s.changed()
}

// RotateSigningKey makes CloudTrail sign the region's digests with a new key
// from now on, as it does about monthly; the old key keeps proving what it
// signed. Digests of a running chain go on linking across the rotation.
func (s *Sandbox) RotateSigningKey(region string) error {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if _, err := s.signingKey(region); err != nil { // the first key, if there is none
		return err
	}
	keysMu.Lock()
	defer keysMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addKey(region, priv, time.Now().UTC())
	return nil
}

// currentKey is the key that signs now. Callers hold s.mu.
func (s *Sandbox) currentKey(region string) *rsa.PrivateKey {
	ks := s.keys[region]
	return ks[len(ks)-1].priv
}

// publicDER is the PKCS#1 RSAPublicKey, the form ListPublicKeys returns.
func publicDER(k *rsa.PrivateKey) []byte { return x509.MarshalPKCS1PublicKey(&k.PublicKey) }

// fingerprint is the hex MD5 of the public key's DER bytes.
func fingerprint(der []byte) string {
	sum := md5.Sum(der)
	return hex.EncodeToString(sum[:])
}

type storedKey struct {
	DER     []byte    `json:"der"`
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
}

func (s *Sandbox) keyDER() map[string][]byte {
	out := map[string][]byte{}
	for r, ks := range s.keys {
		var list []storedKey
		for _, k := range ks {
			list = append(list, storedKey{x509.MarshalPKCS1PrivateKey(k.priv), k.created, k.retired})
		}
		data, _ := json.Marshal(list)
		out[r] = data
	}
	return out
}

func (s *Sandbox) loadKeys(m map[string][]byte) error {
	for r, data := range m {
		var list []storedKey
		if err := json.Unmarshal(data, &list); err != nil {
			var one storedKey // a data dir of a sandbox before key rotation
			if err := json.Unmarshal(data, &one); err != nil {
				return fmt.Errorf("signing key of %s: %w", r, err)
			}
			list = []storedKey{one}
		}
		for _, sk := range list {
			priv, err := x509.ParsePKCS1PrivateKey(sk.DER)
			if err != nil {
				return fmt.Errorf("signing key of %s: %w", r, err)
			}
			s.keys[r] = append(s.keys[r], &signingKey{priv: priv, created: sk.Created, retired: sk.Retired})
		}
	}
	return nil
}

type pendingEvent struct {
	Time time.Time
	Data json.RawMessage
}

// dataEvents are S3 object-level calls: trails record them only with data event
// selectors, which the sandbox does not emulate.
var dataEvents = map[string]bool{"GetObject": true, "HeadObject": true, "PutObject": true, "DeleteObject": true,
	"DeleteObjects": true, "CopyObject": true, "CreateMultipartUpload": true, "UploadPart": true,
	"CompleteMultipartUpload": true, "AbortMultipartUpload": true, "GetObjectTagging": true, "GetObjectAcl": true,
	"GetObjectRetention": true, "PutObjectRetention": true, "GetObjectLegalHold": true, "PutObjectLegalHold": true,
	"ListObjects": true, "ListObjectsV2": true, "ListObjectVersions": true}

var eventSources = map[string]string{"s3": "s3.amazonaws.com", "iam": "iam.amazonaws.com", "sts": "sts.amazonaws.com",
	"cloudformation": "cloudformation.amazonaws.com", "cloudtrail": "cloudtrail.amazonaws.com", "sns": "sns.amazonaws.com", "glue": "glue.amazonaws.com", "athena": "athena.amazonaws.com"}

// afterCall counts the call and records it as a CloudTrail management event in
// the trails of the accounts involved.
func (s *Sandbox) afterCall(c *call) {
	acct := c.caller.Account
	if acct == "" {
		acct = "anonymous"
	}
	if c.action != "" {
		s.calls.add(acct, c.action)
	}
	if c.caller.Account == "" || c.action == "" || c.action == "Fault" || (c.service == "s3" && dataEvents[c.action]) {
		return
	}
	if c.service == "s3" && (c.r.Method == "GET" || c.r.Method == "HEAD") {
		c.readOnly = true // S3's Get and List calls, as CloudTrail marks them
	}
	region := c.region
	if c.service == "iam" {
		region = "us-east-1"
	}
	accounts := []string{c.caller.Account}
	if c.resourceAccount != "" && c.resourceAccount != c.caller.Account {
		accounts = append(accounts, c.resourceAccount)
	}
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range accounts {
		var ev json.RawMessage
		for _, t := range s.st.account(a).Trails {
			// A trail records the StopLogging that stops it.
			logging := t.Logging || (c.action == "StopLogging" && c.errCode == "" && !t.StoppedLogging.Before(c.start))
			if !logging || (t.HomeRegion != region && !t.MultiRegion) || (c.service == "iam" && !t.IncludeGlobal) {
				continue
			}
			if ev == nil {
				ev = s.event(c, a, region, now)
			}
			k := t.ARN + "|" + region
			if len(s.events[k]) < 100000 {
				s.events[k] = append(s.events[k], pendingEvent{now, ev})
			}
		}
		// EventBridge hears of it only while a trail logs it (User Guide,
		// "AWS service events delivered via CloudTrail").
		if ev != nil && a == c.caller.Account {
			s.cloudtrailEvent(a, region, ev, c.readOnly)
		}
	}
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (s *Sandbox) event(c *call, recipient, region string, now time.Time) json.RawMessage {
	id := map[string]any{"type": "Root", "principalId": c.caller.Account, "arn": c.caller.ARN, "accountId": c.caller.Account, "accessKeyId": c.caller.AccessKey}
	if c.caller.User != "" {
		id = map[string]any{"type": "IAMUser", "principalId": c.caller.UniqueID, "arn": c.caller.ARN, "accountId": c.caller.Account,
			"accessKeyId": c.caller.AccessKey, "userName": c.caller.User}
	}
	if c.caller.Session != "" {
		id = map[string]any{"type": "AssumedRole", "principalId": c.caller.UniqueID + ":" + c.caller.SessionName, "arn": c.caller.Session,
			"accountId": c.caller.Account, "accessKeyId": c.caller.AccessKey, "sessionContext": map[string]any{
				"sessionIssuer": map[string]any{"type": "Role", "principalId": c.caller.UniqueID, "arn": c.caller.ARN,
					"accountId": c.caller.Account, "userName": roleNameFromARN(c.caller.ARN)},
				"attributes": map[string]any{"creationDate": now.Format("2006-01-02T15:04:05Z"), "mfaAuthenticated": "false"}}}
	}
	ev := map[string]any{
		"eventVersion": "1.11", "userIdentity": id, "eventTime": now.Format("2006-01-02T15:04:05Z"),
		"eventSource": eventSources[c.service], "eventName": c.action, "awsRegion": region,
		"sourceIPAddress": c.sourceIP, "userAgent": c.r.UserAgent(), "requestParameters": c.params,
		"responseElements": c.response, "requestID": c.requestID, "eventID": newUUID(), "readOnly": c.readOnly,
		"eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": recipient, "eventCategory": "Management",
	}
	if c.errCode != "" {
		ev["errorCode"], ev["errorMessage"] = c.errCode, c.errMsg
	}
	if c.secure && c.r.TLS != nil {
		ev["tlsDetails"] = map[string]any{"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": c.r.Host}
	}
	data, _ := json.Marshal(ev)
	return data
}

// backgroundEvent is a plausible management event nobody made through the API.
func backgroundEvent(account, region string, now time.Time, rng func(int) int) json.RawMessage {
	names := []struct{ source, name string }{{"ec2.amazonaws.com", "DescribeInstances"}, {"ec2.amazonaws.com", "DescribeSecurityGroups"},
		{"monitoring.amazonaws.com", "DescribeAlarms"}, {"lambda.amazonaws.com", "ListFunctions20150331"},
		{"kms.amazonaws.com", "Decrypt"}, {"sts.amazonaws.com", "GetCallerIdentity"}, {"s3.amazonaws.com", "GetBucketLocation"}}
	n := names[rng(len(names))]
	ev := map[string]any{
		"eventVersion": "1.11", "userIdentity": map[string]any{"type": "AssumedRole", "principalId": "AROAEXAMPLEBACKGROUND:ops",
			"arn": "arn:aws:sts::" + account + ":assumed-role/Ops/ops", "accountId": account},
		"eventTime": now.Format("2006-01-02T15:04:05Z"), "eventSource": n.source, "eventName": n.name, "awsRegion": region,
		"sourceIPAddress": fmt.Sprintf("198.51.100.%d", rng(250)+1), "userAgent": "aws-cli/2.27.0 md/background",
		"requestParameters": nil, "responseElements": nil, "requestID": newUUID(), "eventID": newUUID(), "readOnly": true,
		"eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": account, "eventCategory": "Management",
	}
	data, _ := json.Marshal(ev)
	return data
}

func (s *Sandbox) cloudtrailLoop() {
	defer s.done.Done()
	logs := time.NewTicker(s.opts.DeliveryInterval)
	digests := time.NewTicker(s.opts.DigestInterval)
	defer logs.Stop()
	defer digests.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-logs.C:
			s.deliverAll(false)
		case <-digests.C:
			s.deliverAll(true)
		}
	}
}

// Deliver makes CloudTrail deliver now what it would deliver at the next
// intervals: pending log files and, for trails with validation, digest files.
// Tests call it instead of waiting.
func (s *Sandbox) Deliver() { s.deliverAll(true) }

func (s *Sandbox) deliverAll(digests bool) {
	s.mu.Lock()
	var arns []string
	for _, a := range s.st.Accounts {
		for _, t := range a.Trails {
			if t.Logging {
				arns = append(arns, t.ARN)
			}
		}
	}
	s.mu.Unlock()
	sort.Strings(arns)
	for _, arn := range arns {
		s.deliver(arn, digests)
	}
}

func (s *Sandbox) trailByARN(arn string) *trail {
	parts := strings.Split(arn, ":")
	if len(parts) < 6 {
		return nil
	}
	return s.st.account(parts[4]).Trails[arn]
}

// deliver writes the trail's pending log files and, when digests is set, one
// digest per chain.
func (s *Sandbox) deliver(arn string, digests bool) {
	s.mu.Lock()
	t := s.trailByARN(arn)
	var region string
	if t != nil {
		region = t.HomeRegion
	}
	s.mu.Unlock()
	if t == nil {
		return
	}
	if _, err := s.signingKey(region); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t = s.trailByARN(arn); t == nil {
		return
	}
	now := time.Now().UTC()
	if s.opts.BackgroundEvents > 0 {
		k := t.ARN + "|" + t.HomeRegion
		for range s.opts.BackgroundEvents {
			s.events[k] = append(s.events[k], pendingEvent{now, backgroundEvent(t.Account, t.HomeRegion, now, s.intn)})
		}
	}
	for _, r := range s.pendingRegions(t) {
		s.deliverLog(t, r, now)
	}
	if digests && t.LogValidation {
		// CloudTrail delivers a digest every hour for every region the trail
		// logs, with an empty logFiles list when nothing was delivered there.
		regions := map[string]bool{t.HomeRegion: true}
		for r := range t.Chains {
			regions[r] = true
		}
		if t.MultiRegion {
			for _, r := range regionlist.EnabledByDefault() {
				regions[r] = true
			}
		}
		for _, r := range sortedSet(regions) {
			s.deliverDigest(t, r, now)
		}
	}
	s.changed()
}

func (s *Sandbox) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Sandbox) pendingRegions(t *trail) []string {
	set := map[string]bool{}
	for k, evs := range s.events {
		if arn, r, _ := strings.Cut(k, "|"); arn == t.ARN && len(evs) > 0 {
			set[r] = true
		}
	}
	return sortedSet(set)
}

const suffixAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (s *Sandbox) deliverLog(t *trail, region string, now time.Time) {
	k := t.ARN + "|" + region
	evs := s.events[k]
	t.LatestAttempt = now
	b := s.st.Buckets[t.Bucket]
	name := fmt.Sprintf("%s_CloudTrail_%s_%s_", t.Account, region, now.Format("20060102T1504Z"))
	suffix := make([]byte, 16)
	for i := range suffix {
		suffix[i] = suffixAlphabet[mrand.IntN(len(suffixAlphabet))]
	}
	name += string(suffix) + ".json.gz"
	key := keyPrefix(t) + "AWSLogs/" + t.Account + "/CloudTrail/" + region + "/" + now.Format("2006/01/02") + "/" + name
	switch {
	case b == nil:
		t.DeliveryError = "NoSuchBucket"
		return
	case s.deliveryDenied(t, b, key[len(keyPrefix(t)+"AWSLogs/"+t.Account+"/"):]) != "":
		t.DeliveryError = "AccessDenied"
		return
	}
	var raw bytes.Buffer
	raw.WriteString(`{"Records":[`)
	for i, e := range evs {
		if i > 0 {
			raw.WriteByte(',')
		}
		raw.Write(e.Data)
	}
	raw.WriteString(`]}`)
	h := map[string]string{"content-type": "application/json", "content-encoding": "gzip", "x-amz-acl": "bucket-owner-full-control"}
	if t.KMSKey != "" {
		h["x-amz-server-side-encryption"], h["x-amz-server-side-encryption-aws-kms-key-id"] = "aws:kms", t.KMSKey
	}
	if err := s.putAsService(b, key, gzipBytes(raw.Bytes()), h); err != nil {
		t.DeliveryError = err.Error()
		return
	}
	delete(s.events, k)
	t.LatestDelivery, t.DeliveryError = now, ""
	if t.LogValidation {
		sum := sha256.Sum256(raw.Bytes())
		ch := s.chainFor(t, region)
		ch.Logs = append(ch.Logs, digestLog{Bucket: b.Name, Key: key, Hash: hex.EncodeToString(sum[:]), Oldest: evs[0].Time, Newest: evs[len(evs)-1].Time})
	}
}

// chainFor is the trail's chain of a region. A new chain starts when logging
// and log file validation both were on: a digest covers the log files
// delivered in its period, and none delivered before validation started.
func (s *Sandbox) chainFor(t *trail, region string) *chain {
	if t.Chains == nil {
		t.Chains = map[string]*chain{}
	}
	ch := t.Chains[region]
	if ch == nil {
		start := t.StartedLogging
		if t.ValidationSince.After(start) {
			start = t.ValidationSince
		}
		ch = &chain{Start: start.Truncate(time.Second)}
		t.Chains[region] = ch
	}
	return ch
}

func gzipBytes(data []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(data)
	zw.Close()
	return out.Bytes()
}

// putAsService writes an object as an AWS service would (no request, no event).
func (s *Sandbox) putAsService(b *bucket, key string, data []byte, h map[string]string) error {
	p := bytesPayload(data)
	v, err := newVersion(b, key, h, p, b.Owner)
	if err != nil {
		return err
	}
	return s.addVersion(b, v, p)
}

// digestFile is the JSON of a digest, fields in CloudTrail's order. It is
// written here again, not taken from internal/cloudtrail, on purpose: the sandbox
// must not share the tool's reading of AWS's formats, so that the AWS CLI's
// validate-logs checks the two independently.
type digestFile struct {
	AWSAccountID       string          `json:"awsAccountId"`
	DigestStartTime    string          `json:"digestStartTime"`
	DigestEndTime      string          `json:"digestEndTime"`
	DigestS3Bucket     string          `json:"digestS3Bucket"`
	DigestS3Object     string          `json:"digestS3Object"`
	Fingerprint        string          `json:"digestPublicKeyFingerprint"`
	SignatureAlgorithm string          `json:"digestSignatureAlgorithm"`
	NewestEventTime    *string         `json:"newestEventTime"`
	OldestEventTime    *string         `json:"oldestEventTime"`
	PreviousBucket     *string         `json:"previousDigestS3Bucket"`
	PreviousObject     *string         `json:"previousDigestS3Object"`
	PreviousHash       *string         `json:"previousDigestHashValue"`
	PreviousHashAlg    *string         `json:"previousDigestHashAlgorithm"`
	PreviousSignature  *string         `json:"previousDigestSignature"`
	LogFiles           []digestLogFile `json:"logFiles"`
}

type digestLogFile struct {
	S3Bucket        string `json:"s3Bucket"`
	S3Object        string `json:"s3Object"`
	HashValue       string `json:"hashValue"`
	HashAlgorithm   string `json:"hashAlgorithm"`
	NewestEventTime string `json:"newestEventTime"`
	OldestEventTime string `json:"oldestEventTime"`
}

const ctTime = "2006-01-02T15:04:05Z"

func ptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Sandbox) deliverDigest(t *trail, region string, now time.Time) {
	ch := s.chainFor(t, region)
	end := now.Truncate(time.Second)
	// Digest keys have one-second resolution: never reuse one, not even across a
	// restarted chain (CloudTrail's hourly digests never collide).
	if last := t.LastDigestEnd[region]; !end.After(last) {
		end = last.Add(time.Second)
	}
	if !end.After(ch.Start) {
		end = ch.Start.Add(time.Second)
	}
	b := s.st.Buckets[t.Bucket]
	name := fmt.Sprintf("%s_CloudTrail-Digest_%s_%s_%s_%s.json.gz", t.Account, region, t.Name, t.HomeRegion, end.Format("20060102T150405Z"))
	key := keyPrefix(t) + "AWSLogs/" + t.Account + "/CloudTrail-Digest/" + region + "/" + end.Format("2006/01/02") + "/" + name
	if b == nil {
		t.DigestError = "NoSuchBucket"
		return
	}
	if s.deliveryDenied(t, b, key[len(keyPrefix(t)+"AWSLogs/"+t.Account+"/"):]) != "" {
		t.DigestError = "AccessDenied"
		return
	}
	priv := s.currentKey(t.HomeRegion) // digests are signed with the home region's key
	d := digestFile{AWSAccountID: t.Account, DigestStartTime: ch.Start.Format(ctTime), DigestEndTime: end.Format(ctTime),
		DigestS3Bucket: b.Name, DigestS3Object: key, Fingerprint: fingerprint(publicDER(priv)), SignatureAlgorithm: "SHA256withRSA",
		PreviousBucket: ptr(ch.PrevBucket), PreviousObject: ptr(ch.PrevKey), PreviousHash: ptr(ch.PrevHash),
		PreviousSignature: ptr(ch.PrevSignature), LogFiles: []digestLogFile{}}
	if ch.PrevKey != "" {
		d.PreviousHashAlg = ptr("SHA-256")
	}
	var oldest, newest time.Time
	for _, l := range ch.Logs {
		d.LogFiles = append(d.LogFiles, digestLogFile{l.Bucket, l.Key, l.Hash, "SHA-256", l.Newest.Format(ctTime), l.Oldest.Format(ctTime)})
		if oldest.IsZero() || l.Oldest.Before(oldest) {
			oldest = l.Oldest
		}
		if l.Newest.After(newest) {
			newest = l.Newest
		}
	}
	if !oldest.IsZero() {
		d.OldestEventTime, d.NewestEventTime = ptr(oldest.Format(ctTime)), ptr(newest.Format(ctTime))
	}
	raw, _ := json.Marshal(d)
	sum := sha256.Sum256(raw)
	prevSig := ch.PrevSignature
	if prevSig == "" {
		prevSig = "null"
	}
	toSign := d.DigestEndTime + "\n" + b.Name + "/" + key + "\n" + hex.EncodeToString(sum[:]) + "\n" + prevSig
	h := sha256.Sum256([]byte(toSign))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
	if err != nil {
		t.DigestError = err.Error()
		return
	}
	meta := map[string]string{"content-type": "application/json", "content-encoding": "gzip", "x-amz-acl": "bucket-owner-full-control",
		"x-amz-server-side-encryption": "AES256", "x-amz-meta-signature": hex.EncodeToString(sig), "x-amz-meta-signature-algorithm": "SHA256withRSA"}
	if err := s.putAsService(b, key, gzipBytes(raw), meta); err != nil {
		t.DigestError = err.Error()
		return
	}
	ch.PrevBucket, ch.PrevKey, ch.PrevHash, ch.PrevSignature = b.Name, key, hex.EncodeToString(sum[:]), hex.EncodeToString(sig)
	ch.Start, ch.Logs = end, nil
	if t.LastDigestEnd == nil {
		t.LastDigestEnd = map[string]time.Time{}
	}
	t.LastDigestEnd[region] = end
	t.LatestDigest, t.DigestError = now, ""
}
