package sandbox

import (
	"strings"
	"testing"
)

// laughs nests aliases 9 deep, 10 to a level: 10^9 nodes from 600 bytes.
var laughs = func() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		p := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(p+", ", 9) + p + "]\n")
	}
	b.WriteString("Resources:\n  R:\n    Type: AWS::S3::Bucket\n    Properties: {Tags: *a9}\n")
	return b.String()
}()

// Templates whose aliases form a cycle or expand exponentially are refused at
// once with CloudFormation's error, through the AWS CLI as a user meets them.
func TestTemplateAliasesAreBounded(t *testing.T) {
	e := newEnv(t, Options{})
	c := newCLI(t, e.url)
	for name, body := range map[string]string{
		"cycle":  "Resources: &r\n  A:\n    Type: AWS::S3::Bucket\n    Properties: *r\n",
		"laughs": laughs,
	} {
		_, err := c.run(sourceAcct, "cloudformation", "validate-template", "--template-body", body)
		if err == nil || !strings.Contains(err.Error(), "ValidationError") || !strings.Contains(err.Error(), "Template format error") {
			t.Errorf("%s: validate-template: %v", name, err)
		}
	}
	// Aliases within the bounds still work.
	c.ok(sourceAcct, "cloudformation", "validate-template", "--template-body", "Resources:\n  A: &x\n    Type: AWS::S3::Bucket\n  B: *x\n")
}
