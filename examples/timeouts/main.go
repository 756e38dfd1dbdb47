// Command timeouts shows what a context deadline does to a running
// statement: the statement is cancelled on the server, the caller gets
// context.DeadlineExceeded, and the connection stays in the pool (the same
// backend pid serves the next statement, no new connection is opened).
//
//	cd examples && go run ./timeouts
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
)

func main() { demo.Run(run) }

func run(ctx context.Context, dsn string) error {
	// One connection, so that "the same connection" is visible from
	// database/sql too.
	cfg, err := pgpurepy.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cfg.ConnectionCount = 1
	connector, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	db.SetMaxIdleConns(0) // as pgpurepy.OpenDB does: our pool keeps the idle connections
	defer db.Close()
	ext, err := pgpurepy.Ext(db)
	if err != nil {
		return err
	}

	// Through database/sql, on one *sql.Conn.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var pidBefore, pidAfter int32
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pidBefore); err != nil {
		return err
	}
	before := ext.Stats()

	qctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	_, err = conn.ExecContext(qctx, `SELECT pg_sleep(5)`)
	cancel()
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pg_sleep(5) with a 100ms timeout: got %w, want context.DeadlineExceeded", err)
	}
	fmt.Printf("database/sql: SELECT pg_sleep(5) with a 100ms timeout returned after %v\n", took.Round(time.Millisecond))
	fmt.Printf("  errors.Is(err, context.DeadlineExceeded) = true; err = %v\n", err)

	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pidAfter); err != nil {
		return fmt.Errorf("connection unusable after the cancel: %w", err)
	}
	after := ext.Stats()
	fmt.Printf("  backend pid before %d, after %d (same connection: %v)\n", pidBefore, pidAfter, pidBefore == pidAfter)
	printDelta(before, after)
	if pidBefore != pidAfter {
		return errors.New("the connection was replaced")
	}
	if err := check(before, after); err != nil {
		return err
	}
	if err := conn.Close(); err != nil {
		return err
	}

	// The same with the extension, on a checked-out connection.
	before = ext.Stats()
	err = ext.Checkout(ctx, func(c *pgpurepy.Conn) error {
		r, err := c.FetchOne(ctx, `SELECT pg_backend_pid()`)
		if err != nil {
			return err
		}
		if err := r.Scan(&pidBefore); err != nil {
			return err
		}
		qctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.Execute(qctx, `SELECT pg_sleep(5)`)
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("ext: pg_sleep(5) with a 100ms timeout: got %w, want context.DeadlineExceeded", err)
		}
		fmt.Printf("ext.Checkout: SELECT pg_sleep(5) with a 100ms timeout returned after %v, errors.Is(err, context.DeadlineExceeded) = true\n",
			time.Since(start).Round(time.Millisecond))
		if r, err = c.FetchOne(ctx, `SELECT pg_backend_pid()`); err != nil {
			return fmt.Errorf("connection unusable after the cancel: %w", err)
		}
		return r.Scan(&pidAfter)
	})
	if err != nil {
		return err
	}
	after = ext.Stats()
	fmt.Printf("  backend pid before %d, after %d (same connection: %v)\n", pidBefore, pidAfter, pidBefore == pidAfter)
	printDelta(before, after)
	if pidBefore != pidAfter {
		return errors.New("the connection was replaced")
	}
	return check(before, after)
}

func printDelta(before, after pgpurepy.Stats) {
	fmt.Printf("  stats before: CancelsSent=%d CancelsKept=%d CancelsLost=%d ConnectionsOpened=%d\n",
		before.CancelsSent, before.CancelsKept, before.CancelsLost, before.ConnectionsOpened)
	fmt.Printf("  stats after:  CancelsSent=%d CancelsKept=%d CancelsLost=%d ConnectionsOpened=%d\n",
		after.CancelsSent, after.CancelsKept, after.CancelsLost, after.ConnectionsOpened)
}

func check(before, after pgpurepy.Stats) error {
	switch {
	case after.CancelsSent != before.CancelsSent+1:
		return fmt.Errorf("CancelsSent went from %d to %d, want +1", before.CancelsSent, after.CancelsSent)
	case after.CancelsKept != before.CancelsKept+1:
		return fmt.Errorf("CancelsKept went from %d to %d, want +1", before.CancelsKept, after.CancelsKept)
	case after.ConnectionsOpened != before.ConnectionsOpened:
		return fmt.Errorf("ConnectionsOpened went from %d to %d: the connection was replaced", before.ConnectionsOpened, after.ConnectionsOpened)
	}
	return nil
}
