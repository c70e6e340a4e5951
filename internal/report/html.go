package report

import (
	"fmt"
	"html/template"
	"io"
	"time"
)

// WriteHTML renders the page.
func WriteHTML(w io.Writer, d *Data) error {
	return page.Execute(w, view{d, max(7, min(28, 1100/max(1, len(d.Hours))))})
}

type view struct {
	*Data
	Cell int // pixels per hour: wider when fewer days are shown
}

func (v view) Width() int  { return 190 + len(v.Hours)*v.Cell }
func (v view) Height() int { return 30 + len(v.Rows)*(v.Cell+3) }
func (v view) CellW() int  { return v.Cell - 1 }

type rect struct {
	X, Y         int
	Class, Title string
	Account      string
	Region       string
	Hour         string
}

func (v view) Cells() []rect {
	var out []rect
	for r, row := range v.Rows {
		for i, c := range row.Cells {
			out = append(out, rect{X: 190 + i*v.Cell, Y: 30 + r*(v.Cell+3), Class: c.State, Account: row.Account, Region: row.Region,
				Hour: c.Hour.Format(time.RFC3339),
				Title: fmt.Sprintf("%s %s %s: source %d logs, %d digests; archive %d logs, %d digests (%s)", row.Account, row.Region,
					c.Hour.Format("2006-01-02 15:00Z"), c.SourceLogs, c.SourceDigests, c.ArchiveLogs, c.ArchiveDigst, c.State)})
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
	for r, row := range v.Rows {
		out = append(out, label{X: 4, Y: 30 + r*(v.Cell+3) + v.Cell, Text: row.Account + " " + row.Region})
	}
	return out
}

func (v view) DayLabels() []label {
	var out []label
	for i, h := range v.Hours {
		if h.Hour() == 0 || i == 0 {
			out = append(out, label{X: 190 + i*v.Cell, Y: 20, Text: h.Format("Jan 2")})
		}
	}
	return out
}

type bar struct {
	X, Y, H int
	Title   string
}

// LagBars is the worst replication lag of each hour, over every account.
func (v view) LagBars() []bar {
	maxLag := 1.0
	worst := make([]float64, len(v.Hours))
	for i := range worst {
		worst[i] = -1
	}
	for _, row := range v.Rows {
		for i, c := range row.Cells {
			worst[i] = max(worst[i], c.LagSeconds)
			maxLag = max(maxLag, c.LagSeconds)
		}
	}
	var out []bar
	for i, l := range worst {
		if l < 0 {
			continue
		}
		h := int(l / maxLag * 100)
		out = append(out, bar{X: 190 + i*v.Cell, Y: 120 - h, H: max(h, 1),
			Title: fmt.Sprintf("%s: worst replication lag %s", v.Hours[i].Format("2006-01-02 15:00Z"), (time.Duration(l) * time.Second).String())})
	}
	return out
}

func (v view) MaxLag() string {
	m := 0.0
	for _, row := range v.Rows {
		for _, c := range row.Cells {
			m = max(m, c.LagSeconds)
		}
	}
	return (time.Duration(m) * time.Second).String()
}

func ago(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{"ago": ago}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>trailkeeper report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #dde2ea;text-align:left}
th{background:#f3f5f8}.bad{color:#b3261e;font-weight:600}.good{color:#1e7b34}
svg text{font:11px system-ui,sans-serif;fill:#3b4452}
.ok{fill:#2e9d4f}.stall{fill:#f29b1d}.gap{fill:#d93025}.archive-only{fill:#5b6ee1}.undigested{fill:#f6d04d}.empty{fill:#e9ecf1}
.lag{fill:#5b6ee1}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
.legend .ok{background:#2e9d4f}.legend .stall{background:#f29b1d}.legend .gap{background:#d93025}.legend .archive-only{background:#5b6ee1}.legend .undigested{background:#f6d04d}.legend .empty{background:#e9ecf1}
</style></head><body>
<h1>trailkeeper report</h1>
<div>Generated {{.Generated.Format "2006-01-02 15:04:05Z"}}, last {{.Days}} days.
{{with .Status}}{{if .Healthy}}<span class="good">Healthy: every account's trail reaches the archive.</span>{{else}}<span class="bad">{{len .Findings}} findings.</span>{{end}}{{end}}</div>

<h2>Status</h2>
<table id="status"><tr><th>Account</th><th>Trail</th><th>Logging</th><th>Latest delivery</th><th>Validation</th><th>Replication</th><th>Newest in source</th><th>Newest in archive</th><th>Problems</th></tr>
{{range .Status.Accounts}}<tr data-account="{{.Account}}"><td>{{.Account}}</td><td>{{.Trail}}</td>
<td{{if not .Logging}} class="bad"{{end}}>{{if .Logging}}yes{{else}}NO{{end}}</td><td>{{ago .LatestDelivery}}</td>
<td{{if not .LogFileValidation}} class="bad"{{end}}>{{if .LogFileValidation}}on{{else}}OFF{{end}}</td>
<td{{if not .ReplicationAllows}} class="bad"{{end}}>{{if .ReplicationAllows}}allowed{{else}}BLOCKED{{end}}</td>
<td>{{ago .NewestSourceLog}}</td><td>{{ago .NewestArchiveLog}}</td><td{{if .Problems}} class="bad"{{end}}>{{.Problems}}</td></tr>
{{end}}</table>
{{with .Status.Archive}}<p>Archive {{.Account}} <b>{{.Bucket}}</b>: {{if .ObjectLock}}Object Lock {{.Retention}}{{else}}<span class="bad">no Object Lock</span>{{end}},
versioning {{.Versioning}}, policy {{.PolicyBytes}} of 20,480 bytes (about {{.AccountsThatFit}} more accounts fit).</p>{{end}}
{{if .Status.Findings}}<h2>Findings</h2><table id="findings"><tr><th>Severity</th><th>Account</th><th>Finding</th><th>Fix</th></tr>
{{range .Status.Findings}}<tr><td class="{{if eq .Severity "error"}}bad{{end}}">{{.Severity}}</td><td>{{.Account}}</td><td>{{.Message}}</td><td>{{.Fix}}</td></tr>{{end}}
</table>{{end}}

<h2>Log files and digests by hour</h2>
<div class="legend"><span class="ok"></span>in the source and the archive<span class="stall"></span>in the source, not in the archive (replication stall)<span class="gap"></span>nothing delivered (gap)<span class="archive-only"></span>only in the archive<span class="undigested"></span>log files without a digest<span class="empty"></span>no data yet</div>
<svg id="heatmap" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="log files and digests per account and hour">
{{range .DayLabels}}<text x="{{.X}}" y="{{.Y}}">{{.Text}}</text>{{end}}
{{range .RowLabels}}<text x="{{.X}}" y="{{.Y}}">{{.Text}}</text>{{end}}
{{range .Cells}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{$.CellW}}" height="{{$.Cell}}" data-account="{{.Account}}" data-region="{{.Region}}" data-hour="{{.Hour}}"><title>{{.Title}}</title></rect>
{{end}}</svg>

<h2>Replication lag (worst per hour, up to {{.MaxLag}})</h2>
<svg id="lag" width="{{.Width}}" height="130" role="img" aria-label="replication lag per hour">
<line x1="190" y1="120" x2="{{.Width}}" y2="120" stroke="#9aa3b2"/>
{{range .LagBars}}<rect class="lag" x="{{.X}}" y="{{.Y}}" width="{{$.CellW}}" height="{{.H}}"><title>{{.Title}}</title></rect>{{end}}
</svg>
</body></html>
`))
