package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// Render returns what apply would create, as files for teams that deploy
// through their own pipelines: per source a CloudFormation template for the role
// and the replication configuration; for the archive its policy statements and
// Object Lock configuration. Paths are relative; contents end in a newline.
func Render(ctx context.Context, e *Env, parallel int) (map[string][]byte, error) {
	c := e.Config
	states := make([]*SourceState, len(c.Sources))
	err := forEach(ctx, parallel, len(c.Sources), func(ctx context.Context, i int) error {
		var err error
		states[i], err = ObserveSource(ctx, c, c.Sources[i], e.Sources[c.Sources[i].AccountID])
		return err
	})
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	var accounts, prefixes []string
	topicMembers := map[string][2][]string{} // region -> accounts, buckets
	for _, st := range states {
		acct := st.Config.AccountID
		accounts = append(accounts, acct)
		prefixes = append(prefixes, st.Trail.LogPrefix())
		tpl := map[string]any{
			"AWSTemplateFormatVersion": "2010-09-09",
			"Description":              fmt.Sprintf("trailkeeper: roles that replicate trail %s (bucket %s) into %s, and backfill it", st.Trail.Name, st.Trail.Bucket, c.Archive.Bucket),
			"Resources": map[string]any{"ReplicationRole": map[string]any{
				"Type": "AWS::IAM::Role",
				"Properties": map[string]any{
					"RoleName":                 c.Replication.RoleName,
					"AssumeRolePolicyDocument": ReplicationTrust(),
					"Policies":                 []any{map[string]any{"PolicyName": RolePolicyName, "PolicyDocument": RolePolicy(c, acct, st.Trail)}},
				}}, "BatchReplicationRole": map[string]any{
				"Type": "AWS::IAM::Role",
				"Properties": map[string]any{
					"RoleName":                 BatchRoleName,
					"AssumeRolePolicyDocument": BatchTrust(),
					"Policies":                 []any{map[string]any{"PolicyName": RolePolicyName, "PolicyDocument": BatchRolePolicy(st.Trail)}},
				}}},
			"Outputs": map[string]any{"RoleArn": map[string]any{"Value": map[string]any{"Fn::GetAtt": []string{"ReplicationRole", "Arn"}}}},
		}
		files[acct+"/replication-role.cfn.json"] = indent(tpl)
		files[acct+"/replication-configuration.json"] = indent(replicationJSON(desiredReplication(c, st, nil, RoleARN(acct, c.Replication.RoleName))))
		if c.Alerts.Enabled {
			want := alertWiring(c, st)
			files[acct+"/notification-configuration.json"] = indent(withWiring(st.Notification, &want))
			m := topicMembers[st.BucketRegion]
			topicMembers[st.BucketRegion] = [2][]string{append(m[0], acct), append(m[1], st.Trail.Bucket)}
		}
	}
	for region, m := range topicMembers {
		topic := TopicARN(c, region)
		files["archive/topic-policy-"+region+".json"] = indent(withTopicStatement(nil, topic, m[0], m[1]))
	}
	doc := withGrant(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{DenyInsecure(c.Archive.Bucket)}},
		c.Archive.Bucket, accounts, []string{SharedRolePattern(c.Replication.RoleName)}, prefixes)
	files["archive/bucket-policy.json"] = indent(doc)
	lock := map[string]any{"ObjectLockEnabled": "Enabled", "Rule": map[string]any{"DefaultRetention": retentionJSON(c.Archive.ObjectLock.Mode, c.Archive.ObjectLock.Days, c.Archive.ObjectLock.Years)}}
	files["archive/object-lock-configuration.json"] = indent(lock)
	files["README.md"] = []byte(renderReadme(e, accounts))
	return files, nil
}

func retentionJSON(mode string, days, years int) map[string]any {
	if years > 0 {
		return map[string]any{"Mode": mode, "Years": years}
	}
	return map[string]any{"Mode": mode, "Days": days}
}

func indent(v any) []byte {
	data, _ := json.MarshalIndent(v, "", "  ")
	var tree any
	json.Unmarshal(data, &tree)
	out, _ := json.MarshalIndent(dropNulls(tree), "", "  ")
	return append(out, '\n')
}

// replicationJSON is the shape 'aws s3api put-bucket-replication' reads.
func replicationJSON(r *s3types.ReplicationConfiguration) map[string]any {
	var rules []any
	for _, rule := range r.Rules {
		var m map[string]any
		data, _ := json.Marshal(rule)
		json.Unmarshal(data, &m)
		rules = append(rules, m)
	}
	return map[string]any{"Role": aws.ToString(r.Role), "Rules": rules}
}

func renderReadme(e *Env, accounts []string) string {
	c := e.Config
	sort.Strings(accounts)
	var b strings.Builder
	fmt.Fprintf(&b, `# What trailkeeper apply would create

Written by 'trailkeeper render' for %s. Deploy in this order; 'trailkeeper plan' afterwards shows what
still differs (it accepts the role when a CloudFormation stack manages it and it matches).

1. Archive account %s: create bucket %s with Object Lock, then

       aws s3api put-object-lock-configuration --bucket %s --object-lock-configuration file://archive/object-lock-configuration.json
       aws s3api put-public-access-block --bucket %s --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
       aws s3api put-bucket-ownership-controls --bucket %s --ownership-controls Rules=[{ObjectOwnership=BucketOwnerEnforced}]

   Merge the statements of archive/bucket-policy.json into the bucket policy by Sid (keep statements of others).
2. Each source account (%s): enable versioning on the trail bucket and log file validation on the trail, then

       aws cloudformation deploy --stack-name trailkeeper-replication --template-file ACCOUNT/replication-role.cfn.json --capabilities CAPABILITY_NAMED_IAM
       aws s3api put-bucket-replication --bucket TRAIL-BUCKET --replication-configuration file://ACCOUNT/replication-configuration.json

   put-bucket-replication replaces the whole configuration: merge other rules of the bucket in first.
`, c.Path, c.Archive.AccountID, c.Archive.Bucket, c.Archive.Bucket, c.Archive.Bucket, c.Archive.Bucket, strings.Join(accounts, ", "))
	if c.Alerts.Enabled {
		fmt.Fprintf(&b, `3. Alerts. In the archive account, per region with sources, the topic (archive/topic-policy-REGION.json names it),
   its policy (merge the statement %s by Sid into an existing topic's policy), and who gets the alerts:

       aws sns create-topic --region REGION --name %s
       aws sns set-topic-attributes --region REGION --topic-arn TOPIC-ARN --attribute-name Policy --attribute-value file://archive/topic-policy-REGION.json
       aws sns subscribe --region REGION --topic-arn TOPIC-ARN --protocol email --notification-endpoint YOU@EXAMPLE.COM

   Then in each source account (the file keeps the bucket's other notifications as they were when rendered):

       aws s3api put-bucket-notification-configuration --bucket TRAIL-BUCKET --notification-configuration file://ACCOUNT/notification-configuration.json
`, SidS3Events, AlertTopicName)
	}
	return b.String()
}
