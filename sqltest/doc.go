// Package sqltest starts a throwaway PostgreSQL server for tests, hands each
// test its own fresh database, and injects network faults.
//
//	func TestMain(m *testing.M) { sqltest.Main(m) }
//
//	func TestSomething(t *testing.T) { dsn := sqltest.DB(t); ... }
//
// # Where the server comes from
//
// [Start] (and therefore [Main]'s shared server) finds a server in this
// order:
//
//  1. the DSN in the environment variable PGPUREPY_TEST_DSN, used as is (Close
//     then stops nothing, and NewDatabase creates and drops databases on it);
//  2. local PostgreSQL binaries, found through `postgres` on PATH,
//     `pg_config --bindir` or /usr/lib/postgresql/*/bin (highest version): a
//     new cluster is created with initdb in a temporary directory and listens
//     on 127.0.0.1 on a free port, tuned for speed (fsync=off and friends);
//  3. a `postgres` container started with the docker CLI, when `docker info`
//     answers (image from PGPUREPY_TEST_DOCKER_IMAGE, default postgres:16);
//  4. otherwise an error that says what to install.
//
// PostgreSQL refuses to run as root. When the test process is root, sqltest
// runs initdb, pg_ctl, pg_basebackup and pgbouncer as the `postgres` system
// user and gives it the temporary directory.
//
// Every server started by sqltest is stopped, and its directory removed, by
// [Server.Close]. A small watchdog process also does this when the test process
// dies without calling Close (a panicking test, a timeout, SIGKILL), so no
// postgres processes or data directories are left behind.
//
// # One database per test
//
// [Main] gives a test package one server, which the first test that calls
// [Shared] or [DB] starts: tests that need no server run without one (and
// without PostgreSQL installed), and a server that cannot be started fails
// only the tests that ask for it, each with the same error. [DB] (or
// [Server.NewDatabase]) creates a fresh database for the calling test, copied
// from a template, and drops it in t.Cleanup. Tests that each use their own
// database can run with t.Parallel.
//
// # Authentication, proxies, pgbouncer and replicas
//
// Local servers trust the superuser `postgres` and also have a role that must
// log in with a SCRAM-SHA-256 password: see [Server.PasswordDSN]. [Proxy]
// sits between a client and the server and can pause, slow, cut or refuse
// connections. [StartPgbouncer] puts pgbouncer in front of a server, and
// [StartPair] starts a primary with a streaming hot standby that can be
// promoted.
//
// # What a real server cannot show: go-sqlmock
//
// Everything a real server can do is best tested against one. A few paths
// cannot be forced on demand: a COMMIT that fails with a particular error, a
// driver that returns an error half-way through a result set, a connection
// that breaks between two specific calls. For code that takes a *sql.DB, the
// github.com/DATA-DOG/go-sqlmock package builds a *sql.DB whose every call is
// scripted: sqlmock.New() returns the *sql.DB and a mock on which you declare
// the expected calls (mock.ExpectBegin(), mock.ExpectExec("UPDATE").
// WillReturnResult(...), mock.ExpectCommit().WillReturnError(err)) and finally
// check mock.ExpectationsWereMet(). Use it for those error paths only, keep a
// test against a real server for the happy path, and do not mock queries
// whose result depends on PostgreSQL's behaviour. Wire-level faults (a
// connection that stalls or drops mid-query) are better produced with [Proxy]
// in front of a real server.
package sqltest
