// Command echofn is a Lambda function for the sandbox's tests, built as an
// OS-only runtime's bootstrap: it answers with what it was given and what
// Lambda told it, fails when asked to, and sleeps past its timeout when asked.
package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type answer struct {
	Event     map[string]any `json:"event"`
	RequestID string         `json:"requestId"`
	Function  string         `json:"function"`
	Region    string         `json:"region"`
	Greeting  string         `json:"greeting"`
	HasKeys   bool           `json:"hasKeys"`
}

func main() {
	lambda.Start(func(ctx context.Context, event map[string]any) (answer, error) {
		switch event["do"] {
		case "fail":
			return answer{}, errors.New("asked to fail")
		case "sleep":
			time.Sleep(time.Hour)
		}
		lc, _ := lambdacontext.FromContext(ctx)
		return answer{Event: event, RequestID: lc.AwsRequestID, Function: lambdacontext.FunctionName, Region: os.Getenv("AWS_REGION"),
			Greeting: os.Getenv("GREETING"), HasKeys: os.Getenv("AWS_SESSION_TOKEN") != ""}, nil
	})
}
