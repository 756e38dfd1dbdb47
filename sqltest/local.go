package sqltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binSearch says where findBinDir looks; a seam for tests.
type binSearch struct {
	lookPath func(string) (string, error)
	globs    []string
}

func defaultSearch() binSearch {
	return binSearch{
		lookPath: exec.LookPath,
		globs:    []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"},
	}
}

// findBinDir returns the first directory holding postgres, initdb and
// pg_ctl, and the places it looked.
func findBinDir(bs binSearch) (dir string, tried []string) {
	if p, err := bs.lookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if d := filepath.Dir(p); hasServerBinaries(d) {
			return d, nil
		}
	}
	tried = append(tried, "PATH")
	if p, err := bs.lookPath("pg_config"); err == nil {
		out, err := exec.Command(p, "--bindir").Output()
		if d := strings.TrimSpace(string(out)); err == nil && hasServerBinaries(d) {
			return d, nil
		}
	}
	tried = append(tried, "pg_config --bindir")
	for _, g := range bs.globs {
		tried = append(tried, g)
		matches, _ := filepath.Glob(g)
		// Highest version first: /usr/lib/postgresql/16/bin before 9.6.
		sort.Slice(matches, func(i, j int) bool {
			return versionKey(matches[i]) > versionKey(matches[j])
		})
		for _, d := range matches {
			if hasServerBinaries(d) {
				return d, nil
			}
		}
	}
	return "", tried
}

// versionKey orders paths by the last number among their elements.
func versionKey(path string) float64 {
	parts := strings.Split(path, string(filepath.Separator))
	for i := len(parts) - 1; i >= 0; i-- {
		part := strings.TrimPrefix(parts[i], "pgsql-")
		if v, err := strconv.ParseFloat(part, 64); err == nil {
			return v
		}
	}
	return 0
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"postgres", "initdb", "pg_ctl"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// serverVersion returns the major version of the postgres binary in dir.
func serverVersion(binDir string) string {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return "?"
	}
	// "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"
	fields := strings.Fields(string(out))
	for i, f := range fields {
		if f == "(PostgreSQL)" && i+1 < len(fields) {
			major, _, _ := strings.Cut(fields[i+1], ".")
			return major
		}
	}
	return strings.TrimSpace(string(out))
}

// serverUser returns the credential to run PostgreSQL programs with: nil
// when the process is not root, else the postgres system user's.
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("sqltest: running as root, and PostgreSQL refuses to run as root, "+
			"but there is no postgres system user to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("sqltest: postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeDir creates a temporary directory owned by cred's user (or ours).
func makeDir(pattern string, cred *syscall.Credential) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("sqltest: %w", err)
	}
	if err := chown(dir, cred); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("sqltest: %w", err)
	}
	return nil
}

// writeOwned writes a file owned by cred's user (or ours).
func writeOwned(path string, data []byte, perm os.FileMode, cred *syscall.Credential) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("sqltest: %w", err)
	}
	return chown(path, cred)
}

func appendOwned(path string, data []byte, cred *syscall.Credential) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqltest: %w", err)
	}
	_, err = f.Write(data)
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("sqltest: %w", err)
	}
	return chown(path, cred)
}

// childEnv is the environment of the programs sqltest runs: ours without
// the PG* variables, which would redirect initdb, pg_ctl and friends.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// command returns a command that runs as cred's user in dir.
func command(ctx context.Context, cred *syscall.Credential, dir, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.WaitDelay = 2 * time.Second
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// run runs cmd and returns an error that holds its output.
func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg != "" {
			return fmt.Errorf("sqltest: %s %s: %w: %s", filepath.Base(cmd.Path), strings.Join(cmd.Args[1:], " "), err, msg)
		}
		return fmt.Errorf("sqltest: %s %s: %w", filepath.Base(cmd.Path), strings.Join(cmd.Args[1:], " "), err)
	}
	return nil
}

func (s *Server) pgBin(ctx context.Context, name string, args ...string) *exec.Cmd {
	return command(ctx, s.runAs, s.dir, filepath.Join(s.binDir, name), args...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("sqltest: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port, nil
}

// newLocal creates the directory, the watchdog and an empty Server for a
// cluster run from binDir. The caller must Close it on error.
func newLocal(binDir string) (*Server, error) {
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := makeDir("sqltest-pg-", cred)
	if err != nil {
		return nil, err
	}
	s := &Server{
		kind:    kindLocal,
		host:    "127.0.0.1",
		binDir:  binDir,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
		version: serverVersion(binDir),
		runAs:   cred,
	}
	// The watchdog stops the server and removes dir if this process dies
	// without calling Close.
	s.reaper, err = startReaper(cred,
		`"$1" stop -D "$2" -m immediate -w -t 10 >/dev/null 2>&1; rm -rf "$3"`,
		filepath.Join(binDir, "pg_ctl"), s.dataDir, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func startLocal(ctx context.Context, opts Options, binDir string) (_ *Server, err error) {
	s, err := newLocal(binDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	start := time.Now()
	err = run(s.pgBin(ctx, "initdb", "-D", s.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"))
	if err != nil {
		return nil, err
	}
	if err := s.writeHBA(opts.HBA); err != nil {
		return nil, err
	}
	if err := appendOwned(filepath.Join(s.dataDir, "postgresql.conf"),
		[]byte("\n# added by sqltest\ninclude 'sqltest.conf'\n"), s.runAs); err != nil {
		return nil, err
	}
	if err := s.startOnFreePort(ctx, opts, opts.ServerConfig); err != nil {
		return nil, err
	}
	if err := s.setupRoles(ctx); err != nil {
		return nil, withLog(err, s.Log())
	}
	opts.progressf("sqltest: PostgreSQL %s ready on %s:%d in %v", s.version, s.host, s.port,
		time.Since(start).Round(time.Millisecond))
	return s, nil
}

// startOnFreePort writes sqltest.conf with a free port and starts the
// server, trying other ports when the chosen one was taken meanwhile.
func (s *Server) startOnFreePort(ctx context.Context, opts Options, extra map[string]string) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = freePort(); err != nil {
			return err
		}
		if err = s.writeConf(extra); err != nil {
			return err
		}
		opts.progressf("sqltest: starting PostgreSQL %s from %s on %s:%d ...", s.version, s.binDir, s.host, s.port)
		logStart := fileSize(s.logPath)
		if err = s.pgCtlStart(ctx); err == nil {
			return nil
		}
		if !strings.Contains(readFrom(s.logPath, logStart), "already in use") {
			break
		}
	}
	return withLog(err, s.Log())
}

// writeConf writes sqltest.conf, which postgresql.conf includes.
func (s *Server) writeConf(extra map[string]string) error {
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(s.port),
		"unix_socket_directories": s.dir,
		"fsync":                   "off",
		"full_page_writes":        "off",
		"synchronous_commit":      "off",
		"max_connections":         "300",
		"password_encryption":     "scram-sha-256",
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"logging_collector":       "off",
	}
	for k, v := range extra {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# written by sqltest; postgresql.conf lines after the include override it\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteLiteral(settings[k]))
	}
	return writeOwned(filepath.Join(s.dataDir, "sqltest.conf"), b.Bytes(), 0o600, s.runAs)
}

// writeHBA writes pg_hba.conf: extra lines, then the defaults.
func (s *Server) writeHBA(extra []string) error {
	lines := append([]string{"# extra lines first, written by sqltest"}, extra...)
	lines = append(lines,
		"# defaults written by sqltest",
		"local all all trust",
		"local replication all trust",
		"host all "+passwordRole+" 127.0.0.1/32 scram-sha-256",
		"host all all 127.0.0.1/32 trust",
		"host replication all 127.0.0.1/32 trust",
	)
	return writeOwned(filepath.Join(s.dataDir, "pg_hba.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o600, s.runAs)
}

func (s *Server) pgCtlStart(ctx context.Context) error {
	err := run(s.pgBin(ctx, "pg_ctl", "start", "-D", s.dataDir, "-l", s.logPath, "-w", "-t", "60"))
	if err == nil {
		s.running = true
	}
	return err
}

// stopLocked stops a local server with pg_ctl in the given mode and kills
// the postmaster when that fails. s.mu must be held.
func (s *Server) stopLocked(ctx context.Context, mode string) error {
	pid := s.postmasterPID()
	if pid == 0 {
		s.running = false
		return nil // not running
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := run(s.pgBin(ctx, "pg_ctl", "stop", "-D", s.dataDir, "-m", mode, "-w", "-t", "20"))
	if err == nil {
		s.running = false
		return nil
	}
	// pg_ctl failed: kill the postmaster; its children notice and exit.
	if kerr := syscall.Kill(pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		return fmt.Errorf("sqltest: stop server: %w; kill %d: %w", err, pid, kerr)
	}
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(filepath.Join(s.dataDir, "postmaster.pid"))
	s.running = false
	return nil
}

// postmasterPID returns the pid in postmaster.pid, or 0.
func (s *Server) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

func (s *Server) checkLocalLocked(op string) error {
	if s.closed {
		return fmt.Errorf("sqltest: %s: server is closed", op)
	}
	if s.kind != kindLocal {
		return fmt.Errorf("sqltest: %s: %w", op, ErrNotLocal)
	}
	return nil
}

// Restart restarts a local server (pg_ctl restart -m fast) on the same port
// and waits until it accepts connections. Sessions are terminated. It
// returns an error wrapping ErrNotLocal for other servers, and one with the
// tail of the server log when the server does not come back.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocalLocked("restart"); err != nil {
		return err
	}
	if !s.running {
		return withLog(s.pgCtlStart(ctx), s.Log())
	}
	err := run(s.pgBin(ctx, "pg_ctl", "restart", "-D", s.dataDir, "-l", s.logPath, "-m", "fast", "-w", "-t", "60"))
	if err != nil {
		return withLog(err, s.Log())
	}
	return nil
}

// Stop stops a local server (pg_ctl stop -m fast) but keeps its data
// directory, so that tests can see a server that is down; StartAgain starts
// it again on the same port. It is a no-op when the server is already
// stopped, and returns an error wrapping ErrNotLocal for other servers.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocalLocked("stop"); err != nil {
		return err
	}
	return s.stopLocked(ctx, "fast")
}

// StartAgain starts a local server stopped by Stop on the same port and
// waits until it accepts connections. It is a no-op when the server runs.
// The error has the tail of the server log when the server does not start
// (for example because another process took the port meanwhile).
func (s *Server) StartAgain(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocalLocked("start again"); err != nil {
		return err
	}
	if s.postmasterPID() != 0 {
		return nil
	}
	return withLog(s.pgCtlStart(ctx), s.Log())
}

// Reload makes a local server reread postgresql.conf and pg_hba.conf
// (pg_ctl reload) and waits until new connections see the new files. A
// setting that needs a restart is not applied (see Restart). It returns an
// error wrapping ErrNotLocal for other servers.
func (s *Server) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocalLocked("reload"); err != nil {
		return err
	}
	before, err := s.queryValue(ctx, "", "SELECT pg_conf_load_time()")
	if err != nil {
		return err
	}
	if err := run(s.pgBin(ctx, "pg_ctl", "reload", "-D", s.dataDir)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		after, err := s.queryValue(ctx, "", "SELECT pg_conf_load_time()")
		if err == nil && after != before {
			return nil
		}
		select {
		case <-ctx.Done():
			return withLog(fmt.Errorf("sqltest: reload not confirmed: %w", ctx.Err()), s.Log())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// AppendConfig appends lines to the postgresql.conf of a local server;
// later lines override earlier ones and the defaults sqltest sets. Call
// Reload or Restart to apply them. It returns an error wrapping ErrNotLocal
// for other servers.
func (s *Server) AppendConfig(lines ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocalLocked("append config"); err != nil {
		return err
	}
	return appendOwned(filepath.Join(s.dataDir, "postgresql.conf"), []byte(strings.Join(lines, "\n")+"\n"), s.runAs)
}

// AppendHBA adds lines to the pg_hba.conf of a local server: before every
// other line when prepend is true (pg_hba.conf is matched top down), else
// after them. The Unix socket line that Exec and NewDatabase rely on is
// among the defaults, so prepend lines should not reject local
// connections of postgres. Call Reload to apply them. It returns an error
// wrapping ErrNotLocal for other servers.
func (s *Server) AppendHBA(prepend bool, lines ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocalLocked("append hba"); err != nil {
		return err
	}
	path := filepath.Join(s.dataDir, "pg_hba.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sqltest: %w", err)
	}
	add := strings.Join(lines, "\n") + "\n"
	var data string
	if prepend {
		data = add + string(old)
	} else {
		data = string(old) + add
	}
	return writeOwned(path, []byte(data), 0o600, s.runAs)
}

// WriteFile writes data to name (relative to Dir) for a local server, with
// mode 0600 and owned by the user the server runs as, so that the server
// can read it even when the tests run as root (private keys for ssl_key_file,
// for example). It returns the absolute path, or an error wrapping
// ErrNotLocal for other servers.
func (s *Server) WriteFile(name string, data []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocalLocked("write file"); err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, name)
	return path, writeOwned(path, data, 0o600, s.runAs)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	return string(b[offset:])
}
