package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// The JSON 1.1 protocol (awsJson1_1), shared by CloudTrail, Glue, Athena and
// EventBridge: a POST whose X-Amz-Target names the operation, a JSON body,
// a JSON answer, and errors as {"__type": Code, "message": ...} (http.go).

type jsonHandler func(c *call, in map[string]any) (any, error)

// jsonService is one service on the protocol.
type jsonService struct {
	name string // the IAM prefix of its actions, and its name in messages
	// target is the X-Amz-Target prefix before the operation's name; the
	// AWS CLI may send a longer namespace in front of it.
	target   string
	handlers map[string]jsonHandler
	// selfLocked: the handlers take s.mu themselves (CloudTrail's deliver
	// while they hold it); otherwise the core holds it around each call.
	selfLocked bool
	// denied is the service's answer to a caller IAM does not allow.
	denied func(format string, a ...any) error
	// errors are the error codes its API reference lists that the sandbox
	// answers with; an answer with another is the sandbox's mistake.
	errors []string
}

// jsonCommonErrors are the protocol's own, any service's.
var jsonCommonErrors = []string{"AccessDeniedException", "UnknownOperationException", "SerializationException",
	"MissingAuthenticationTokenException", "ThrottlingException", "InternalFailure", "AccessDenied"}

func (s *Sandbox) newJSONServices() map[string]*jsonService {
	deniedException := func(format string, a ...any) error { return errorf(400, "AccessDeniedException", format, a...) }
	return map[string]*jsonService{
		"cloudtrail": {name: "cloudtrail", target: "CloudTrail_20131101", handlers: s.cloudtrailActions(), selfLocked: true,
			denied: func(format string, a ...any) error { return accessDenied(format, a...) },
			errors: []string{"TrailNotFoundException", "TrailAlreadyExistsException", "KmsKeyNotFoundException", "InvalidTrailNameException",
				"InvalidTimeRangeException", "InvalidParameterCombinationException", "InvalidHomeRegionException",
				"S3BucketDoesNotExistException", "InsufficientS3BucketPolicyException"}},
		"glue": {name: "glue", target: "AWSGlue", handlers: s.glueActions(), denied: deniedException,
			errors: []string{"AlreadyExistsException", "EntityNotFoundException", "InvalidInputException"}},
		"athena": {name: "athena", target: "AmazonAthena", handlers: s.athenaActions(), denied: deniedException,
			errors: []string{"InvalidRequestException"}},
		"events": {name: "events", target: "AWSEvents", handlers: s.eventsActions(), denied: deniedException,
			errors: []string{"ValidationException", "ResourceNotFoundException", "ResourceAlreadyExistsException", "PolicyLengthExceededException",
				"NotAuthorizedForSourceException", "MalformedPolicyDocumentException", "LimitExceededException", "InvalidEventPatternException",
				"InvalidArgument", "MalformedDetail"}}, // the last two as PutEvents' entry codes
	}
}

// serveJSON answers a JSON 1.1 request of svc.
func (s *Sandbox) serveJSON(c *call, svc *jsonService) error {
	target := c.r.Header.Get("X-Amz-Target")
	_, op, ok := strings.Cut(target, svc.target+".")
	if !ok || op == "" {
		return errorf(400, "UnknownOperationException", "Unknown operation %s", target)
	}
	c.action = op
	if c.caller.Account == "" {
		return errorf(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	h, ok := svc.handlers[op]
	if !ok {
		return errorf(400, "UnknownOperationException", "The sandbox does not emulate %s %s", svc.name, op)
	}
	body, err := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
	if err != nil {
		return errorf(400, "SerializationException", "%v", err)
	}
	in := map[string]any{}
	if len(body) > 0 && json.Unmarshal(body, &in) != nil {
		return errorf(400, "SerializationException", "Start of structure or map found where not expected")
	}
	c.params = recordedParams(in)
	c.readOnly = strings.HasPrefix(op, "Get") || strings.HasPrefix(op, "List") || strings.HasPrefix(op, "Describe") || strings.HasPrefix(op, "BatchGet")
	if !c.caller.root() {
		s.mu.Lock()
		req := policy.Request{Caller: c.caller.policyCaller(), Action: svc.name + ":" + op, Resource: "*", Context: c.requestContext(nil)}
		d := s.identityDecision(c.caller, req)
		s.mu.Unlock()
		if d != policy.Allowed {
			return svc.denied("User: %s is not authorized to perform: %s:%s", c.caller.display(), svc.name, op)
		}
	}
	var out any
	if svc.selfLocked {
		out, err = h(c, in)
	} else {
		s.mu.Lock()
		out, err = h(c, in)
		if err == nil && !c.readOnly {
			s.changed()
		}
		s.mu.Unlock()
	}
	if err != nil {
		return svc.declared(err)
	}
	c.w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	data, _ := json.Marshal(out)
	c.w.Write(data)
	return nil
}

// declared passes an error the service declares; another is answered as
// the sandbox's own failure, so that a test sees it.
func (svc *jsonService) declared(err error) error {
	var ae *awsError
	if !errors.As(err, &ae) || slices.Contains(svc.errors, ae.Code) || slices.Contains(jsonCommonErrors, ae.Code) {
		return err
	}
	return errorf(500, "InternalFailure", "the sandbox answered %s with %s, which %s does not declare: %s", svc.name, ae.Code, svc.name, ae.Message)
}
