package cli

import (
	"errors"

	"github.com/trailkeeper/trailkeeper/internal/archive"
	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/timerange"
)

// classify gives an error its exit code and hint: configuration errors exit 2,
// AWS access errors 3, states trailkeeper will not change on its own 1.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		if ce.Missing {
			return &exitError{code: ExitUsage, err: err, hint: "run 'trailkeeper init' to write one, or pass --config FILE"}
		}
		return &exitError{code: ExitUsage, err: err, hint: "fix the file and run the command again"}
	}
	var le *archive.LocationError
	if errors.As(err, &le) {
		return &exitError{code: ExitUsage, err: err, hint: le.Hint}
	}
	var te *timerange.Error
	if errors.As(err, &te) {
		return &exitError{code: ExitUsage, err: err, hint: te.Hint}
	}
	var errs setup.Errors
	if errors.As(err, &errs) {
		code, hints := ExitProblems, ""
		for _, e := range errs {
			c := classify(e).(*exitError)
			code = max(code, c.code)
			if c.hint != "" && hints == "" {
				hints = c.hint
			}
		}
		return &exitError{code: code, err: err, hint: hints}
	}
	if where := awsapi.Unreachable(err); where != "" {
		return &exitError{code: ExitAWS, err: err, hint: "nothing answers at " + where + ": check endpoint_url in the config or AWS_ENDPOINT_URL (is the sandbox running?), and the network"}
	}
	var ae *awsapi.AccessError
	if errors.As(err, &ae) {
		return &exitError{code: ExitAWS, err: err, hint: ae.Hint}
	}
	if awsapi.IsAccess(err) {
		return &exitError{code: ExitAWS, err: err, hint: "check credentials, permissions and the network"}
	}
	var conflict *setup.Conflict
	if errors.As(err, &conflict) {
		return &exitError{code: ExitProblems, err: err, hint: conflict.Hint}
	}
	return &exitError{code: ExitProblems, err: err}
}
