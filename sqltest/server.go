package sqltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Environment variables read by Start from Options.Env.
const (
	// EnvDSN names the variable holding the DSN of an existing server to use
	// instead of starting one.
	EnvDSN = "PGPUREPY_TEST_DSN"
	// EnvDockerImage names the variable holding the image that the Docker
	// fallback runs (default postgres:16).
	EnvDockerImage = "PGPUREPY_TEST_DOCKER_IMAGE"
)

// Names of the password role that Start creates on local and Docker servers.
const (
	passwordRole = "pgpurepy_pw"
	passwordPW   = "pgpurepy-secret-pw"
	templateDB   = "sqltest_template"
)

// ErrNotLocal is returned (wrapped) by the methods that need a server that
// sqltest started from local binaries (Restart, Stop, StartAgain, Reload,
// AppendConfig, AppendHBA, WriteFile) when the server is external or runs in
// Docker. Tests that need those methods can skip on it.
var ErrNotLocal = errors.New("server was not started from local binaries")

// Options configures Start and StartPair. The zero value is ready to use.
type Options struct {
	// Progress receives one line while a server starts; nil means silent.
	Progress io.Writer
	// Env is the environment that PGPUREPY_TEST_DSN and
	// PGPUREPY_TEST_DOCKER_IMAGE are read from; nil means os.Environ().
	Env []string
	// ServerConfig holds extra postgresql.conf settings, such as
	// {"ssl": "on"}. Values are written quoted. Ignored for an external DSN.
	ServerConfig map[string]string
	// HBA holds extra pg_hba.conf lines placed before the default lines.
	// Ignored for an external DSN.
	HBA []string
}

func (o *Options) getenv(key string) string {
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as with os.Getenv on a duplicate
		}
	}
	return v
}

func (o *Options) progressf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

type serverKind int

const (
	kindExternal serverKind = iota
	kindLocal
	kindDocker
)

// Server is one running PostgreSQL server: an external one named by
// PGPUREPY_TEST_DSN, or one that sqltest started and owns. Its methods are
// safe for concurrent use, but lifecycle methods (Close, Stop, StartAgain,
// Restart) are serialised and block each other.
type Server struct {
	kind    serverKind
	host    string
	port    int
	baseDSN string // external: the DSN as given

	binDir  string              // local: directory of initdb, pg_ctl, postgres
	dir     string              // local: temporary directory owning everything
	dataDir string              // local: dir/data
	logPath string              // local: dir/postgres.log
	version string              // local: major version such as "15"
	runAs   *syscall.Credential // local: the postgres user when running as root

	containerID string // docker

	password string // password of passwordRole; "" when there is none
	template string // template database for NewDatabase
	reaper   *reaper

	// mu serialises lifecycle operations (it is held across pg_ctl runs) and
	// protects the following fields.
	mu      sync.Mutex
	running bool // local: the postmaster is believed to be up
	closed  bool
}

// Start finds or starts a PostgreSQL server, in this order: the DSN in
// PGPUREPY_TEST_DSN (read from opts.Env); local binaries found through
// `postgres` on PATH, `pg_config --bindir` or /usr/lib/postgresql/*/bin,
// started with initdb in a new temporary directory on a free loopback port;
// a container run with the docker CLI when `docker info` answers. When none
// is available the error says what to install. When a local server fails to
// start, the error includes the tail of its log and nothing is left behind.
// The caller must Close the server.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if dsn := opts.getenv(EnvDSN); dsn != "" {
		return startExternal(ctx, dsn)
	}
	binDir, tried := findBinDir(defaultSearch())
	if binDir != "" {
		return startLocal(ctx, opts, binDir)
	}
	dockerErr := dockerAvailable(ctx)
	if dockerErr == nil {
		return startDocker(ctx, opts)
	}
	return nil, noServerError(tried, dockerErr)
}

func noServerError(tried []string, dockerErr error) error {
	return fmt.Errorf("sqltest: no PostgreSQL available: %s is not set; "+
		"no PostgreSQL binaries (postgres, initdb, pg_ctl) found (looked in: %s); "+
		"docker is not usable (%v); install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; "+
		"Fedora: dnf install postgresql-server; macOS: brew install postgresql), "+
		"start a Docker daemon, or set %s=postgres://user:password@host:5432/postgres",
		EnvDSN, strings.Join(tried, ", "), dockerErr, EnvDSN)
}

func startExternal(ctx context.Context, dsn string) (*Server, error) {
	cfg, err := parseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqltest: parse %s: %w", EnvDSN, err)
	}
	s := &Server{
		kind:     kindExternal,
		host:     cfg.Host,
		port:     int(cfg.Port),
		baseDSN:  dsn,
		template: "template0",
		running:  true,
	}
	if err := s.Exec(ctx, "", "SELECT 1"); err != nil {
		return nil, fmt.Errorf("sqltest: connect to %s: %w", EnvDSN, err)
	}
	return s, nil
}

// Close stops the server and removes its temporary directory; for an
// external server it does nothing. It is idempotent: later calls return nil.
// When pg_ctl cannot stop the server, Close kills the postmaster. The error
// reports what could not be stopped or removed.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	switch s.kind {
	case kindLocal:
		if err := s.stopLocked(context.Background(), "immediate"); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("sqltest: remove %s: %w", s.dir, err))
		}
	case kindDocker:
		if err := dockerRemove(s.containerID); err != nil {
			errs = append(errs, err)
		}
	}
	s.running = false
	s.reaper.stop()
	return errors.Join(errs...)
}

// Host returns the host name or address clients connect to.
func (s *Server) Host() string { return s.host }

// Port returns the TCP port clients connect to.
func (s *Server) Port() int { return s.port }

// BinDir returns the directory of the PostgreSQL binaries that run a local
// server, or "" for an external or Docker server.
func (s *Server) BinDir() string { return s.binDir }

// Dir returns the temporary directory of a local server: the parent of its
// data directory, a place for certificates and extra configuration files
// (see WriteFile). It is "" for an external or Docker server.
func (s *Server) Dir() string { return s.dir }

// DataDir returns the data directory (PGDATA) of a local server, or "".
func (s *Server) DataDir() string { return s.dataDir }

// DSN returns a URL for connecting to database as the superuser postgres,
// without a password and with sslmode=disable; an empty database means
// "postgres". For an external server it is PGPUREPY_TEST_DSN with the
// database replaced (kept as given when database is "").
func (s *Server) DSN(database string) string {
	if s.kind == kindExternal {
		return replaceDatabase(s.baseDSN, database)
	}
	if database == "" {
		database = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort(s.host, strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// PasswordDSN returns a URL for connecting to database as the role
// pgpurepy_pw, which must authenticate with SCRAM-SHA-256, and its password.
// The role can log in, connect to every database and create objects in the
// public schema of databases from NewDatabase; it is not a superuser. For an
// external server there is no such role and PasswordDSN returns "", "":
// password tests should skip then.
func (s *Server) PasswordDSN(database string) (dsn, password string) {
	if s.password == "" {
		return "", ""
	}
	if database == "" {
		database = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(passwordRole, s.password),
		Host:     net.JoinHostPort(s.host, strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String(), s.password
}

// Log returns the server log: the log file of a local server, `docker logs`
// of a container, "" for an external server. It returns what it could read.
func (s *Server) Log() string {
	switch s.kind {
	case kindLocal:
		b, _ := os.ReadFile(s.logPath)
		return string(b)
	case kindDocker:
		return dockerLogs(s.containerID)
	}
	return ""
}

// Exec runs sql in database ("" means "postgres") over a new superuser
// connection using the simple query protocol; several statements separated
// by semicolons run in one implicit transaction, so statements such as
// CREATE DATABASE must be sent alone. It is meant for setup. The error is the first one the server
// returned, a *pgconn.PgError reachable with errors.As.
func (s *Server) Exec(ctx context.Context, database, sql string) error {
	_, err := s.query(ctx, database, sql)
	return err
}

// query runs sql like Exec and returns the rows of its last result as text.
func (s *Server) query(ctx context.Context, database, sql string) ([][]string, error) {
	conn, err := pgconn.Connect(ctx, s.adminDSN(database))
	if err != nil {
		return nil, fmt.Errorf("sqltest: connect: %w", err)
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("sqltest: exec: %w", err)
	}
	var rows [][]string
	for _, r := range results {
		if r.Err != nil {
			return nil, fmt.Errorf("sqltest: exec: %w", r.Err)
		}
		rows = rows[:0]
		for _, row := range r.Rows {
			cols := make([]string, len(row))
			for i, v := range row {
				cols[i] = string(v)
			}
			rows = append(rows, cols)
		}
	}
	return rows, nil
}

// queryValue returns the first column of the first row of sql's result.
func (s *Server) queryValue(ctx context.Context, database, sql string) (string, error) {
	rows, err := s.query(ctx, database, sql)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return "", fmt.Errorf("sqltest: %q returned no rows", sql)
	}
	return rows[0][0], nil
}

// adminDSN is the DSN of the superuser connections Exec makes. A local
// server is reached through its Unix socket, which pg_hba.conf always
// trusts, so that HBA lines added by tests cannot lock the helpers out.
func (s *Server) adminDSN(database string) string {
	if s.kind != kindLocal {
		return s.DSN(database)
	}
	if database == "" {
		database = "postgres"
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable",
		quoteKV(s.dir), s.port, quoteKV(database))
}

// replaceDatabase returns dsn, in URL or keyword/value form, with its
// database set to database.
func replaceDatabase(dsn, database string) string {
	if database == "" {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + database
			u.RawPath = ""
			return u.String()
		}
	}
	// In keyword/value form the last occurrence of a keyword wins.
	return strings.TrimSpace(dsn) + " dbname=" + quoteKV(database)
}

// quoteKV quotes a value for a keyword/value connection string.
func quoteKV(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral quotes an SQL string literal.
func quoteLiteral(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}

// setupRoles creates the password role and the template database that
// NewDatabase copies, on a server that sqltest started.
func (s *Server) setupRoles(ctx context.Context) error {
	err := s.Exec(ctx, "", fmt.Sprintf(
		"SET password_encryption = 'scram-sha-256'; CREATE ROLE %s LOGIN PASSWORD %s",
		quoteIdent(passwordRole), quoteLiteral(passwordPW)))
	if err != nil {
		return err
	}
	if err := s.Exec(ctx, "", "CREATE DATABASE "+quoteIdent(templateDB)+" TEMPLATE template0"); err != nil {
		return err
	}
	if err := s.Exec(ctx, templateDB, "GRANT ALL ON SCHEMA public TO "+quoteIdent(passwordRole)); err != nil {
		return err
	}
	err = s.Exec(ctx, "", "ALTER DATABASE "+quoteIdent(templateDB)+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
	if err != nil {
		return err
	}
	s.password = passwordPW
	s.template = templateDB
	return nil
}

// logTail returns the last lines of a log for an error message.
func logTail(log string) string {
	const maxLines, maxBytes = 30, 4000
	log = strings.TrimRight(log, "\n")
	if len(log) > maxBytes {
		log = log[len(log)-maxBytes:]
	}
	lines := strings.Split(log, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// withLog adds the tail of log to a non-nil err.
func withLog(err error, log string) error {
	if err == nil {
		return nil
	}
	if t := logTail(log); t != "" {
		return fmt.Errorf("%w\nserver log (tail):\n%s", err, t)
	}
	return err
}

// parseConfig parses a DSN with pgconn.
func parseConfig(dsn string) (*pgconn.Config, error) { return pgconn.ParseConfig(dsn) }
