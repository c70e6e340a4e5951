package sandbox

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type stack struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Region       string            `json:"region"`
	Status       string            `json:"status"`
	Reason       string            `json:"reason,omitempty"`
	Created      time.Time         `json:"created"`
	Updated      time.Time         `json:"updated,omitzero"`
	Deleted      time.Time         `json:"deleted,omitzero"`
	Template     string            `json:"template"`
	Description  string            `json:"description,omitempty"`
	Params       map[string]string `json:"params"`
	Capabilities []string          `json:"capabilities,omitempty"`
	Resources    []stackResource   `json:"resources"`
	Outputs      []stackOutput     `json:"outputs,omitempty"`
	Events       []stackEvent      `json:"events"`
	Tags         []tag             `json:"tags,omitempty"`
}

type stackResource struct {
	Logical  string            `json:"logical"`
	Type     string            `json:"type"`
	Physical string            `json:"physical"`
	Status   string            `json:"status"`
	Attrs    map[string]string `json:"attrs"`
	Updated  time.Time         `json:"updated"`
}

type stackOutput struct {
	Key, Value, Description, Export string
}

type stackEvent struct {
	ID, Logical, Physical, Type, Status, Reason string
	Time                                        time.Time
}

func (s *Sandbox) cfnActions() map[string]queryHandler {
	return map[string]queryHandler{
		"CreateStack":            s.createStack,
		"UpdateStack":            s.updateStack,
		"DeleteStack":            s.deleteStack,
		"DescribeStacks":         s.describeStacks,
		"DescribeStackEvents":    s.describeStackEvents,
		"DescribeStackResources": s.describeStackResources,
		"ListStackResources":     s.describeStackResources,
		"GetTemplate":            s.getTemplate,
		"ListExports":            s.listExports,
		"ValidateTemplate":       s.validateTemplate,
	}
}

var stackNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,127}$`) })

func cfnError(format string, a ...any) error { return errorf(400, "ValidationError", format, a...) }

// findStack finds a live stack by name, or any stack by id. Callers hold s.mu.
func (s *Sandbox) findStack(c *call, name string) *stack {
	for _, st := range s.st.account(c.caller.Account).Stacks {
		if st.ID == name || (st.Name == name && st.Region == c.region && st.Status != "DELETE_COMPLETE") {
			return st
		}
	}
	return nil
}

func (s *Sandbox) exports(acct, region string) map[string]string {
	out := map[string]string{}
	for k, v := range s.st.account(acct).Exports {
		if r, name, _ := strings.Cut(k, "|"); r == region {
			out[name] = v
		}
	}
	return out
}

func (st *stack) event(logical, physical, typ, status, reason string) {
	st.Events = append(st.Events, stackEvent{ID: newUUID(), Logical: logical, Physical: physical, Type: typ, Status: status, Reason: reason, Time: time.Now().UTC()})
}

// stackInput validates template, parameters and capabilities of a create or update.
func (s *Sandbox) stackInput(c *call, p url.Values, prev *stack) (*template, map[string]string, error) {
	body := p.Get("TemplateBody")
	if body == "" && prev != nil && p.Get("UsePreviousTemplate") == "true" {
		body = prev.Template
	}
	if body == "" {
		if p.Get("TemplateURL") != "" {
			return nil, nil, cfnError("TemplateURL is not supported by the sandbox; pass TemplateBody")
		}
		return nil, nil, cfnError("Either Template URL or Template Body must be specified.")
	}
	t, err := parseTemplate(body)
	if err != nil {
		return nil, nil, cfnError("%s", err.Error())
	}
	params := map[string]string{}
	for i := 1; ; i++ {
		k := p.Get(fmt.Sprintf("Parameters.member.%d.ParameterKey", i))
		if k == "" {
			break
		}
		if _, ok := t.Parameters[k]; !ok {
			return nil, nil, cfnError("Parameters: [%s] do not exist in the template", k)
		}
		v := p.Get(fmt.Sprintf("Parameters.member.%d.ParameterValue", i))
		if p.Get(fmt.Sprintf("Parameters.member.%d.UsePreviousValue", i)) == "true" && prev != nil {
			v = prev.Params[k]
		}
		params[k] = v
	}
	var missing []string
	for name, decl := range t.Parameters {
		v, given := params[name]
		if !given {
			def, ok := decl["Default"]
			if !ok {
				missing = append(missing, name)
				continue
			}
			v = fmt.Sprint(def)
			params[name] = v
		}
		if pat, ok := decl["AllowedPattern"].(string); ok {
			re, err := regexp.Compile("^(?:" + pat + ")$")
			if err != nil || !re.MatchString(v) {
				msg := fmt.Sprintf("Parameter '%s' must match pattern %s", name, pat)
				if cd, ok := decl["ConstraintDescription"].(string); ok {
					msg = fmt.Sprintf("Parameter '%s' failed to satisfy constraint: %s", name, cd)
				}
				return nil, nil, cfnError("%s", msg)
			}
		}
		if allowed, ok := decl["AllowedValues"].([]any); ok {
			found := false
			for _, a := range allowed {
				found = found || fmt.Sprint(a) == v
			}
			if !found {
				return nil, nil, cfnError("Parameter '%s' must be one of AllowedValues", name)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, nil, cfnError("Parameters: [%s] must have values", strings.Join(missing, ", "))
	}
	caps := map[string]bool{}
	for _, c := range members(p, "Capabilities") {
		caps[c] = true
	}
	need := ""
	for _, r := range t.Resources {
		typ, _ := r["Type"].(string)
		if !strings.HasPrefix(typ, "AWS::IAM::") {
			continue
		}
		props, _ := r["Properties"].(map[string]any)
		if _, named := props["RoleName"]; named || need == "CAPABILITY_NAMED_IAM" {
			need = "CAPABILITY_NAMED_IAM"
		} else if need == "" {
			need = "CAPABILITY_IAM"
		}
	}
	if need == "CAPABILITY_NAMED_IAM" && !caps[need] || need == "CAPABILITY_IAM" && !caps[need] && !caps["CAPABILITY_NAMED_IAM"] {
		return nil, nil, errorf(400, "InsufficientCapabilitiesException", "Requires capabilities : [%s]", need)
	}
	return t, params, nil
}

func (s *Sandbox) createStack(c *call, p url.Values) (any, error) {
	name := p.Get("StackName")
	if !stackNameRE().MatchString(name) {
		return nil, cfnError("1 validation error detected: Value '%s' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.iamAuthorize(c, "cloudformation:CreateStack", "*"); err != nil {
		return nil, err
	}
	if s.findStack(c, name) != nil {
		return nil, errorf(400, "AlreadyExistsException", "Stack [%s] already exists", name)
	}
	t, params, err := s.stackInput(c, p, nil)
	if err != nil {
		return nil, err
	}
	st := &stack{ID: fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/%s", c.region, c.caller.Account, name, newUUID()),
		Name: name, Region: c.region, Created: time.Now().UTC(), Template: p.Get("TemplateBody"), Params: params,
		Capabilities: members(p, "Capabilities"), Tags: queryTags(p)}
	s.st.account(c.caller.Account).Stacks[st.ID] = st
	s.changed()
	st.Status = "CREATE_IN_PROGRESS"
	st.event(name, st.ID, "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated")
	// Stacks are small here: converge before answering, so the first
	// `wait stack-create-complete` poll already sees the final status.
	if err := s.converge(c, st, t); err != nil {
		st.event(name, st.ID, "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: "+err.Error())
		if p.Get("DisableRollback") == "true" || p.Get("OnFailure") == "DO_NOTHING" {
			st.Status, st.Reason = "CREATE_FAILED", err.Error()
		} else {
			s.removeResources(c, st)
			st.Status, st.Reason = "ROLLBACK_COMPLETE", err.Error()
		}
		st.event(name, st.ID, "AWS::CloudFormation::Stack", st.Status, "")
	} else {
		st.Status = "CREATE_COMPLETE"
		st.event(name, st.ID, "AWS::CloudFormation::Stack", st.Status, "")
	}
	return struct{ StackId string }{st.ID}, nil
}

func (s *Sandbox) updateStack(c *call, p url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.iamAuthorize(c, "cloudformation:UpdateStack", "*"); err != nil {
		return nil, err
	}
	st := s.findStack(c, p.Get("StackName"))
	if st == nil || st.Status == "DELETE_COMPLETE" {
		return nil, cfnError("Stack [%s] does not exist", p.Get("StackName"))
	}
	if strings.HasSuffix(st.Status, "_IN_PROGRESS") || st.Status == "ROLLBACK_COMPLETE" || st.Status == "CREATE_FAILED" {
		return nil, cfnError("Stack:%s is in %s state and can not be updated.", st.ID, st.Status)
	}
	t, params, err := s.stackInput(c, p, st)
	if err != nil {
		return nil, err
	}
	body := p.Get("TemplateBody")
	if body == "" {
		body = st.Template
	}
	if body == st.Template && fmt.Sprint(params) == fmt.Sprint(st.Params) {
		return nil, cfnError("No updates are to be performed.")
	}
	before := append([]stackResource(nil), st.Resources...)
	oldTemplate, oldParams := st.Template, st.Params
	st.Template, st.Params, st.Updated, st.Status = body, params, time.Now().UTC(), "UPDATE_IN_PROGRESS"
	st.event(st.Name, st.ID, "AWS::CloudFormation::Stack", "UPDATE_IN_PROGRESS", "User Initiated")
	if err := s.converge(c, st, t); err != nil {
		st.event(st.Name, st.ID, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_IN_PROGRESS", err.Error())
		old, _ := parseTemplate(oldTemplate)
		st.Template, st.Params = oldTemplate, oldParams
		if old != nil {
			s.converge(c, st, old)
		}
		st.Resources, st.Status, st.Reason = before, "UPDATE_ROLLBACK_COMPLETE", err.Error()
	} else {
		st.Status = "UPDATE_COMPLETE"
	}
	st.event(st.Name, st.ID, "AWS::CloudFormation::Stack", st.Status, "")
	s.changed()
	return struct{ StackId string }{st.ID}, nil
}

// converge creates or updates the template's resources in dependency order and
// deletes the stack's resources the template no longer has.
func (s *Sandbox) converge(c *call, st *stack, t *template) error {
	order, err := creationOrder(t)
	if err != nil {
		return err
	}
	r := &resolver{params: st.Params, physical: map[string]string{}, attrs: map[string]map[string]string{},
		exports: s.exports(c.caller.Account, st.Region), pseudo: map[string]string{
			"AWS::AccountId": c.caller.Account, "AWS::Region": st.Region, "AWS::StackName": st.Name, "AWS::StackId": st.ID,
			"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}}
	existing := map[string]*stackResource{}
	for i := range st.Resources {
		existing[st.Resources[i].Logical] = &st.Resources[i]
	}
	var next []stackResource
	for _, logical := range order {
		def := t.Resources[logical]
		typ := def["Type"].(string)
		props, err := r.resolve(def["Properties"])
		if err != nil {
			return err
		}
		pm, _ := props.(map[string]any)
		if pm == nil {
			pm = map[string]any{}
		}
		old := existing[logical]
		if old != nil && old.Type != typ {
			s.deleteResource(c, old)
			old = nil
		}
		status := "CREATE"
		if old != nil {
			status = "UPDATE"
		}
		st.event(logical, "", typ, status+"_IN_PROGRESS", "")
		res, err := s.applyResource(c, st, logical, typ, pm, old)
		if err != nil {
			st.event(logical, "", typ, status+"_FAILED", err.Error())
			st.Resources = append(next, values(existing)...) // what stands now, for the rollback
			return fmt.Errorf("[%s] %v", logical, err)
		}
		st.event(logical, res.Physical, typ, status+"_COMPLETE", "")
		r.physical[logical], r.attrs[logical] = res.Physical, res.Attrs
		next = append(next, *res)
		delete(existing, logical)
	}
	for _, old := range existing {
		s.deleteResource(c, old)
		st.event(old.Logical, old.Physical, old.Type, "DELETE_COMPLETE", "")
	}
	st.Resources = next
	acct := s.st.account(c.caller.Account)
	for _, o := range st.Outputs {
		if o.Export != "" {
			delete(acct.Exports, st.Region+"|"+o.Export)
		}
	}
	st.Outputs = nil
	keys := make([]string, 0, len(t.Outputs))
	for k := range t.Outputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o := t.Outputs[k]
		v, err := r.resolve(o["Value"])
		if err != nil {
			return err
		}
		out := stackOutput{Key: k, Value: fmt.Sprint(v)}
		out.Description, _ = o["Description"].(string)
		if exp, ok := o["Export"].(map[string]any); ok {
			n, err := r.resolve(exp["Name"])
			if err != nil {
				return err
			}
			out.Export = fmt.Sprint(n)
			if _, taken := acct.Exports[st.Region+"|"+out.Export]; taken {
				return fmt.Errorf("Export with name %s is already exported by another stack", out.Export)
			}
			acct.Exports[st.Region+"|"+out.Export] = out.Value
		}
		st.Outputs = append(st.Outputs, out)
	}
	return nil
}

func values(existing map[string]*stackResource) []stackResource {
	var out []stackResource
	for _, r := range existing {
		out = append(out, *r)
	}
	return out
}

// applyResource creates or updates one resource. Callers hold s.mu.
func (s *Sandbox) applyResource(c *call, st *stack, logical, typ string, p map[string]any, old *stackResource) (*stackResource, error) {
	acct := s.st.account(c.caller.Account)
	res := &stackResource{Logical: logical, Type: typ, Status: "CREATE_COMPLETE", Attrs: map[string]string{}, Updated: time.Now().UTC()}
	if old != nil {
		res.Status = "UPDATE_COMPLETE"
	}
	switch typ {
	case "AWS::IAM::Role":
		name, _ := p["RoleName"].(string)
		if name == "" {
			if old != nil {
				name = old.Physical
			} else {
				name = fmt.Sprintf("%s-%s-%s", st.Name, logical, randomID("", 12))
				if len(name) > 64 {
					name = name[len(name)-64:]
				}
			}
		}
		trust, err := jsonDoc(p["AssumeRolePolicyDocument"])
		if err != nil {
			return nil, err
		}
		r := acct.Roles[name]
		if old == nil || old.Physical != name || r == nil {
			path, _ := p["Path"].(string)
			desc, _ := p["Description"].(string)
			r, err = s.newRole(c.caller.Account, name, path, trust, desc, cfnTags(p["Tags"]))
			if err != nil {
				return nil, fmt.Errorf("%s", err.(*awsError).Message)
			}
			acct.Roles[name] = r
			if old != nil {
				s.deleteResource(c, old)
			}
		} else {
			if err := s.validateTrust(trust); err != nil {
				return nil, fmt.Errorf("%s", err.(*awsError).Message)
			}
			r.Trust = trust
		}
		inline := map[string]string{}
		list, _ := p["Policies"].([]any)
		for _, e := range list {
			m, _ := e.(map[string]any)
			pn, _ := m["PolicyName"].(string)
			doc, err := jsonDoc(m["PolicyDocument"])
			if err != nil || pn == "" {
				return nil, fmt.Errorf("Policies need PolicyName and PolicyDocument")
			}
			if err := validateIdentityPolicy(doc); err != nil {
				return nil, err
			}
			inline[pn] = doc
		}
		r.Inline = inline
		res.Physical = name
		res.Attrs = map[string]string{"Arn": roleARN(c.caller.Account, r), "RoleId": r.ID}
	case "AWS::S3::Bucket":
		name, _ := p["BucketName"].(string)
		if name == "" {
			if old != nil {
				name = old.Physical
			} else {
				name = strings.ToLower(fmt.Sprintf("%s-%s-%s", st.Name, logical, randomID("", 12)))
			}
		}
		b := s.st.Buckets[name]
		if b == nil {
			if s.st.Buckets[name] != nil || !bucketNameRE().MatchString(name) {
				return nil, fmt.Errorf("%s already exists or is not a valid bucket name", name)
			}
			b = &bucket{Name: name, Owner: c.caller.Account, Region: st.Region, Created: time.Now().UTC(), Ownership: "BucketOwnerEnforced",
				PAB: &publicAccessBlock{true, true, true, true}, Objects: map[string][]*version{}, Uploads: map[string]*upload{}}
			s.st.Buckets[name] = b
		} else if b.Owner != c.caller.Account || old == nil || old.Physical != name {
			return nil, fmt.Errorf("%s already exists", name)
		}
		if v, ok := p["VersioningConfiguration"].(map[string]any); ok {
			b.Versioning, _ = v["Status"].(string)
		}
		if enabled, _ := p["ObjectLockEnabled"].(bool); enabled || fmt.Sprint(p["ObjectLockEnabled"]) == "true" {
			b.ObjectLock, b.Versioning = true, "Enabled"
		}
		if lc, ok := p["ObjectLockConfiguration"].(map[string]any); ok {
			if rule, ok := lc["Rule"].(map[string]any); ok {
				dr, _ := rule["DefaultRetention"].(map[string]any)
				mode, _ := dr["Mode"].(string)
				days, _ := strconv.Atoi(fmt.Sprint(dr["Days"]))
				years, _ := strconv.Atoi(fmt.Sprint(dr["Years"]))
				if (mode != "GOVERNANCE" && mode != "COMPLIANCE") || (days > 0) == (years > 0) || !b.ObjectLock {
					return nil, fmt.Errorf("invalid ObjectLockConfiguration")
				}
				b.LockRule = &lockRule{Mode: mode, Days: days, Years: years}
			}
		}
		if pab, ok := p["PublicAccessBlockConfiguration"].(map[string]any); ok {
			t := func(k string) bool { return fmt.Sprint(pab[k]) == "true" }
			b.PAB = &publicAccessBlock{t("BlockPublicAcls"), t("IgnorePublicAcls"), t("BlockPublicPolicy"), t("RestrictPublicBuckets")}
		}
		res.Physical = name
		res.Attrs = map[string]string{"Arn": bucketARN(name), "DomainName": name + ".s3.amazonaws.com",
			"RegionalDomainName": name + ".s3." + st.Region + ".amazonaws.com"}
	case "AWS::S3::BucketPolicy":
		name, _ := p["Bucket"].(string)
		b := s.st.Buckets[name]
		if b == nil || b.Owner != c.caller.Account {
			return nil, fmt.Errorf("The specified bucket does not exist")
		}
		doc, err := jsonDoc(p["PolicyDocument"])
		if err != nil {
			return nil, err
		}
		stored, parsed, err := s.validateBucketPolicy(b, []byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s", err.(*awsError).Message)
		}
		b.Policy, b.policyDoc = stored, parsed
		res.Physical = name
	default:
		return nil, fmt.Errorf("Template format error: Unrecognized resource types: [%s] (the sandbox emulates AWS::IAM::Role, AWS::S3::Bucket, AWS::S3::BucketPolicy)", typ)
	}
	return res, nil
}

func validateIdentityPolicy(doc string) error {
	if _, err := parsePolicyIdentity(doc); err != nil {
		return fmt.Errorf("Syntax errors in policy. %v", err)
	}
	return nil
}

func cfnTags(v any) []tag {
	var out []tag
	list, _ := v.([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		k, _ := m["Key"].(string)
		val, _ := m["Value"].(string)
		if k != "" {
			out = append(out, tag{k, val})
		}
	}
	return out
}

// jsonDoc turns a policy given as a template object (or JSON string) into JSON.
func jsonDoc(v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	if v == nil {
		return "", fmt.Errorf("missing policy document")
	}
	data, err := json.Marshal(v)
	return string(data), err
}

func (s *Sandbox) deleteResource(c *call, r *stackResource) error {
	acct := s.st.account(c.caller.Account)
	switch r.Type {
	case "AWS::IAM::Role":
		delete(acct.Roles, r.Physical)
	case "AWS::S3::Bucket":
		if b := s.st.Buckets[r.Physical]; b != nil {
			if len(b.Objects) > 0 {
				return fmt.Errorf("The bucket you tried to delete is not empty")
			}
			delete(s.st.Buckets, r.Physical)
		}
	case "AWS::S3::BucketPolicy":
		if b := s.st.Buckets[r.Physical]; b != nil {
			b.Policy, b.policyDoc = "", nil
		}
	}
	return nil
}

// removeResources deletes a stack's resources in reverse creation order and
// reports the first that could not go.
func (s *Sandbox) removeResources(c *call, st *stack) error {
	var firstErr error
	var kept []stackResource
	for i := len(st.Resources) - 1; i >= 0; i-- {
		r := st.Resources[i]
		if err := s.deleteResource(c, &r); err != nil {
			st.event(r.Logical, r.Physical, r.Type, "DELETE_FAILED", err.Error())
			kept = append(kept, r)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		st.event(r.Logical, r.Physical, r.Type, "DELETE_COMPLETE", "")
	}
	st.Resources = kept
	acct := s.st.account(c.caller.Account)
	for _, o := range st.Outputs {
		if o.Export != "" {
			delete(acct.Exports, st.Region+"|"+o.Export)
		}
	}
	return firstErr
}

func (s *Sandbox) deleteStack(c *call, p url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.iamAuthorize(c, "cloudformation:DeleteStack", "*"); err != nil {
		return nil, err
	}
	st := s.findStack(c, p.Get("StackName"))
	if st == nil || st.Status == "DELETE_COMPLETE" {
		return nil, nil // deleting a stack that does not exist succeeds
	}
	st.Status = "DELETE_IN_PROGRESS"
	st.event(st.Name, st.ID, "AWS::CloudFormation::Stack", st.Status, "User Initiated")
	if err := s.removeResources(c, st); err != nil {
		st.Status, st.Reason = "DELETE_FAILED", err.Error()
	} else {
		st.Status, st.Deleted, st.Outputs = "DELETE_COMPLETE", time.Now().UTC(), nil
	}
	st.event(st.Name, st.ID, "AWS::CloudFormation::Stack", st.Status, "")
	s.changed()
	return nil, nil
}

type stackXML struct {
	StackId           string
	StackName         string
	Description       string `xml:",omitempty"`
	CreationTime      string
	LastUpdatedTime   string `xml:",omitempty"`
	DeletionTime      string `xml:",omitempty"`
	StackStatus       string
	StackStatusReason string                                          `xml:",omitempty"`
	Capabilities      []string                                        `xml:"Capabilities>member,omitempty"`
	Parameters        []struct{ ParameterKey, ParameterValue string } `xml:"Parameters>member,omitempty"`
	Outputs           []outputXML                                     `xml:"Outputs>member,omitempty"`
	Tags              []tagXML                                        `xml:"Tags>member,omitempty"`
	DisableRollback   bool
}

type outputXML struct {
	OutputKey   string
	OutputValue string
	Description string `xml:",omitempty"`
	ExportName  string `xml:",omitempty"`
}

func (st *stack) xml() stackXML {
	x := stackXML{StackId: st.ID, StackName: st.Name, CreationTime: st.Created.Format(time.RFC3339), StackStatus: st.Status,
		StackStatusReason: st.Reason, Capabilities: st.Capabilities}
	if !st.Updated.IsZero() {
		x.LastUpdatedTime = st.Updated.Format(time.RFC3339)
	}
	if !st.Deleted.IsZero() {
		x.DeletionTime = st.Deleted.Format(time.RFC3339)
	}
	keys := make([]string, 0, len(st.Params))
	for k := range st.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.Parameters = append(x.Parameters, struct{ ParameterKey, ParameterValue string }{k, st.Params[k]})
	}
	for _, o := range st.Outputs {
		x.Outputs = append(x.Outputs, outputXML{o.Key, o.Value, o.Description, o.Export})
	}
	for _, t := range st.Tags {
		x.Tags = append(x.Tags, tagXML(t))
	}
	return x
}

func (s *Sandbox) describeStacks(c *call, p url.Values) (any, error) {
	c.readOnly = true
	s.mu.Lock()
	defer s.mu.Unlock()
	var out struct {
		Stacks []stackXML `xml:"Stacks>member"`
	}
	if name := p.Get("StackName"); name != "" {
		st := s.findStack(c, name)
		if st == nil {
			return nil, cfnError("Stack with id %s does not exist", name)
		}
		out.Stacks = append(out.Stacks, st.xml())
		return out, nil
	}
	var list []*stack
	for _, st := range s.st.account(c.caller.Account).Stacks {
		if st.Region == c.region && st.Status != "DELETE_COMPLETE" {
			list = append(list, st)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Created.After(list[j].Created) })
	for _, st := range list {
		out.Stacks = append(out.Stacks, st.xml())
	}
	return out, nil
}

func (s *Sandbox) describeStackEvents(c *call, p url.Values) (any, error) {
	c.readOnly = true
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.findStack(c, p.Get("StackName"))
	if st == nil {
		return nil, cfnError("Stack [%s] does not exist", p.Get("StackName"))
	}
	type ev struct {
		StackId, EventId, StackName, LogicalResourceId, PhysicalResourceId, ResourceType, Timestamp, ResourceStatus string
		ResourceStatusReason                                                                                        string `xml:",omitempty"`
	}
	var out struct {
		StackEvents []ev `xml:"StackEvents>member"`
	}
	for i := len(st.Events) - 1; i >= 0; i-- { // newest first, as CloudFormation answers
		e := st.Events[i]
		out.StackEvents = append(out.StackEvents, ev{st.ID, e.ID, st.Name, e.Logical, e.Physical, e.Type, e.Time.Format(time.RFC3339Nano), e.Status, e.Reason})
	}
	return out, nil
}

func (s *Sandbox) describeStackResources(c *call, p url.Values) (any, error) {
	c.readOnly = true
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.findStack(c, p.Get("StackName"))
	if phys := p.Get("PhysicalResourceId"); p.Get("StackName") == "" && phys != "" {
		// Without a stack name, CloudFormation finds the stack that owns a physical resource.
		st = s.stackOwning(c, phys)
		if st == nil {
			return nil, cfnError("Stack for %s does not exist", phys)
		}
	}
	if st == nil {
		return nil, cfnError("Stack with id %s does not exist", p.Get("StackName"))
	}
	type res struct {
		StackName, StackId, LogicalResourceId, PhysicalResourceId, ResourceType, Timestamp, LastUpdatedTimestamp, ResourceStatus string
	}
	var list []res
	for _, r := range st.Resources {
		t := r.Updated.Format(time.RFC3339)
		list = append(list, res{st.Name, st.ID, r.Logical, r.Physical, r.Type, t, t, r.Status})
	}
	if c.action == "ListStackResources" {
		return struct {
			StackResourceSummaries []res `xml:"StackResourceSummaries>member"`
		}{list}, nil
	}
	return struct {
		StackResources []res `xml:"StackResources>member"`
	}{list}, nil
}

func (s *Sandbox) stackOwning(c *call, physical string) *stack {
	for _, st := range s.st.account(c.caller.Account).Stacks {
		if st.Region != c.region || st.Status == "DELETE_COMPLETE" {
			continue
		}
		for _, r := range st.Resources {
			if r.Physical == physical {
				return st
			}
		}
	}
	return nil
}

func (s *Sandbox) getTemplate(c *call, p url.Values) (any, error) {
	c.readOnly = true
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.findStack(c, p.Get("StackName"))
	if st == nil {
		return nil, cfnError("Stack with id %s does not exist", p.Get("StackName"))
	}
	return struct{ TemplateBody string }{st.Template}, nil
}

func (s *Sandbox) listExports(c *call, p url.Values) (any, error) {
	c.readOnly = true
	s.mu.Lock()
	defer s.mu.Unlock()
	type exp struct{ ExportingStackId, Name, Value string }
	var out struct {
		Exports []exp `xml:"Exports>member"`
	}
	for _, st := range s.st.account(c.caller.Account).Stacks {
		for _, o := range st.Outputs {
			if o.Export != "" && st.Region == c.region {
				out.Exports = append(out.Exports, exp{st.ID, o.Export, o.Value})
			}
		}
	}
	sort.Slice(out.Exports, func(i, j int) bool { return out.Exports[i].Name < out.Exports[j].Name })
	return out, nil
}

func (s *Sandbox) validateTemplate(c *call, p url.Values) (any, error) {
	c.readOnly = true
	t, err := parseTemplate(p.Get("TemplateBody"))
	if err != nil {
		return nil, cfnError("%s", err.Error())
	}
	type param struct {
		ParameterKey string
		NoEcho       bool
	}
	var out struct {
		Parameters []param `xml:"Parameters>member"`
	}
	for k := range t.Parameters {
		out.Parameters = append(out.Parameters, param{ParameterKey: k})
	}
	sort.Slice(out.Parameters, func(i, j int) bool { return out.Parameters[i].ParameterKey < out.Parameters[j].ParameterKey })
	return out, nil
}
