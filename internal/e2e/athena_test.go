package e2e

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"

	"github.com/trailkeeper/trailkeeper/internal/cli"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// TestApplyKeepsTheAthenaTables: with athena: in the config, apply creates the
// Glue database and tables and the Athena workgroup and named queries; a
// second apply changes nothing; a new source is added to the projected
// accounts; a table someone edited is put back.
func TestApplyKeepsTheAthenaTables(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.member(world.Member{Account: acctB})
	athenaCfg := "athena:\n  results: s3://query-results-999999999999/athena/\n  regions: [ap-northeast-1, us-east-1]\n  parquet: s3://index-999999999999/trailkeeper\n"
	e.writeConfig([]string{acctA}, athenaCfg)
	plan, _, _ := e.run("plan")
	for _, want := range []string{"glue database trailkeeper", "glue table trailkeeper.events", "glue table trailkeeper_index.events", "athena workgroup trailkeeper", "athena named query root-activity"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan does not say %q:\n%s", want, plan)
		}
	}
	e.apply()
	cfg := world.Config(e.url, archiveAcct, region)
	g, a := glue.NewFromConfig(cfg), athena.NewFromConfig(cfg)
	table := func(db string) map[string]string {
		out := must(g.GetTable(ctx, &glue.GetTableInput{DatabaseName: aws.String(db), Name: aws.String("events")})).OK(t)
		if l := aws.ToString(out.Table.StorageDescriptor.Location); db == "trailkeeper" && l != "s3://"+archive+"/AWSLogs/" {
			t.Errorf("table location %s", l)
		}
		return out.Table.Parameters
	}
	if p := table("trailkeeper"); p["projection.account.values"] != acctA || p["projection.region.values"] != "ap-northeast-1,us-east-1" ||
		p["storage.location.template"] != "s3://"+archive+"/AWSLogs/${account}/CloudTrail/${region}/${day}" {
		t.Errorf("table parameters %v", p)
	}
	if p := table("trailkeeper_index"); p["projection.month.format"] != "yyyy/MM" || p["classification"] != "parquet" {
		t.Errorf("index table parameters %v", p)
	}
	wg := must(a.GetWorkGroup(ctx, &athena.GetWorkGroupInput{WorkGroup: aws.String("trailkeeper")})).OK(t)
	if l := aws.ToString(wg.WorkGroup.Configuration.ResultConfiguration.OutputLocation); l != "s3://query-results-999999999999/athena/" {
		t.Errorf("workgroup results %s", l)
	}
	ids := must(a.ListNamedQueries(ctx, &athena.ListNamedQueriesInput{WorkGroup: aws.String("trailkeeper")})).OK(t).NamedQueryIds
	if len(ids) != 4 {
		t.Errorf("%d named queries, want 4", len(ids))
	}

	e.sb.ResetCalls()
	if out := e.apply(); len(e.writes()) != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("a second apply wrote %v:\n%s", e.writes(), out)
	}

	e.writeConfig([]string{acctA, acctB}, athenaCfg)
	e.apply()
	if p := table("trailkeeper"); p["projection.account.values"] != acctA+","+acctB {
		t.Errorf("after adding %s: accounts %q", acctB, p["projection.account.values"])
	}
	// Someone narrows the table by hand: apply puts it back, drift first.
	cur := must(g.GetTable(ctx, &glue.GetTableInput{DatabaseName: aws.String("trailkeeper"), Name: aws.String("events")})).OK(t).Table
	cur.Parameters["projection.account.values"] = acctA
	must(g.UpdateTable(ctx, &glue.UpdateTableInput{DatabaseName: aws.String("trailkeeper"), TableInput: tableInput(cur)})).OK(t)
	if _, _, code := e.run("plan", "--detailed-exitcode"); code != 4 {
		t.Errorf("plan after a hand edit: exit %d, want 4", code)
	}
	e.apply()
	if p := table("trailkeeper"); p["projection.account.values"] != acctA+","+acctB {
		t.Errorf("apply did not restore the accounts: %q", p["projection.account.values"])
	}
}

func tableInput(t *gluetypes.Table) *gluetypes.TableInput {
	return &gluetypes.TableInput{Name: t.Name, TableType: t.TableType, Parameters: t.Parameters, PartitionKeys: t.PartitionKeys, StorageDescriptor: t.StorageDescriptor}
}

// A source whose trail writes under a key prefix is queryable too: apply
// keeps a Glue table per prefix, trailkeeper athena the view events over
// them, and the index holds its events.
func TestAPrefixedSourceIsQueryable(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.member(world.Member{Account: acctC, Prefix: "org-logs"})
	e.writeConfig([]string{acctA, acctC}, "athena:\n  results: s3://query-results-999999999999/athena/\n  regions: [ap-northeast-1]\n")
	out := e.apply()
	if !strings.Contains(out, "the sources write under 2 key prefixes: a table each (trailkeeper.events_root, trailkeeper.events_org_logs)") {
		t.Errorf("apply does not say where the view comes from:\n%s", out)
	}
	g := glue.NewFromConfig(world.Config(e.url, archiveAcct, region))
	for name, want := range map[string][2]string{"events_root": {"s3://" + archive + "/AWSLogs/", acctA}, "events_org_logs": {"s3://" + archive + "/org-logs/AWSLogs/", acctC}} {
		tb := must(g.GetTable(ctx, &glue.GetTableInput{DatabaseName: aws.String("trailkeeper"), Name: aws.String(name)})).OK(t).Table
		if l, a := aws.ToString(tb.StorageDescriptor.Location), tb.Parameters["projection.account.values"]; l != want[0] || a != want[1] {
			t.Errorf("table %s: location %s, accounts %s; want %s, %s", name, l, a, want[0], want[1])
		}
	}
	if r, code, out := e.status(); code != 0 || !r.Healthy {
		t.Fatalf("status with a table per prefix: exit %d\n%s", code, out)
	}
	// A table dropped by hand leaves its sources out of every query: status names them.
	must(g.DeleteTable(ctx, &glue.DeleteTableInput{DatabaseName: aws.String("trailkeeper"), Name: aws.String("events_org_logs")})).OK(t)
	r, code, out := e.status()
	if f := finding(r, "athena-missing-source"); code != cli.ExitProblems || f == nil || f.Account != acctC || !strings.Contains(f.Message, "org-logs/AWSLogs/"+acctC+"/") {
		t.Fatalf("status without the prefixed table: exit %d\n%s", code, out)
	}
	e.apply()
	ddl, _, code := e.run("athena", "--prefix", "", "--prefix", "org-logs")
	if code != 0 || !strings.Contains(ddl, "CREATE OR REPLACE VIEW trailkeeper.events AS\nSELECT * FROM trailkeeper.events_root\nUNION ALL\nSELECT * FROM trailkeeper.events_org_logs") {
		t.Fatalf("athena with two prefixes: exit %d\n%s", code, ddl)
	}
	e.deliveries(acctA, 1)
	e.deliveries(acctC, 1)
	index := t.TempDir()
	if out, errOut, code := e.run("index", "--to", index); code != 0 {
		t.Fatalf("index: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code := e.run("query", "--index", index, "-o", "csv", "SELECT account FROM events GROUP BY account ORDER BY account")
	if code != 0 || !strings.Contains(out, acctA) || !strings.Contains(out, acctC) {
		t.Fatalf("the index does not hold the prefixed source's events: exit %d\n%s%s", code, out, errOut)
	}
}
