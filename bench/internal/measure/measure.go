// Package measure runs a command and reports its wall time, CPU time and
// peak memory, for the benchmarks.
package measure

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Result is what one run of a command cost.
type Result struct {
	Wall, CPU time.Duration
	PeakKiB   int64 // VmHWM of the process
	Stdout    []byte
}

// Run runs cmd to the end. Peak memory comes from /proc/PID/status: rusage's
// maxrss would not do, since a child inherits the high-water mark of this
// process (which may hold a whole sandbox) across fork and exec.
func Run(cmd *exec.Cmd) (Result, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	peak := watch(cmd.Process.Pid)
	err := cmd.Wait()
	r := Result{Wall: time.Since(start), PeakKiB: <-peak, Stdout: out.Bytes(),
		CPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if err != nil {
		return r, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, errb.String())
	}
	return r, nil
}

func watch(pid int) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		for {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				out <- peak
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
					if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > peak {
						peak = kb
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return out
}
