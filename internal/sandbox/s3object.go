package sandbox

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

func findVersion(b *bucket, key, id string) *version {
	vs := b.Objects[key]
	if id == "" {
		if len(vs) == 0 {
			return nil
		}
		return vs[len(vs)-1]
	}
	for _, v := range vs {
		if v.ID == id {
			return v
		}
	}
	return nil
}

func (s *Sandbox) objectOp(c *call, bkt, key string, q url.Values) error {
	has := func(k string) bool { _, ok := q[k]; return ok }
	m := c.r.Method
	switch {
	case has("uploads") && m == http.MethodPost:
		c.action = "CreateMultipartUpload"
		return s.createUpload(c, bkt, key)
	case has("uploadId") && m == http.MethodPut:
		c.action = "UploadPart"
		return s.uploadPart(c, bkt, key, q)
	case has("uploadId") && m == http.MethodPost:
		c.action = "CompleteMultipartUpload"
		return s.completeUpload(c, bkt, key, q.Get("uploadId"))
	case has("uploadId") && m == http.MethodDelete:
		c.action = "AbortMultipartUpload"
		return s.abortUpload(c, bkt, key, q.Get("uploadId"))
	case has("retention"), has("legal-hold"):
		return s.objectLockOp(c, bkt, key, q)
	case has("tagging") && m == http.MethodGet:
		c.action, c.readOnly = "GetObjectTagging", true
		return s.getObjectTagging(c, bkt, key, q.Get("versionId"))
	case has("acl") && m == http.MethodGet:
		c.action, c.readOnly = "GetObjectAcl", true
		s.mu.Lock()
		defer s.mu.Unlock()
		b, err := s.bucketFor(c, bkt, "s3:GetObjectAcl", bucketARN(bkt)+"/"+key, nil)
		if err != nil {
			return err
		}
		_, err = io.WriteString(c.w, ownerACL(b.Owner))
		return err
	case m == http.MethodPut && c.r.Header.Get("X-Amz-Copy-Source") != "":
		c.action = "CopyObject"
		return s.copyObject(c, bkt, key)
	case m == http.MethodPut:
		c.action = "PutObject"
		return s.putObject(c, bkt, key)
	case m == http.MethodGet, m == http.MethodHead:
		c.action, c.readOnly = "GetObject", true
		if m == http.MethodHead {
			c.action = "HeadObject"
		}
		return s.getObject(c, bkt, key, q.Get("versionId"))
	case m == http.MethodDelete:
		c.action = "DeleteObject"
		return s.deleteObject(c, bkt, key, q.Get("versionId"))
	}
	return errorf(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
}

// objectHeaders reads the headers that become part of a new object.
func objectHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amz-meta-") || lk == "content-type" || lk == "content-encoding" || lk == "cache-control" ||
			lk == "content-disposition" || lk == "x-amz-storage-class" || lk == "x-amz-server-side-encryption" ||
			lk == "x-amz-server-side-encryption-aws-kms-key-id" || lk == "x-amz-object-lock-mode" ||
			lk == "x-amz-object-lock-retain-until-date" || lk == "x-amz-object-lock-legal-hold" || lk == "x-amz-acl" || lk == "x-amz-tagging" {
			out[lk] = v[0]
		}
	}
	return out
}

// newVersion builds a version from upload headers, applying bucket defaults.
func newVersion(b *bucket, key string, h map[string]string, p *payload, owner string) (*version, error) {
	v := &version{Key: key, ID: "null", Size: p.size, ETag: p.etag(), Checksums: p.checksums(), LastModified: time.Now().UTC(), Owner: b.Owner,
		ContentType: h["content-type"], CacheControl: h["cache-control"], Disposition: h["content-disposition"],
		StorageClass: h["x-amz-storage-class"], SSE: h["x-amz-server-side-encryption"], KMSKey: h["x-amz-server-side-encryption-aws-kms-key-id"]}
	if b.Ownership == "ObjectWriter" {
		v.Owner = owner
	}
	if b.Versioning == "Enabled" {
		v.ID = versionID()
	}
	if ce := h["content-encoding"]; ce != "" {
		var keep []string
		for _, p := range strings.Split(ce, ",") {
			if p = strings.TrimSpace(p); p != "aws-chunked" && p != "" {
				keep = append(keep, p)
			}
		}
		v.ContentEncoding = strings.Join(keep, ",")
	}
	if v.ContentType == "" {
		v.ContentType = "binary/octet-stream"
	}
	if v.StorageClass != "" && !storageClasses[v.StorageClass] {
		return nil, errorf(400, "InvalidStorageClass", "The storage class you specified is not valid")
	}
	switch v.SSE {
	case "":
		v.SSE = "AES256"
		if strings.Contains(b.Encryption, "aws:kms") {
			v.SSE = "aws:kms"
		}
	case "AES256", "aws:kms", "aws:kms:dsse":
	default:
		return nil, errorf(400, "InvalidArgument", "The encryption method specified is not supported")
	}
	if v.SSE == "aws:kms" && v.KMSKey == "" {
		v.KMSKey = "arn:aws:kms:" + b.Region + ":" + b.Owner + ":alias/aws/s3"
	}
	for k, val := range h {
		if name, ok := strings.CutPrefix(k, "x-amz-meta-"); ok {
			if v.Metadata == nil {
				v.Metadata = map[string]string{}
			}
			v.Metadata[name] = val
		}
	}
	if mode := h["x-amz-object-lock-mode"]; mode != "" || h["x-amz-object-lock-retain-until-date"] != "" {
		if !b.ObjectLock {
			return nil, errorf(400, "InvalidRequest", "Bucket is missing Object Lock Configuration")
		}
		t, err := time.Parse(time.RFC3339, h["x-amz-object-lock-retain-until-date"])
		if (mode != "GOVERNANCE" && mode != "COMPLIANCE") || err != nil {
			return nil, errorf(400, "InvalidArgument", "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied")
		}
		v.LockMode, v.RetainUntil = mode, t.UTC()
	} else if b.LockRule != nil {
		v.LockMode, v.RetainUntil = b.LockRule.Mode, retainUntil(v.LastModified, b.LockRule)
	}
	if lh := h["x-amz-object-lock-legal-hold"]; lh != "" {
		if !b.ObjectLock {
			return nil, errorf(400, "InvalidRequest", "Bucket is missing Object Lock Configuration")
		}
		v.LegalHold = lh == "ON"
	}
	if t := h["x-amz-tagging"]; t != "" {
		v.Tagging = t
	}
	return v, nil
}

// addVersion stores a new version: in a versioned bucket it is added, otherwise
// it replaces the "null" version. Callers hold s.mu.
func (s *Sandbox) addVersion(b *bucket, v *version, data *payload) error {
	if !v.DeleteMarker && data != nil { // nil: the bytes are linked already
		if err := s.blobs.adopt(blobID(b.Name, v.ID, v.Key), data); err != nil {
			return err
		}
	}
	vs := b.Objects[v.Key]
	if v.ID == "null" {
		for i, old := range vs {
			if old.ID == "null" {
				vs = append(vs[:i], vs[i+1:]...)
				break
			}
		}
	}
	if len(vs) == 0 {
		b.sorted = nil
	}
	b.Objects[v.Key] = append(vs, v)
	s.enqueueReplication(b, v)
	s.changed()
	return nil
}

func (s *Sandbox) putObject(c *call, bkt, key string) error {
	data, err := s.readBody(c.r)
	if err != nil {
		return err
	}
	defer data.discard() // unless a store adopted it
	h := objectHeaders(c.r.Header)
	extra := map[string][]string{}
	if acl := h["x-amz-acl"]; acl != "" {
		extra["s3:x-amz-acl"] = []string{acl}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, "s3:PutObject", bucketARN(bkt)+"/"+key, extra)
	if err != nil {
		return err
	}
	if b.Ownership == "BucketOwnerEnforced" && h["x-amz-acl"] != "" && h["x-amz-acl"] != "bucket-owner-full-control" {
		return errorf(400, "AccessControlListNotSupported", "The bucket does not allow ACLs")
	}
	// PutObject API reference: an object that gets a retention period from
	// Object Lock must come with an integrity check.
	if (b.LockRule != nil || h["x-amz-object-lock-mode"] != "") && c.r.Header.Get("Content-MD5") == "" && len(data.sums) == 0 {
		return errorf(400, "InvalidRequest", "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters")
	}
	// Conditional writes (User Guide, "How to prevent object overwrites"):
	// If-None-Match: * fails when the key has a current version; If-Match
	// needs a current version with that ETag, and there is none, NoSuchKey.
	cur := findVersion(b, key, "")
	if cur != nil && cur.DeleteMarker {
		cur = nil
	}
	if c.r.Header.Get("If-None-Match") == "*" && cur != nil {
		return errorf(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
	}
	if im := c.r.Header.Get("If-Match"); im != "" {
		if cur == nil {
			e := errorf(404, "NoSuchKey", "The specified key does not exist.")
			e.Resource = key
			return e
		}
		if strings.Trim(im, `"`) != strings.Trim(cur.ETag, `"`) {
			return errorf(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
		}
	}
	v, err := newVersion(b, key, h, data, c.caller.Account)
	if err != nil {
		return err
	}
	if err := s.addVersion(b, v, data); err != nil {
		return err
	}
	s.writeObjectResult(c, v)
	c.w.WriteHeader(200)
	return nil
}

func (s *Sandbox) writeObjectResult(c *call, v *version) {
	h := c.w.Header()
	h.Set("ETag", v.ETag)
	if v.ID != "null" {
		h.Set("x-amz-version-id", v.ID)
	}
	h.Set("x-amz-server-side-encryption", v.SSE)
	if v.SSE == "aws:kms" {
		h.Set("x-amz-server-side-encryption-aws-kms-key-id", v.KMSKey)
	}
	for alg, sum := range v.Checksums {
		h.Set("x-amz-checksum-"+strings.ToLower(alg), sum)
	}
	c.response = map[string]any{"x-amz-version-id": v.ID}
}

func (s *Sandbox) getObject(c *call, bkt, key, vid string) error {
	action := "s3:GetObject"
	if vid != "" {
		action = "s3:GetObjectVersion"
	}
	s.mu.Lock()
	b, err := s.bucketFor(c, bkt, action, bucketARN(bkt)+"/"+key, nil)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	v := findVersion(b, key, vid)
	var vc version
	if v != nil {
		vc = *v
	}
	s.mu.Unlock()
	h := c.w.Header()
	switch {
	case v == nil && vid != "":
		return errorf(404, "NoSuchVersion", "The specified version does not exist.")
	case v == nil:
		e := errorf(404, "NoSuchKey", "The specified key does not exist.")
		e.Resource = key
		return e
	case vc.DeleteMarker:
		h.Set("x-amz-delete-marker", "true")
		h.Set("x-amz-version-id", vc.ID)
		if vid != "" {
			return errorf(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		}
		return errorf(404, "NoSuchKey", "The specified key does not exist.")
	}
	data, err := s.blobs.open(blobID(bkt, vc.ID, vc.Key))
	if err != nil {
		return errorf(500, "InternalError", "object data missing: %v", err)
	}
	defer data.Close()
	h.Set("Last-Modified", vc.LastModified.Format(http.TimeFormat))
	h.Set("ETag", vc.ETag)
	h.Set("Content-Type", vc.ContentType)
	h.Set("Accept-Ranges", "bytes")
	if vc.ID != "null" {
		h.Set("x-amz-version-id", vc.ID)
	}
	for k, val := range map[string]string{"Content-Encoding": vc.ContentEncoding, "Cache-Control": vc.CacheControl,
		"Content-Disposition": vc.Disposition, "x-amz-replication-status": vc.Replication, "x-amz-object-lock-mode": vc.LockMode} {
		if val != "" {
			h.Set(k, val)
		}
	}
	if !vc.RetainUntil.IsZero() {
		h.Set("x-amz-object-lock-retain-until-date", vc.RetainUntil.Format(time.RFC3339))
	}
	if vc.LegalHold {
		h.Set("x-amz-object-lock-legal-hold", "ON")
	}
	if vc.StorageClass != "" && vc.StorageClass != "STANDARD" {
		h.Set("x-amz-storage-class", vc.StorageClass)
	}
	h.Set("x-amz-server-side-encryption", vc.SSE)
	if vc.SSE == "aws:kms" {
		h.Set("x-amz-server-side-encryption-aws-kms-key-id", vc.KMSKey)
	}
	if vc.Parts > 0 {
		h.Set("x-amz-mp-parts-count", strconv.Itoa(vc.Parts))
	}
	for k, val := range vc.Metadata {
		h["x-amz-meta-"+k] = []string{val} // S3 sends user metadata names in lower case; clients match them exactly
	}
	if strings.EqualFold(c.r.Header.Get("x-amz-checksum-mode"), "ENABLED") {
		for alg, sum := range vc.Checksums {
			h.Set("x-amz-checksum-"+strings.ToLower(alg), sum)
		}
	}
	if inm := c.r.Header.Get("If-None-Match"); inm != "" && inm == vc.ETag {
		c.status = 304
		c.w.WriteHeader(304)
		return nil
	}
	if im := c.r.Header.Get("If-Match"); im != "" && im != vc.ETag {
		return errorf(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
	}
	size := data.Size()
	body := io.NewSectionReader(data, 0, size)
	if rg := c.r.Header.Get("Range"); rg != "" {
		start, end, ok := parseRange(rg, size)
		if !ok {
			return errorf(416, "InvalidRange", "The requested range is not satisfiable")
		}
		body = io.NewSectionReader(data, start, end+1-start)
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		c.status = 206
	}
	h.Set("Content-Length", strconv.FormatInt(body.Size(), 10))
	c.w.WriteHeader(c.status)
	if c.r.Method != http.MethodHead {
		io.Copy(c.w, body)
	}
	return nil
}

func parseRange(rg string, size int64) (int64, int64, bool) {
	spec, ok := strings.CutPrefix(rg, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	var start, end int64
	var err error
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		start, end = max(size-n, 0), size-1
	default:
		if start, err = strconv.ParseInt(a, 10, 64); err != nil {
			return 0, 0, false
		}
		end = size - 1
		if b != "" {
			if end, err = strconv.ParseInt(b, 10, 64); err != nil {
				return 0, 0, false
			}
			end = min(end, size-1)
		}
	}
	if start > end || start >= size {
		return 0, 0, false
	}
	return start, end, true
}

// locked says why a version may not be deleted or overwritten now, or "".
func locked(v *version, bypass bool) string {
	if v.LegalHold {
		return "legal hold"
	}
	if v.RetainUntil.After(time.Now()) && (v.LockMode == "COMPLIANCE" || !bypass) {
		return "retention"
	}
	return ""
}

func (s *Sandbox) deleteObject(c *call, bkt, key, vid string) error {
	action := "s3:DeleteObject"
	if vid != "" {
		action = "s3:DeleteObjectVersion"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, action, bucketARN(bkt)+"/"+key, nil)
	if err != nil {
		return err
	}
	dm, did, err := s.removeObject(c, b, key, vid)
	if err != nil {
		return err
	}
	if dm {
		c.w.Header().Set("x-amz-delete-marker", "true")
	}
	if did != "" {
		c.w.Header().Set("x-amz-version-id", did)
	}
	c.status = 204
	c.w.WriteHeader(204)
	return nil
}

// removeObject deletes a version, or adds a delete marker when no version is
// named. It reports whether the result is a delete marker and its version id.
func (s *Sandbox) removeObject(c *call, b *bucket, key, vid string) (bool, string, error) {
	if vid == "" {
		if b.Versioning == "" {
			if old := findVersion(b, key, "null"); old != nil {
				delete(b.Objects, key)
				b.sorted = nil
				s.blobs.del(blobID(b.Name, "null", key))
			}
			s.changed()
			return false, "", nil
		}
		dm := &version{Key: key, ID: "null", DeleteMarker: true, LastModified: time.Now().UTC(), Owner: c.caller.Account}
		if b.Versioning == "Enabled" {
			dm.ID = versionID()
		}
		if err := s.addVersion(b, dm, nil); err != nil {
			return false, "", err
		}
		return true, dm.ID, nil
	}
	vs := b.Objects[key]
	for i, v := range vs {
		if v.ID != vid {
			continue
		}
		if !v.DeleteMarker {
			bypass := strings.EqualFold(c.r.Header.Get("x-amz-bypass-governance-retention"), "true")
			if bypass && s.authorize(c, b, "s3:BypassGovernanceRetention", bucketARN(b.Name)+"/"+key, nil) != nil {
				bypass = false
			}
			if why := locked(v, bypass); why != "" {
				return false, "", accessDenied("Access Denied because object protected by object lock.")
			}
			s.blobs.del(blobID(b.Name, v.ID, key))
		}
		vs = append(vs[:i:i], vs[i+1:]...)
		if len(vs) == 0 {
			delete(b.Objects, key)
			b.sorted = nil
		} else {
			b.Objects[key] = vs
		}
		s.changed()
		return v.DeleteMarker, vid, nil
	}
	if !versionIDLooksValid(vid) {
		return false, "", errorf(400, "InvalidArgument", "Invalid version id specified")
	}
	return false, vid, nil // deleting a version that does not exist succeeds, as on S3
}

func versionIDLooksValid(id string) bool { return id == "null" || len(id) == 32 }

func (s *Sandbox) deleteObjects(c *call, bkt string) error {
	var req struct {
		Quiet   bool
		Objects []struct{ Key, VersionId string } `xml:"Object"`
	}
	if err := readXML(c, &req); err != nil {
		return err
	}
	if len(req.Objects) > 1000 {
		return errorf(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
	}
	type deleted struct {
		Key                   string
		VersionId             string `xml:",omitempty"`
		DeleteMarker          bool   `xml:",omitempty"`
		DeleteMarkerVersionId string `xml:",omitempty"`
	}
	type failed struct{ Key, VersionId, Code, Message string }
	var out struct {
		Deleted []deleted `xml:"Deleted"`
		Errors  []failed  `xml:"Error"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Buckets[bkt] == nil {
		return errorf(404, "NoSuchBucket", "The specified bucket does not exist")
	}
	for _, o := range req.Objects {
		action := "s3:DeleteObject"
		if o.VersionId != "" {
			action = "s3:DeleteObjectVersion"
		}
		b, err := s.bucketFor(c, bkt, action, bucketARN(bkt)+"/"+o.Key, nil)
		var dm bool
		var did string
		if err == nil {
			dm, did, err = s.removeObject(c, b, o.Key, o.VersionId)
		}
		if err != nil {
			e, _ := err.(*awsError)
			out.Errors = append(out.Errors, failed{o.Key, o.VersionId, e.Code, e.Message})
			continue
		}
		if !req.Quiet {
			d := deleted{Key: o.Key, VersionId: o.VersionId}
			if dm {
				d.DeleteMarker, d.DeleteMarkerVersionId = true, did
			}
			out.Deleted = append(out.Deleted, d)
		}
	}
	return writeXML(c, "DeleteResult", out)
}

func (s *Sandbox) copyObject(c *call, bkt, key string) error {
	srcSpec, _ := url.PathUnescape(strings.TrimPrefix(c.r.Header.Get("X-Amz-Copy-Source"), "/"))
	srcPath, query, _ := strings.Cut(srcSpec, "?")
	srcBucket, srcKey, ok := strings.Cut(srcPath, "/")
	if !ok {
		return errorf(400, "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	}
	vid := strings.TrimPrefix(query, "versionId=")
	s.mu.Lock()
	defer s.mu.Unlock()
	srcAction := "s3:GetObject"
	if vid != "" {
		srcAction = "s3:GetObjectVersion"
	}
	sb, err := s.bucketFor(c, srcBucket, srcAction, bucketARN(srcBucket)+"/"+srcKey, nil)
	if err != nil {
		return err
	}
	src := findVersion(sb, srcKey, vid)
	if src == nil || src.DeleteMarker {
		return errorf(404, "NoSuchKey", "The specified key does not exist.")
	}
	b, err := s.bucketFor(c, bkt, "s3:PutObject", bucketARN(bkt)+"/"+key, nil)
	if err != nil {
		return err
	}
	data, err := s.copyPayload(srcBucket, src)
	if err != nil {
		return errorf(500, "InternalError", "object data missing: %v", err)
	}
	h := objectHeaders(c.r.Header)
	if c.r.Header.Get("X-Amz-Metadata-Directive") != "REPLACE" {
		if srcBucket == bkt && srcKey == key && h["x-amz-storage-class"] == "" && h["x-amz-server-side-encryption"] == "" {
			return errorf(400, "InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
		}
		for k, val := range src.Metadata {
			h["x-amz-meta-"+k] = val
		}
		h["content-type"], h["content-encoding"], h["cache-control"] = src.ContentType, src.ContentEncoding, src.CacheControl
	}
	v, err := newVersion(b, key, h, data, c.caller.Account)
	if err != nil {
		return err
	}
	v.Checksums = src.Checksums
	if err := s.blobs.link(blobID(b.Name, v.ID, v.Key), blobID(srcBucket, src.ID, srcKey)); err != nil {
		return errorf(500, "InternalError", "copying the object data: %v", err)
	}
	if err := s.addVersion(b, v, nil); err != nil {
		return err
	}
	if vid != "" {
		c.w.Header().Set("x-amz-copy-source-version-id", vid)
	}
	s.writeObjectResult(c, v)
	return writeXML(c, "CopyObjectResult", struct {
		ETag         string
		LastModified string
	}{v.ETag, v.LastModified.Format(time.RFC3339)})
}

// copyPayload describes a copy of src: its size, and the MD5 its ETag is (a
// copy is one part, so a multipart source's is read again). The bytes are
// linked, not read.
func (s *Sandbox) copyPayload(bkt string, src *version) (*payload, error) {
	p := &payload{size: src.Size}
	if raw, err := hex.DecodeString(strings.Trim(src.ETag, `"`)); err == nil && len(raw) == md5.Size {
		p.md5 = raw
		return p, nil
	}
	data, err := s.blobs.open(blobID(bkt, src.ID, src.Key))
	if err != nil {
		return nil, err
	}
	defer data.Close()
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(data, 0, data.Size())); err != nil {
		return nil, err
	}
	p.md5 = h.Sum(nil)
	return p, nil
}

func (s *Sandbox) objectLockOp(c *call, bkt, key string, q url.Values) error {
	vid := q.Get("versionId")
	_, isRetention := q["retention"]
	m := c.r.Method
	names := map[bool][2]string{true: {"GetObjectRetention", "PutObjectRetention"}, false: {"GetObjectLegalHold", "PutObjectLegalHold"}}
	i := 0
	if m == http.MethodPut {
		i = 1
	}
	c.action, c.readOnly = names[isRetention][i], i == 0
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, "s3:"+c.action, bucketARN(bkt)+"/"+key, nil)
	if err != nil {
		return err
	}
	if !b.ObjectLock {
		return errorf(400, "InvalidRequest", "Bucket is missing Object Lock Configuration")
	}
	v := findVersion(b, key, vid)
	if v == nil || v.DeleteMarker {
		return errorf(404, "NoSuchKey", "The specified key does not exist.")
	}
	type retention struct {
		Mode            string `xml:",omitempty"`
		RetainUntilDate string `xml:",omitempty"`
	}
	switch {
	case isRetention && i == 0:
		if v.LockMode == "" {
			return errorf(404, "NoSuchObjectLockConfiguration", "The specified object does not have a ObjectLock configuration")
		}
		return writeXML(c, "Retention", retention{v.LockMode, v.RetainUntil.Format(time.RFC3339)})
	case isRetention:
		var r retention
		if err := readXML(c, &r); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339, r.RetainUntilDate)
		if err != nil || (r.Mode != "GOVERNANCE" && r.Mode != "COMPLIANCE") {
			return errorf(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
		}
		return s.setRetention(c, b, v, r.Mode, t, strings.EqualFold(c.r.Header.Get("x-amz-bypass-governance-retention"), "true"))
	case i == 0:
		st := "OFF"
		if v.LegalHold {
			st = "ON"
		}
		return writeXML(c, "LegalHold", struct{ Status string }{st})
	default:
		var lh struct{ Status string }
		if err := readXML(c, &lh); err != nil {
			return err
		}
		v.LegalHold = lh.Status == "ON"
		s.changed()
		return nil
	}
}

// setRetention is PutObjectRetention's rule: a retention may always be
// extended; shortening it, or stepping down from COMPLIANCE, is refused while
// it lasts, unless a GOVERNANCE lock is bypassed by a caller allowed
// s3:BypassGovernanceRetention. Callers hold s.mu.
func (s *Sandbox) setRetention(c *call, b *bucket, v *version, mode string, until time.Time, bypass bool) error {
	weaker := until.Before(v.RetainUntil) || (v.LockMode == "COMPLIANCE" && mode != "COMPLIANCE")
	if weaker && v.RetainUntil.After(time.Now()) {
		bypass = bypass && s.authorize(c, b, "s3:BypassGovernanceRetention", bucketARN(b.Name)+"/"+v.Key, nil) == nil
		if v.LockMode == "COMPLIANCE" || !bypass {
			return accessDenied("Access Denied because object protected by object lock.")
		}
	}
	v.LockMode, v.RetainUntil = mode, until.UTC()
	s.changed()
	return nil
}

func (s *Sandbox) getObjectTagging(c *call, bkt, key, vid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, "s3:GetObjectTagging", bucketARN(bkt)+"/"+key, nil)
	if err != nil {
		return err
	}
	v := findVersion(b, key, vid)
	if v == nil || v.DeleteMarker {
		return errorf(404, "NoSuchKey", "The specified key does not exist.")
	}
	var out struct {
		TagSet []s3Tag `xml:"TagSet>Tag"`
	}
	vals, _ := url.ParseQuery(v.Tagging)
	for k := range vals {
		out.TagSet = append(out.TagSet, s3Tag{k, vals.Get(k)})
	}
	sort.Slice(out.TagSet, func(i, j int) bool { return out.TagSet[i].Key < out.TagSet[j].Key })
	return writeXML(c, "Tagging", out)
}

// Multipart uploads.

func (s *Sandbox) createUpload(c *call, bkt, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, "s3:PutObject", bucketARN(bkt)+"/"+key, nil)
	if err != nil {
		return err
	}
	u := &upload{ID: randomHex(24), Key: key, Created: time.Now().UTC(), Header: objectHeaders(c.r.Header), Parts: map[int]*version{}}
	b.Uploads[u.ID] = u
	s.changed()
	return writeXML(c, "InitiateMultipartUploadResult", struct{ Bucket, Key, UploadId string }{bkt, key, u.ID})
}

func (s *Sandbox) uploadFor(c *call, bkt, key, id string) (*bucket, *upload, error) {
	b, err := s.bucketFor(c, bkt, "s3:PutObject", bucketARN(bkt)+"/"+key, nil)
	if err != nil {
		return nil, nil, err
	}
	u := b.Uploads[id]
	if u == nil || u.Key != key {
		return nil, nil, errorf(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
	}
	return b, u, nil
}

func (s *Sandbox) uploadPart(c *call, bkt, key string, q url.Values) error {
	n, err := strconv.Atoi(q.Get("partNumber"))
	if err != nil || n < 1 || n > 10000 {
		return errorf(400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
	}
	data, err := s.readBody(c.r)
	if err != nil {
		return err
	}
	defer data.discard()
	sums := data.sums
	s.mu.Lock()
	defer s.mu.Unlock()
	_, u, err := s.uploadFor(c, bkt, key, q.Get("uploadId"))
	if err != nil {
		return err
	}
	p := &version{Key: key, ID: fmt.Sprintf("%s-%d", u.ID, n), Size: data.size, ETag: data.etag(), Checksums: sums}
	if err := s.blobs.adopt(blobID(bkt, p.ID, key), data); err != nil {
		return err
	}
	u.Parts[n] = p
	s.changed()
	c.w.Header().Set("ETag", p.ETag)
	for alg, v := range sums {
		c.w.Header().Set("x-amz-checksum-"+strings.ToLower(alg), v)
	}
	return nil
}

func (s *Sandbox) completeUpload(c *call, bkt, key, id string) error {
	var req struct {
		Parts []struct {
			PartNumber int
			ETag       string
		} `xml:"Part"`
	}
	if err := readXML(c, &req); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, u, err := s.uploadFor(c, bkt, key, id)
	if err != nil {
		return err
	}
	if len(req.Parts) == 0 {
		return errorf(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
	}
	md5s := md5.New()
	last := 0
	var parts []*version
	var total int64
	for i, p := range req.Parts {
		part := u.Parts[p.PartNumber]
		if p.PartNumber <= last {
			return errorf(400, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number.")
		}
		last = p.PartNumber
		if part == nil || strings.Trim(p.ETag, `"`) != strings.Trim(part.ETag, `"`) {
			return errorf(400, "InvalidPart", "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
		}
		if i < len(req.Parts)-1 && part.Size < 5<<20 {
			return errorf(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.")
		}
		raw, _ := hex.DecodeString(strings.Trim(part.ETag, `"`))
		md5s.Write(raw)
		parts, total = append(parts, part), total+part.Size
	}
	// The parts are joined as they are read: a spool holds what memory would not.
	sp := s.newSpool(total)
	for _, part := range parts {
		pb, err := s.blobs.open(blobID(bkt, part.ID, key))
		if err == nil {
			_, err = io.Copy(sp, io.NewSectionReader(pb, 0, pb.Size()))
			pb.Close()
		}
		if err != nil {
			sp.abandon()
			return errorf(500, "InternalError", "joining the parts: %v", err)
		}
	}
	data := &payload{size: total, md5: make([]byte, md5.Size)}
	if data.data, data.file, err = sp.finish(); err != nil {
		return errorf(500, "InternalError", "joining the parts: %v", err)
	}
	defer data.discard()
	v, err := newVersion(b, key, u.Header, data, c.caller.Account)
	if err != nil {
		return err
	}
	v.Checksums = nil // a multipart object's checksums are of its parts, which the sandbox does not keep
	v.ETag = fmt.Sprintf(`"%x-%d"`, md5s.Sum(nil), len(req.Parts))
	v.Parts = len(req.Parts)
	for n, p := range u.Parts {
		s.blobs.del(blobID(bkt, p.ID, key))
		delete(u.Parts, n)
	}
	delete(b.Uploads, id)
	if err := s.addVersion(b, v, data); err != nil {
		return err
	}
	if v.ID != "null" {
		c.w.Header().Set("x-amz-version-id", v.ID)
	}
	return writeXML(c, "CompleteMultipartUploadResult", struct{ Location, Bucket, Key, ETag string }{"/" + bkt + "/" + key, bkt, key, v.ETag})
}

func (s *Sandbox) abortUpload(c *call, bkt, key, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, u, err := s.uploadFor(c, bkt, key, id)
	if err != nil {
		return err
	}
	for _, p := range u.Parts {
		s.blobs.del(blobID(bkt, p.ID, key))
	}
	delete(b.Uploads, id)
	s.changed()
	c.status = 204
	c.w.WriteHeader(204)
	return nil
}

func (s *Sandbox) listUploads(c *call, bkt string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucketFor(c, bkt, "s3:ListBucketMultipartUploads", "", nil)
	if err != nil {
		return err
	}
	type up struct{ Key, UploadId, Initiated string }
	var out struct {
		Bucket      string
		IsTruncated bool
		Uploads     []up `xml:"Upload"`
	}
	out.Bucket = bkt
	for _, u := range b.Uploads {
		out.Uploads = append(out.Uploads, up{u.Key, u.ID, u.Created.Format(time.RFC3339)})
	}
	sort.Slice(out.Uploads, func(i, j int) bool { return out.Uploads[i].Key < out.Uploads[j].Key })
	return writeXML(c, "ListMultipartUploadsResult", out)
}
