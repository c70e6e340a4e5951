package sandbox

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

func TestListingAndVersions(t *testing.T) {
	c, b := versionedBucket(t, "list-"+sourceAcct)
	var keys []string
	for _, day := range []string{"01", "02", "03"} {
		for i := range 4 {
			k := fmt.Sprintf("AWSLogs/1/CloudTrail/us-east-1/2025/09/%s/f%d.json.gz", day, i)
			keys = append(keys, k)
			must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &k, Body: bytes.NewReader([]byte(k))})).OK(t)
		}
	}
	// Paginate with max-keys 5: every key exactly once, in order.
	var got []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &b, MaxKeys: aws.Int32(5)})
	for p.HasMorePages() {
		for _, o := range must(p.NextPage(ctx)).OK(t).Contents {
			got = append(got, *o.Key)
		}
	}
	if strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Fatalf("v2 pagination:\n%v\nwant\n%v", got, keys)
	}
	// Delimiter folds days into common prefixes; start-after skips.
	d := must(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("AWSLogs/1/CloudTrail/us-east-1/2025/09/"), Delimiter: aws.String("/"),
		StartAfter: aws.String("AWSLogs/1/CloudTrail/us-east-1/2025/09/01/f9")})).OK(t)
	if len(d.CommonPrefixes) != 2 || *d.CommonPrefixes[0].Prefix != "AWSLogs/1/CloudTrail/us-east-1/2025/09/02/" || len(d.Contents) != 0 {
		t.Fatalf("delimiter listing: %+v", d.CommonPrefixes)
	}
	// v1 with marker, as validate-logs uses it.
	v1 := must(c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: &b, Marker: aws.String(keys[9]), Prefix: aws.String("AWSLogs/")})).OK(t)
	if len(v1.Contents) != 2 || *v1.Contents[0].Key != keys[10] {
		t.Fatalf("v1 marker listing: %d keys", len(v1.Contents))
	}
	// Versions: an overwrite and a delete marker are listed newest first.
	must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &keys[0], Body: bytes.NewReader([]byte("shadow"))})).OK(t)
	must(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: &keys[1]})).OK(t)
	vs := must(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &b, Prefix: aws.String("AWSLogs/1/CloudTrail/us-east-1/2025/09/01/")})).OK(t)
	if len(vs.Versions) != 5 || len(vs.DeleteMarkers) != 1 || !*vs.Versions[0].IsLatest || *vs.Versions[0].Size != 6 || *vs.Versions[1].IsLatest {
		t.Fatalf("versions: %d versions, %d delete markers", len(vs.Versions), len(vs.DeleteMarkers))
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &keys[1]}); errCode(err) != "NoSuchKey" {
		t.Fatalf("reading a deleted key: %v", err)
	}
	old := must(c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &keys[0], VersionId: vs.Versions[1].VersionId})).OK(t)
	if *old.ContentLength != int64(len(keys[0])) {
		t.Fatal("the shadowed version was not kept")
	}
}

func TestMultipartUploadAndChecksums(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.s3(sourceAcct)
	b, k := "mp-"+sourceAcct, "big.bin"
	must(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b, CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	up := must(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b, Key: &k, ContentEncoding: aws.String("gzip")})).OK(t)
	part1 := bytes.Repeat([]byte("a"), 5<<20)
	part2 := []byte("tail")
	var parts []types.CompletedPart
	for i, data := range [][]byte{part1, part2} {
		out := must(c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &b, Key: &k, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(data)})).OK(t)
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	done := must(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &b, Key: &k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})).OK(t)
	if !strings.HasSuffix(strings.Trim(*done.ETag, `"`), "-2") {
		t.Fatalf("multipart ETag %s", *done.ETag)
	}
	if got := e.get(sourceAcct, b, k); !bytes.Equal(got, append(part1, part2...)) {
		t.Fatal("multipart object bytes differ")
	}
	// The SDK sends a CRC32 checksum by default; the sandbox checks it and returns it on request.
	must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String("small"), Body: bytes.NewReader([]byte("hello")), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})).OK(t)
	h := must(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: aws.String("small"), ChecksumMode: types.ChecksumModeEnabled})).OK(t)
	if aws.ToString(h.ChecksumSHA256) != checksum("sha256", []byte("hello")) {
		t.Fatalf("SHA256 checksum %q", aws.ToString(h.ChecksumSHA256))
	}
}

// TestPersistence restarts a sandbox on the same data dir: buckets, objects,
// roles, trails and signing keys survive.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	sb, err := New(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sb.Start("127.0.0.1:0", false)
	e := &env{t: t, sb: sb, url: srv.URL}
	p := newPair(t, e)
	p.grant(t, sourceAcct)
	key := "AWSLogs/" + sourceAcct + "/kept.json.gz"
	if st, _ := p.put(t, key); st != "COMPLETED" {
		t.Fatal(st)
	}
	fp := must(e.cloudtrail(sourceAcct).ListPublicKeys(ctx, &cloudtrail.ListPublicKeysInput{})).OK(t).PublicKeyList[0].Fingerprint
	topic := alertTopic(t, e, p.source)
	must(e.sns(archiveAcct).Subscribe(ctx, &sns.SubscribeInput{TopicArn: &topic, Protocol: aws.String("email"), Endpoint: aws.String("ops@example.com")})).OK(t)
	must(e.s3(sourceAcct).PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &p.source, NotificationConfiguration: failureConfig(topic)})).OK(t)
	srv.Close()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := newEnv(t, Options{DataDir: dir})
	if got := e2.get(archiveAcct, p.archive, key); string(got) != "log "+key {
		t.Fatalf("replica after restart: %q", got)
	}
	if _, err := e2.iam(sourceAcct).GetRole(ctx, nil); err == nil {
		t.Fatal("GetRole without a name succeeded")
	}
	pol := must(e2.s3(archiveAcct).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &p.archive})).OK(t)
	if !strings.Contains(*pol.Policy, "DenyInsecureTransport") {
		t.Fatal("bucket policy lost")
	}
	fp2 := must(e2.cloudtrail(sourceAcct).ListPublicKeys(ctx, &cloudtrail.ListPublicKeysInput{})).OK(t).PublicKeyList[0].Fingerprint
	if *fp != *fp2 {
		t.Fatal("the CloudTrail signing key changed across a restart: old digests would no longer verify")
	}
	// Topics, their policies and subscriptions, and notifications survive: S3
	// still proves the topic's policy lets the bucket publish.
	attrs := must(e2.sns(archiveAcct).GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: &topic})).OK(t).Attributes
	if attrs["SubscriptionsPending"] != "1" || !strings.Contains(attrs["Policy"], "s3.amazonaws.com") {
		t.Fatalf("topic after restart: %v", attrs)
	}
	if n := must(e2.s3(sourceAcct).GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &p.source})).OK(t); len(n.TopicConfigurations) != 1 {
		t.Fatalf("notifications after restart: %+v", n.TopicConfigurations)
	}
	must(e2.s3(sourceAcct).PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &p.source, NotificationConfiguration: failureConfig(topic)})).OK(t)
	// Replication still runs after the restart: the grant (stored as the role's unique ID) still matches.
	p.e = e2
	if st, why := p.put(t, "AWSLogs/"+sourceAcct+"/after.json.gz"); st != "COMPLETED" {
		t.Fatalf("after restart: %s %s", st, why)
	}
}

// TestTLSSecureTransport: over https aws:SecureTransport is true, as on AWS, so
// the archive's TLS deny lets requests through; over http with InsecureHTTP it denies.
func TestTLSSecureTransport(t *testing.T) {
	sb, err := New(Options{InsecureHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	tlsSrv, err := sb.Start("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer tlsSrv.Close()
	plain, _ := sb.Start("127.0.0.1:0", false)
	defer plain.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tlsSrv.CACert)
	secure := &env{t: t, sb: sb, url: tlsSrv.URL, client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	insecure := &env{t: t, sb: sb, url: plain.URL}
	p := newPair(t, secure)
	grant := strings.Replace(archivePolicy(p.archive, archiveAcct), `"s3:ReplicateObject","s3:ReplicateTags"`, `"s3:GetObject"`, 1)
	must(secure.s3(archiveAcct).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &p.archive, Policy: &grant})).OK(t)
	key := "AWSLogs/x"
	// Over https, a body that cannot seek and a checksum make the SDK stream the
	// body aws-chunked with the checksum as a trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
	body := struct{ io.Reader }{strings.NewReader("streamed")}
	must(secure.s3(archiveAcct).PutObject(ctx, &s3.PutObjectInput{Bucket: &p.archive, Key: &key, Body: body, ContentLength: aws.Int64(8), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})).OK(t)
	if got := secure.get(archiveAcct, p.archive, key); string(got) != "streamed" {
		t.Fatalf("https read: %q", got)
	}
	h := must(secure.s3(archiveAcct).HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.archive, Key: &key, ChecksumMode: types.ChecksumModeEnabled})).OK(t)
	if aws.ToString(h.ChecksumCRC32) != checksum("crc32", []byte("streamed")) {
		t.Fatalf("trailer checksum not kept: %q", aws.ToString(h.ChecksumCRC32))
	}
	if _, err := insecure.s3(archiveAcct).GetObject(ctx, &s3.GetObjectInput{Bucket: &p.archive, Key: &key}); errCode(err) != "AccessDenied" {
		t.Fatalf("plain http read under the TLS deny: %v, want AccessDenied", err)
	}
}

// TestFaults: with faults injected, the SDK's standard retryer still gets every
// write through, and the sandbox answers with AWS's throttling and error codes.
func TestFaults(t *testing.T) {
	e := newEnv(t, Options{FaultRate: 1})
	_, err := e.s3(sourceAcct).ListBuckets(ctx, &s3.ListBucketsInput{})
	if c := errCode(err); c != "SlowDown" && c != "InternalError" {
		t.Fatalf("with fault rate 1: %v", err)
	}

	e = newEnv(t, Options{FaultRate: 0.3})
	cfg := e.cfg(sourceAcct)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 20; o.MaxBackoff = time.Millisecond })
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	b := "faulty-" + sourceAcct
	must(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b, CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	for i := range 50 {
		must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String(fmt.Sprint(i)), Body: bytes.NewReader([]byte("x"))})).OK(t)
	}
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &b})
	for p.HasMorePages() {
		n += len(must(p.NextPage(ctx)).OK(t).Contents)
	}
	faults := e.sb.Calls()[sourceAcct+" Fault"]
	if n != 50 || faults == 0 {
		t.Fatalf("%d objects after retries (want 50), %d faults injected", n, faults)
	}
}

func TestTrailDeliveryError(t *testing.T) {
	e := newEnv(t, Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	s, ct := e.s3(sourceAcct), e.cloudtrail(sourceAcct)
	b := "trail-" + sourceAcct
	arn := "arn:aws:cloudtrail:" + region + ":" + sourceAcct + ":trail/a.b_c-d"
	must(s.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b, CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	_, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("a.b_c-d"), S3BucketName: &b})
	if errCode(err) != "InsufficientS3BucketPolicyException" {
		t.Fatalf("trail into a bucket without a CloudTrail policy: %v", err)
	}
	must(s.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &b, Policy: aws.String(trailBucketPolicy(b, sourceAcct, arn, "logs"))})).OK(t)
	must(ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("a.b_c-d"), S3BucketName: &b, S3KeyPrefix: aws.String("logs"), EnableLogFileValidation: aws.Bool(true)})).OK(t)
	must(ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("a.b_c-d")})).OK(t)
	e.sb.Deliver()
	st := must(ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: &arn})).OK(t)
	if !*st.IsLogging || st.LatestDeliveryTime == nil || aws.ToString(st.LatestDeliveryError) != "" || st.LatestDigestDeliveryTime == nil {
		t.Fatalf("healthy trail status: %+v", st)
	}
	list := must(s.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("logs/AWSLogs/" + sourceAcct + "/CloudTrail-Digest/")})).OK(t)
	if len(list.Contents) != 1 || !strings.Contains(*list.Contents[0].Key, "_CloudTrail-Digest_"+region+"_a.b_c-d_"+region+"_") {
		t.Fatalf("digest keys under the prefix: %v", list.Contents)
	}
	// The bucket owner replaces the policy with one that denies CloudTrail.
	must(s.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &b, Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::` + b + `/*"}]}`)})).OK(t)
	must(s.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &b})).OK(t) // an event to deliver
	e.sb.Deliver()
	st = must(ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: &arn})).OK(t)
	if aws.ToString(st.LatestDeliveryError) != "AccessDenied" || aws.ToString(st.LatestDigestDeliveryError) != "AccessDenied" {
		t.Fatalf("delivery errors: %q, %q", aws.ToString(st.LatestDeliveryError), aws.ToString(st.LatestDigestDeliveryError))
	}
}

func TestBackgroundEvents(t *testing.T) {
	e := newEnv(t, Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour, BackgroundEvents: 5})
	s := e.s3(sourceAcct)
	b := "bg-" + sourceAcct
	loggingTrail(t, e, sourceAcct, "background", b)
	e.sb.Deliver() // nobody called the API since StartLogging's own event: background activity fills the log
	list := must(s.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("AWSLogs/")})).OK(t)
	if len(list.Contents) != 1 {
		t.Fatalf("%d log files", len(list.Contents))
	}
	var records struct{ Records []map[string]any }
	if err := json.Unmarshal(testenv.Gunzip(t, e.get(sourceAcct, b, *list.Contents[0].Key)), &records); err != nil {
		t.Fatal(err)
	}
	if len(records.Records) < 6 { // StartLogging plus five generated events
		t.Fatalf("%d records", len(records.Records))
	}
	for _, r := range records.Records {
		for _, f := range []string{"eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress", "userAgent", "requestID", "eventID", "readOnly", "eventType", "recipientAccountId"} {
			if _, ok := r[f]; !ok {
				t.Fatalf("record without %s: %v", f, r)
			}
		}
	}
}

// BenchmarkReplication measures how long a replicated object stays PENDING on an
// idle sandbox (issue 2: within one second).
func BenchmarkReplication(b *testing.B) {
	e := newEnv(b, Options{})
	p := newPair(b, e)
	p.grant(b, sourceAcct)
	c := e.s3(sourceAcct)
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("AWSLogs/%s/bench-%d.json.gz", sourceAcct, i)
		must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &key, Body: bytes.NewReader([]byte("x"))})).OK(b)
		if err := e.sb.WaitReplication(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// A multi-region trail with validation gets a digest every hour in every
// region it logs, with an empty logFiles list where nothing happened
// (CloudTrail User Guide, digest files), seen through the AWS CLI.
func TestDigestsInEveryRegionOfAMultiRegionTrail(t *testing.T) {
	e := newEnv(t, Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	c := newCLI(t, e.url)
	bucket := "trail-" + sourceAcct
	arn := "arn:aws:cloudtrail:" + region + ":" + sourceAcct + ":trail/All"
	c.ok(sourceAcct, "s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", "LocationConstraint="+region)
	c.ok(sourceAcct, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", trailBucketPolicy(bucket, sourceAcct, arn, ""))
	c.ok(sourceAcct, "cloudtrail", "create-trail", "--name", "All", "--s3-bucket-name", bucket, "--is-multi-region-trail", "--enable-log-file-validation")
	c.ok(sourceAcct, "cloudtrail", "start-logging", "--name", "All")
	c.ok(sourceAcct, "s3api", "list-buckets") // activity in the home region only
	e.sb.Deliver()
	prefix := "AWSLogs/" + sourceAcct + "/CloudTrail-Digest/"
	out := c.ok(sourceAcct, "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix, "--delimiter", "/", "--query", "CommonPrefixes[].Prefix", "--output", "text")
	if got := strings.Fields(out); len(got) != 17 {
		t.Fatalf("digest regions: %d (%v), want the 17 enabled by default", len(got), got)
	}
	key := c.ok(sourceAcct, "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix+"sa-east-1/", "--query", "Contents[0].Key", "--output", "text")
	obj := must(e.s3(sourceAcct).GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})).OK(t)
	data, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if digest := string(testenv.Gunzip(t, data)); !strings.Contains(digest, `"logFiles":[]`) || !strings.Contains(key, "_CloudTrail-Digest_sa-east-1_All_"+region+"_") {
		t.Fatalf("digest %s of a region without logs: %s", key, digest)
	}
}

// loggingTrail creates a bucket with CloudTrail's bucket policy and a trail
// of the account writing to it, logging.
func loggingTrail(t *testing.T, e *env, acct, name, bucket string) {
	t.Helper()
	s, ct := e.s3(acct), e.cloudtrail(acct)
	arn := "arn:aws:cloudtrail:" + region + ":" + acct + ":trail/" + name
	must(s.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket, CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	must(s.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(trailBucketPolicy(bucket, acct, arn, ""))})).OK(t)
	must(ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: &name, S3BucketName: &bucket})).OK(t)
	must(ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: &name})).OK(t)
}

// TestVersionsByFolderPaginate: ListObjectVersions with a delimiter hands out
// a page that ends on a folder with that folder as the next key marker, as
// S3 does, and the next page starts after everything in it.
func TestVersionsByFolderPaginate(t *testing.T) {
	c, b := versionedBucket(t, "folders-"+sourceAcct)
	for _, k := range []string{"AWSLogs/a.json.gz", "AWSLogs/1/x", "AWSLogs/1/y", "AWSLogs/2/x", "AWSLogs/3/x", "AWSLogs/3/y", "AWSLogs/z.json.gz"} {
		must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String(k), Body: strings.NewReader(k)})).OK(t)
	}
	var got []string
	in := &s3.ListObjectVersionsInput{Bucket: &b, Prefix: aws.String("AWSLogs/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(2)}
	for pages := 1; ; pages++ {
		if pages > 5 {
			t.Fatalf("the listing does not end: %q", got)
		}
		out := must(c.ListObjectVersions(ctx, in)).OK(t)
		for _, cp := range out.CommonPrefixes {
			got = append(got, *cp.Prefix)
		}
		for _, v := range out.Versions {
			got = append(got, *v.Key)
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		if out.NextKeyMarker == nil || *out.NextKeyMarker == aws.ToString(in.KeyMarker) {
			t.Fatalf("page %d: next key marker %v after %q", pages, out.NextKeyMarker, got)
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	slices.Sort(got)
	if want := []string{"AWSLogs/1/", "AWSLogs/2/", "AWSLogs/3/", "AWSLogs/a.json.gz", "AWSLogs/z.json.gz"}; !slices.Equal(got, want) {
		t.Fatalf("folders and files %q, want %q", got, want)
	}
}

// versionedBucket starts a sandbox with a versioned bucket of the source account.
// TestListingsEncodeKeysAsS3Does: with encoding-type=url a key is listed as
// S3 lists "a+ b.txt" ("a%2B+b.txt", the slashes as they are), with a
// control character XML cannot carry encoded too; any other encoding is
// InvalidArgument.
func TestListingsEncodeKeysAsS3Does(t *testing.T) {
	c, b := versionedBucket(t, "encoded-"+sourceAcct)
	for _, k := range []string{"d/a+ b.txt", "d/x\x01", "d/x\x01y"} {
		must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: aws.String(k), Body: strings.NewReader(k)})).OK(t)
	}
	want := []string{"d/a%2B+b.txt", "d/x%01", "d/x%01y"}
	objects := must(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, EncodingType: types.EncodingTypeUrl})).OK(t)
	versions := must(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &b, EncodingType: types.EncodingTypeUrl})).OK(t)
	for i, w := range want {
		if *objects.Contents[i].Key != w || *versions.Versions[i].Key != w {
			t.Errorf("listed %q and %q, S3 lists %q", *objects.Contents[i].Key, *versions.Versions[i].Key, w)
		}
	}
	// Page by page, each key once: the continuation token carries a key XML cannot.
	var paged []string
	in := &s3.ListObjectsV2Input{Bucket: &b, EncodingType: types.EncodingTypeUrl, MaxKeys: aws.Int32(1)}
	for p := s3.NewListObjectsV2Paginator(c, in); p.HasMorePages(); {
		for _, o := range must(p.NextPage(ctx)).OK(t).Contents {
			paged = append(paged, *o.Key)
		}
	}
	if fmt.Sprint(paged) != fmt.Sprint(want) {
		t.Errorf("one key a page: %q", paged)
	}
	bad := aws.String("not a token!")
	if _, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, ContinuationToken: bad}); errCode(err) != "InvalidArgument" {
		t.Errorf("a token the sandbox did not give: %v", err)
	}
	_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, EncodingType: "base64"})
	_, verr := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &b, EncodingType: "base64"})
	if errCode(err) != "InvalidArgument" || errCode(verr) != "InvalidArgument" {
		t.Errorf("encoding-type=base64: %v, %v", err, verr)
	}
}

func versionedBucket(t *testing.T, b string) (*s3.Client, string) {
	c := newEnv(t, Options{}).s3(sourceAcct)
	must(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b, CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	must(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})).OK(t)
	return c, b
}
