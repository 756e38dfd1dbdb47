package pgpurepy_test

// Security scenarios of issue 6: TLS with sslmode=verify-full against a
// certificate from a CA the test generates, SCRAM-SHA-256, clear
// authentication errors, a password that never shows up in an error, a log
// line or a panic, and hostile strings that are always sent as parameters.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// --- TLS ----------------------------------------------------------------

// secCA is a certificate authority made for one test.
type secCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func secNewCA(t testing.TB, name string) *secCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          secSerial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"pgpurepy tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &secCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func secSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// serverCert issues a server certificate for CN localhost with the IP SAN
// 127.0.0.1 (and the DNS SAN localhost), in PEM, with its PKCS#8 key.
func (ca *secCA) serverCert(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: secSerial(t),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// writeFile writes the CA certificate to a file of the test's and returns
// its path, for sslrootcert.
func (ca *secCA) writeFile(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secStartTLSServer starts a server of the test's own with ssl=on and a
// certificate issued by ca. The certificate and key are written with
// WriteFile (the key 0600, owned by the server's user, as PostgreSQL
// requires), which needs the server's directory, so ssl is switched on with
// the settings ServerConfig would hold and a restart.
func secStartTLSServer(t testing.TB, ca *secCA) *sqltest.Server {
	t.Helper()
	srv := resStartServer(t, sqltest.Options{})
	certPEM, keyPEM := ca.serverCert(t)
	certPath, err := srv.WriteFile("server.crt", certPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, err := srv.WriteFile("server.key", keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{"ssl": "on", "ssl_cert_file": certPath, "ssl_key_file": keyPath}
	var lines []string
	for _, k := range []string{"ssl", "ssl_cert_file", "ssl_key_file"} {
		lines = append(lines, fmt.Sprintf("%s = '%s'", k, strings.ReplaceAll(settings[k], "'", "''")))
	}
	if err := srv.AppendConfig(lines...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("restart with ssl=on: %v", err)
	}
	return srv
}

// secTLSDSN returns a DSN for srv as postgres on 127.0.0.1 with
// sslmode=verify-full and the given root certificate file.
func secTLSDSN(srv *sqltest.Server, rootCert string, extra url.Values) string {
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {rootCert}}
	for k, v := range extra {
		q[k] = v
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port())),
		Path:     "/postgres",
		RawQuery: q.Encode(),
	}
	return u.String()
}

// TestSecurityTLSVerifyFull connects with sslmode=verify-full: queries work
// and run encrypted, a cancelled statement keeps its TLS connection, and a
// certificate from another CA is refused with a certificate error.
func TestSecurityTLSVerifyFull(t *testing.T) {
	ca := secNewCA(t, "pgpurepy test CA")
	srv := secStartTLSServer(t, ca)
	caFile := ca.writeFile(t, "ca.crt")

	t.Run("queries", func(t *testing.T) {
		db, x := resOpen(t, secTLSDSN(srv, caFile, url.Values{"connection_count": {"3"}}))
		var ssl bool
		var version string
		err := db.QueryRow("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &version)
		if err != nil {
			t.Fatal(err)
		}
		if !ssl {
			t.Fatal("connection is not encrypted")
		}
		t.Logf("TLS %s", version)
		resRun(3, 60, resMixedOp(db, x)).requireZero(t, "queries over TLS")
	})

	t.Run("cancel keeps the connection", func(t *testing.T) {
		db, x := resOpen(t, secTLSDSN(srv, caFile, url.Values{"connection_count": {"1"}}))
		assertCancelKeepsConnection(t, db, x, "sec-tls-cancel")
	})

	t.Run("wrong CA", func(t *testing.T) {
		other := secNewCA(t, "some other CA")
		db, _ := resOpen(t, secTLSDSN(srv, other.writeFile(t, "other-ca.crt"), url.Values{"connection_count": {"1"}}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := db.PingContext(ctx)
		if err == nil {
			t.Fatal("connected although the server certificate is from another CA")
		}
		var verr *tls.CertificateVerificationError
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &verr) && !errors.As(err, &uerr) {
			t.Fatalf("error is not a certificate verification error: %v (%T)", err, err)
		}
		if !strings.Contains(err.Error(), "certificate") || ctx.Err() != nil {
			t.Fatalf("error does not clearly name the certificate problem: %v", err)
		}
		t.Logf("wrong CA: %v", err)
	})

	t.Run("plain text refused by verify-full", func(t *testing.T) {
		// A server without TLS must not be accepted by verify-full: the
		// shared server has ssl off.
		shared := sqltest.Shared(t)
		if shared.Dir() == "" {
			t.Skip("shared server is not local")
		}
		u := secTLSDSN(shared, caFile, url.Values{"connection_count": {"1"}})
		db, _ := resOpen(t, u)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.PingContext(ctx); err == nil {
			t.Fatal("verify-full connected to a server without TLS")
		} else {
			t.Logf("server without TLS: %v", err)
		}
	})
}

// --- SCRAM and authentication errors --------------------------------------

// secPasswordDSN returns the password DSN of a fresh database on the
// shared server, the database's superuser DSN and the password, skipping
// when the server has no password role.
func secPasswordDSN(t testing.TB) (pwDSN, adminDSN, password string) {
	t.Helper()
	adminDSN = sqltest.DB(t)
	pwDSN, password = sqltest.Shared(t).PasswordDSN(resDBName(t, adminDSN))
	if pwDSN == "" {
		t.Skip("the server has no password role (PGPUREPY_TEST_DSN)")
	}
	return pwDSN, adminDSN, password
}

// TestSecuritySCRAM logs in as a role that must authenticate with
// SCRAM-SHA-256, and checks that a wrong password gives a clear
// authentication error (28P01) that contains neither password.
func TestSecuritySCRAM(t *testing.T) {
	pwDSN, adminDSN, password := secPasswordDSN(t)
	admin, _ := resOpen(t, adminDSN+"&connection_count=1")
	var method string
	err := admin.QueryRow(`SELECT auth_method FROM pg_hba_file_rules
		WHERE 'pgpurepy_pw' = ANY(user_name) AND error IS NULL LIMIT 1`).Scan(&method)
	if err != nil {
		t.Fatal(err)
	}
	var scram bool
	if err := admin.QueryRow(`SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'pgpurepy_pw'`).Scan(&scram); err != nil {
		t.Fatal(err)
	}
	if method != "scram-sha-256" || !scram {
		t.Fatalf("the password role does not use SCRAM-SHA-256: hba method %q, scram verifier %v", method, scram)
	}

	db, x := resOpen(t, pwDSN+"&connection_count=2")
	var user string
	if err := db.QueryRow("SELECT current_user").Scan(&user); err != nil {
		t.Fatalf("login with SCRAM-SHA-256: %v", err)
	}
	if user != "pgpurepy_pw" {
		t.Fatalf("logged in as %q", user)
	}
	resRun(2, 40, resMixedOp(db, x)).requireZero(t, "queries as the SCRAM role")

	wrongPW := secRandom(t, "wrong-pw-")
	bad, badX := resOpen(t, secWithPassword(t, pwDSN, wrongPW)+"&connection_count=1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for what, err := range map[string]error{
		"database/sql": bad.PingContext(ctx),
		"extension":    func() error { _, err := badX.Execute(ctx, "SELECT 1"); return err }(),
	} {
		if err == nil {
			t.Fatalf("%s: login with a wrong password succeeded", what)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Fatalf("%s: want an authentication error with SQLSTATE 28P01, got %v (%T)", what, err, err)
		}
		if !strings.Contains(err.Error(), "password authentication failed") {
			t.Fatalf("%s: error does not say the password was wrong: %v", what, err)
		}
		secNoSecret(t, what+" error", fmt.Sprintf("%v %+v", err, err), password, wrongPW)
		t.Logf("%s: %v", what, err)
	}
}

// --- the password never leaks ---------------------------------------------

// secLogBuffer is a concurrency-safe log sink: the pool logs from its
// background goroutines.
type secLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *secLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *secLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// secNoSecret fails t when text contains any of the secrets.
func secNoSecret(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains the password %q: %s", what, s, text)
		}
	}
}

// secNoPanic runs fn and fails t if it panics, checking the panic message
// for the secrets as well.
func secNoPanic(t testing.TB, what string, fn func(), secrets ...string) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			secNoSecret(t, what+" panic message", msg, secrets...)
			t.Errorf("%s panicked: %s", what, msg)
		}
	}()
	fn()
}

// TestSecurityPasswordNeverLeaks drives every path that reports a problem
// with a DSN holding a password (a wrong password, DSNs that do not parse or
// hold bad values, a server that is down, server errors) with a debug
// logger attached, and checks that no error, log line or panic message
// contains the password.
func TestSecurityPasswordNeverLeaks(t *testing.T) {
	pwDSN, _, password := secPasswordDSN(t)
	wrongPW := secRandom(t, "leak-check-")
	secrets := []string{password, wrongPW}
	logs := &secLogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// open builds a pool with the logger the way an application does.
	open := func(dsn string) (*sql.DB, error) {
		cfg, err := pgpurepy.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		cfg.Logger = logger
		c, err := pgpurepy.NewConnectorConfig(cfg)
		if err != nil {
			return nil, err
		}
		return sql.OpenDB(c), nil
	}
	checkErr := func(what string, err error) {
		t.Helper()
		if err != nil {
			secNoSecret(t, what+" error", fmt.Sprintf("%v | %+v | %s", err, err, err), secrets...)
		}
	}
	// exercise opens a pool on dsn, runs a few statements and closes it,
	// checking every error; it reports the first statement's error.
	exercise := func(what, dsn string) (first error) {
		t.Helper()
		secNoPanic(t, what, func() {
			db, err := open(dsn)
			checkErr(what+": open", err)
			if err != nil {
				first = err
				return
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			first = db.PingContext(ctx)
			checkErr(what+": ping", first)
			_, err = db.ExecContext(ctx, "SELECT $1::int", 1)
			checkErr(what+": exec", err)
			_, err = db.ExecContext(ctx, "SELEKT syntax error")
			checkErr(what+": server error", err)
			x := ext(t, db)
			_, err = x.Execute(ctx, "SELECT 1")
			checkErr(what+": extension", err)
			_, err = x.FetchOne(ctx, "SELECT 1/0")
			checkErr(what+": division by zero", err)
			secNoSecret(t, what+": stats", fmt.Sprintf("%+v", x.Stats()), secrets...)
		}, secrets...)
		return first
	}

	// The right password: it works, and nothing it logs holds it.
	if err := exercise("right password", pwDSN+"&connection_count=2"); err != nil {
		t.Fatalf("right password: %v", err)
	}

	// A wrong password.
	if err := exercise("wrong password", secWithPassword(t, pwDSN, wrongPW)+"&connection_count=2"); err == nil {
		t.Fatal("wrong password: connected")
	}

	// The server is down: nothing listens on the port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := ln.Addr().String()
	_ = ln.Close()
	u, _ := url.Parse(pwDSN)
	u.Host = downAddr
	if err := exercise("server down", u.String()+"&connection_count=1"); err == nil {
		t.Fatal("server down: connected")
	}

	// DSNs that do not parse or hold bad values, in both forms, with the
	// password in the password field, and also pasted into the driver's own
	// keys (ConfigError promises not to repeat their values). pgconn's own
	// keys (sslmode, sslrootcert, connect_timeout, target_session_attrs)
	// get a decoy instead: pgconn repeats their values in its errors, and
	// the driver cannot know that such a value is secret.
	decoy := secRandom(t, "decoy-")
	host, port := sqltest.Shared(t).Host(), sqltest.Shared(t).Port()
	base := fmt.Sprintf("postgres://pgpurepy_pw:%s@%s", password, net.JoinHostPort(host, strconv.Itoa(port)))
	kv := fmt.Sprintf("host=%s port=%d user=pgpurepy_pw password=%s", host, port, password)
	bad := []string{
		base + "/db?connection_count=zero",
		base + "/db?connection_count=-1",
		base + "/db?cancel_grace=" + password,
		base + "/db?query_mode=" + password,
		base + "/db?max_conn_lifetime=" + password,
		base + "/db?ping_after_idle=" + password,
		base + "/db?statement_cache_capacity=" + password,
		base + "/db?sslmode=" + decoy,
		base + "/db?sslmode=verify-full&sslrootcert=/nonexistent/" + decoy,
		base + "/db?connect_timeout=" + decoy,
		base + "/db?target_session_attrs=" + decoy,
		base + "/db?sslmode=disable&sslmode=bogus",
		fmt.Sprintf("postgres://pgpurepy_pw:%s@%s:notaport/db", password, host),
		fmt.Sprintf("postgres://pgpurepy_pw:%s@[::1/db", password),
		fmt.Sprintf("postgres://pgpurepy_pw:%s@%s/db?%%zz", password, host),
		kv + " connection_count=zero",
		kv + " port=notaport",
		kv + " sslmode=" + decoy,
		kv + " cancel_grace=" + password,
		kv + " keepalive_interval=-1s",
		fmt.Sprintf("host=%s password='%s", host, password),
		fmt.Sprintf("host=%s password=%s =novalue", host, password),
		fmt.Sprintf("host=%s port=%d password=%s dbname=db sslmode=disable connection_count=1 bogus_setting=1", host, port, password),
	}
	for i, dsn := range bad {
		what := fmt.Sprintf("bad dsn %d", i)
		secNoPanic(t, what, func() {
			_, err := pgpurepy.ParseConfig(dsn)
			checkErr(what+": ParseConfig", err)
			db, err := sql.Open("pgpurepy", dsn)
			checkErr(what+": sql.Open", err)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				checkErr(what+": ping", db.PingContext(ctx))
				cancel()
				_ = db.Close()
			}
			cn, err := (&pgpurepy.Driver{}).Open(dsn)
			checkErr(what+": Driver.Open", err)
			if err == nil {
				_ = cn.Close()
			}
		}, secrets...)
		exercise(what, dsn)
	}

	out := logs.String()
	if !strings.Contains(out, "connect failed") {
		t.Errorf("the logger saw no failed connect; is it wired? log:\n%s", out)
	}
	secNoSecret(t, "log", out, secrets...)
	t.Logf("%d bytes of log checked", len(out))
}

// --- hostile strings ------------------------------------------------------

// TestSecurityHostileStringsAreParameters sends strings that would break or
// subvert SQL if they were spliced into it. They are inserted and read back
// exactly, through database/sql and the extension, in both query modes;
// the table survives, and the statement text the server saw holds only
// placeholders.
func TestSecurityHostileStringsAreParameters(t *testing.T) {
	unit := "'; DROP TABLE t; -- \\ $1 ? :x @p \u00e9\u65e5 "
	big := strings.Repeat(unit, (1<<20)/len(unit)+1) // a little over 1 MB
	hostile := []string{
		`'; DROP TABLE t; --`,
		`$1`, `$2`, `$0`, `$$`, `$tag$ DROP TABLE t; $tag$`,
		`\`, `\\`, `\'`, `\\'; DROP TABLE t; --`, `E'\x41'`, `\x00`, `\0`,
		`'`, `''`, `"`, `"t"`, "`",
		`*/ DROP TABLE t; /*`, `-- comment`, `; DROP TABLE t`,
		"\r\n; DROP TABLE t;\n", "\t\v\f\b",
		`?`, `:name`, `@p1`, `%s %d %v %!`, `{}`, `{"a": [1, "b"]}`,
		"h\u00e9llo w\u00f6rld", "\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8", "\U0001F389\U0001F525\U0001F4A5",
		"\u202eevil\u202c", "e\u0301", "\ufeffbom", "\u2028\u2029", "\uffff", "\U0010FFFF",
		"", " ", strings.Repeat("'", 1000),
		big,
	}
	for _, mode := range []string{pgpurepy.QueryModePrepare, pgpurepy.QueryModeDescribe} {
		t.Run(mode, func(t *testing.T) {
			db, _ := openDB(t, "connection_count=2", "query_mode="+mode)
			x := ext(t, db)
			mustExec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL, b bytea)")
			ctx := context.Background()
			// Bounded: a statement that hangs fails the test instead of
			// stalling the package.
			resBounded(t, "hostile strings", 3*time.Minute, func() error {
				for i, s := range hostile {
					if _, err := db.ExecContext(ctx, "INSERT INTO t (id, v, b) VALUES ($1, $2, $3)", i, s, []byte(s)); err != nil {
						return fmt.Errorf("database/sql insert of string %d (%.40q): %v", i, s, err)
					}
					if _, err := x.Execute(ctx, "INSERT INTO t (id, v, b) VALUES ($1, $2, $3)", 10000+i, s, []byte(s)); err != nil {
						return fmt.Errorf("extension insert of string %d (%.40q): %v", i, s, err)
					}
				}
				for i, s := range hostile {
					var v string
					var b []byte
					if err := db.QueryRowContext(ctx, "SELECT v, b FROM t WHERE id = $1", i).Scan(&v, &b); err != nil {
						return fmt.Errorf("read back string %d: %v", i, err)
					}
					if v != s || string(b) != s {
						return fmt.Errorf("string %d (%.40q) came back as %.40q / %.40q", i, s, v, b)
					}
					row, err := x.FetchOne(ctx, "SELECT v, b FROM t WHERE id = $1", 10000+i)
					if err != nil {
						return fmt.Errorf("extension read back string %d: %v", i, err)
					}
					if err := row.Scan(&v, &b); err != nil {
						return err
					}
					if v != s || string(b) != s {
						return fmt.Errorf("extension: string %d (%.40q) came back as %.40q / %.40q", i, s, v, b)
					}
					// As a value to compare with: it matches exactly its own rows.
					var n int
					if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE v = $1 AND id IN ($2, $3)", s, i, 10000+i).Scan(&n); err != nil {
						return err
					}
					if n != 2 {
						return fmt.Errorf("string %d (%.40q) matched %d rows, want 2", i, s, n)
					}
					// Echoed without a table.
					var echo string
					if err := db.QueryRowContext(ctx, "SELECT $1::text", s).Scan(&echo); err != nil || echo != s {
						return fmt.Errorf("echo of string %d (%.40q): %.40q, %v", i, s, echo, err)
					}
				}

				var exists bool
				var count int
				if err := db.QueryRow("SELECT to_regclass('t') IS NOT NULL, (SELECT count(*) FROM t)").Scan(&exists, &count); err != nil {
					return fmt.Errorf("table t after the hostile strings: %v", err)
				}
				if !exists || count != 2*len(hostile) {
					return fmt.Errorf("table t exists %v with %d rows, want %d", exists, count, 2*len(hostile))
				}

				// The statement text the server runs holds the placeholder, not
				// the value.
				for _, s := range []string{hostile[0], big} {
					var query string
					err := db.QueryRow("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND $1::text IS NOT NULL", s).Scan(&query)
					if err != nil {
						return err
					}
					if strings.Contains(query, s) || !strings.Contains(query, "$1") || len(query) > 200 {
						return fmt.Errorf("the server saw the value in the statement text: %.200q", query)
					}
				}
				return nil
			})
		})
	}
}

// resBounded runs fn in its own goroutine and fails t if it has not
// returned within bound, printing the driver's goroutines: a statement that
// hangs fails the test instead of stalling the package.
func resBounded(t testing.TB, what string, bound time.Duration, fn func() error) {
	t.Helper()
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = fn()
	}()
	if hang := resWaitGroupFor(&wg, bound); hang != "" {
		t.Fatalf("%s: %s", what, hang)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
