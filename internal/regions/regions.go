// Package regions lists the AWS commercial regions, so that a typo in a config or
// a request fails early, as on AWS, instead of silently meaning nothing.
package regions

var known = map[string]bool{
	"us-east-1": true, "us-east-2": true, "us-west-1": true, "us-west-2": true, "af-south-1": true,
	"ap-east-1": true, "ap-east-2": true, "ap-south-1": true, "ap-south-2": true, "ap-northeast-1": true, "ap-northeast-2": true,
	"ap-northeast-3": true, "ap-southeast-1": true, "ap-southeast-2": true, "ap-southeast-3": true,
	"ap-southeast-4": true, "ap-southeast-5": true, "ap-southeast-7": true, "ca-central-1": true, "ca-west-1": true,
	"eu-central-1": true, "eu-central-2": true, "eu-west-1": true, "eu-west-2": true, "eu-west-3": true,
	"eu-north-1": true, "eu-south-1": true, "eu-south-2": true, "il-central-1": true, "me-central-1": true,
	"me-south-1": true, "mx-central-1": true, "sa-east-1": true,
}

// Known reports whether name is an AWS region.
func Known(name string) bool { return known[name] }

// EnabledByDefault are the regions every account has without opting in (those
// launched before March 2019): a multi-region trail logs in these.
func EnabledByDefault() []string {
	return []string{"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
		"ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1",
		"us-east-1", "us-east-2", "us-west-1", "us-west-2"}
}
