package sandbox

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Lambda Runtime API, as an OS-only runtime's bootstrap speaks it
// (docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): GET
// /2018-06-01/runtime/invocation/next hands out the event with its request
// id, deadline and function ARN in headers; POST .../invocation/ID/response
// or .../error answers it; POST .../init/error reports a failed start. Each
// invocation starts the bootstrap afresh (Lambda would keep it warm) on a
// loopback server of its own, with the execution role's temporary
// credentials and the sandbox as AWS_ENDPOINT_URL, the one variable Lambda
// would not set: the function is to call the sandbox, not AWS.

type invokeResult struct {
	payload       []byte
	functionError string // "Unhandled" when the function failed
	err           error  // the invocation could not run at all
}

// stopContext is cancelled when the sandbox closes.
func (s *Sandbox) stopContext() context.Context {
	s.stopCtxOnce.Do(func() {
		var cancel context.CancelFunc
		s.stopCtx, cancel = context.WithCancel(context.Background())
		go func() {
			<-s.stop
			cancel()
		}()
	})
	return s.stopCtx
}

func failed(format string, a ...any) invokeResult {
	msg, _ := json.Marshal(map[string]string{"errorMessage": fmt.Sprintf(format, a...), "errorType": "Runtime.ExitError"})
	return invokeResult{payload: msg, functionError: "Unhandled"}
}

func (s *Sandbox) invoke(ctx context.Context, f lambdaFunction, payload []byte) invokeResult {
	creds, err := s.functionCredentials(f)
	if err != nil {
		return invokeResult{err: err}
	}
	dir, err := s.unpackCode(f)
	if err != nil {
		return invokeResult{err: err}
	}
	requestID := newUUID()
	deadline := time.Now().Add(time.Duration(f.Timeout) * time.Second)
	rt := &runtimeAPI{event: payload, requestID: requestID, deadline: deadline, arn: f.arn(), done: make(chan invokeResult, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return invokeResult{err: err}
	}
	srv := &http.Server{Handler: rt, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	runCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	cmd := exec.CommandContext(runCtx, filepath.Join(dir, "bootstrap"))
	cmd.Dir = dir
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=en_US.UTF-8", "TZ=:UTC", "LAMBDA_TASK_ROOT=" + dir, "LAMBDA_RUNTIME_DIR=" + dir,
		"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(), "AWS_LAMBDA_FUNCTION_NAME=" + f.Name, "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(f.Memory), "_HANDLER=" + f.Handler, "AWS_REGION=" + f.Region, "AWS_DEFAULT_REGION=" + f.Region,
		"AWS_EXECUTION_ENV=AWS_Lambda_" + f.Runtime, "AWS_ACCESS_KEY_ID=" + creds[0], "AWS_SECRET_ACCESS_KEY=" + creds[1], "AWS_SESSION_TOKEN=" + creds[2],
		"AWS_ENDPOINT_URL=" + s.endpointURL()}
	for k, v := range f.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	var logs tailBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return failed("starting bootstrap: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var res invokeResult
	select {
	case res = <-rt.done:
		cancel() // the answer is in: the process is frozen on Lambda, ended here
		<-exited
	case err := <-exited:
		select {
		case res = <-rt.done:
		default:
			if runCtx.Err() == context.DeadlineExceeded {
				res = failed("%s Task timed out after %.2f seconds", time.Now().UTC().Format(time.RFC3339), float64(f.Timeout))
			} else {
				res = failed("RequestId: %s Error: Runtime exited without providing a reason: %v", requestID, err)
			}
		}
	}
	if res.functionError != "" {
		s.opts.Logger.Info("lambda: function error", "function", f.arn(), "answer", string(res.payload), "log", logs.String())
	}
	return res
}

// functionCredentials are a session of the function's execution role, as
// Lambda assumes it.
func (s *Sandbox) functionCredentials(f lambdaFunction) ([3]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := roleARNRE().FindStringSubmatch(f.Role)
	if m == nil || s.st.account(m[1]).Roles[m[2]] == nil {
		return [3]string{}, errorf(502, "InvalidRuntimeException", "The role defined for the function cannot be assumed by Lambda.")
	}
	r := s.st.account(m[1]).Roles[m[2]]
	key := randomID("ASIA", 16)
	sess := &session{Account: m[1], Role: r.Name, RoleID: r.ID, Name: f.Name, Secret: randomHex(20), Token: randomHex(64),
		Expires: time.Now().UTC().Add(time.Duration(f.Timeout)*time.Second + time.Hour)}
	s.st.Sessions[key] = sess
	s.changed()
	return [3]string{key, sess.Secret, sess.Token}, nil
}

// unpackCode unzips a function's code once per code hash, bounded as Lambda
// bounds it, and keeps it until the sandbox closes.
func (s *Sandbox) unpackCode(f lambdaFunction) (string, error) {
	s.codeMu.Lock()
	defer s.codeMu.Unlock()
	if dir, ok := s.codeDirs[f.CodeSha256]; ok {
		return dir, nil
	}
	data, err := readBlob(s.blobs, f.blob())
	if err != nil {
		return "", err
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "sandbox-lambda-")
	if err != nil {
		return "", err
	}
	var written int64
	for _, zf := range zr.File {
		name := filepath.Clean(zf.Name)
		if filepath.IsAbs(name) || strings.HasPrefix(name, "..") || zf.FileInfo().IsDir() {
			continue
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		rc, err := zf.Open()
		if err != nil {
			return "", err
		}
		out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			rc.Close()
			return "", err
		}
		n, err := io.Copy(out, io.LimitReader(rc, maxUnzipped-written+1))
		rc.Close()
		out.Close()
		if written += n; err != nil || written > maxUnzipped {
			os.RemoveAll(dir)
			return "", fmt.Errorf("unzipping %s: %v (at most %d bytes unzipped)", name, err, maxUnzipped)
		}
	}
	s.codeDirs[f.CodeSha256] = dir
	return dir, nil
}

func (s *Sandbox) removeCode() {
	s.codeMu.Lock()
	defer s.codeMu.Unlock()
	for _, dir := range s.codeDirs {
		os.RemoveAll(dir)
	}
	clear(s.codeDirs)
}

// runtimeAPI serves one invocation to one bootstrap.
type runtimeAPI struct {
	event     []byte
	requestID string
	deadline  time.Time
	arn       string
	mu        sync.Mutex
	handedOut bool
	done      chan invokeResult
}

func (rt *runtimeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/2018-06-01/runtime/")
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		rt.mu.Lock()
		first := !rt.handedOut
		rt.handedOut = true
		rt.mu.Unlock()
		if !first {
			<-r.Context().Done() // one event per process here: wait to be ended
			return
		}
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", rt.requestID)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(rt.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", rt.arn)
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-"+strconv.FormatInt(time.Now().Unix(), 16)+"-"+strings.ReplaceAll(rt.requestID, "-", "")[:24]+";Sampled=0")
		h.Set("Content-Type", "application/json")
		w.Write(rt.event)
	case r.Method == http.MethodPost && path == "invocation/"+rt.requestID+"/response":
		body, _ := io.ReadAll(io.LimitReader(r.Body, 6<<20+1))
		if len(body) > 6<<20 {
			rt.finish(failed("Response payload size exceeded maximum allowed payload size (6291456 bytes)."))
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		rt.finish(invokeResult{payload: body})
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && (path == "invocation/"+rt.requestID+"/error" || path == "init/error"):
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rt.finish(invokeResult{payload: body, functionError: "Unhandled"})
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, `{"errorMessage":"unknown request","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
	}
}

func (rt *runtimeAPI) finish(r invokeResult) {
	select {
	case rt.done <- r:
	default: // answered already
	}
}

// tailBuffer keeps the last 8 KB a function wrote, for the log.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = t.buf[len(t.buf)-8<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
