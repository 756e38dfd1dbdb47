package sqltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Pgbouncer is a pgbouncer process in front of a Server.
type Pgbouncer struct {
	host    string
	port    int
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	reaper  *reaper

	mu     sync.Mutex // protects closed
	closed bool
}

// ErrNoPgbouncer is returned (wrapped) by StartPgbouncer when the pgbouncer
// binary is not installed (Debian/Ubuntu package: pgbouncer); tests may
// skip on it.
var ErrNoPgbouncer = errors.New("pgbouncer binary not found (install the pgbouncer package)")

func findPgbouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", ErrNoPgbouncer
}

// StartPgbouncer starts pgbouncer (found on PATH or in /usr/sbin) in front
// of s, listening on a free port of 127.0.0.1, with its files in a new
// temporary directory, as the postgres user when running as root. Every
// database name is forwarded to s; clients authenticate with auth_type =
// trust as postgres or as the password role of s (see Server.PasswordDSN),
// which are listed in the auth_file. poolMode is "session", "transaction"
// or "statement" ("" means session); settings are extra [pgbouncer]
// settings such as server_idle_timeout, written after and overriding the
// defaults. It waits until pgbouncer answers. The error wraps ErrNoPgbouncer
// when the binary is missing, and holds the tail of pgbouncer's log when it
// does not start. The caller must Close it.
func StartPgbouncer(ctx context.Context, s *Server, poolMode string, settings map[string]string) (*Pgbouncer, error) {
	return startPgbouncer(ctx, s, poolMode, settings)
}

func startPgbouncer(ctx context.Context, s *Server, poolMode string, settings map[string]string) (_ *Pgbouncer, err error) {
	bin, err := findPgbouncer()
	if err != nil {
		return nil, fmt.Errorf("sqltest: %w", err)
	}
	if poolMode == "" {
		poolMode = "session"
	}
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := makeDir("sqltest-pgbouncer-", cred)
	if err != nil {
		return nil, err
	}
	b := &Pgbouncer{
		host:    "127.0.0.1",
		dir:     dir,
		logPath: filepath.Join(dir, "pgbouncer.log"),
		exited:  make(chan struct{}),
	}
	defer func() {
		if err != nil {
			err = withLog(err, b.Log())
			b.Close()
		}
	}()

	users := fmt.Sprintf("%q %q\n", "postgres", "")
	if _, pw := s.PasswordDSN(""); pw != "" {
		users += fmt.Sprintf("%q %q\n", passwordRole, pw)
	}
	if cfg := s.userFromDSN(); cfg != "" && cfg != "postgres" {
		users += fmt.Sprintf("%q %q\n", cfg, s.passwordFromDSN())
	}
	if err := writeOwned(filepath.Join(dir, "userlist.txt"), []byte(users), 0o600, cred); err != nil {
		return nil, err
	}

	for attempt := 0; attempt < 5; attempt++ {
		if b.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = b.writeConfig(s, poolMode, settings, cred); err != nil {
			return nil, err
		}
		logStart := fileSize(b.logPath)
		if err = b.start(ctx, bin, cred); err == nil {
			break
		}
		if !strings.Contains(readFrom(b.logPath, logStart), "in use") {
			return nil, err
		}
		b.exited = make(chan struct{})
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Pgbouncer) writeConfig(s *Server, poolMode string, extra map[string]string, cred *syscall.Credential) error {
	conf := map[string]string{
		"listen_addr":               "127.0.0.1",
		"listen_port":               strconv.Itoa(b.port),
		"unix_socket_dir":           "",
		"auth_type":                 "trust",
		"auth_file":                 filepath.Join(b.dir, "userlist.txt"),
		"pool_mode":                 poolMode,
		"logfile":                   b.logPath,
		"pidfile":                   filepath.Join(b.dir, "pgbouncer.pid"),
		"admin_users":               "postgres",
		"max_client_conn":           "1000",
		"default_pool_size":         "20",
		"ignore_startup_parameters": "extra_float_digits",
	}
	for k, v := range extra {
		conf[k] = v
	}
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "[databases]\n* = host=%s port=%d\n\n[pgbouncer]\n", s.Host(), s.Port())
	for _, k := range keys {
		fmt.Fprintf(&buf, "%s = %s\n", k, conf[k])
	}
	return writeOwned(filepath.Join(b.dir, "pgbouncer.ini"), buf.Bytes(), 0o600, cred)
}

// start runs pgbouncer in the foreground as our child and waits until it
// accepts TCP connections.
func (b *Pgbouncer) start(ctx context.Context, bin string, cred *syscall.Credential) error {
	cmd := command(context.Background(), cred, b.dir, bin, filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sqltest: start pgbouncer: %w", err)
	}
	b.cmd = cmd
	exited := b.exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	b.reaper.stop() // from an attempt on a port that was taken
	{
		r, err := startReaper(cred, `kill -9 "$1" 2>/dev/null; rm -rf "$2"`, strconv.Itoa(cmd.Process.Pid), b.dir)
		if err != nil {
			return err
		}
		b.reaper = r
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addr := net.JoinHostPort(b.host, strconv.Itoa(b.port))
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("sqltest: pgbouncer exited: %v", cmd.ProcessState)
		case <-ctx.Done():
			b.kill()
			return fmt.Errorf("sqltest: pgbouncer not listening on %s: %w", addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (b *Pgbouncer) kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.exited
}

// DSN returns a URL for connecting through pgbouncer to database as
// postgres, with sslmode=disable; "" means "postgres".
func (b *Pgbouncer) DSN(database string) string {
	if database == "" {
		database = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort(b.host, strconv.Itoa(b.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Host returns the address pgbouncer listens on.
func (b *Pgbouncer) Host() string { return b.host }

// Port returns the port pgbouncer listens on.
func (b *Pgbouncer) Port() int { return b.port }

// Log returns pgbouncer's log file as far as it could be read.
func (b *Pgbouncer) Log() string {
	data, _ := os.ReadFile(b.logPath)
	return string(data)
}

// Close kills pgbouncer (its client and server connections drop) and
// removes its directory. It is idempotent; the error reports a directory
// that could not be removed.
func (b *Pgbouncer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.kill()
	b.reaper.stop()
	if err := os.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("sqltest: remove %s: %w", b.dir, err)
	}
	return nil
}

// userFromDSN returns the user of an external server's DSN, or "".
func (s *Server) userFromDSN() string {
	if s.kind != kindExternal {
		return ""
	}
	if cfg, err := parseConfig(s.baseDSN); err == nil {
		return cfg.User
	}
	return ""
}

func (s *Server) passwordFromDSN() string {
	if cfg, err := parseConfig(s.baseDSN); err == nil {
		return cfg.Password
	}
	return ""
}
