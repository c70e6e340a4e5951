package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// IAM Access Analyzer's CheckNoPublicAccess (REST-JSON, POST
// /policy/check-no-public-access), for resource type AWS::S3::Bucket: the
// sandbox answers from the same reading of "public" its Block Public Access
// enforces (s3public.go), FAIL with the statements that make it public.
func (s *Sandbox) serveAccessAnalyzer(c *call) error {
	if c.r.Method != http.MethodPost || c.r.URL.Path != "/policy/check-no-public-access" {
		return errorf(404, "ResourceNotFoundException", "The sandbox emulates only CheckNoPublicAccess of IAM Access Analyzer, not %s %s", c.r.Method, c.r.URL.Path)
	}
	c.action, c.readOnly = "CheckNoPublicAccess", true
	if c.caller.Account == "" {
		return errorf(403, "AccessDeniedException", "Missing Authentication Token")
	}
	if !c.caller.root() {
		s.mu.Lock()
		d := s.identityDecision(c.caller, policy.Request{Caller: c.caller.policyCaller(), Action: "access-analyzer:CheckNoPublicAccess", Resource: "*", Context: c.requestContext(nil)})
		s.mu.Unlock()
		if d != policy.Allowed {
			return errorf(403, "AccessDeniedException", "User: %s is not authorized to perform: access-analyzer:CheckNoPublicAccess", c.caller.display())
		}
	}
	var in struct {
		PolicyDocument string `json:"policyDocument"`
		ResourceType   string `json:"resourceType"`
	}
	body, _ := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
	if json.Unmarshal(body, &in) != nil || in.PolicyDocument == "" || in.ResourceType == "" {
		return errorf(400, "ValidationException", "policyDocument and resourceType are required")
	}
	if in.ResourceType != "AWS::S3::Bucket" {
		return errorf(400, "ValidationException", "The sandbox checks resource type AWS::S3::Bucket only, not %s", in.ResourceType)
	}
	doc, err := policy.Parse([]byte(in.PolicyDocument), policy.Resource)
	if err != nil {
		return errorf(400, "ValidationException", "Invalid policy document: %v", err)
	}
	out := map[string]any{"result": "PASS", "message": "The resource policy does not grant public access for the given resource type.", "reasons": []any{}}
	var reasons []any
	for i, st := range doc.Statements {
		if st.Effect == policy.Allow && publicStatement(st) {
			r := map[string]any{"description": fmt.Sprintf("Public access granted in the following statement with index: %d.", i), "statementIndex": i}
			if st.Sid != "" {
				r["statementId"] = st.Sid
			}
			reasons = append(reasons, r)
		}
	}
	if len(reasons) > 0 {
		out = map[string]any{"result": "FAIL", "message": "The resource policy grants public access for the given resource type.", "reasons": reasons}
	}
	c.w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(c.w).Encode(out)
}
