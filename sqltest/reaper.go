package sqltest

import (
	"fmt"
	"io"
	"os/exec"
	"syscall"
)

// reaper is a watchdog process that cleans up after a server when this
// process dies without cleaning up itself: a test that panics (which ends
// the process before deferred functions in TestMain run), a test binary
// killed on timeout, SIGKILL. It is a shell that blocks reading a pipe whose
// only writer is this process; when the kernel closes that pipe at our exit,
// the shell runs its cleanup script. It runs in its own process group so that
// a Ctrl-C to the test does not kill it before it cleans up. On a normal
// Close we clean up ourselves and kill the reaper.
type reaper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startReaper starts a watchdog that runs script (with args as $1, $2, ...)
// as cred's user once this process is gone.
func startReaper(cred *syscall.Credential, script string, args ...string) (*reaper, error) {
	argv := append([]string{"-c", "read _ignored; " + script, "sqltest-reaper"}, args...)
	cmd := exec.Command("/bin/sh", argv...)
	cmd.Env = childEnv()
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("sqltest: start watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sqltest: start watchdog: %w", err)
	}
	return &reaper{cmd: cmd, stdin: stdin}, nil
}

// stop ends the watchdog without running its script. It is nil-safe and
// idempotent.
func (r *reaper) stop() {
	if r == nil || r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.stdin.Close()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// trigger runs the watchdog's script now, as if this process had died, and
// waits for it. For tests.
func (r *reaper) trigger() {
	if r == nil || r.cmd == nil {
		return
	}
	_ = r.stdin.Close()
	_ = r.cmd.Wait()
	r.cmd = nil
}
