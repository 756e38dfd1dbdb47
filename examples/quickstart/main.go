// Command quickstart is the `make demo` program: it opens a *sql.DB on
// pgpurepy, runs concurrent inserts and queries from many goroutines through
// plain database/sql, and prints what the pool did.
//
//	cd examples && go run ./quickstart [-goroutines 64] [-ops 50]
//
// Without PGPUREPY_DSN or DATABASE_URL it starts a throwaway server.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
)

var (
	goroutines = flag.Int("goroutines", 64, "concurrent goroutines")
	ops        = flag.Int("ops", 50, "operations per goroutine (alternating insert and query)")
)

func main() {
	flag.Parse()
	demo.Run(run)
}

func run(ctx context.Context, dsn string) error {
	// sql.Open works as with any driver. database/sql keeps its default idle
	// limit (2) here on purpose: connections it does not keep go back to
	// pgpurepy's pool instead of being closed, so they cost no reconnect.
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	ext, err := pgpurepy.Ext(db)
	if err != nil {
		return err
	}
	printStats("before", ext.Stats())

	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS quickstart_events (
		id      bigserial PRIMARY KEY,
		worker  int NOT NULL,
		payload text NOT NULL,
		created timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	if _, err := db.ExecContext(ctx, `TRUNCATE quickstart_events`); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}

	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		inserts, queries int
		errs             []error
	)
	start := time.Now()
	for w := range *goroutines {
		wg.Go(func() {
			ins, qs := 0, 0
			var werr error
			for i := range *ops {
				if i%2 == 0 {
					_, werr = db.ExecContext(ctx,
						`INSERT INTO quickstart_events (worker, payload) VALUES ($1, $2)`,
						w, fmt.Sprintf("event %d of worker %d", i, w))
					ins++
				} else {
					var n int64
					werr = db.QueryRowContext(ctx,
						`SELECT count(*) FROM quickstart_events WHERE worker = $1`, w).Scan(&n)
					qs++
				}
				if werr != nil {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			inserts += ins
			queries += qs
			if werr != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", w, werr))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}

	var rows int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM quickstart_events`).Scan(&rows); err != nil {
		return err
	}
	total := inserts + queries
	fmt.Printf("%d goroutines x %d ops: %d inserts, %d queries in %v (%.0f ops/s); table has %d rows\n",
		*goroutines, *ops, inserts, queries, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), rows)
	if rows != int64(inserts) {
		return fmt.Errorf("table has %d rows, want %d", rows, inserts)
	}

	after := ext.Stats()
	printStats("after", after)
	// The point of the extension's pool: database/sql's default idle limit
	// of 2 would make a plain driver close and reopen connections under this
	// load; here every connection was opened once.
	if after.ConnectionsOpened > uint64(after.MaxConnections) {
		return fmt.Errorf("ConnectionsOpened %d > MaxConnections %d: connections were reopened",
			after.ConnectionsOpened, after.MaxConnections)
	}
	fmt.Printf("no reconnects: %d connections opened for %d statements (MaxConnections %d), although database/sql keeps only 2 idle\n",
		after.ConnectionsOpened, total+3, after.MaxConnections)
	// database/sql (no SetMaxOpenConns here) asks the driver for a
	// connection per goroutine that finds none free; those requests queue in
	// pgpurepy's pool, first come first served.
	fmt.Printf("%d goroutines shared %d connections: %d of %d checkouts from the pool waited (%v summed over all waiters)\n",
		*goroutines, after.MaxConnections, after.WaitedAcquires, after.Acquires, after.WaitDuration.Round(time.Millisecond))
	return nil
}

func printStats(when string, s pgpurepy.Stats) {
	fmt.Printf("pool %-6s MaxConnections=%d IdleConnections=%d WaitingTasks=%d ConnectionsOpened=%d Acquires=%d WaitedAcquires=%d WaitDuration=%v\n",
		when+":", s.MaxConnections, s.IdleConnections, s.WaitingTasks,
		s.ConnectionsOpened, s.Acquires, s.WaitedAcquires, s.WaitDuration.Round(time.Microsecond))
}
