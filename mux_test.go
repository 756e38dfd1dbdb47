package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgpurepy/pgpurepy"
)

// muxOpen opens a pool with multiplexing on and connection_count n, and
// waits until every connection is open and idle.
func muxOpen(t *testing.T, n int) (*sql.DB, *pgpurepy.Pool) {
	t.Helper()
	db, _ := openDB(t, "multiplexing=on", "connection_count="+strconv.Itoa(n))
	x := ext(t, db)
	extWarm(t, x)
	return db, x
}

// muxPIDs returns the server process ids of every connection of the test's
// database but the one that asks.
func muxPIDs(t *testing.T, x *pgpurepy.Pool) []int64 {
	t.Helper()
	var pids []int64
	err := x.Checkout(context.Background(), func(c *pgpurepy.Conn) error {
		rows, err := c.Fetch(context.Background(), "SELECT pid FROM pg_stat_activity WHERE datname = current_database() ORDER BY pid")
		for _, r := range rows {
			v, _ := r.Get("pid")
			pids = append(pids, v.(int64))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// Under 64 callers with random deadlines and cancels, every result that
// comes back is its own statement's, no connection is lost or replaced,
// and no result is left behind on a connection for a later statement.
func TestMuxResultsNeverCrossed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, x := muxOpen(t, 5)
	before := muxPIDs(t, x)
	const callers, each = 64, 40
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				marker := g*1000 + i
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				switch rand.IntN(4) {
				case 0:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(2000))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(ctx)
					time.AfterFunc(time.Duration(rand.IntN(1000))*time.Microsecond, cancel)
				}
				var err error
				if i%2 == 0 {
					var got int
					err = db.QueryRowContext(ctx, "SELECT $1::int", marker).Scan(&got)
					if err == nil && got != marker {
						err = fmt.Errorf("caller %d statement %d got %d, want %d", g, i, got, marker)
					}
				} else {
					var got string
					want := strconv.Itoa(marker) + "x"
					err = db.QueryRowContext(ctx, "SELECT $1::text || 'x'", strconv.Itoa(marker)).Scan(&got)
					if err == nil && got != want {
						err = fmt.Errorf("caller %d statement %d got %q, want %q", g, i, got, want)
					}
				}
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every connection answers its next statements with their own results.
	for i := range 200 {
		var got int
		if err := db.QueryRow("SELECT $1::int", -i).Scan(&got); err != nil || got != -i {
			t.Fatalf("after the storm: got %d, %v; want %d", got, err, -i)
		}
	}
	extWaitGauges(t, x, x.MaxConnections(), 0)
	if after := muxPIDs(t, x); !slices.Equal(before, after) {
		t.Errorf("server connections changed: %v before, %v after", before, after)
	}
	s := x.Stats()
	// Statements that ran slowly on a loaded machine may have gone to
	// connections of their own, where a deadline cancels them; the
	// connection must survive that too.
	if len(s.ConnectionsClosed) != 0 || s.ConnectionsOpened != uint64(s.MaxConnections) || s.CancelsLost != 0 {
		t.Errorf("connections replaced: %+v", s)
	}
	if s.MultiplexedStatements == 0 {
		t.Errorf("nothing multiplexed: %+v", s)
	}
	_ = db.Close()
}
