package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The crash test runs the sandbox in a child process (this test binary, run
// again) that it can kill with SIGKILL.
const childDataDir = "TRAILKEEPER_SANDBOX_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDataDir); dir != "" {
		sb, err := New(Options{DataDir: dir, DeliveryInterval: time.Hour, DigestInterval: time.Hour})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		srv, err := sb.Start("127.0.0.1:0", false)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(srv.URL)
		select {} // until killed
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDataDir+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		t.Fatalf("the child sandbox did not start: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(line)
}

// TestKillNineLosesNoAcknowledgedWrite: PUTs and replications in flight, the
// sandbox killed with SIGKILL, restarted on the same data dir: every PUT that
// was answered 200 is there with its bytes, and every one replicates.
func TestKillNineLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	child, url := startChild(t, dir)
	e := &env{t: t, url: url}
	p := newPair(t, e)
	p.grant(t, sourceAcct)
	src := e.s3(sourceAcct)

	acked := map[string][]byte{}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("AWSLogs/%s/CloudTrail/%s/2026/12/03/w%d-%05d.json.gz", sourceAcct, region, w, i)
				body := []byte(key)
				if _, err := src.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &key, Body: bytes.NewReader(body)}); err == nil {
					mu.Lock()
					acked[key] = body
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond) // writers at full speed, not a wait for an outcome
	child.Process.Signal(os.Kill)
	child.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d PUTs acknowledged before the kill", len(acked))
	}

	_, url2 := startChild(t, dir)
	e2 := &env{t: t, url: url2}
	resp, err := http.Post(url2+"/_sandbox/replication/wait", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("waiting for replication after restart: %v %v", err, resp)
	}
	resp.Body.Close()
	src2, arch := e2.s3(sourceAcct), e2.s3(archiveAcct)
	lost, unreplicated := 0, 0
	for key, body := range acked {
		out, err := src2.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: aws.String(key)})
		if err != nil {
			lost++
			continue
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if !bytes.Equal(got, body) || out.ReplicationStatus != "COMPLETED" {
			unreplicated++
			continue
		}
		if _, err := arch.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.archive, Key: aws.String(key)}); err != nil {
			unreplicated++
		}
	}
	if lost > 0 || unreplicated > 0 {
		t.Fatalf("of %d acknowledged PUTs, %d lost and %d not replicated after kill -9 and restart", len(acked), lost, unreplicated)
	}
	t.Logf("%d acknowledged PUTs survived kill -9", len(acked))
}
