package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	athenatypes "github.com/aws/aws-sdk-go-v2/service/athena/types"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"

	athenaddl "github.com/trailkeeper/trailkeeper/internal/athena"
	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/regions"
)

// Catalog is what the archive account's Glue Data Catalog and Athena hold of
// trailkeeper's tables, when the config has athena:.
type Catalog struct {
	Databases map[string]bool
	Tables    map[string]*gluetypes.Table // "database.table"
	Workgroup *athenatypes.WorkGroup      // nil if absent
	Named     map[string]athenatypes.NamedQuery
}

// AthenaOptions are the tables the config asks for. With the observed
// sources, the accounts are grouped by their trails' key prefixes: a table
// per prefix, so that every source is queryable (athena.TableName); a source
// not observed counts as writing without one.
func AthenaOptions(c *config.Config, sources ...*SourceState) athenaddl.Options {
	o := athenaddl.Options{Bucket: c.Archive.Bucket, Database: c.Athena.Database, From: c.Athena.From, Parquet: c.Athena.Parquet, Regions: c.Athena.Regions}
	prefixOf := map[string]string{}
	for _, st := range sources {
		if st != nil {
			prefixOf[st.Config.AccountID] = strings.Trim(st.Trail.Prefix, "/")
		}
	}
	byPrefix := map[string][]string{}
	for _, s := range c.Sources {
		o.Accounts = append(o.Accounts, s.AccountID)
		byPrefix[prefixOf[s.AccountID]] = append(byPrefix[prefixOf[s.AccountID]], s.AccountID)
	}
	if len(byPrefix) > 1 || prefixOf[c.Sources[0].AccountID] != "" {
		for _, p := range slices.Sorted(maps.Keys(byPrefix)) {
			o.Groups = append(o.Groups, athenaddl.Group{Prefix: p, Accounts: byPrefix[p]})
		}
	}
	if len(o.Regions) == 0 {
		o.Regions = regions.EnabledByDefault()
	}
	return o
}

// observeCatalog reads the databases, tables, workgroup and named queries
// the config's athena: section names (nil without one).
func observeCatalog(ctx context.Context, c *config.Config, cl *awsapi.Clients, sources []*SourceState) (*Catalog, error) {
	if !c.Athena.Enabled {
		return nil, nil
	}
	acct := c.Archive.AccountID
	cat := &Catalog{Databases: map[string]bool{}, Tables: map[string]*gluetypes.Table{}, Named: map[string]athenatypes.NamedQuery{}}
	for _, t := range AthenaOptions(c, sources...).Tables() {
		if _, err := cl.Glue.GetDatabase(ctx, &glue.GetDatabaseInput{Name: &t.Database}); err == nil {
			cat.Databases[t.Database] = true
		} else if awsapi.Code(err) != "EntityNotFoundException" {
			return nil, wrap(acct, "glue GetDatabase "+t.Database, err)
		}
		if !cat.Databases[t.Database] {
			continue
		}
		out, err := cl.Glue.GetTable(ctx, &glue.GetTableInput{DatabaseName: &t.Database, Name: &t.Name})
		switch {
		case awsapi.Code(err) == "EntityNotFoundException":
		case err != nil:
			return nil, wrap(acct, "glue GetTable "+t.Database+"."+t.Name, err)
		default:
			cat.Tables[t.Database+"."+t.Name] = out.Table
		}
	}
	wg, err := cl.Athena.GetWorkGroup(ctx, &athena.GetWorkGroupInput{WorkGroup: &c.Athena.Workgroup})
	switch {
	case awsapi.Code(err) == "InvalidRequestException" && strings.Contains(awsapi.Message(err), "not found"):
		return cat, nil
	case err != nil:
		return nil, wrap(acct, "athena GetWorkGroup "+c.Athena.Workgroup, err)
	}
	cat.Workgroup = wg.WorkGroup
	var ids []string
	pages := athena.NewListNamedQueriesPaginator(cl.Athena, &athena.ListNamedQueriesInput{WorkGroup: &c.Athena.Workgroup})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, wrap(acct, "athena ListNamedQueries", err)
		}
		ids = append(ids, page.NamedQueryIds...)
	}
	for i := 0; i < len(ids); i += 50 {
		out, err := cl.Athena.BatchGetNamedQuery(ctx, &athena.BatchGetNamedQueryInput{NamedQueryIds: ids[i:min(i+50, len(ids))]})
		if err != nil {
			return nil, wrap(acct, "athena BatchGetNamedQuery", err)
		}
		for _, q := range out.NamedQueries {
			cat.Named[aws.ToString(q.Name)] = q
		}
	}
	return cat, nil
}

// tableInput is a table as Glue takes it.
func tableInput(t athenaddl.Table) *gluetypes.TableInput {
	serde, input, output := t.Formats()
	params := map[string]string{"EXTERNAL": "TRUE", "classification": "cloudtrail"}
	if t.Parquet {
		params["classification"] = "parquet"
	}
	for _, p := range t.Properties {
		params[p[0]] = p[1]
	}
	var cols, parts []gluetypes.Column
	for _, c := range t.Columns {
		cols = append(cols, gluetypes.Column{Name: aws.String(c[0]), Type: aws.String(strings.ToLower(c[1]))})
	}
	for _, p := range t.Partitions {
		parts = append(parts, gluetypes.Column{Name: aws.String(p), Type: aws.String("string")})
	}
	return &gluetypes.TableInput{Name: aws.String(t.Name), TableType: aws.String("EXTERNAL_TABLE"), Parameters: params, PartitionKeys: parts,
		StorageDescriptor: &gluetypes.StorageDescriptor{Columns: cols, Location: aws.String(t.Location), InputFormat: aws.String(input),
			OutputFormat: aws.String(output), SerdeInfo: &gluetypes.SerDeInfo{SerializationLibrary: aws.String(serde)}}}
}

// tableView is what trailkeeper sets of a table, to compare and diff.
func tableView(t *gluetypes.Table, want *gluetypes.TableInput) string {
	if t == nil {
		return ""
	}
	params := map[string]string{}
	for k := range want.Parameters {
		if v, ok := t.Parameters[k]; ok {
			params[k] = v
		}
	}
	sd := t.StorageDescriptor
	if sd == nil {
		sd = &gluetypes.StorageDescriptor{}
	}
	v := gluetypes.TableInput{Name: t.Name, TableType: t.TableType, Parameters: params, PartitionKeys: t.PartitionKeys,
		StorageDescriptor: &gluetypes.StorageDescriptor{Columns: sd.Columns, Location: sd.Location, InputFormat: sd.InputFormat, OutputFormat: sd.OutputFormat, SerdeInfo: sd.SerdeInfo}}
	return canonicalTable(&v)
}

func canonicalTable(t *gluetypes.TableInput) string {
	data, _ := json.Marshal(t)
	var tree any
	json.Unmarshal(data, &tree)
	out, _ := json.MarshalIndent(dropNulls(tree), "", "  ")
	return string(out)
}

// planCatalog keeps the Glue databases and tables, the workgroup and the
// named queries as the config asks: the projected accounts follow the
// sources. Nothing is deleted: a table or query trailkeeper no longer wants
// stays for its owner to drop.
func (p *Plan) planCatalog(e *Env, cat *Catalog, sources []*SourceState) {
	c := e.Config
	if !c.Athena.Enabled || cat == nil {
		return
	}
	a := c.Archive.AccountID
	before := len(p.Steps)
	o := AthenaOptions(c, sources...)
	if len(o.Groups) > 1 {
		p.note("athena: the sources write under %d key prefixes: a table each (%s), and the view events over them all, which trailkeeper athena prints to run (Glue holds tables, not Athena's views)",
			len(o.Groups), strings.Join(tableNames(o), ", "))
	}
	for _, t := range o.Tables() {
		if !cat.Databases[t.Database] {
			db := t.Database
			p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "glue database " + db, Action: "create", Summary: "for the Athena tables over the archive",
				Op: opOf("glue.createDatabase", databaseArgs{db, "trailkeeper: CloudTrail events of " + c.Archive.Bucket})})
		}
		want := tableInput(t)
		cur := cat.Tables[t.Database+"."+t.Name]
		if have := tableView(cur, want); have != canonicalTable(want) {
			db := t.Database
			p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "glue table " + db + "." + t.Name, Action: verb(cur == nil),
				Summary: fmt.Sprintf("events of %s, projected over %d accounts", t.Location, len(c.Sources)), Diff: diff(have, canonicalTable(want)),
				Op: opOf("glue.putTable", tableArgs{db, cur == nil, want})})
		}
	}
	wg := c.Athena.Workgroup
	results := c.Athena.Results
	switch {
	case cat.Workgroup == nil:
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "athena workgroup " + wg, Action: "create", Summary: "query results to " + results,
			Op: opOf("athena.putWorkgroup", workgroupArgs{Name: wg, Description: "trailkeeper: queries over " + c.Archive.Bucket, Results: results, Create: true})})
	case outputLocation(cat.Workgroup) != results:
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "athena workgroup " + wg, Action: "update",
			Summary: fmt.Sprintf("query results to %s (was %s)", results, outputLocation(cat.Workgroup)),
			Op:      opOf("athena.putWorkgroup", workgroupArgs{Name: wg, Results: results})})
	}
	for _, q := range athenaddl.Queries() {
		have, ok := cat.Named[q.Name]
		if ok && aws.ToString(have.QueryString) == q.SQL {
			continue
		}
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "athena named query " + q.Name, Action: verb(!ok), Summary: q.Description,
			Op: opOf("athena.putNamedQuery", namedQueryArgs{ID: namedQueryID(have, ok), Name: q.Name, Description: q.Description, SQL: q.SQL,
				Database: c.Athena.Database, Workgroup: wg})})
	}
	if len(p.Steps) > before {
		p.note("athena: the views errors and console_logins are Athena statements, not Glue tables: trailkeeper athena prints them to run")
	}
}

// namedQueryID is the id of a named query there is (ok), to update; nil to create one.
func namedQueryID(q athenatypes.NamedQuery, ok bool) *string {
	if !ok {
		return nil
	}
	return q.NamedQueryId
}

func outputLocation(w *athenatypes.WorkGroup) string {
	if w.Configuration == nil || w.Configuration.ResultConfiguration == nil {
		return ""
	}
	return aws.ToString(w.Configuration.ResultConfiguration.OutputLocation)
}

func tableNames(o athenaddl.Options) []string {
	var out []string
	for _, t := range o.Tables() {
		if !t.Parquet {
			out = append(out, t.Database+"."+t.Name)
		}
	}
	return out
}

// Covers says whether one of the catalog's tables projects the account's
// log files: its location template is the trail's [prefix/]AWSLogs/ folder
// and the account is among its projected accounts.
func (cat *Catalog) Covers(bucket string, t Trail, account string) bool {
	folder := "s3://" + path.Join(bucket, strings.Trim(t.Prefix, "/"), "AWSLogs") + "/${account}/"
	for _, tb := range cat.Tables {
		if strings.HasPrefix(tb.Parameters["storage.location.template"], folder) &&
			slices.Contains(strings.Split(tb.Parameters["projection.account.values"], ","), account) {
			return true
		}
	}
	return false
}
