package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/converters"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// Behind pgbouncer (the Debian package, 1.18: no support for named
// statements across server connections) with the default DSN: nothing to
// configure, nothing fails.

// poolerMood is the Go type of the enum mood registered on the pool.
type poolerMood string

// TestPgbouncerDefaultDSN runs 240 concurrent mixed statements through
// pgbouncer in each pooling mode, three times, with pgbouncer's idle
// timeouts passing in between: queries, one db.Prepare'd statement shared
// by every goroutine, transactions, extension calls and a converter
// registered on the pool. pgbouncer keeps three server connections for
// eight clients, so in transaction and statement pooling statements move
// between server connections. No statement may fail, and every result must
// be the statement's own.
func TestPgbouncerDefaultDSN(t *testing.T) {
	for _, mode := range []string{"session", "transaction", "statement"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dbName := resDBName(t, sqltest.DB(t))
			b := resPgbouncer(t, mode, map[string]string{
				"default_pool_size":   "3",
				"server_idle_timeout": "1",
				"client_idle_timeout": "2",
			})
			db, x := resOpen(t, b.DSN(dbName))
			ctx := context.Background()
			mustExec(t, db, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
			mustExec(t, db, "CREATE TABLE moods (id int, m mood)")
			if err := x.AddConverterWithArray(ctx, converters.Enum[poolerMood]("mood")); err != nil {
				t.Fatal(err)
			}
			st, err := db.PrepareContext(ctx, "SELECT $1::int + 1")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()

			op := func(ctx context.Context, i int) error {
				switch i % 6 {
				case 0:
					var n int
					if err := db.QueryRowContext(ctx, "SELECT $1::int * 3", i).Scan(&n); err != nil || n != 3*i {
						return fmt.Errorf("query: %d, %w", n, err)
					}
				case 1:
					var n int
					if err := st.QueryRowContext(ctx, i).Scan(&n); err != nil || n != i+1 {
						return fmt.Errorf("prepared: %d, %w", n, err)
					}
				case 2:
					if mode == "statement" {
						_, err := x.Execute(ctx, "INSERT INTO moods VALUES ($1, $2)", i, poolerMood("ok"))
						return err
					}
					return poolerTx(ctx, db, i)
				case 3:
					row, err := x.FetchOne(ctx, "SELECT $1::text || '!' AS s", fmt.Sprint(i))
					if err != nil {
						return fmt.Errorf("extension: %w", err)
					}
					if v, _ := row.Get("s"); v != fmt.Sprint(i)+"!" {
						return fmt.Errorf("extension: %v", v)
					}
				case 4:
					var m poolerMood
					var ms []poolerMood
					if err := db.QueryRowContext(ctx, "SELECT 'happy'::mood, ARRAY['sad', 'ok']::mood[]").Scan(&m, &ms); err != nil || m != "happy" || len(ms) != 2 {
						return fmt.Errorf("converter: %q %q, %w", m, ms, err)
					}
				default:
					n, err := x.Execute(ctx, "UPDATE moods SET m = $1 WHERE id = -1", poolerMood("sad"))
					if err != nil || n != 0 {
						return fmt.Errorf("extension exec: %d, %w", n, err)
					}
				}
				return nil
			}
			for round := range 3 {
				resRun(8, 240, op).requireZero(t, fmt.Sprintf("round %d", round))
				if round < 2 {
					time.Sleep(2500 * time.Millisecond) // past pgbouncer's idle timeouts
				}
			}
			s := x.Stats()
			t.Logf("%s pooling: named statements %v, stale statements retried %d, connections opened %d, closed %v",
				mode, s.NamedStatements, s.StaleStatementRetries, s.ConnectionsOpened, s.ConnectionsClosed)
			if mode == "statement" {
				// A transaction cannot run in statement pooling: pgbouncer
				// says so, and the pool goes on.
				err := poolerTx(ctx, db, -1)
				if err == nil || pgCode(err) != "08P01" {
					t.Fatalf("transaction in statement pooling: %v", err)
				}
				if err := db.PingContext(ctx); err != nil {
					t.Fatalf("after the refused transaction: %v", err)
				}
			}
		})
	}
}

// poolerTx runs a transaction that writes a row and reads it back.
func poolerTx(ctx context.Context, db *sql.DB, i int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "INSERT INTO moods VALUES ($1, $2)", i, poolerMood("ok")); err != nil {
		return fmt.Errorf("transaction: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM moods WHERE id = $1", i).Scan(&n); err != nil || n < 1 {
		return fmt.Errorf("transaction: read %d, %w", n, err)
	}
	return tx.Commit()
}

// TestPgbouncerCancel cancels statements through pgbouncer, which forwards
// the cancel request to the server connection the client is on: the
// statement stops on the server, the client connection is kept, and in a
// stress of cancels at random moments no follow-up statement fails (a stale
// cancel would fail one).
func TestPgbouncerCancel(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dsn := sqltest.DB(t)
			direct, _ := resOpen(t, dsn)
			b := resPgbouncer(t, mode, map[string]string{"default_pool_size": "4"})
			db, x := resOpen(t, b.DSN(resDBName(t, dsn))+"&connection_count=4")
			ctx := context.Background()
			resWarm(t, db, x)
			before := x.Stats()

			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, err := db.ExecContext(cctx, "SELECT pg_sleep(30) /* pooler-cancel */")
			cancel()
			assertCtxErr(t, err, context.DeadlineExceeded)
			waitNoActive(t, direct, "pooler-cancel")

			cancelled, failed := 0, 0
			var last error
			for i := range 300 {
				cctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(60_000))*time.Microsecond)
				_, err := db.ExecContext(cctx, "SELECT pg_sleep(0.03)")
				cancel()
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					cancelled++
				case err != nil:
					t.Fatalf("statement %d: %v", i, err)
				}
				var n int
				if err := db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&n); err != nil || n != i {
					failed++
					last = err
				}
			}
			after := x.Stats()
			t.Logf("%s pooling: %d of 300 cancelled; cancels kept %d, lost %d", mode, cancelled, after.CancelsKept-before.CancelsKept, after.CancelsLost-before.CancelsLost)
			if failed > 0 {
				t.Fatalf("%d follow-up statements failed, the last with %v", failed, last)
			}
			if cancelled == 0 {
				t.Fatal("no statement was cancelled: the stress did not happen")
			}
			if after.ConnectionsOpened != before.ConnectionsOpened {
				t.Fatalf("the pool opened %d connections: cancels did not keep them", after.ConnectionsOpened-before.ConnectionsOpened)
			}
		})
	}
}

// TestPgbouncerSessionState shows what a transaction pooler does to session
// state, as the README documents it: SET LOCAL, transaction-level advisory
// locks and ON COMMIT DROP temporary tables work inside a transaction;
// session-level SET outside one applies to whichever server connection ran
// it, not to the client.
func TestPgbouncerSessionState(t *testing.T) {
	t.Parallel()
	b := resPgbouncer(t, "transaction", map[string]string{"default_pool_size": "2"})
	db, x := resOpen(t, b.DSN(resDBName(t, sqltest.DB(t))))
	ctx := context.Background()
	err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		if _, err := c.Execute(ctx, "SET LOCAL application_name = 'in-tx'"); err != nil {
			return err
		}
		if _, err := c.Execute(ctx, "SELECT pg_advisory_xact_lock(42)"); err != nil {
			return err
		}
		if _, err := c.Execute(ctx, "CREATE TEMP TABLE scratch (v int) ON COMMIT DROP"); err != nil {
			return err
		}
		row, err := c.FetchOne(ctx, "SELECT current_setting('application_name') AS a, (SELECT count(*) FROM scratch) AS n")
		if err != nil {
			return err
		}
		if v, _ := row.Get("a"); v != "in-tx" {
			return fmt.Errorf("SET LOCAL inside the transaction: %v", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('application_name')").Scan(&name); err != nil || name == "in-tx" {
		t.Fatalf("SET LOCAL outlived its transaction: %q, %v", name, err)
	}
}
