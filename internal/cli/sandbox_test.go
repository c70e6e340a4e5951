package cli

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// TestSandboxCommand runs the built binary as a user would: an https sandbox
// with a data dir, reached with its CA, stopped with Ctrl-C (exit 0), and
// started again on the same data.
func TestSandboxCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "trailkeeper")
	build := exec.Command("go", "build", "-o", bin, "./cmd/trailkeeper")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := func() (*exec.Cmd, *bufio.Scanner) {
		cmd := exec.Command(bin, "sandbox", "--addr", addr, "--data-dir", data, "--tls")
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() { // the serving line comes once the listener is up
			if strings.HasPrefix(sc.Text(), "sandbox serving https://") {
				return cmd, sc
			}
		}
		t.Fatal("the sandbox did not report that it serves")
		return nil, nil
	}
	cmd, _ := start()
	ca, err := os.ReadFile(filepath.Join(data, "trailkeeper-sandbox-ca.pem"))
	if err != nil {
		t.Fatal("no CA file in the data dir:", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("PUT", "https://"+addr+"/kept-bucket", nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=111111111111/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create a bucket over https: %v %v", err, resp)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sandbox after Ctrl-C: %v (want exit 0)", err)
	}
	// Restarted on the same data dir, the bucket is still there.
	cmd, _ = start()
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
	// The same CA: a client that trusts it (AWS_CA_BUNDLE) keeps working.
	if again, _ := os.ReadFile(filepath.Join(data, "trailkeeper-sandbox-ca.pem")); string(again) != string(ca) {
		t.Fatal("the CA changed across a restart on the same data dir")
	}
	client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	req, _ = http.NewRequest("HEAD", "https://"+addr+"/kept-bucket", nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=111111111111/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
	resp, err = client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the bucket did not survive a restart: %v %v", err, resp)
	}
}

// TestSandboxUnderGoRunStopsWithItsParent: a binary built by 'go run' (found
// in a go-build folder) stops when its parent goes, as 'go run' does not pass
// a kill on. The parent here is a shell that is killed.
func TestSandboxUnderGoRunStopsWithItsParent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "go-build123", "b001", "exe")
	os.MkdirAll(dir, 0o755)
	bin := filepath.Join(dir, "trailkeeper")
	build := exec.Command("go", "build", "-o", bin, "./cmd/trailkeeper")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	pidFile := filepath.Join(t.TempDir(), "pid")
	parent := exec.Command("sh", "-c", bin+" sandbox --addr "+addr+" & echo $! > "+pidFile+"; wait")
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	testenv.Await(t, "the sandbox to start", func() bool {
		if b, err := os.ReadFile(pidFile); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					pid = n
					return true
				}
			}
		}
		return false
	})
	parent.Process.Kill()
	parent.Wait()
	defer syscall.Kill(pid, syscall.SIGKILL) // if it outlives the test
	testenv.Await(t, "the sandbox to stop with its parent", func() bool {
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		return err != nil || strings.Contains(string(status), "State:\tZ") // gone, or a zombie nobody reaped
	})
}
