package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/trailkeeper/trailkeeper/internal/world"
)

// documentedSchemas compiles docs/schema's JSON Schemas, keyed by file name.
func documentedSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	files, _ := filepath.Glob("../../docs/schema/*.schema.json")
	if len(files) == 0 {
		t.Fatal("docs/schema has no schemas")
	}
	const base = "https://trailkeeper.dev/schema/"
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource(base+filepath.Base(f), doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		s, err := c.Compile(base + filepath.Base(f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = s
	}
	return out
}

func validate(t *testing.T, s *jsonschema.Schema, what, out string) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", what, err, out)
	}
	return s.Validate(inst)
}

// status and verify print what docs/schema documents: one finding shape, one
// schema version, healthy and not, valid and not. The schemas are strict
// enough to refuse a finding with a field of its own.
func TestJSONOutputMatchesTheDocumentedSchema(t *testing.T) {
	schemas := documentedSchemas(t)
	e := healthy(t, world.Member{Account: acctA}, "alerts:\n  subscribe: [ops@example.com]\nwatch: {}\n")
	outputs := map[string]string{}
	_, _, outputs["status, healthy"] = e.status()
	outputs["verify, valid"], _, _ = e.run("verify", "-o", "json")

	must(cloudtrail.NewFromConfig(world.Config(e.url, acctA, region)).StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("Members")})).OK(t)
	_, _, outputs["status, not healthy"] = e.status()
	// A new version over a replica: verify reports it, on its key and version.
	arch := world.S3(e.url, archiveAcct, region)
	list := must(arch.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(archive), Prefix: aws.String("AWSLogs/" + acctA + "/CloudTrail/")})).OK(t)
	must(arch.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(archive), Key: list.Contents[0].Key, Body: strings.NewReader("{}"), ChecksumAlgorithm: "CRC32"})).OK(t)
	outputs["verify, not valid"], _, _ = e.run("verify", "-o", "json")
	if !strings.Contains(outputs["verify, not valid"], `"versionId"`) || !strings.Contains(outputs["status, not healthy"], `"trail-not-logging"`) {
		t.Fatalf("the outputs lack the findings this test means to check:\n%s\n%s", outputs["verify, not valid"], outputs["status, not healthy"])
	}
	for what, out := range outputs {
		command, _, _ := strings.Cut(what, ",")
		if err := validate(t, schemas[command+".schema.json"], what, out); err != nil {
			t.Errorf("%s does not match docs/schema: %v\n%s", what, err, out)
		}
	}
	// The schema refuses what it does not document.
	odd := strings.Replace(outputs["status, not healthy"], `"code":`, `"category":"x","code":`, 1)
	if validate(t, schemas["status.schema.json"], "a finding with a field of its own", odd) == nil {
		t.Error("the status schema accepts a finding with an undocumented field")
	}
}
