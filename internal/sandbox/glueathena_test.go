package sandbox

import (
	"strings"
	"testing"
)

// TestGlueAndAthenaWithTheCLI: the catalog and the workgroups answer the AWS
// CLI as AWS does, errors included, and survive nothing they should not.
func TestGlueAndAthenaWithTheCLI(t *testing.T) {
	e := newEnv(t, Options{})
	c := newCLI(t, e.url)
	c.ok(archiveAcct, "glue", "create-database", "--database-input", "Name=trailkeeper")
	if _, err := c.run(archiveAcct, "glue", "create-database", "--database-input", "Name=trailkeeper"); err == nil || !strings.Contains(err.Error(), "AlreadyExistsException") {
		t.Errorf("a second create-database: %v", err)
	}
	if _, err := c.run(archiveAcct, "glue", "create-database", "--database-input", "Name=Trail-Keeper"); err == nil || !strings.Contains(err.Error(), "InvalidInputException") {
		t.Errorf("a database name Athena cannot read: %v", err)
	}
	table := c.file("table.json", `{"Name":"events","TableType":"EXTERNAL_TABLE","Parameters":{"projection.enabled":"true"},
"PartitionKeys":[{"Name":"day","Type":"string"}],"StorageDescriptor":{"Columns":[{"Name":"eventname","Type":"string"}],"Location":"s3://archive/AWSLogs/"}}`)
	c.ok(archiveAcct, "glue", "create-table", "--database-name", "trailkeeper", "--table-input", table)
	if got := c.ok(archiveAcct, "glue", "get-table", "--database-name", "trailkeeper", "--name", "events", "--query", "Table.Parameters.\"projection.enabled\"", "--output", "text"); got != "true" {
		t.Errorf("get-table: %q", got)
	}
	if _, err := c.run(archiveAcct, "glue", "get-table", "--database-name", "trailkeeper", "--name", "nothing"); err == nil || !strings.Contains(err.Error(), "EntityNotFoundException") {
		t.Errorf("a missing table: %v", err)
	}
	if _, err := c.run(otherAcct, "glue", "get-table", "--database-name", "trailkeeper", "--name", "events"); err == nil || !strings.Contains(err.Error(), "EntityNotFoundException") {
		t.Errorf("another account's catalog: %v", err)
	}
	c.ok(archiveAcct, "athena", "create-work-group", "--name", "trailkeeper", "--configuration", "ResultConfiguration={OutputLocation=s3://results/athena/}")
	if got := c.ok(archiveAcct, "athena", "get-work-group", "--work-group", "trailkeeper", "--query", "WorkGroup.Configuration.ResultConfiguration.OutputLocation", "--output", "text"); got != "s3://results/athena/" {
		t.Errorf("get-work-group: %q", got)
	}
	if _, err := c.run(archiveAcct, "athena", "get-work-group", "--work-group", "nothing"); err == nil || !strings.Contains(err.Error(), "InvalidRequestException") {
		t.Errorf("a missing workgroup: %v", err)
	}
	id := c.ok(archiveAcct, "athena", "create-named-query", "--name", "root", "--database", "trailkeeper", "--query-string", "SELECT 1", "--work-group", "trailkeeper", "--query", "NamedQueryId", "--output", "text")
	if got := c.ok(archiveAcct, "athena", "batch-get-named-query", "--named-query-ids", id, "--query", "NamedQueries[0].QueryString", "--output", "text"); got != "SELECT 1" {
		t.Errorf("batch-get-named-query: %q", got)
	}
}
