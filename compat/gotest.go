package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// killAfter is how long `go test` gets to stop after an interrupt (it
// forwards the signal, the test binary prints what it has) before its
// process group is killed.
const killAfter = 10 * time.Second

// test runs `go test -json` with args in dir, with extra environment, and
// parses its events. A failing test is not an error; a go command that
// could not run, or whose output could not be read, is.
//
// The go command runs in a process group of its own, with the test binary
// it starts: when ctx ends (SIGINT, SIGTERM) the whole group gets SIGINT,
// then SIGKILL after killAfter, so that no test binary outlives the runner.
func (g *goTool) test(ctx context.Context, dir string, extraEnv []string, args ...string) (*runResult, error) {
	cmd := exec.CommandContext(ctx, g.path, append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), g.env...), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var kill *time.Timer
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		kill = time.AfterFunc(killAfter, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		return syscall.Kill(-pgid, syscall.SIGINT)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	res, parseErr := parseEvents(stdout)
	waitErr := cmd.Wait()
	if kill != nil {
		kill.Stop()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if parseErr != nil {
		return nil, parseErr
	}
	// go test exits 1 when a test fails; any other failure to run shows as
	// no events at all.
	if waitErr != nil && len(res.tests) == 0 && !res.packageFailed {
		return nil, fmt.Errorf("go test: %w: %s", waitErr, strings.TrimSpace(stderr.String()))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		res.packageOutput = append(res.packageOutput, strings.Split(s, "\n")...)
	}
	return res, nil
}
