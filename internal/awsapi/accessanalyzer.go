package awsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// PublicAccessCheck is IAM Access Analyzer's answer to CheckNoPublicAccess.
type PublicAccessCheck struct {
	Result  string `json:"result"` // PASS or FAIL
	Message string `json:"message"`
	Reasons []struct {
		Description    string `json:"description"`
		StatementIndex *int   `json:"statementIndex"`
		StatementID    string `json:"statementId"`
	} `json:"reasons"`
}

// CheckNoPublicAccess asks IAM Access Analyzer whether a resource policy
// grants public access (POST /policy/check-no-public-access). The SDK's
// accessanalyzer module is not available here, so the one call is made with
// the SDK's own SigV4 signer and the account's credentials; errors come back
// as smithy API errors, which Code and IsAccess read.
func (c *Clients) CheckNoPublicAccess(ctx context.Context, document, resourceType string) (*PublicAccessCheck, error) {
	endpoint := "https://access-analyzer." + c.Region + ".amazonaws.com"
	if c.cfg.BaseEndpoint != nil {
		endpoint = strings.TrimSuffix(*c.cfg.BaseEndpoint, "/")
	}
	body, _ := json.Marshal(map[string]string{"policyDocument": document, "resourceType": resourceType})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/policy/check-no-public-access", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "access-analyzer", c.Region, time.Now()); err != nil {
		return nil, err
	}
	client := c.cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		code := strings.SplitN(resp.Header.Get("X-Amzn-ErrorType"), ":", 2)[0]
		var e struct{ Message string }
		json.Unmarshal(data, &e)
		if code == "" {
			code = fmt.Sprintf("HTTP%d", resp.StatusCode)
		}
		return nil, &smithy.GenericAPIError{Code: code, Message: e.Message}
	}
	var out PublicAccessCheck
	if err := json.Unmarshal(data, &out); err != nil || (out.Result != "PASS" && out.Result != "FAIL") {
		return nil, fmt.Errorf("access-analyzer CheckNoPublicAccess: an answer that is neither PASS nor FAIL: %.200s", data)
	}
	return &out, nil
}
