package sandbox

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func (e *env) lambda(acct string) *lambda.Client { return lambda.NewFromConfig(e.cfg(acct)) }

// echoZip builds testdata/echofn as an OS-only runtime's bootstrap, zipped.
func echoZip(t *testing.T) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/echofn")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/echofn: %v\n%s", err, out)
	}
	data := must(os.ReadFile(bin)).OK(t)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	h.SetMode(0o755)
	w := must(zw.CreateHeader(h)).OK(t)
	w.Write(data)
	zw.Close()
	return buf.Bytes()
}

// A function runs as on Lambda: the real bootstrap, the Runtime API, the
// execution role's credentials, its environment; errors and timeouts are
// the function's errors. A scheduled rule invokes it only under its policy.
func TestLambdaRunsTheBootstrap(t *testing.T) {
	e := newEnv(t, Options{})
	code := echoZip(t)
	role := "fn"
	must(e.iam(archiveAcct).CreateRole(ctx, &iam.CreateRoleInput{RoleName: &role,
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})).OK(t)
	roleARN := "arn:aws:iam::" + archiveAcct + ":role/fn"
	l := e.lambda(archiveAcct)
	_, err := l.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("echo"), Runtime: lambdatypes.RuntimePython312, Role: &roleARN,
		Handler: aws.String("x"), Code: &lambdatypes.FunctionCode{ZipFile: code}})
	if errCode(err) != "InvalidParameterValueException" {
		t.Fatalf("a runtime the sandbox does not run: %v", err)
	}
	fn := must(l.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("echo"), Runtime: lambdatypes.RuntimeProvidedal2023, Role: &roleARN,
		Handler: aws.String("bootstrap"), Timeout: aws.Int32(2), Code: &lambdatypes.FunctionCode{ZipFile: code},
		Environment: &lambdatypes.Environment{Variables: map[string]string{"GREETING": "hello"}}})).OK(t)
	out := must(l.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{"n":1}`)})).OK(t)
	var got struct {
		Event               map[string]any
		RequestID, Function string
		Region, Greeting    string
		HasKeys             bool
	}
	json.Unmarshal(out.Payload, &got)
	if out.FunctionError != nil || got.Event["n"] != 1.0 || got.RequestID == "" || got.Function != "echo" || got.Region != region || got.Greeting != "hello" || !got.HasKeys {
		t.Fatalf("invoke: error %v, answer %s", aws.ToString(out.FunctionError), out.Payload)
	}
	out = must(l.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{"do":"fail"}`)})).OK(t)
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), "asked to fail") {
		t.Fatalf("a failing function: %v %s", aws.ToString(out.FunctionError), out.Payload)
	}
	out = must(l.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{"do":"sleep"}`)})).OK(t)
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), "Task timed out after 2.00 seconds") {
		t.Fatalf("a function past its timeout: %v %s", aws.ToString(out.FunctionError), out.Payload)
	}

	// A scheduled rule invokes it once its policy lets EventBridge.
	eb := e.events(archiveAcct)
	rule := must(eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("hourly"), ScheduleExpression: aws.String("rate(1 hour)")})).OK(t)
	must(eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("hourly"), Targets: []ebtypes.Target{{Id: aws.String("fn"), Arn: fn.FunctionArn}}})).OK(t)
	// The rule's failed invocations, read under the lock the scheduler takes.
	failed := func() int {
		e.sb.mu.Lock()
		defer e.sb.mu.Unlock()
		return e.sb.st.Buses[busKey(archiveAcct, region, "default")].Rules["hourly"].Failed
	}
	if err := e.sb.RunSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	if n := failed(); n != 1 {
		t.Fatalf("a function without a policy for EventBridge was invoked (%d failed invocations)", n)
	}
	must(l.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String("echo"), StatementId: aws.String("events"), Action: aws.String("lambda:InvokeFunction"),
		Principal: aws.String("events.amazonaws.com"), SourceArn: rule.RuleArn})).OK(t)
	if err := e.sb.RunSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	if n := failed(); n != 1 {
		t.Fatalf("the scheduled invocation failed: %d failed", n)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("bad"), ScheduleExpression: aws.String("rate(1 hours)")}); errCode(err) != "ValidationException" {
		t.Fatalf("rate(1 hours): %v", err)
	}
}
