package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// TestSearchTheArchive: search reads the config's archive over S3, as the
// archive account: every event the trails delivered is found, JSON Lines carry
// each record as CloudTrail wrote it plus its object key, and an object that
// cannot be read is named, never skipped in silence.
func TestSearchTheArchive(t *testing.T) {
	e := archived(t, 2, acctA, acctB)
	out, errOut, code := e.run("search", "--event-name", "ListBuckets", "--count")
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	if code != 0 || n < 2*2*2 {
		t.Fatalf("count: exit %d, %q\n%s", code, out, errOut)
	}
	out, errOut, code = e.run("search", "--event-name", "ListBuckets", "--account", acctB, "--output", "json")
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not a JSON line: %s", sc.Text())
		}
		key, _ := rec["trailkeeper:objectKey"].(string)
		if rec["eventName"] != "ListBuckets" || rec["recipientAccountId"] != acctB || !strings.HasPrefix(key, "AWSLogs/"+acctB+"/CloudTrail/") {
			t.Fatalf("line %s", sc.Text())
		}
		// The record is in the object it names.
		body := testenv.Gunzip(t, getObject(t, world.S3(e.url, archiveAcct, region), archive, key))
		if !bytes.Contains(body, []byte(`"eventID":"`+rec["eventID"].(string)+`"`)) {
			t.Fatalf("event %s is not in %s", rec["eventID"], key)
		}
		lines++
	}
	if code != 0 || lines == 0 || lines >= n {
		t.Fatalf("json: exit %d, %d lines of %d\n%s", code, lines, n, errOut)
	}
	out, _, code = e.run("search", "--event-name", "ListBuckets", "--output", "csv", "--limit", "1")
	if code != 0 || !strings.HasPrefix(out, "TIME,ACCOUNT,REGION,EVENT,PRINCIPAL,SOURCE IP,ERROR\n") || strings.Count(out, "\n") != 2 {
		t.Fatalf("csv: exit %d\n%s", code, out)
	}

	// A truncated object in the archive: named, exit 1, the rest still searched.
	arch := world.S3(e.url, archiveAcct, region)
	list := must(arch.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(archive), Prefix: aws.String("AWSLogs/" + acctA + "/CloudTrail/")})).OK(t)
	victim := *list.Contents[0].Key
	body := getObject(t, arch, archive, victim)
	must(arch.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(archive), Key: &victim, Body: bytes.NewReader(body[:len(body)/2]), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})).OK(t)
	out, errOut, code = e.run("search", "--event-name", "ListBuckets", "--count")
	if code != 1 || !strings.Contains(errOut, "warning: not searched: "+victim) {
		t.Fatalf("truncated object: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code = e.run("search", "s3://no-such-bucket-here"); code != 3 {
		t.Fatalf("missing bucket: exit %d %s", code, errOut)
	}
	if _, _, code = e.run("search", "--since", "1h", "--until", "2h"); code != 2 {
		t.Fatalf("an empty range: exit %d, want 2", code)
	}
}
