package sandbox

import (
	"bytes"
	"encoding/csv"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"
)

// S3 Batch Operations' Object Lock retention (User Guide, "S3 Object Lock
// retention"; API, S3SetObjectRetentionOperation): one retention for every
// object a CSV manifest lists, each task a PutObjectRetention by the job's
// role under the API's own rules. The job checks first that each bucket has
// Object Lock, which its role must be allowed to read
// (s3:GetBucketObjectLockConfiguration).

// retentionOperation is the wire shape of S3PutObjectRetention.
type retentionOperation struct {
	BypassGovernanceRetention bool
	Retention                 struct{ Mode, RetainUntilDate string }
}

// jobRetention is a retention job's one retention for all tasks.
type jobRetention struct {
	Mode   string    `json:"mode"`
	Until  time.Time `json:"until"`
	Bypass bool      `json:"bypassGovernance,omitempty"`
}

// jobManifest is a CSV manifest object: its fields and where it is.
type jobManifest struct {
	Fields    []string `json:"fields"`
	ObjectARN string   `json:"objectArn"`
	VersionID string   `json:"versionId,omitempty"`
	ETag      string   `json:"etag"`
}

const opReplicate, opRetention = "S3ReplicateObject", "S3PutObjectRetention"

func (j *batchJob) operation() string {
	if j.Operation == "" {
		return opReplicate
	}
	return j.Operation
}

// createRetentionJob checks a retention job's request; the manifest object
// must be in the job's region, and is read when the job runs, by its role.
func (s *Sandbox) createRetentionJob(c *call, in *createJobRequest) error {
	op, m := in.Operation.S3PutObjectRetention, in.Manifest
	switch {
	case m == nil || in.ManifestGenerator != nil:
		return bad("an S3PutObjectRetention job in the sandbox takes a CSV Manifest, not a ManifestGenerator")
	case m.Spec.Format != "S3BatchOperations_CSV_20180820":
		return bad("the sandbox reads manifests in format S3BatchOperations_CSV_20180820, not %q", m.Spec.Format)
	case !slices.Equal(m.Spec.Fields, []string{"Bucket", "Key"}) && !slices.Equal(m.Spec.Fields, []string{"Bucket", "Key", "VersionId"}):
		return bad("a CSV manifest's Fields are Bucket, Key and optionally VersionId, not %v", m.Spec.Fields)
	case m.Location.ObjectArn == "" || m.Location.ETag == "":
		return bad("the manifest's Location needs ObjectArn and ETag")
	}
	until, err := time.Parse(time.RFC3339, op.Retention.RetainUntilDate)
	if err != nil || op.Retention.Mode != "GOVERNANCE" && op.Retention.Mode != "COMPLIANCE" {
		return bad("S3PutObjectRetention needs Retention.Mode GOVERNANCE or COMPLIANCE and a RetainUntilDate (a job that removes retention is not emulated)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.existingJob(c, in.ClientRequestToken); j != nil {
		return writeControlXML(c, "CreateJobResult", struct{ JobId string }{j.ID})
	}
	bkt, _, ok := strings.Cut(strings.TrimPrefix(m.Location.ObjectArn, "arn:aws:s3:::"), "/")
	if mb := s.st.Buckets[bkt]; !ok || mb == nil || mb.Region != c.region {
		return bad("the manifest %s must be an object of a bucket in the job's region, %s", m.Location.ObjectArn, c.region)
	}
	if err := s.reportBucketIn(in, c.region); err != nil {
		return err
	}
	if err := s.authorizeJob(c, in.RoleArn); err != nil {
		return err
	}
	return s.addJob(c, in, &batchJob{Operation: opRetention,
		Retention: &jobRetention{op.Retention.Mode, until.UTC(), op.BypassGovernanceRetention},
		Manifest:  &jobManifest{m.Spec.Fields, m.Location.ObjectArn, m.Location.ObjectVersionId, strings.Trim(m.Location.ETag, `"`)}})
}

// runRetention reads the manifest as the job's role, then sets the job's
// retention on each object it lists. ok is false when the job failed as a
// whole. Callers hold s.mu.
func (s *Sandbox) runRetention(j *batchJob, as *call) (results []taskResult, ok bool) {
	rows, ok := s.readManifest(j, as)
	if !ok {
		return nil, false
	}
	checked := map[string]bool{} // buckets whose Object Lock the job has confirmed
	for _, row := range rows {
		b := s.st.Buckets[row[0]]
		if b != nil && !checked[b.Name] {
			if s.authorize(as, b, "s3:GetBucketObjectLockConfiguration", bucketARN(b.Name), nil) != nil {
				j.fail("AccessDenied", "the job's role may not s3:GetBucketObjectLockConfiguration on bucket %s", b.Name)
				return nil, false
			}
			if !b.ObjectLock {
				j.fail("InvalidRequest", "bucket %s does not have Object Lock enabled", b.Name)
				return nil, false
			}
			checked[b.Name] = true
		}
	}
	j.Status, j.Total = "Active", len(rows)
	for _, row := range rows {
		bkt, key, vid := row[0], row[1], ""
		if len(row) > 2 {
			vid = row[2]
		}
		b := s.st.Buckets[bkt]
		var v *version
		if b != nil {
			v = findVersion(b, key, vid)
		}
		if v == nil || v.DeleteMarker {
			results = append(results, taskResult{bkt, key, vid, "failed", "NoSuchKey", "The specified key does not exist.", 404})
			continue
		}
		err := s.authorize(as, b, "s3:PutObjectRetention", bucketARN(b.Name)+"/"+key, nil)
		if err == nil {
			err = s.setRetention(as, b, v, j.Retention.Mode, j.Retention.Until, j.Retention.Bypass)
		}
		if err != nil {
			results = append(results, taskFailed(bkt, v, "AccessDenied", err.Error(), 403))
			continue
		}
		results = append(results, taskSucceeded(bkt, v))
	}
	return results, true
}

// readManifest reads a job's CSV manifest as its role: the object (the
// version named, else the current one) must still have the ETag given, each
// row the manifest's fields, with URL-encoded keys.
func (s *Sandbox) readManifest(j *batchJob, as *call) ([][]string, bool) {
	m := j.Manifest
	bkt, key, _ := strings.Cut(strings.TrimPrefix(m.ObjectARN, "arn:aws:s3:::"), "/")
	b := s.st.Buckets[bkt]
	var v *version
	if b != nil {
		v = findVersion(b, key, m.VersionID)
	}
	action := "s3:GetObject"
	if m.VersionID != "" {
		action = "s3:GetObjectVersion"
	}
	switch {
	case v == nil || v.DeleteMarker:
		j.fail("ManifestNotFound", "the manifest %s does not exist", m.ObjectARN)
		return nil, false
	case s.authorize(as, b, action, bucketARN(bkt)+"/"+key, nil) != nil:
		j.fail("AccessDenied", "the job's role may not %s on the manifest %s", action, m.ObjectARN)
		return nil, false
	case strings.Trim(v.ETag, `"`) != m.ETag:
		j.fail("ManifestETagMismatch", "the manifest %s has ETag %s, not the %s the job was created with", m.ObjectARN, v.ETag, m.ETag)
		return nil, false
	}
	data, err := readBlob(s.blobs, blobID(bkt, v.ID, v.Key))
	if err != nil {
		j.fail("ManifestReadFailed", "the manifest %s cannot be read: %v", m.ObjectARN, err)
		return nil, false
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(m.Fields)
	var rows [][]string
	for {
		row, err := r.Read()
		if err == io.EOF {
			return rows, true
		}
		if err == nil {
			row[1], err = url.QueryUnescape(row[1])
		}
		if err != nil {
			j.fail("InvalidManifest", "the manifest %s: %v", m.ObjectARN, err)
			return nil, false
		}
		rows = append(rows, row)
	}
}
