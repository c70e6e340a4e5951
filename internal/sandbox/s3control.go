package sandbox

import (
	"bytes"
	"crypto/md5"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// S3 Batch Operations, as far as trailkeeper uses it (S3 Control API
// reference: CreateJob, DescribeJob, ListJobs, UpdateJobStatus), each job run
// with its own role and ending in a CSV completion report:
//   - S3 Batch Replication (User Guide, "Replicating existing objects with S3
//     Batch Replication"): operation S3ReplicateObject with a generated
//     manifest, in the source account and region, whose tasks go through the
//     replication engine with the rule's role;
//   - Object Lock retention (User Guide, "S3 Object Lock retention"):
//     operation S3PutObjectRetention over a CSV manifest (s3batchretention.go).

const s3controlNS = "http://awss3control.amazonaws.com/doc/2018-08-20/"

// batchJob is one job; it is part of the persisted state, so that a job
// survives a restart and resumes.
type batchJob struct {
	ID           string        `json:"id"`
	Account      string        `json:"account"`
	Region       string        `json:"region"`
	Token        string        `json:"token"`
	Description  string        `json:"description,omitempty"`
	Priority     int           `json:"priority"`
	RoleARN      string        `json:"roleArn"`
	Status       string        `json:"status"`
	Confirm      bool          `json:"confirmationRequired,omitempty"`
	Operation    string        `json:"operation,omitempty"` // S3ReplicateObject when empty
	Retention    *jobRetention `json:"retention,omitempty"`
	Manifest     *jobManifest  `json:"manifest,omitempty"`
	SourceBucket string        `json:"sourceBucket,omitempty"`
	Eligible     bool          `json:"eligible,omitempty"`
	Statuses     []string      `json:"statuses,omitempty"`
	After        *time.Time    `json:"createdAfter,omitempty"`
	Before       *time.Time    `json:"createdBefore,omitempty"`
	KeyNames     *keyNames     `json:"keyNameConstraint,omitempty"`
	Report       jobReport     `json:"report"`
	Created      time.Time     `json:"created"`
	Terminated   *time.Time    `json:"terminated,omitempty"`
	Total        int           `json:"total"`
	Succeeded    int           `json:"succeeded"`
	Failed       int           `json:"failed"`
	Failures     []jobFailure  `json:"failures,omitempty"`
	UpdateReason string        `json:"statusUpdateReason,omitempty"`
}

type jobReport struct {
	Enabled bool   `json:"enabled"`
	Bucket  string `json:"bucket,omitempty"` // ARN
	Format  string `json:"format,omitempty"`
	Prefix  string `json:"prefix,omitempty"`
	Scope   string `json:"scope,omitempty"`
}

type jobFailure struct {
	Code   string `json:"code" xml:"FailureCode"`
	Reason string `json:"reason" xml:"FailureReason"`
}

func (j *batchJob) terminal() bool {
	return j.Status == "Complete" || j.Status == "Failed" || j.Status == "Cancelled"
}

func (j *batchJob) arn() string {
	return "arn:aws:s3:" + j.Region + ":" + j.Account + ":job/" + j.ID
}

// serveS3Control routes /v20180820/jobs requests. Callers hold nothing.
func (s *Sandbox) serveS3Control(c *call) error {
	c.service = "s3control"
	acct := c.r.Header.Get("x-amz-account-id")
	if c.caller.Account == "" || acct != c.caller.Account {
		return accessDenied("Access Denied")
	}
	rest := strings.TrimPrefix(c.r.URL.Path, "/v20180820/jobs")
	id, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case rest == "" && c.r.Method == "POST":
		c.action = "CreateJob"
		return s.createJob(c)
	case rest == "" && c.r.Method == "GET":
		c.action = "ListJobs"
		return s.listJobs(c)
	case id != "" && sub == "" && c.r.Method == "GET":
		c.action = "DescribeJob"
		return s.describeJob(c, id)
	case id != "" && sub == "status" && c.r.Method == "POST":
		c.action = "UpdateJobStatus"
		return s.updateJobStatus(c, id)
	}
	return errorf(400, "InvalidRequest", "the sandbox emulates CreateJob, DescribeJob, ListJobs and UpdateJobStatus of S3 Control, not %s %s", c.r.Method, c.r.URL.Path)
}

type createJobRequest struct {
	ConfirmationRequired bool
	Operation            struct {
		S3ReplicateObject    *struct{}
		S3PutObjectRetention *retentionOperation
	}
	Report struct {
		Bucket, Format, Prefix, ReportScope string
		Enabled                             bool
	}
	ClientRequestToken, Description, RoleArn string
	Priority                                 *int
	Manifest                                 *struct {
		Spec struct {
			Format string
			Fields []string `xml:"Fields>member"`
		}
		Location struct{ ObjectArn, ObjectVersionId, ETag string }
	}
	ManifestGenerator *struct {
		S3JobManifestGenerator *struct {
			ExpectedBucketOwner, SourceBucket string
			EnableManifestOutput              bool
			Filter                            *struct {
				EligibleForReplication      bool
				CreatedAfter, CreatedBefore string
				ObjectReplicationStatuses   []string `xml:"ObjectReplicationStatuses>member"`
				KeyNameConstraint           *keyNames
			}
		}
	}
}

func bad(format string, a ...any) error { return errorf(400, "InvalidRequest", format, a...) }

func (s *Sandbox) createJob(c *call) error {
	var in createJobRequest
	if err := xml.NewDecoder(io.LimitReader(c.r.Body, 1<<20)).Decode(&in); err != nil {
		return errorf(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
	}
	switch {
	case in.ClientRequestToken == "":
		return bad("ClientRequestToken is required")
	case in.Priority == nil || *in.Priority < 0:
		return bad("Priority is required and must not be negative")
	case in.RoleArn == "":
		return bad("RoleArn is required")
	case in.Operation.S3PutObjectRetention != nil && in.Operation.S3ReplicateObject == nil:
		return s.createRetentionJob(c, &in)
	case in.Operation.S3ReplicateObject == nil || in.Operation.S3PutObjectRetention != nil:
		return bad("the sandbox emulates the S3ReplicateObject and S3PutObjectRetention operations, one per job")
	case in.Manifest != nil || in.ManifestGenerator == nil || in.ManifestGenerator.S3JobManifestGenerator == nil:
		return bad("the sandbox emulates generated manifests (ManifestGenerator.S3JobManifestGenerator) only")
	case in.ManifestGenerator.S3JobManifestGenerator.EnableManifestOutput:
		return bad("the sandbox does not write generated manifests: set EnableManifestOutput to false")
	}
	g := in.ManifestGenerator.S3JobManifestGenerator
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.existingJob(c, in.ClientRequestToken); j != nil {
		return writeControlXML(c, "CreateJobResult", struct{ JobId string }{j.ID})
	}
	src := s.st.Buckets[strings.TrimPrefix(g.SourceBucket, "arn:aws:s3:::")]
	if src == nil || src.Owner != c.caller.Account {
		return bad("the manifest generator's SourceBucket %s is not a bucket of account %s", g.SourceBucket, c.caller.Account)
	}
	if src.Region != c.region {
		return bad("the job must be created in the source bucket's region, %s", src.Region)
	}
	if err := s.reportBucketIn(&in, src.Region); err != nil {
		return err
	}
	if err := s.authorizeJob(c, in.RoleArn); err != nil {
		return err
	}
	j := &batchJob{SourceBucket: src.Name}
	if f := g.Filter; f != nil {
		j.Eligible, j.Statuses, j.KeyNames = f.EligibleForReplication, f.ObjectReplicationStatuses, f.KeyNameConstraint
		for _, t := range []struct {
			s   string
			out **time.Time
		}{{f.CreatedAfter, &j.After}, {f.CreatedBefore, &j.Before}} {
			if t.s != "" {
				at, err := time.Parse(time.RFC3339, t.s)
				if err != nil {
					return bad("invalid time %q in the manifest filter", t.s)
				}
				*t.out = &at
			}
		}
	}
	return s.addJob(c, &in, j)
}

// existingJob is the job an earlier CreateJob with the same token made: the
// call is idempotent. Callers hold s.mu.
func (s *Sandbox) existingJob(c *call, token string) *batchJob {
	for _, j := range s.st.Jobs {
		if j.Account == c.caller.Account && j.Token == token {
			return j
		}
	}
	return nil
}

// authorizeJob checks that the caller may create a job and pass its role to
// S3 Batch Operations, which it can only for a role of its own account.
func (s *Sandbox) authorizeJob(c *call, roleARN string) error {
	if m := roleARNRE().FindStringSubmatch(roleARN); m == nil || m[1] != c.caller.Account {
		return accessDenied("User: %s is not authorized to perform: iam:PassRole on resource: \"%s\"", c.caller.display(), roleARN)
	}
	for action, res := range map[string]string{"s3:CreateJob": "*", "iam:PassRole": roleARN} {
		req := policy.Request{Caller: c.caller.policyCaller(), Action: action, Resource: res, Context: c.requestContext(nil)}
		if s.identityDecision(c.caller, req) != policy.Allowed {
			return accessDenied("User: %s is not authorized to perform: %s on resource: \"%s\"", c.caller.display(), action, res)
		}
	}
	return nil
}

// reportBucketIn checks an enabled report's format and that its bucket is in
// region. Callers hold s.mu.
func (s *Sandbox) reportBucketIn(in *createJobRequest, region string) error {
	if !in.Report.Enabled {
		return nil
	}
	if in.Report.Format != "Report_CSV_20180820" || in.Report.Bucket == "" {
		return bad("an enabled report needs Bucket and Format Report_CSV_20180820")
	}
	if rb := s.st.Buckets[strings.TrimPrefix(in.Report.Bucket, "arn:aws:s3:::")]; rb == nil || rb.Region != region {
		return bad("the report bucket %s must exist in the job's region", in.Report.Bucket)
	}
	return nil
}

// addJob records a new job and starts it unless it awaits confirmation.
// Callers hold s.mu.
func (s *Sandbox) addJob(c *call, in *createJobRequest, j *batchJob) error {
	j.ID, j.Account, j.Region, j.Token = randomID("", 36)[:36], c.caller.Account, c.region, in.ClientRequestToken
	j.Description, j.Priority, j.RoleARN, j.Status, j.Confirm = in.Description, *in.Priority, in.RoleArn, "New", in.ConfirmationRequired
	j.Created = time.Now().UTC()
	j.Report = jobReport{in.Report.Enabled, in.Report.Bucket, in.Report.Format, in.Report.Prefix, in.Report.ReportScope}
	if s.st.Jobs == nil {
		s.st.Jobs = map[string]*batchJob{}
	}
	s.st.Jobs[j.ID] = j
	s.changed()
	if j.Confirm {
		j.Status = "Suspended"
	} else {
		s.startJob(j)
	}
	return writeControlXML(c, "CreateJobResult", struct{ JobId string }{j.ID})
}

// startJob runs a job in the background; WaitReplication waits for it.
// Callers hold s.mu.
func (s *Sandbox) startJob(j *batchJob) {
	j.Status = "Preparing"
	s.replPending.Add(1)
	go func() {
		defer s.replPending.Add(-1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if j.Status == "Cancelled" {
			return
		}
		s.runJob(j)
		now := time.Now().UTC()
		j.Terminated = &now
		s.changed()
	}()
}

func (j *batchJob) fail(code, format string, a ...any) {
	j.Status = "Failed"
	j.Failures = append(j.Failures, jobFailure{code, fmt.Sprintf(format, a...)})
}

// taskResult is one row of a completion report.
type taskResult struct {
	bucket, key, versionID string
	status, code, text     string
	http                   int
}

func taskSucceeded(bucket string, v *version) taskResult {
	return taskResult{bucket, v.Key, v.ID, "succeeded", "", "Successful", 200}
}

func taskFailed(bucket string, v *version, code, text string, status int) taskResult {
	return taskResult{bucket, v.Key, v.ID, "failed", code, text, status}
}

// runJob runs a job as its role, which S3 Batch Operations must be able to
// assume, and writes its completion report. Callers hold s.mu.
func (s *Sandbox) runJob(j *batchJob) {
	m := roleARNRE().FindStringSubmatch(j.RoleARN)
	var role *role
	if m != nil && m[1] == j.Account && s.st.Accounts[m[1]] != nil {
		role = s.st.Accounts[m[1]].Roles[m[2]]
	}
	if role == nil {
		j.fail("AssumeRoleNotPermitted", "the job's role %s does not exist", j.RoleARN)
		return
	}
	trust, err := s.parse(role.Trust, policy.Trust)
	if err != nil || trust.Evaluate(policy.Request{Caller: policy.Caller{Service: "batchoperations.s3.amazonaws.com"}, Action: "sts:AssumeRole", Resource: j.RoleARN}).Decision != policy.Allowed {
		j.fail("AssumeRoleNotPermitted", "S3 Batch Operations (batchoperations.s3.amazonaws.com) cannot assume role %s", j.RoleARN)
		return
	}
	as := &call{secure: true, caller: caller{Account: j.Account, ARN: j.RoleARN, UniqueID: role.ID, SessionName: "s3-batch-operations",
		Session: "arn:aws:sts::" + j.Account + ":assumed-role/" + role.Name + "/s3-batch-operations"}}
	run := s.runReplication
	if j.operation() == opRetention {
		run = s.runRetention
	}
	results, ok := run(j, as)
	if !ok {
		return
	}
	for _, r := range results {
		if r.status == "failed" {
			j.Failed++
		} else {
			j.Succeeded++
		}
	}
	if j.Report.Enabled {
		if err := s.writeJobReport(j, as, results); err != nil {
			j.fail("ReportWriteFailed", "%v", err)
			return
		}
	}
	j.Status = "Complete"
}

// runReplication is S3 Batch Replication: the job's role may read the source
// bucket's replication configuration; each object version the filter
// selects is replicated by the rule's own role, if the job's role may
// s3:InitiateReplication on it. ok is false when the job failed as a whole.
// Callers hold s.mu.
func (s *Sandbox) runReplication(j *batchJob, as *call) (results []taskResult, ok bool) {
	src := s.st.Buckets[j.SourceBucket]
	if src == nil {
		j.fail("SrcBucketNotFound", "bucket %s does not exist", j.SourceBucket)
		return
	}
	if src.Replication == nil {
		j.fail("SrcBucketReplicationConfigMissing", "bucket %s has no replication configuration", src.Name)
		return
	}
	if err := s.authorize(as, src, "s3:GetReplicationConfiguration", bucketARN(src.Name), nil); err != nil {
		j.fail("AccessDenied", "the job's role may not s3:GetReplicationConfiguration on bucket %s to generate the manifest", src.Name)
		return
	}
	var tasks []*version
	for _, key := range sortedKeys(src, "") {
		for _, v := range src.Objects[key] {
			if j.selects(src, v) {
				tasks = append(tasks, v)
			}
		}
	}
	j.Status, j.Total = "Active", len(tasks)
	for _, v := range tasks {
		r := taskSucceeded(src.Name, v)
		if err := s.authorize(as, src, "s3:InitiateReplication", bucketARN(src.Name)+"/"+v.Key, nil); err != nil {
			r = taskFailed(src.Name, v, "InitiateReplicationNotPermitted", "The job's role is not allowed s3:InitiateReplication on the object", 403)
		} else if rule := matchRule(src.Replication, v); rule == nil {
			r = taskFailed(src.Name, v, "SrcObjectNotEligible", "No enabled replication rule applies to the object", 400)
		} else if reason := s.replicateOnce(src, rule, v); reason != "" {
			v.Replication, v.ReplicationWhy = "FAILED", reason
			r = taskFailed(src.Name, v, reason, "Replication failed: "+reason, 403)
		} else {
			v.Replication, v.ReplicationWhy = "COMPLETED", ""
		}
		results = append(results, r)
	}
	return results, true
}

// replicateOnce replicates v unless its destination already holds that
// version (a batch run over COMPLETED objects copies nothing twice).
func (s *Sandbox) replicateOnce(src *bucket, rule *replicationRule, v *version) string {
	if dst := s.st.Buckets[strings.TrimPrefix(rule.Destination.Bucket, "arn:aws:s3:::")]; dst != nil {
		for _, d := range dst.Objects[v.Key] {
			if d.ID == v.ID {
				return ""
			}
		}
	}
	return s.replicateVersion(src, rule, v)
}

// selects is the generated manifest's filter.
func (j *batchJob) selects(src *bucket, v *version) bool {
	if v.DeleteMarker || v.Replication == "REPLICA" && !slices.Contains(j.Statuses, "REPLICA") {
		return false
	}
	if j.Eligible && matchRule(src.Replication, v) == nil {
		return false
	}
	status := v.Replication
	if status == "" {
		status = "NONE"
	}
	if len(j.Statuses) > 0 && !slices.Contains(j.Statuses, status) {
		return false
	}
	if !j.KeyNames.matches(v.Key) {
		return false
	}
	return (j.After == nil || v.LastModified.After(*j.After)) && (j.Before == nil || v.LastModified.Before(*j.Before))
}

// writeJobReport writes the completion report as S3 does: result CSVs and a
// manifest.json under PREFIX/job-ID/, written by the job's role.
func (s *Sandbox) writeJobReport(j *batchJob, as *call, results []taskResult) error {
	b := s.st.Buckets[strings.TrimPrefix(j.Report.Bucket, "arn:aws:s3:::")]
	if b == nil {
		return fmt.Errorf("report bucket %s does not exist", j.Report.Bucket)
	}
	base := strings.TrimSuffix(j.Report.Prefix, "/")
	if base != "" {
		base += "/"
	}
	base += "job-" + j.ID + "/"
	var succeeded, failed bytes.Buffer
	for _, r := range results {
		if r.status == "succeeded" && j.Report.Scope == "FailedTasksOnly" {
			continue
		}
		w := csv.NewWriter(&succeeded)
		if r.status == "failed" {
			w = csv.NewWriter(&failed)
		}
		w.Write([]string{r.bucket, url.QueryEscape(r.key), r.versionID, r.status, r.code, strconv.Itoa(r.http), r.text})
		w.Flush()
	}
	type result struct {
		TaskExecutionStatus, Bucket, MD5Checksum, Key string
	}
	manifest := struct {
		Format, ReportCreationDate, ReportSchema string
		Results                                  []result
	}{Format: "Report_CSV_20180820", ReportCreationDate: time.Now().UTC().Format(time.RFC3339),
		ReportSchema: "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, Result Message"}
	put := func(key string, data []byte) error {
		if err := s.authorize(as, b, "s3:PutObject", bucketARN(b.Name)+"/"+key, nil); err != nil {
			return fmt.Errorf("the job's role may not s3:PutObject the report at s3://%s/%s", b.Name, key)
		}
		return s.putAsService(b, key, data, map[string]string{"content-type": "text/csv"})
	}
	for status, data := range map[string][]byte{"succeeded": succeeded.Bytes(), "failed": failed.Bytes()} {
		if len(data) == 0 {
			continue
		}
		key := base + "results/" + randomID("", 40) + ".csv"
		if err := put(key, data); err != nil {
			return err
		}
		sum := md5.Sum(data)
		manifest.Results = append(manifest.Results, result{status, b.Name, hex.EncodeToString(sum[:]), key})
	}
	sort.Slice(manifest.Results, func(a, b int) bool {
		return manifest.Results[a].TaskExecutionStatus < manifest.Results[b].TaskExecutionStatus
	})
	data, _ := json.Marshal(manifest)
	return put(base+"manifest.json", data)
}

// Wire shapes of the job descriptor.
type jobProgress struct {
	TotalNumberOfTasks, NumberOfTasksSucceeded, NumberOfTasksFailed int
	Timers                                                          struct{ ElapsedTimeInActiveSeconds int }
}

func (j *batchJob) progress() jobProgress {
	return jobProgress{TotalNumberOfTasks: j.Total, NumberOfTasksSucceeded: j.Succeeded, NumberOfTasksFailed: j.Failed}
}

type reportXML struct {
	Bucket      string `xml:",omitempty"`
	Format      string `xml:",omitempty"`
	Enabled     bool
	Prefix      string `xml:",omitempty"`
	ReportScope string `xml:",omitempty"`
}

type manifestXML struct {
	Spec struct {
		Format string
		Fields []string `xml:"Fields>member"`
	}
	Location struct {
		ObjectArn       string
		ObjectVersionId string `xml:",omitempty"`
		ETag            string
	}
}

type manifestFilter struct {
	EligibleForReplication    bool
	CreatedAfter              string    `xml:",omitempty"`
	CreatedBefore             string    `xml:",omitempty"`
	ObjectReplicationStatuses []string  `xml:"ObjectReplicationStatuses>member,omitempty"`
	KeyNameConstraint         *keyNames `xml:",omitempty"`
}

type manifestGenerator struct {
	S3JobManifestGenerator struct {
		SourceBucket         string
		EnableManifestOutput bool
		Filter               manifestFilter
	}
}

func (s *Sandbox) describeJob(c *call, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.st.Jobs[id]
	if j == nil || j.Account != c.caller.Account {
		return errorf(404, "NotFoundException", "The specified job does not exist")
	}
	f := manifestFilter{EligibleForReplication: j.Eligible, ObjectReplicationStatuses: j.Statuses, KeyNameConstraint: j.KeyNames}
	if j.After != nil {
		f.CreatedAfter = j.After.Format(time.RFC3339)
	}
	if j.Before != nil {
		f.CreatedBefore = j.Before.Format(time.RFC3339)
	}
	type descriptor struct {
		JobId                string
		ConfirmationRequired bool
		Description          string `xml:",omitempty"`
		JobArn               string
		Status               string
		Operation            struct {
			S3ReplicateObject    *struct{}           `xml:",omitempty"`
			S3PutObjectRetention *retentionOperation `xml:",omitempty"`
		}
		Priority           int
		ProgressSummary    jobProgress
		StatusUpdateReason string       `xml:",omitempty"`
		FailureReasons     []jobFailure `xml:"FailureReasons>member,omitempty"`
		Report             reportXML
		CreationTime       string
		TerminationDate    string `xml:",omitempty"`
		RoleArn            string
		ManifestGenerator  *manifestGenerator `xml:",omitempty"`
		Manifest           *manifestXML       `xml:",omitempty"`
	}
	d := descriptor{JobId: j.ID, ConfirmationRequired: j.Confirm, Description: j.Description, JobArn: j.arn(), Status: j.Status,
		Priority: j.Priority, ProgressSummary: j.progress(), StatusUpdateReason: j.UpdateReason, FailureReasons: j.Failures,
		Report:       reportXML{j.Report.Bucket, j.Report.Format, j.Report.Enabled, j.Report.Prefix, j.Report.Scope},
		CreationTime: j.Created.Format(time.RFC3339), RoleArn: j.RoleARN}
	if j.Terminated != nil {
		d.TerminationDate = j.Terminated.Format(time.RFC3339)
	}
	if r := j.Retention; r != nil {
		d.Operation.S3PutObjectRetention = &retentionOperation{BypassGovernanceRetention: r.Bypass}
		d.Operation.S3PutObjectRetention.Retention.Mode, d.Operation.S3PutObjectRetention.Retention.RetainUntilDate = r.Mode, r.Until.Format(time.RFC3339)
	} else {
		d.Operation.S3ReplicateObject = &struct{}{}
	}
	if m := j.Manifest; m != nil {
		d.Manifest = &manifestXML{}
		d.Manifest.Spec.Format, d.Manifest.Spec.Fields = "S3BatchOperations_CSV_20180820", m.Fields
		d.Manifest.Location.ObjectArn, d.Manifest.Location.ObjectVersionId, d.Manifest.Location.ETag = m.ObjectARN, m.VersionID, m.ETag
	} else {
		d.ManifestGenerator = &manifestGenerator{}
		d.ManifestGenerator.S3JobManifestGenerator.SourceBucket = bucketARN(j.SourceBucket)
		d.ManifestGenerator.S3JobManifestGenerator.Filter = f
	}
	return writeControlXML(c, "DescribeJobResult", struct{ Job descriptor }{d})
}

func (s *Sandbox) listJobs(c *call) error {
	q := c.r.URL.Query()
	want := q["jobStatuses"]
	s.mu.Lock()
	var jobs []*batchJob
	for _, j := range s.st.Jobs {
		if j.Account == c.caller.Account && j.Region == c.region && (len(want) == 0 || slices.Contains(want, j.Status)) {
			jobs = append(jobs, j)
		}
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Created.After(jobs[b].Created) })
	type item struct {
		JobId           string
		Description     string `xml:",omitempty"`
		Operation       string
		Priority        int
		Status          string
		CreationTime    string
		TerminationDate string `xml:",omitempty"`
		ProgressSummary jobProgress
	}
	var items []item
	for _, j := range jobs {
		it := item{JobId: j.ID, Description: j.Description, Operation: j.operation(), Priority: j.Priority, Status: j.Status,
			CreationTime: j.Created.Format(time.RFC3339), ProgressSummary: j.progress()}
		if j.Terminated != nil {
			it.TerminationDate = j.Terminated.Format(time.RFC3339)
		}
		items = append(items, it)
	}
	s.mu.Unlock()
	return writeControlXML(c, "ListJobsResult", struct {
		Jobs []item `xml:"Jobs>member"`
	}{items})
}

func (s *Sandbox) updateJobStatus(c *call, id string) error {
	q := c.r.URL.Query()
	requested := q.Get("requestedJobStatus")
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.st.Jobs[id]
	if j == nil || j.Account != c.caller.Account {
		return errorf(404, "NotFoundException", "The specified job does not exist")
	}
	switch {
	case requested == "Ready" && j.Status == "Suspended":
		s.startJob(j)
	case requested == "Cancelled" && !j.terminal():
		j.Status = "Cancelled"
		now := time.Now().UTC()
		j.Terminated = &now
	case requested != "Ready" && requested != "Cancelled":
		return bad("requestedJobStatus must be Ready or Cancelled")
	default:
		return errorf(409, "JobStatusException", "job %s is %s and cannot become %s", j.ID, j.Status, requested)
	}
	j.UpdateReason = q.Get("statusUpdateReason")
	s.changed()
	return writeControlXML(c, "UpdateJobStatusResult", struct{ JobId, Status, StatusUpdateReason string }{j.ID, j.Status, j.UpdateReason})
}

// resumeJobs restarts the jobs a stopped sandbox left running.
// Callers hold s.mu.
func (s *Sandbox) resumeJobs() {
	for _, j := range s.st.Jobs {
		if j.Status == "Preparing" || j.Status == "Active" || j.Status == "New" {
			j.Total, j.Succeeded, j.Failed = 0, 0, 0
			s.startJob(j)
		}
	}
}

func writeControlXML(c *call, root string, v any) error {
	c.w.Header().Set("Content-Type", "application/xml")
	c.w.WriteHeader(c.status)
	io.WriteString(c.w, xml.Header)
	return xml.NewEncoder(c.w).EncodeElement(v, xml.StartElement{Name: xml.Name{Local: root}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: s3controlNS}}})
}

// keyNames is a generated manifest's KeyNameConstraint: a key must match one
// of each list given (a prefix, a suffix, a substring).
type keyNames struct {
	MatchAnyPrefix    []string `xml:"MatchAnyPrefix>member,omitempty" json:"prefix,omitempty"`
	MatchAnySuffix    []string `xml:"MatchAnySuffix>member,omitempty" json:"suffix,omitempty"`
	MatchAnySubstring []string `xml:"MatchAnySubstring>member,omitempty" json:"substring,omitempty"`
}

func (k *keyNames) matches(key string) bool {
	if k == nil {
		return true
	}
	oneOf := func(list []string, f func(string, string) bool) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if f(key, x) {
				return true
			}
		}
		return false
	}
	return oneOf(k.MatchAnyPrefix, strings.HasPrefix) && oneOf(k.MatchAnySuffix, strings.HasSuffix) && oneOf(k.MatchAnySubstring, strings.Contains)
}
