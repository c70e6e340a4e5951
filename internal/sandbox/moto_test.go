package sandbox

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// volatile fields differ between any two runs: ids, times, request ids.
var volatile = map[string]bool{"RoleId": true, "CreateDate": true, "StackId": true, "CreationTime": true, "LastUpdatedTime": true,
	"VersionId": true, "ETag": true, "LastModified": true, "ResponseMetadata": true, "DriftInformation": true, "EventId": true,
	"Timestamp": true, "NotificationARNs": true, "RollbackConfiguration": true, "Location": true}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if !volatile[k] {
				out[k] = normalize(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

func parseAnswer(s string) any {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	return normalize(v)
}

// TestAgainstMoto runs the seed scenario's steps that moto also emulates against
// both emulators with the AWS CLI. Where they differ, the AWS documentation
// decides, and each known difference says why (AWS-FACTS.md section 10).
func TestAgainstMoto(t *testing.T) {
	motoURL := testenv.StartMoto(t)
	e := newEnv(t, Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	acct := "123456789012" // moto maps every plain access key to this account
	sandboxCLI, motoCLI := newCLI(t, e.url), newCLI(t, motoURL)
	archive, source := "aggregation-cloudtrail-logs-"+acct, "cm-members-cloudtrail-"+acct
	trailPolicy := trailBucketPolicy(source, acct, "arn:aws:cloudtrail:"+region+":"+acct+":trail/Members", "")
	rc := seedFile(t, "replication-config.json", "${ACCOUNT_ID}", acct, "${DESTINATION_ACCOUNT_ID}", acct)
	bp := seedFile(t, "bucket-policy.json", "<集約アカウントID>", acct, "<ソースアカウントID>", acct)
	lockCfg := `{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":400}}}`
	steps := []struct {
		args []string
		// differs names the documented AWS behaviour where moto is known to
		// answer otherwise; the sandbox must then match AWS, checked by want.
		differs string
		want    func(sandbox string) bool
	}{
		{args: []string{"sts", "get-caller-identity"},
			differs: "the sandbox follows LocalStack: a 12-digit access key is that account's root; moto maps every key to its user 'moto'",
			want:    func(s string) bool { return strings.Contains(s, `"arn:aws:iam::123456789012:root"`) }},
		{args: []string{"s3api", "create-bucket", "--bucket", archive, "--create-bucket-configuration", "LocationConstraint=" + region, "--object-lock-enabled-for-bucket"}},
		{args: []string{"s3api", "get-bucket-versioning", "--bucket", archive}},
		{args: []string{"s3api", "put-object-lock-configuration", "--bucket", archive, "--object-lock-configuration", lockCfg}},
		{args: []string{"s3api", "get-object-lock-configuration", "--bucket", archive},
			differs: "S3 returns only the one of Days and Years that was set; moto adds \"Years\": 0",
			want:    func(s string) bool { return strings.Contains(s, `"Days": 400`) && !strings.Contains(s, "Years") }},
		{args: []string{"s3api", "create-bucket", "--bucket", source, "--create-bucket-configuration", "LocationConstraint=" + region}},
		{args: []string{"s3api", "put-bucket-versioning", "--bucket", source, "--versioning-configuration", "Status=Enabled"}},
		{args: []string{"s3api", "get-bucket-versioning", "--bucket", source}},
		{args: []string{"s3api", "put-bucket-policy", "--bucket", source, "--policy", trailPolicy}},
		{args: []string{"s3api", "get-bucket-policy", "--bucket", source, "--query", "Policy", "--output", "text"}},
		{args: []string{"cloudtrail", "create-trail", "--name", "Members", "--s3-bucket-name", source, "--enable-log-file-validation"}},
		{args: []string{"cloudtrail", "start-logging", "--name", "Members"}},
		{args: []string{"cloudtrail", "get-trail-status", "--name", "Members", "--query", "IsLogging"}},
		{args: []string{"cloudtrail", "describe-trails", "--query", "trailList[].[Name,S3BucketName,LogFileValidationEnabled,IsMultiRegionTrail,HomeRegion]"}},
		{args: []string{"cloudformation", "create-stack", "--stack-name", "cloudtrail-replication-role", "--template-body", seedFile(t, "s3-replication-role.yaml"),
			"--parameters", "ParameterKey=DestinationAccountId,ParameterValue=" + acct, "--capabilities", "CAPABILITY_NAMED_IAM"}},
		{args: []string{"cloudformation", "wait", "stack-create-complete", "--stack-name", "cloudtrail-replication-role"}},
		{args: []string{"cloudformation", "describe-stacks", "--stack-name", "cloudtrail-replication-role", "--query", "Stacks[0].[StackStatus,Outputs[].[OutputKey,OutputValue,ExportName]]"}},
		{args: []string{"iam", "get-role", "--role-name", "S3ReplicationRole", "--query", "Role.[RoleName,Arn,AssumeRolePolicyDocument]"}},
		{args: []string{"iam", "get-role-policy", "--role-name", "S3ReplicationRole", "--policy-name", "S3ReplicationPolicy", "--query", "PolicyDocument.Statement[2].Action"},
			differs: "moto returns inline policies created by a stack as Python text; IAM returns the JSON document",
			want:    func(s string) bool { return strings.Contains(s, `"s3:ReplicateObject"`) }},
		{args: []string{"s3api", "put-bucket-replication", "--bucket", source, "--replication-configuration", rc}},
		{args: []string{"s3api", "get-bucket-replication", "--bucket", source, "--query", "ReplicationConfiguration.Rules[0].[ID,Status,Priority,Filter,DeleteMarkerReplication,Destination.StorageClass]"},
			differs: "moto answers Filter.Prefix \"\" whatever was put; S3 returns the configuration as written",
			want:    func(s string) bool { return strings.Contains(s, `"Prefix": "AWSLogs/"`) }},
		{args: []string{"s3api", "put-bucket-policy", "--bucket", archive, "--policy", bp}},
		{args: []string{"s3api", "get-bucket-policy", "--bucket", archive, "--query", "Policy", "--output", "text"}},
		{args: []string{"iam", "create-role", "--role-name", "plain", "--assume-role-policy-document", replicationTrust, "--query", "Role.[RoleName,Path,Arn]"}},
		{args: []string{"iam", "put-role-policy", "--role-name", "plain", "--policy-name", "p", "--policy-document", rolePolicy(source, archive)}},
		{args: []string{"iam", "list-role-policies", "--role-name", "plain"}},
		{args: []string{"iam", "delete-role", "--role-name", "plain"}}, // both refuse: DeleteConflict
		{args: []string{"s3api", "put-bucket-policy", "--bucket", archive, "--policy", strings.Replace(bp, "S3ReplicationRole", "NoSuchRole", 1)},
			differs: "S3 rejects a principal naming a role that does not exist (MalformedPolicy); moto accepts malformed policies",
			want: func(s string) bool {
				return strings.Contains(s, "MalformedPolicy") && strings.Contains(s, "Invalid principal")
			}},
	}
	for i, st := range steps {
		name := fmt.Sprintf("%02d %s", i, strings.Join(st.args[:2], " "))
		a, errA := sandboxCLI.run(acct, st.args...)
		b, errB := motoCLI.run(acct, st.args...)
		if errA != nil {
			a = "error: " + errA.Error()
		}
		if errB != nil {
			b = "error: " + errB.Error()
		}
		same := reflect.DeepEqual(parseAnswer(a), parseAnswer(b))
		switch {
		case st.differs == "" && !same:
			t.Errorf("%s: the emulators disagree\n  sandbox: %s\n  moto:    %s", name, a, b)
		case st.differs != "" && !st.want(a):
			t.Errorf("%s: the sandbox does not do what AWS documents (%s)\n  sandbox: %s", name, st.differs, a)
		case st.differs != "" && same:
			t.Logf("%s: moto now agrees with AWS (%s)", name, st.differs)
		}
	}
}
