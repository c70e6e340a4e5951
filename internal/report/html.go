package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/status"
)

// WriteHTML renders the page.
func WriteHTML(w io.Writer, d *Data) error {
	v := view{Data: d, HoursPerCell: max(1, (len(d.Hours)+maxColumns-1)/maxColumns)}
	v.Columns = (len(d.Hours) + v.HoursPerCell - 1) / v.HoursPerCell
	v.Cell = max(6, min(28, 1100/max(1, v.Columns)))
	v.RowH = max(10, min(v.Cell, 1000/max(1, len(d.Rows)))) // every row tall enough for its label
	return page().Execute(w, v)
}

// maxColumns bounds the heatmap's columns: a day shows each hour, a week
// two hours a cell, thirty days eight, so that a cell stays large enough to
// see and to point at.
const maxColumns = 96

type view struct {
	*Data
	HoursPerCell int
	Columns      int
	Cell         int // pixels per column: wider when fewer days are shown
	RowH         int // pixels per row: lower when there are many accounts
}

const left = 200 // room for the row labels

// Width leaves room after the last column for the last day's label.
func (v view) Width() int { return left + v.Columns*v.Cell + 90 }

// SpanText says what a cell covers, under the heatmap's title.
func (v view) SpanText() string {
	if v.HoursPerCell == 1 {
		return "one hour"
	}
	return fmt.Sprintf("%d hours (the worst of them)", v.HoursPerCell)
}

// worse ranks states: a cell of several hours shows the worst of them, and
// an hour with data beats one without (the hour still under way).
var worse = map[string]int{Empty: 0, OK: 1, ArchiveOnly: 2, Undigested: 3, Stall: 4, Gap: 5}

// column folds the cells of one column of a row.
func (v view) column(row Row, c int) Cell {
	out := Cell{Hour: v.Hours[c*v.HoursPerCell], State: Empty, LagSeconds: -1}
	for i := c * v.HoursPerCell; i < min(len(row.Cells), (c+1)*v.HoursPerCell); i++ {
		h := row.Cells[i]
		out.SourceLogs += h.SourceLogs
		out.ArchiveLogs += h.ArchiveLogs
		out.SourceDigests += h.SourceDigests
		out.ArchiveDigst += h.ArchiveDigst
		out.LagSeconds = max(out.LagSeconds, h.LagSeconds)
		if worse[h.State] > worse[out.State] {
			out.State = h.State
		}
	}
	return out
}
func (v view) Height() int { return 40 + len(v.Rows)*(v.RowH+1) }
func (v view) CellW() int  { return max(1, v.Cell-1) }
func (v view) AxisX() int  { return left - 6 }

func (v view) Span() string { return plural(v.Days, "day", "days") }
func (v view) AccountCount() string {
	return plural(len(v.Status.Accounts), "source account", "source accounts")
}

// Headline answers the question the page is for: is the archive complete and
// untouched, since when, and if not, what to do.
type Headline struct {
	OK      bool
	Title   string
	Details []string
}

func (v *Data) Headline() Headline {
	var h Headline
	from := v.Generated.AddDate(0, 0, -v.Days).Format("2006-01-02 15:04Z")
	var problems []string
	if v.Status != nil && !v.Status.Healthy {
		n := 0
		for _, f := range v.Status.Findings {
			if f.Severity == status.Error {
				n++
			}
		}
		problems = append(problems, fmt.Sprintf("replication: %s (status)", plural(n, "problem", "problems")))
	}
	switch {
	case v.Verify == nil:
		problems = append(problems, "integrity not checked: "+v.VerifyError)
	case !v.Verify.Valid():
		problems = append(problems, fmt.Sprintf("integrity: %s not proven or not intact (verify)", plural(v.Verify.Problems(), "finding", "findings")))
	}
	if len(problems) == 0 {
		t := v.Verify.Totals()
		h.OK = true
		h.Title = "The archive is complete and untouched since " + from
		h.Details = []string{fmt.Sprintf("every account's trail reaches the archive; %s and %s proven by CloudTrail's signatures",
			plural(t.DigestsProven, "digest", "digests"), plural(t.LogsProven, "log file", "log files"))}
		return h
	}
	h.Title = "The archive is NOT proven complete and untouched since " + from
	h.Details = problems
	return h
}

// Group is one kind of finding, with the accounts it concerns and one fix.
type Group struct {
	Severity, Kind, Fix, Accounts string
	Count                         int
}

// Groups folds the findings of status and verify by kind.
func (v view) Groups() []Group {
	byKind := map[string]*Group{}
	accounts := map[string]map[string]bool{}
	add := func(sev, kind, account, fix string, n int) {
		g := byKind[kind]
		if g == nil {
			g = &Group{Severity: sev, Kind: kind, Fix: fix}
			byKind[kind], accounts[kind] = g, map[string]bool{}
		}
		g.Count += n
		if account != "" {
			accounts[kind][account] = true
		}
	}
	if v.Status != nil {
		for _, f := range v.Status.Findings {
			add(string(f.Severity), f.Code, f.Account, f.Fix, 1)
		}
	}
	if v.Verify != nil {
		for _, f := range v.Verify.Findings {
			if f.Failing() {
				add(string(f.Severity), f.Code, f.Account, f.Fix, max(1, f.Count))
			}
		}
	}
	var out []Group
	for kind, g := range byKind {
		var as []string
		for a := range accounts[kind] {
			as = append(as, a)
		}
		sort.Strings(as)
		if len(as) > 6 {
			as = append(as[:6], fmt.Sprintf("and %d more", len(as)-6))
		}
		g.Accounts = strings.Join(as, ", ")
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Severity == "error") != (out[j].Severity == "error") {
			return out[i].Severity == "error"
		}
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Kind < out[j].Kind
	})
	return out
}

// why says what a heatmap cell's colour means, for its tooltip.
var why = map[string]string{
	OK:          "log files and digests in the source and in the archive",
	Stall:       "in the source but NOT in the archive: replication stalled or failed (trailkeeper status; trailkeeper backfill)",
	Gap:         "nothing delivered while the trail was delivering: a gap (trailkeeper verify names the missing digests)",
	ArchiveOnly: "only in the archive: the source lost it, the archive kept it",
	Undigested:  "log files without a digest: log file validation was off, or the digest is missing",
	Empty:       "no data: before the first delivery, or the hour is still under way",
}

type rect struct {
	X, Y                  int
	Class, Title          string
	Account, Region, Hour string
}

func (v view) Cells() []rect {
	var out []rect
	for r, row := range v.Rows {
		for i := range v.Columns {
			c := v.column(row, i)
			when := c.Hour.Format("2006-01-02 15:00Z")
			if v.HoursPerCell > 1 {
				when += " to " + c.Hour.Add(time.Duration(v.HoursPerCell)*time.Hour).Format("15:00Z")
			}
			out = append(out, rect{X: left + i*v.Cell, Y: 40 + r*(v.RowH+1), Class: c.State, Account: row.Account, Region: row.Region,
				Hour: c.Hour.Format(time.RFC3339),
				Title: fmt.Sprintf("%s %s, %s: %s. Source %d logs, %d digests; archive %d logs, %d digests", row.Account, row.Region,
					when, why[c.State], c.SourceLogs, c.SourceDigests, c.ArchiveLogs, c.ArchiveDigst)})
		}
	}
	return out
}

type label struct {
	X, Y int
	Text string
}

func (v view) RowLabels() []label {
	var out []label
	if v.RowH < 10 { // too low for a label on every row: one in every few
		for r := 0; r < len(v.Rows); r += (10 + v.RowH - 1) / v.RowH {
			out = append(out, label{X: 4, Y: 40 + r*(v.RowH+1) + v.RowH, Text: v.Rows[r].Account + " " + v.Rows[r].Region})
		}
		return out
	}
	for r, row := range v.Rows {
		out = append(out, label{X: 4, Y: 40 + r*(v.RowH+1) + v.RowH - 1, Text: row.Account + " " + row.Region})
	}
	return out
}

// DayLabels mark midnights, every day where the labels fit (some 70
// pixels each), every few days where they do not; HourTicks mark every 6
// hours where there is room.
func (v view) DayLabels() []label {
	var out []label
	perDay := 24 / v.HoursPerCell * v.Cell
	every := max(1, (70+perDay-1)/max(1, perDay))
	day := 0
	for i := range v.Columns {
		h := v.Hours[i*v.HoursPerCell]
		if h.Hour() >= v.HoursPerCell && i != 0 {
			continue
		}
		if day%every == 0 {
			text := h.Format("Mon Jan 2")
			if every > 1 {
				text = h.Format("Jan 2")
			}
			out = append(out, label{X: left + i*v.Cell, Y: 14, Text: text})
		}
		day++
	}
	return out
}

func (v view) HourTicks() []label {
	var out []label
	if v.Cell*6/v.HoursPerCell < 16 {
		return out
	}
	for i := range v.Columns {
		if h := v.Hours[i*v.HoursPerCell]; h.Hour()%6 == 0 {
			out = append(out, label{X: left + i*v.Cell, Y: 32, Text: h.Format("15")})
		}
	}
	return out
}

type bar struct {
	X, Y, H int
	Title   string
}

// LagBars is the worst replication lag of each hour, over every account; none
// when no hour has a measured lag (the chart is then not drawn).
func (v view) LagBars() []bar {
	maxLag := v.maxLag()
	if maxLag < 1 {
		return nil // nothing measured, or nothing worth a chart
	}
	var out []bar
	for i := range v.Columns {
		worst := -1.0
		for _, row := range v.Rows {
			worst = max(worst, v.column(row, i).LagSeconds)
		}
		if worst < 0 {
			continue
		}
		h := int(worst / max(maxLag, 1) * 100)
		out = append(out, bar{X: left + i*v.Cell, Y: 120 - max(h, 1), H: max(h, 1),
			Title: fmt.Sprintf("%s: worst replication lag %s", v.Hours[i*v.HoursPerCell].Format("2006-01-02 15:00Z"), (time.Duration(worst) * time.Second).String())})
	}
	return out
}

func (v view) maxLag() float64 {
	m := 0.0
	for _, row := range v.Rows {
		for _, c := range row.Cells {
			m = max(m, c.LagSeconds)
		}
	}
	return m
}

func (v view) MaxLag() string { return (time.Duration(v.maxLag()) * time.Second).String() }

func ago(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// page is parsed when a report is first written, not at every start.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{"ago": ago}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>trailkeeper report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430;max-width:1400px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.headline{padding:14px 18px;border-radius:6px;margin:12px 0 4px;font-size:18px}
.headline.good{background:#e6f4ea;border:1px solid #2e9d4f}.headline.bad{background:#fce8e6;border:1px solid #d93025}
.headline ul{margin:6px 0 0;font-size:14px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #dde2ea;text-align:left;vertical-align:top}
th{background:#f3f5f8}.bad{color:#b3261e;font-weight:600}.good{color:#1e7b34}
svg text{font:11px system-ui,sans-serif;fill:#3b4452}svg text.row{font-size:9px}
.ok{fill:#2e9d4f}.stall{fill:#f29b1d}.gap{fill:#d93025}.archive-only{fill:#5b6ee1}.undigested{fill:#f6d04d}.empty{fill:#e9ecf1}
.lag{fill:#5b6ee1}.tick{stroke:#9aa3b2}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
.legend .ok{background:#2e9d4f}.legend .stall{background:#f29b1d}.legend .gap{background:#d93025}.legend .archive-only{background:#5b6ee1}.legend .undigested{background:#f6d04d}.legend .empty{background:#e9ecf1}
details summary{cursor:pointer;margin:8px 0}
</style></head><body>
<h1>trailkeeper report</h1>
<div>Generated {{.Generated.Format "2006-01-02 15:04:05Z"}} for the last {{.Span}}, {{.AccountCount}}.</div>
{{with .Headline}}<div id="headline" class="headline {{if .OK}}good{{else}}bad{{end}}"><b>{{.Title}}</b>
<ul>{{range .Details}}<li>{{.}}</li>{{end}}</ul></div>{{end}}

{{with .Groups}}<h2>What to do</h2>
<table id="findings"><tr><th>Severity</th><th>Finding</th><th>Count</th><th>Accounts</th><th>Fix</th></tr>
{{range .}}<tr data-kind="{{.Kind}}"><td class="{{if eq .Severity "error"}}bad{{end}}">{{.Severity}}</td><td>{{.Kind}}</td><td>{{.Count}}</td><td>{{.Accounts}}</td><td>{{.Fix}}</td></tr>{{end}}
</table>{{end}}

<h2>Log files and digests over time</h2>
<div class="legend"><span class="ok"></span>in the source and the archive<span class="stall"></span>not in the archive (replication stall)<span class="gap"></span>nothing delivered (gap)<span class="archive-only"></span>only in the archive<span class="undigested"></span>log files without a digest<span class="empty"></span>no data yet</div>
<p>A cell is {{.SpanText}}. Hover over a cell for what it holds and why it is not green. Times in UTC.</p>
<svg id="heatmap" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="log files and digests per account and hour">
{{range .DayLabels}}<text x="{{.X}}" y="{{.Y}}">{{.Text}}</text><line class="tick" x1="{{.X}}" y1="17" x2="{{.X}}" y2="36"/>{{end}}
{{range .HourTicks}}<text x="{{.X}}" y="{{.Y}}">{{.Text}}</text>{{end}}
{{range .RowLabels}}<text class="row" x="{{.X}}" y="{{.Y}}">{{.Text}}</text>{{end}}
{{range .Cells}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{$.CellW}}" height="{{$.RowH}}" data-account="{{.Account}}" data-region="{{.Region}}" data-hour="{{.Hour}}"><title>{{.Title}}</title></rect>
{{end}}</svg>

{{with .LagBars}}<h2>Replication lag: the worst of each cell's time</h2>
<svg id="lag" width="{{$.Width}}" height="150" role="img" aria-label="replication lag per hour">
<text x="{{$.AxisX}}" y="24" text-anchor="end">{{$.MaxLag}}</text><text x="{{$.AxisX}}" y="124" text-anchor="end">0</text>
<line class="tick" x1="200" y1="20" x2="200" y2="120"/><line class="tick" x1="200" y1="120" x2="{{$.Width}}" y2="120"/>
{{range $.DayLabels}}<text x="{{.X}}" y="138">{{.Text}}</text>{{end}}
{{range .}}<rect class="lag" x="{{.X}}" y="{{.Y}}" width="{{$.CellW}}" height="{{.H}}"><title>{{.Title}}</title></rect>{{end}}
</svg>{{end}}

<details><summary>Accounts in detail (status)</summary>
<table id="status"><tr><th>Account</th><th>Trail</th><th>Logging</th><th>Latest delivery</th><th>Validation</th><th>Replication</th><th>Newest in source</th><th>Newest in archive</th><th>Problems</th></tr>
{{range .Status.Accounts}}<tr data-account="{{.Account}}"><td>{{.Account}}</td><td>{{.Trail}}</td>
<td{{if not .Logging}} class="bad"{{end}}>{{if .Logging}}yes{{else}}NO{{end}}</td><td>{{ago .LatestDelivery}}</td>
<td{{if not .LogFileValidation}} class="bad"{{end}}>{{if .LogFileValidation}}on{{else}}OFF{{end}}</td>
<td{{if not .ReplicationAllows}} class="bad"{{end}}>{{if .ReplicationAllows}}allowed{{else}}BLOCKED{{end}}</td>
<td>{{ago .NewestSourceLog}}</td><td>{{ago .NewestArchiveLog}}</td><td{{if .Problems}} class="bad"{{end}}>{{.Problems}}</td></tr>
{{end}}</table>
{{with .Status.Archive}}<p>Archive {{.Account}} <b>{{.Bucket}}</b>: {{if .ObjectLock}}Object Lock {{.Retention}}{{else}}<span class="bad">no Object Lock</span>{{end}},
versioning {{.Versioning}}, policy {{.PolicyBytes}} of 20,480 bytes (about {{.AccountsThatFit}} more accounts fit).</p>{{end}}
</details>
</body></html>
`))
})
