package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/report"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// stallWriter writes into the source bucket, whose live replication copies each
// object to the archive, except that while the stall hour is written the
// archive's grant is taken away (a real stall: those objects FAIL), and nothing
// is written for the gap hour.
type stallWriter struct {
	e          *env
	source     store.Writer
	stall, gap time.Time
	saved      string
	inStall    bool
}

func (w *stallWriter) Put(ctx context.Context, key string, data []byte, meta map[string]string) error {
	k, err := cloudtrail.ParseKey(key)
	if err != nil {
		return err
	}
	hour := report.HourOf(k)
	if hour == w.gap {
		return nil
	}
	if (hour == w.stall) != w.inStall {
		w.e.sb.WaitReplication(ctx)
		arch := world.S3(w.e.url, archiveAcct, region)
		if !w.inStall {
			w.saved = archivePolicy(w.e.t, w.e)
			broken := strings.Replace(w.saved, grantOf(acctA), grantOf(acctB), 1)
			must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: &broken})).OK(w.e.t)
		} else {
			must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: &w.saved})).OK(w.e.t)
		}
		w.inStall = !w.inStall
	}
	return w.source.Put(ctx, key, data, meta)
}

func chromium(t *testing.T) string {
	for _, name := range []string{"chromium-headless-shell", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("headless Chromium is required in CI (.ci/run installs Debian's chromium-headless-shell)")
	}
	t.Skip("headless Chromium not installed (apt-get install --no-install-recommends chromium-headless-shell)")
	return ""
}

// TestReportHeadlineOfAHealthyArchive: status healthy and verify valid make
// one green answer, with no table of things to do.
func TestReportHeadlineOfAHealthyArchive(t *testing.T) {
	e := healthy(t, world.Member{Account: acctA}, "")
	e.deliveries(acctA, 2)
	page := filepath.Join(t.TempDir(), "report.html")
	if out, errOut, code := e.run("report", "--html", page, "--days", "1"); code != 0 {
		t.Fatalf("report exited %d: %s%s", code, out, errOut)
	}
	html, _ := os.ReadFile(page)
	if !strings.Contains(string(html), `class="headline good"`) || !strings.Contains(string(html), "complete and untouched since") ||
		strings.Contains(string(html), `id="findings"`) {
		t.Fatalf("headline of a healthy archive:\n%s", html)
	}
}

func TestReportShowsTheGap(t *testing.T) {
	browser := chromium(t)
	e := healthy(t, world.Member{Account: acctA}, "")
	now := time.Now().UTC().Truncate(time.Hour)
	start := now.Add(-8 * time.Hour)
	stall, gap := start.Add(3*time.Hour), start.Add(5*time.Hour)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	w := &stallWriter{e: e, source: store.S3{Client: world.S3(e.url, acctA, region), Bucket: "cm-members-cloudtrail-" + acctA}, stall: stall, gap: gap}
	if _, err := (fixture.Builder{Key: key, W: w}).Write(ctx, fixture.Chain{Account: acctA, Region: region, Trail: "Members",
		Bucket: "cm-members-cloudtrail-" + acctA, Start: start, Digests: 7, LogsPerDigest: 2}); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "report.html")
	if out, errOut, code := e.run("report", "--html", page, "--days", "1"); code != 0 {
		t.Fatalf("report exited %d: %s%s", code, out, errOut)
	}
	html, _ := os.ReadFile(page)
	if strings.Contains(string(html), "http://") || strings.Contains(string(html), "https://") || strings.Contains(string(html), "<script") {
		t.Fatal("the page is not self-contained")
	}
	// What a person sees: the page as Chromium renders it.
	profile := t.TempDir()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir=" + profile}
	dom, err := exec.Command(browser, append(args, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	state := func(hour time.Time) string {
		re := regexp.MustCompile(`<rect class="([a-z-]+)"[^>]*data-account="` + acctA + `"[^>]*data-hour="` + regexp.QuoteMeta(hour.Format(time.RFC3339)) + `"`)
		m := re.FindSubmatch(dom)
		if m == nil {
			t.Fatalf("no heatmap cell for %s in the rendered page", hour)
		}
		return string(m[1])
	}
	if !strings.Contains(string(dom), `<table id="status">`) || !strings.Contains(string(dom), `data-account="`+acctA+`"`) {
		t.Fatal("the rendered page has no status table row for the account")
	}
	// The answer first: not proven, and what to do, from status and verify together.
	if !strings.Contains(string(dom), `id="headline" class="headline bad"`) || !strings.Contains(string(dom), "NOT proven complete and untouched") ||
		!strings.Contains(string(dom), `data-kind="missing-digest"`) {
		t.Errorf("no headline or no grouped verify finding in the rendered page")
	}
	if got := state(gap); got != "gap" {
		t.Errorf("the gap hour shows as %q", got)
	}
	if got := state(stall); got != "stall" {
		t.Errorf("the stalled hour shows as %q", got)
	}
	if got := state(start.Add(time.Hour)); got != "ok" {
		t.Errorf("a complete hour shows as %q", got)
	}
	if shot := os.Getenv("TRAILKEEPER_SCREENSHOT"); shot != "" {
		exec.Command(browser, append(args, "--screenshot="+shot, "--window-size=1400,700", "file://"+page)...).Run()
	}
}
