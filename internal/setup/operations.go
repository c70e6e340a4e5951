package setup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	athenatypes "github.com/aws/aws-sdk-go-v2/service/athena/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// Op is what a step writes, as data: a kind and its arguments, the
// documents to write among them. The plan holds no code: Apply runs each
// step's Op through the applier registered for its kind, in the step's
// account, and a saved plan holds the same Ops.
type Op struct {
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args,omitempty"`
}

// opOf makes an Op; args is any JSON value the kind's applier reads.
func opOf(kind string, args any) Op {
	if _, ok := appliers[kind]; !ok {
		panic("setup: no applier for operation " + kind) // a planner's typo, caught by every test that plans it
	}
	data, err := json.Marshal(args)
	if err != nil {
		panic(fmt.Sprintf("setup: operation %s: %v", kind, err))
	}
	return Op{Kind: kind, Args: data}
}

// execution is where a step runs: the clients, and the plan that hears
// notes and waits.
type execution struct {
	e    *Env
	plan *Plan
	acct string
}

// clients are the step's account's: a source's, else the archive's; the
// archive's where the operation writes the archive's resources (the archive
// account may be a source too, with other credentials).
func (x execution) clients(archive bool) *awsapi.Clients {
	if cl := x.e.Sources[x.acct]; cl != nil && !archive {
		return cl
	}
	return x.e.Archive
}

func (x execution) archive() archiveOps {
	return archiveOps{cl: x.e.Archive, c: x.e.Config, note: x.plan.note, waiting: x.plan.waiting}
}

func (x execution) source(t Trail) sourceOps {
	return sourceOps{cl: x.clients(false), c: x.e.Config, account: x.acct, trail: t}
}

func (x execution) roles(archive bool) roleOps { return roleOps{x.clients(archive), x.acct} }

type applier func(ctx context.Context, x execution, args json.RawMessage) error

// with decodes an operation's arguments for fn.
func with[T any](fn func(ctx context.Context, x execution, a T) error) applier {
	return func(ctx context.Context, x execution, raw json.RawMessage) error {
		var a T
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &a); err != nil {
				return fmt.Errorf("account %s: the operation's arguments: %w", x.acct, err)
			}
		}
		return fn(ctx, x, a)
	}
}

// Documents travel as their JSON text, read back with the kind of policy
// they are.
func docText(d *policy.Document) string {
	if d == nil {
		return ""
	}
	return *policyJSON(d)
}

func docOf(text string, kind policy.Kind) (*policy.Document, error) {
	if text == "" {
		return nil, nil
	}
	return decodePolicy(text, kind)
}

// The arguments of the operations.
type (
	none          struct{}
	bucketArgs    struct{ Bucket string }
	trailArgs     struct{ Trail Trail }
	replicateArgs struct {
		Trail  Trail
		Config *s3types.ReplicationConfiguration
	}
	roleArgs struct {
		Name, Description string
		Trust, Policy     string // JSON
		HasPolicy         bool
		Archive           bool // a role of the archive's (the watch function's), not a source's
	}
	policyArgs struct{ Planned, Want string } // the archive policy as planned and as it should be
	wiringArgs struct {
		Trail Trail
		Want  *s3types.TopicConfiguration // nil: none of trailkeeper's
	}
	topicArgs struct {
		ARN, Region, Endpoint string
		Planned, Want         string // one-statement documents: the statement before and after
	}
	databaseArgs struct{ Name, Description string }
	tableArgs    struct {
		Database string
		Create   bool
		Table    *gluetypes.TableInput
	}
	workgroupArgs struct {
		Name, Description, Results string
		Create                     bool
	}
	namedQueryArgs struct {
		ID                                          *string // nil: a new query
		Name, Description, SQL, Database, Workgroup string
	}
	ruleArgs struct {
		Region, Bus, Name, Pattern string
		Target                     *ebtypes.Target
		Archive                    bool // a rule of the archive's (on its bus, or the schedule)
	}
	busPolicyArgs struct{ Region, Policy string }
	regionalArgs  struct{ Region, Name string } // a resource by name in a region of the archive
	topicStmtArgs struct{ ARN, Region, Statement string }
	functionArgs  struct {
		Update        bool
		Build, Config string
	}
	objectArgs struct {
		Key  string
		Body []byte
	}
	scheduleArgs      struct{ Target ebtypes.Target }
	retentionArgs     struct{ Short []ShortReplica }
	retentionJobsArgs struct {
		Jobs []retentionJob
		Poll time.Duration // how often a job is asked about, at most
	}
)

// statementText carries one statement as a document of one.
func statementText(s *policy.Statement) string {
	if s == nil {
		return ""
	}
	return docText(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{*s}})
}

func statementOf(text string) (*policy.Statement, error) {
	d, err := docOf(text, policy.Resource)
	if d == nil || err != nil {
		return nil, err
	}
	return &d.Statements[0], nil
}

// onArchive runs an archiveOps method that takes no arguments.
func onArchive(f func(archiveOps, context.Context) error) applier {
	return with(func(ctx context.Context, x execution, _ none) error { return f(x.archive(), ctx) })
}

// appliers are the operations a plan may hold, by kind.
var appliers = map[string]applier{
	"archive.createBucket":          onArchive(archiveOps.createBucket),
	"archive.enableVersioning":      onArchive(archiveOps.enableVersioning),
	"archive.setRetention":          onArchive(archiveOps.setRetention),
	"archive.blockPublic":           onArchive(archiveOps.blockPublic),
	"archive.enforceOwner":          onArchive(archiveOps.enforceOwner),
	"archive.createInventoryBucket": onArchive(archiveOps.createInventoryBucket),
	"archive.putInventoryStatement": onArchive(archiveOps.putInventoryStatement),
	"archive.putInventory":          onArchive(archiveOps.putInventory),
	"archive.deleteInventory":       onArchive(archiveOps.deleteInventory),
	"archive.putPolicy": with(func(ctx context.Context, x execution, a policyArgs) error {
		planned, err := docOf(a.Planned, policy.Resource)
		if err != nil {
			return err
		}
		want, err := docOf(a.Want, policy.Resource)
		if err != nil {
			return err
		}
		return x.archive().putPolicy(ctx, planned, want)
	}),
	"source.enableVersioning": with(func(ctx context.Context, x execution, a bucketArgs) error {
		return enableVersioning(ctx, x.clients(false), x.acct, a.Bucket)
	}),
	"source.enableValidation": with(func(ctx context.Context, x execution, a trailArgs) error {
		return x.source(a.Trail).enableValidation(ctx)
	}),
	"source.putReplication": with(func(ctx context.Context, x execution, a replicateArgs) error {
		return x.source(a.Trail).putReplication(ctx, a.Config)
	}),
	"source.deleteReplication": with(func(ctx context.Context, x execution, a trailArgs) error {
		return x.source(a.Trail).deleteReplication(ctx)
	}),
	"source.putWiring": with(func(ctx context.Context, x execution, a wiringArgs) error {
		return x.source(a.Trail).putWiring(ctx, a.Want)
	}),
	"role.create": with(func(ctx context.Context, x execution, a roleArgs) error {
		trust, pol, err := roleDocs(a)
		if err != nil {
			return err
		}
		return x.roles(a.Archive).createRole(ctx, a.Name, a.Description, trust, pol)
	}),
	"role.put": with(func(ctx context.Context, x execution, a roleArgs) error {
		trust, pol, err := roleDocs(a)
		if err != nil {
			return err
		}
		return x.roles(a.Archive).putRole(ctx, a.Name, trust, pol)
	}),
	"role.updateTrust": with(func(ctx context.Context, x execution, a roleArgs) error {
		trust, _, err := roleDocs(a)
		if err != nil {
			return err
		}
		return x.roles(a.Archive).updateTrust(ctx, a.Name, trust)
	}),
	"role.putPolicy": with(func(ctx context.Context, x execution, a roleArgs) error {
		_, pol, err := roleDocs(a)
		if err != nil {
			return err
		}
		return x.roles(a.Archive).putRolePolicy(ctx, a.Name, pol)
	}),
	"role.deletePolicy": with(func(ctx context.Context, x execution, a roleArgs) error {
		return x.roles(a.Archive).deleteRolePolicy(ctx, a.Name)
	}),
	"role.delete": with(func(ctx context.Context, x execution, a roleArgs) error {
		return x.roles(a.Archive).deleteRole(ctx, a.Name, a.HasPolicy)
	}),
	"topic.create": with(func(ctx context.Context, x execution, a topicArgs) error {
		return x.archive().createTopic(ctx, &Topic{ARN: a.ARN, Region: a.Region})
	}),
	"topic.subscribe": with(func(ctx context.Context, x execution, a topicArgs) error {
		return x.archive().subscribe(ctx, &Topic{ARN: a.ARN, Region: a.Region}, a.Endpoint)
	}),
	"topic.putS3Statement": with(func(ctx context.Context, x execution, a topicArgs) error {
		planned, err := statementOf(a.Planned)
		if err != nil {
			return err
		}
		want, err := statementOf(a.Want)
		if err != nil {
			return err
		}
		return x.archive().putTopicPolicy(ctx, &Topic{ARN: a.ARN, Region: a.Region}, planned, want)
	}),
	"topic.addStatement": with(func(ctx context.Context, x execution, a topicStmtArgs) error {
		stmt, err := statementOf(a.Statement)
		if err != nil {
			return err
		}
		return addTopicStatement(ctx, x.e.Archive.InRegion(a.Region).SNS, x.acct, a.ARN, a.Region, *stmt)
	}),
	"glue.createDatabase": with(func(ctx context.Context, x execution, a databaseArgs) error {
		_, err := x.e.Archive.Glue.CreateDatabase(ctx, &glue.CreateDatabaseInput{DatabaseInput: &gluetypes.DatabaseInput{Name: &a.Name, Description: &a.Description}})
		if awsapi.Code(err) == "AlreadyExistsException" {
			err = nil
		}
		return wrap(x.acct, "glue CreateDatabase "+a.Name, err)
	}),
	"glue.putTable": with(func(ctx context.Context, x execution, a tableArgs) error {
		var err error
		if a.Create {
			_, err = x.e.Archive.Glue.CreateTable(ctx, &glue.CreateTableInput{DatabaseName: &a.Database, TableInput: a.Table})
		} else {
			_, err = x.e.Archive.Glue.UpdateTable(ctx, &glue.UpdateTableInput{DatabaseName: &a.Database, TableInput: a.Table})
		}
		return wrap(x.acct, "glue table "+a.Database+"."+aws.ToString(a.Table.Name), err)
	}),
	"athena.putWorkgroup": with(func(ctx context.Context, x execution, a workgroupArgs) error {
		var err error
		if a.Create {
			_, err = x.e.Archive.Athena.CreateWorkGroup(ctx, &athena.CreateWorkGroupInput{Name: &a.Name, Description: &a.Description,
				Configuration: &athenatypes.WorkGroupConfiguration{ResultConfiguration: &athenatypes.ResultConfiguration{OutputLocation: &a.Results}}})
			return wrap(x.acct, "athena CreateWorkGroup "+a.Name, err)
		}
		_, err = x.e.Archive.Athena.UpdateWorkGroup(ctx, &athena.UpdateWorkGroupInput{WorkGroup: &a.Name, ConfigurationUpdates: &athenatypes.WorkGroupConfigurationUpdates{
			ResultConfigurationUpdates: &athenatypes.ResultConfigurationUpdates{OutputLocation: &a.Results}}})
		return wrap(x.acct, "athena UpdateWorkGroup "+a.Name, err)
	}),
	"athena.putNamedQuery": with(func(ctx context.Context, x execution, a namedQueryArgs) error {
		var err error
		if a.ID != nil {
			_, err = x.e.Archive.Athena.UpdateNamedQuery(ctx, &athena.UpdateNamedQueryInput{NamedQueryId: a.ID, Name: &a.Name, Description: &a.Description, QueryString: &a.SQL})
		} else {
			_, err = x.e.Archive.Athena.CreateNamedQuery(ctx, &athena.CreateNamedQueryInput{Name: &a.Name, Description: &a.Description, QueryString: &a.SQL,
				Database: &a.Database, WorkGroup: &a.Workgroup})
		}
		return wrap(x.acct, "athena named query "+a.Name, err)
	}),
	"events.putRule": with(func(ctx context.Context, x execution, a ruleArgs) error {
		return putRule(ctx, x.clients(a.Archive).InRegion(a.Region).Events, x.acct, a.Bus, a.Name, a.Pattern, *a.Target)
	}),
	"events.deleteRule": with(func(ctx context.Context, x execution, a ruleArgs) error {
		return deleteRule(ctx, x.clients(a.Archive).InRegion(a.Region).Events, x.acct, a.Bus, a.Name)
	}),
	"events.createBus": with(func(ctx context.Context, x execution, a regionalArgs) error {
		_, err := x.e.Archive.InRegion(a.Region).Events.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(a.Name)})
		if awsapi.Code(err) == "ResourceAlreadyExistsException" {
			err = nil
		}
		return wrap(x.acct, "events CreateEventBus "+a.Name, err)
	}),
	"events.putBusPolicy": with(func(ctx context.Context, x execution, a busPolicyArgs) error {
		_, err := x.e.Archive.InRegion(a.Region).Events.PutPermission(ctx, &eventbridge.PutPermissionInput{EventBusName: aws.String(WatchBusName), Policy: aws.String(a.Policy)})
		return wrap(x.acct, "events PutPermission "+WatchBusName, err)
	}),
	"lambda.deleteFunction": with(func(ctx context.Context, x execution, a regionalArgs) error {
		_, err := x.e.Archive.InRegion(a.Region).Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(a.Name)})
		return wrap(x.acct, "lambda DeleteFunction", err)
	}),
	"lambda.deployWatch": with(func(ctx context.Context, x execution, a functionArgs) error {
		return deployFunction(ctx, x.e, a.Update, a.Build, a.Config)
	}),
	"events.scheduleWatch": with(func(ctx context.Context, x execution, a scheduleArgs) error {
		return schedule(ctx, x.e.Archive.InRegion(x.e.Config.Archive.Region), x.acct, a.Target)
	}),
	"archive.putObject": with(func(ctx context.Context, x execution, a objectArgs) error {
		_, err := x.e.Archive.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &x.e.Config.Archive.Bucket, Key: &a.Key, Body: bytes.NewReader(a.Body)})
		return wrap(x.acct, "s3 PutObject "+a.Key, err)
	}),
	"archive.extendRetention": with(func(ctx context.Context, x execution, a retentionArgs) error {
		return extendRetention(ctx, x.e.Archive, x.e.Config, a.Short)
	}),
	"archive.extendRetentionByJobs": with(func(ctx context.Context, x execution, a retentionJobsArgs) error {
		return extendRetentionByJobs(ctx, x.e.Archive, x.e.Config, a.Jobs, a.Poll)
	}),
}

func roleDocs(a roleArgs) (trust, pol *policy.Document, err error) {
	if trust, err = docOf(a.Trust, policy.Trust); err != nil {
		return nil, nil, err
	}
	pol, err = docOf(a.Policy, policy.Identity)
	return trust, pol, err
}

// addTopicStatement adds a statement to a topic's policy as it is when
// written, keeping the rest.
func addTopicStatement(ctx context.Context, client *sns.Client, acct, arn, region string, stmt policy.Statement) error {
	cur, err := observeTopic(ctx, client, acct, arn, region)
	if err != nil {
		return err
	}
	doc := cur.Policy
	if doc == nil {
		doc = &policy.Document{Version: "2012-10-17"}
	}
	data, _ := json.Marshal(withStatements(doc, stmt))
	_, err = client.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &arn, AttributeName: aws.String("Policy"), AttributeValue: aws.String(string(data))})
	return wrap(acct, "sns SetTopicAttributes Policy "+arn, err)
}
