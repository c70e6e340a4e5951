// Command policysize measures how many source accounts fit in the archive
// bucket policy (S3 limit: 20,480 bytes, counted on the policy as S3 stores it)
// in five layouts: the seed's (every role ARN in two shared statements), one
// statement per account, trailkeeper's two forms of its grant: accounts as
// principals (used while they fit) and accounts by aws:PrincipalAccount
// (beyond), both writing to the caller's own folder only, and the large form
// with one resource per account folder (the alternative to the variable).
// It prints a markdown table and exits 1 when fewer than 1,000 accounts fit.
package main

import (
	"fmt"
	"os"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

const bucket = "aggregation-cloudtrail-logs-999999999999"

func account(i int) string { return fmt.Sprintf("%012d", 100000000000+i) }

func roleARN(i int) string { return "arn:aws:iam::" + account(i) + ":role/S3ReplicationRole" }

// seed is the blog post's layout after "adding a source account": both
// statements list every role ARN.
func seed(n int) *policy.Document {
	var roles policy.Strings
	for i := range n {
		roles = append(roles, roleARN(i))
	}
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		{Sid: "AllowReplicationFromSourceAccounts", Effect: policy.Allow, Principal: &policy.Principal{AWS: roles},
			Action:   policy.Strings{"s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags", "s3:ObjectOwnerOverrideToBucketOwner"},
			Resource: policy.Strings{"arn:aws:s3:::" + bucket + "/*"}},
		{Sid: "AllowReplicationPolicyCheck", Effect: policy.Allow, Principal: &policy.Principal{AWS: roles},
			Action: policy.Strings{"s3:GetBucketVersioning", "s3:PutBucketVersioning", "s3:List*"}, Resource: policy.Strings{"arn:aws:s3:::" + bucket}},
	}}
}

// perAccount gives each account its own statement scoped to its own prefix.
func perAccount(n int) *policy.Document {
	d := &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{setup.DenyInsecure(bucket)}}
	for i := range n {
		d.Statements = append(d.Statements, policy.Statement{Sid: "Replication" + account(i), Effect: policy.Allow,
			Principal: &policy.Principal{AWS: policy.Strings{roleARN(i)}}, Action: policy.Strings{"s3:ReplicateObject", "s3:ReplicateTags"},
			Resource: policy.Strings{"arn:aws:s3:::" + bucket + "/AWSLogs/" + account(i) + "/*"}})
	}
	return d
}

// perAccountResources is the large grant with each account's own folder as a
// resource instead of the ${aws:PrincipalAccount} variable: the other way to
// keep a source out of the other accounts' folders.
func perAccountResources(n int) *policy.Document {
	d := trailkeeper(setup.LargeReplicationGrant)(n)
	g := &d.Statements[1]
	g.Resource = nil
	for i := range n {
		g.Resource = append(g.Resource, "arn:aws:s3:::"+bucket+"/AWSLogs/"+account(i)+"/*")
	}
	return d
}

func trailkeeper(grant func(bucket string, accounts, roles, prefixes []string) policy.Statement) func(int) *policy.Document {
	return func(n int) *policy.Document {
		var accounts []string
		for i := range n {
			accounts = append(accounts, account(i))
		}
		return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{setup.DenyInsecure(bucket),
			grant(bucket, accounts, []string{setup.SharedRolePattern("trailkeeper-replication")}, []string{"AWSLogs/"})}}
	}
}

// size is what S3 counts: the policy as it stores it (account ids as root ARNs).
func size(d *policy.Document) int { return setup.StoredSize(d) }

// fit is the largest n whose document fits the limit.
func fit(build func(int) *policy.Document) int {
	n := 0
	for size(build(n+1)) <= setup.PolicyLimit {
		n++
	}
	return n
}

func main() {
	layouts := []struct {
		name  string
		build func(int) *policy.Document
	}{
		{"seed (role ARNs in two shared statements)", seed},
		{"one statement per account", perAccount},
		{"trailkeeper, small form (account principals, role name condition)", trailkeeper(setup.ReplicationGrant)},
		{"trailkeeper, large form (aws:PrincipalAccount, role name condition)", trailkeeper(setup.LargeReplicationGrant)},
		{"large form with each account's folder as a resource instead of ${aws:PrincipalAccount}", perAccountResources},
	}
	fmt.Println("| layout | bytes for 1 account | bytes per added account | accounts that fit in 20,480 bytes |")
	fmt.Println("|---|---|---|---|")
	for _, l := range layouts {
		one, hundred := size(l.build(1)), size(l.build(101))
		fmt.Printf("| %s | %d | %.1f | %d |\n", l.name, one, float64(hundred-one)/100, fit(l.build))
	}
	// The archive's event bus (watch:) takes the sources by its policy, which
	// EventBridge limits to 10,240 characters by default (adjustable).
	c := &config.Config{Archive: config.Archive{AccountID: "999999999999", Region: "ap-northeast-1"}}
	n := 0
	for setup.BusPolicySize(c, n+1) <= setup.BusPolicyLimit {
		n++
	}
	fmt.Printf("\nwatch's event bus policy: %d characters for 1 account, %d for 100, %d for 1,000; %d accounts fit EventBridge's default %d\n",
		setup.BusPolicySize(c, 1), setup.BusPolicySize(c, 100), setup.BusPolicySize(c, 1000), n, setup.BusPolicyLimit)
	if fit(trailkeeper(setup.LargeReplicationGrant)) < 1000 {
		fmt.Fprintln(os.Stderr, "goal missed: fewer than 1,000 accounts fit")
		os.Exit(1)
	}
}
