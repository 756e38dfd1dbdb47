package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// workloadNames are the workloads in table order; defaultWorkloads those
// a run without -workloads measures.
var (
	workloadNames    = []string{"point", "rows100", "insert", "tx", "churn", "mixed"}
	defaultWorkloads = workloadNames[:5]
)

// mixedSlowPercent is the share of the mixed workload's operations that
// are a pg_sleep(0.05) instead of a point select: what a multiplexed
// point select must not queue behind.
const mixedSlowPercent = 1

// churnTimeout is the context timeout of the churn workload's pg_sleep(0.05).
const churnTimeout = 10 * time.Millisecond

// settleLimit bounds the wait for a pool to reach its steady size.
const settleLimit = 5 * time.Second

// insertText is the text column of every inserted row.
const insertText = "pgpurepy bench row"

// worker is one goroutine's state and tallies during a cell. It is padded
// by its histogram, so workers do not share cache lines for their counters.
type worker struct {
	rng      *rand.Rand
	ops      int64
	errs     int64
	timeouts int64
	late     int64
	firstErr error
	// unclocked is set by op for an operation whose latency is not
	// recorded: the mixed workload's pg_sleep(0.05), which takes 50 ms
	// with every driver. Its p50/p99 are those of the point selects,
	// which is what head-of-line blocking delays.
	unclocked bool
	exited    atomic.Bool // set when the goroutine is done with the fields above
	hist      histogram
	_         [128]byte // keeps the next worker's counters off this one's cache lines
}

// op runs one operation of workload w on cl.
func op(w string, cl client, wk *worker) error {
	ctx := context.Background()
	switch w {
	case "point":
		x := int(wk.rng.Int32N(1 << 20))
		n, err := cl.point(ctx, x)
		if err == nil && n != x+1 {
			err = fmt.Errorf("point select returned %d for %d", n, x)
		}
		return err
	case "rows100":
		n, err := cl.rows100(ctx)
		if err == nil && n != 100 {
			err = fmt.Errorf("rows100 scanned %d rows", n)
		}
		return err
	case "insert":
		return cl.insert(ctx, int(wk.rng.Int32()), insertText)
	case "tx":
		return cl.tx(ctx, 1+wk.rng.IntN(txRows))
	case "mixed":
		if wk.rng.IntN(100) < mixedSlowPercent {
			wk.unclocked = true
			return cl.sleep(ctx)
		}
		x := int(wk.rng.Int32N(1 << 20))
		n, err := cl.point(ctx, x)
		if err == nil && n != x+1 {
			err = fmt.Errorf("point select returned %d for %d", n, x)
		}
		return err
	case "churn":
		sctx, cancel := context.WithTimeout(ctx, churnTimeout)
		err := cl.sleep(sctx)
		expired := sctx.Err() != nil
		cancel()
		switch {
		case err == nil:
			// The cancel request reached the server after the sleep
			// ended, and the driver returned the result it got.
			wk.late++
		case !expired:
			return fmt.Errorf("pg_sleep: %w", err)
		default:
			wk.timeouts++
		}
		x := int(wk.rng.Int32N(1 << 20))
		n, err := cl.point(ctx, x)
		if err == nil && n != x+1 {
			err = fmt.Errorf("point select returned %d for %d", n, x)
		}
		if err != nil {
			return fmt.Errorf("point select after timeout: %w", err)
		}
		return nil
	}
	panic("unknown workload " + w)
}

// sample is the measurement of one cell in one round.
type sample struct {
	Workload string
	Conc     int
	Driver   string
	Round    int

	Ops      int64
	Elapsed  time.Duration
	Errors   int64
	FirstErr string
	Timeouts int64 // churn: sleeps that failed after their timeout
	Late     int64 // churn: sleeps that succeeded although their timeout expired

	CPU      time.Duration // client CPU (user+sys) during the timed part
	Mallocs  int64         // heap allocations during the timed part; -1 unknown
	P50, P99 time.Duration // 0 when unknown

	NewConns int64 // server connections opened during the timed part
	Opened   int64 // server connections opened since the client was created

	// CancelsSent and AcquireTimeouts are pgpurepy's cancel requests and
	// timed-out checkouts during the timed part; -1 for other drivers.
	CancelsSent, AcquireTimeouts int64

	Skipped string // why the cell did not run
	Hung    bool   // operations did not return; the client was abandoned
}

// OpsPerSec is the throughput of the sample.
func (s sample) OpsPerSec() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Elapsed.Seconds()
}

// snapshot is the process state that a cell's figures are deltas of.
type snapshot struct {
	at      time.Time
	cpu     time.Duration
	mallocs uint64
}

func takeSnapshot(who int) snapshot {
	var ms runtime.MemStats
	if who == syscall.RUSAGE_SELF {
		runtime.ReadMemStats(&ms)
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return snapshot{
		at:      time.Now(),
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		mallocs: ms.Mallocs,
	}
}

// stuckGrace is how long after a cell's end its operations may take to
// return before the cell is declared hung and its client abandoned.
const stuckGrace = 15 * time.Second

// runCell opens a client, warms it up, measures workload w at concurrency
// conc for d, and closes the client. A cell whose operations do not return
// within stuckGrace of its end is reported as hung, and its client is left
// open (closing it could block too).
func runCell(spec driverSpec, dsn, w string, conc int, warmup, d time.Duration) (s sample) {
	s = sample{Workload: w, Conc: conc, Driver: spec.name, Mallocs: -1}
	cl, err := spec.open(dsn, conc)
	if err != nil {
		s.Errors, s.FirstErr = 1, "open: "+err.Error()
		return s
	}
	hung := func(phase string, stuck int) sample {
		s.Errors += int64(stuck)
		s.Hung = true
		s.FirstErr = fmt.Sprintf("hang: %d of %d workers still inside an operation %s after the %s ended; client abandoned",
			stuck, conc, stuckGrace, phase)
		return s
	}
	// Settling before the warm-up too lets the warm-up run on every
	// connection the timed part will use, so that none starts cold there
	// (statements not prepared, the backend's caches empty).
	settle := func() {
		sctx, cancel := context.WithTimeout(context.Background(), settleLimit)
		cl.settle(sctx)
		cancel()
	}
	settle()
	if warmup > 0 {
		if _, stuck := runWorkers(cl, w, conc, warmup, nil, nil); stuck > 0 {
			return hung("warm-up", stuck)
		}
	}
	settle()
	// Collect the garbage of the warm-up and of earlier cells now, not
	// during the timed part.
	runtime.GC()
	var before, after snapshot
	var opened0, opened1, canc0, canc1, acq0, acq1 uint64
	var counted bool
	ws, stuck := runWorkers(cl, w, conc, d,
		func() {
			opened0 = cl.opened()
			canc0, acq0, _ = cl.poolCounters()
			before = takeSnapshot(syscall.RUSAGE_SELF)
		},
		func() {
			after = takeSnapshot(syscall.RUSAGE_SELF)
			opened1 = cl.opened()
			canc1, acq1, counted = cl.poolCounters()
		})
	s.CancelsSent, s.AcquireTimeouts = -1, -1
	if counted {
		s.CancelsSent, s.AcquireTimeouts = int64(canc1-canc0), int64(acq1-acq0)
	}
	var h histogram
	for i := range ws {
		wk := &ws[i]
		if !wk.exited.Load() {
			continue // still running: its tallies are not ours to read
		}
		s.Ops += wk.ops
		s.Errors += wk.errs
		s.Timeouts += wk.timeouts
		s.Late += wk.late
		if wk.firstErr != nil && s.FirstErr == "" {
			s.FirstErr = wk.firstErr.Error()
		}
		h.merge(&wk.hist)
	}
	s.Elapsed = after.at.Sub(before.at)
	s.CPU = after.cpu - before.cpu
	s.Mallocs = int64(after.mallocs - before.mallocs)
	s.P50, s.P99 = h.quantile(0.50), h.quantile(0.99)
	s.NewConns = int64(opened1 - opened0)
	s.Opened = int64(opened1)
	if stuck > 0 {
		return hung("timed part", stuck)
	}
	if err := cl.close(); err != nil && s.FirstErr == "" {
		s.FirstErr = "close: " + err.Error()
	}
	return s
}

// runWorkers runs conc workers on workload w for d. start runs once every
// worker is ready and before any operation; stop runs after the last
// operation ended, or when operations are still running stuckGrace after
// the end, and then stuck is how many.
func runWorkers(cl client, w string, conc int, d time.Duration, start, stop func()) (ws []worker, stuck int) {
	ws = make([]worker, conc)
	for i := range ws {
		ws[i].rng = rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano())))
	}
	var (
		done  atomic.Bool
		ready sync.WaitGroup
		wg    sync.WaitGroup
		gate  = make(chan struct{})
	)
	ready.Add(conc)
	wg.Add(conc)
	for i := range ws {
		go func(wk *worker) {
			defer wg.Done()
			defer wk.exited.Store(true)
			ready.Done()
			<-gate
			for !done.Load() {
				t0 := time.Now()
				err := op(w, cl, wk)
				if !wk.unclocked {
					wk.hist.record(time.Since(t0))
				}
				wk.unclocked = false
				wk.ops++
				if err != nil {
					wk.errs++
					if wk.firstErr == nil {
						wk.firstErr = err
					}
				}
			}
		}(&ws[i])
	}
	ready.Wait()
	if start != nil {
		start()
	}
	timer := time.AfterFunc(d, func() { done.Store(true) })
	close(gate)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(d + stuckGrace):
		for i := range ws {
			if !ws[i].exited.Load() {
				stuck++
			}
		}
	}
	timer.Stop()
	if stop != nil {
		stop()
	}
	return ws, stuck
}

// histogram is a log-linear latency histogram in nanoseconds with 16
// sub-buckets per power of two (about 6% resolution). Recording never
// allocates.
type histogram struct {
	b [histBuckets]uint32
	n uint64
}

const (
	histSub     = 16
	histBuckets = 64 * histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	exp := bits.Len64(v) - 5 // keep the top 5 bits: 16..31
	return (exp+1)*histSub + int(v>>uint(exp)) - histSub
}

// histValue is the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return m<<uint(exp) + (uint64(1)<<uint(exp))/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := histIndex(uint64(d))
	if i >= histBuckets {
		i = histBuckets - 1
	}
	h.b[i]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.b {
		h.b[i] += c
	}
	h.n += o.n
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.b {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return 0
}

// setupSchema creates the benchmark tables on the server behind dsn.
func setupSchema(ctx context.Context, dsn string) (serverVersion string, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("connect for setup: %w", err)
	}
	defer conn.Close(context.Background())
	stmts := []string{
		"DROP TABLE IF EXISTS bench_rows, bench_insert, bench_tx",
		"CREATE TABLE bench_rows (id int8 PRIMARY KEY, t text NOT NULL, ts timestamptz NOT NULL, n numeric NOT NULL)",
		`INSERT INTO bench_rows SELECT g, 'row number ' || g || ' ' || repeat('x', 24),
			timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute 7.25 seconds', (g * 1234.5678)::numeric(14,4)
			FROM generate_series(1, 100) g`,
		"CREATE TABLE bench_insert (id bigserial PRIMARY KEY, a int4 NOT NULL, b text NOT NULL)",
		"CREATE TABLE bench_tx (id int4 PRIMARY KEY, v int8 NOT NULL)",
		"INSERT INTO bench_tx SELECT g, 0 FROM generate_series(1, " + strconv.Itoa(txRows) + ") g",
		"VACUUM ANALYZE bench_rows",
		"VACUUM ANALYZE bench_tx",
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("setup %q: %w", q, err)
		}
	}
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&serverVersion); err != nil {
		return "", err
	}
	return serverVersion, nil
}

// plan is one run's configuration.
type plan struct {
	DSN       string
	Duration  time.Duration
	Warmup    time.Duration
	Rounds    int
	Conc      []int
	Workloads []string
	Drivers   []string
	Pgbench   string // path of the pgbench binary; "" when not found
	CopyRows  int    // rows of each load of the copy section; 0 skips it
	MuxConc   []int  // concurrencies of the multiplexing section; none skips it
}

// muxDrivers are the drivers of the multiplexing section, in table order:
// pgpurepy with multiplexing off and on, both on the default pool, and the
// peers with a connection per goroutine.
var muxDrivers = []string{"pgpurepy-opendb", muxDriver, refDriver, "pgxpool", pgbenchName}

// muxWorkloads are the multiplexing section's workloads: the point select,
// and the mixed one for head-of-line blocking.
var muxWorkloads = []string{"point", "mixed"}

// muxPlan is the plan of p's multiplexing section: the point and mixed
// workloads at p.MuxConc, for the drivers of muxDrivers that p runs. ok is
// false when there is nothing to measure (no concurrency, or
// pgpurepy-mux left out).
func (p plan) muxPlan() (mp plan, ok bool) {
	mp = p
	mp.Conc, mp.Workloads, mp.Drivers, mp.CopyRows, mp.MuxConc = p.MuxConc, muxWorkloads, nil, 0, nil
	for _, d := range muxDrivers {
		if slices.Contains(p.Drivers, d) {
			mp.Drivers = append(mp.Drivers, d)
		}
	}
	return mp, len(mp.Conc) > 0 && slices.Contains(mp.Drivers, muxDriver)
}

// cellKey identifies a cell across rounds.
type cellKey struct {
	Workload string
	Conc     int
	Driver   string
}

// measure runs every cell of p in turns: each round runs every workload at
// every concurrency for every driver, one after another, so that the rounds
// of one driver are spread over the whole run.
func measure(ctx context.Context, p plan, progress io.Writer) []sample {
	type cell struct {
		w    string
		c    int
		d    string
		spec driverSpec
	}
	var cells []cell
	for _, w := range p.Workloads {
		for _, c := range p.Conc {
			for _, d := range p.Drivers {
				if d == pgbenchName {
					if w == "point" {
						cells = append(cells, cell{w: w, c: c, d: d})
					}
					continue
				}
				spec, _ := findDriver(d)
				cells = append(cells, cell{w, c, d, spec})
			}
		}
	}
	total := len(cells) * p.Rounds
	var out []sample
	n := 0
	for r := 1; r <= p.Rounds; r++ {
		for _, c := range cells {
			if ctx.Err() != nil {
				return out
			}
			n++
			var s sample
			if c.d == pgbenchName {
				s = runPgbench(p.Pgbench, p.DSN, c.c, p.Duration)
			} else {
				s = runCell(c.spec, p.DSN, c.w, c.c, p.Warmup, p.Duration)
			}
			s.Round = r
			out = append(out, s)
			line := fmt.Sprintf("[%d/%d] %s c=%d %s round %d: ", n, total, c.w, c.c, c.d, r)
			switch {
			case s.Skipped != "":
				line += "skipped: " + s.Skipped
			default:
				line += fmt.Sprintf("%.0f ops/s, %d new conns", s.OpsPerSec(), s.NewConns)
				if s.Errors > 0 {
					line += fmt.Sprintf(", %d errors (first: %s)", s.Errors, s.FirstErr)
				}
			}
			fmt.Fprintln(progress, line)
		}
	}
	return out
}

// aggregate is the figures of one cell over its rounds.
type aggregate struct {
	cellKey
	Rounds           int
	Median, Min, Max float64 // ops/s
	CPUPerOp         time.Duration
	AllocsPerOp      float64 // -1 unknown
	P50, P99         time.Duration
	NewConns         int64 // the most of any round (timed part)
	Opened           int64 // the most of any round (whole cell)
	Errors           int64 // summed over rounds
	FirstErr         string
	Timeouts         int64 // summed over rounds
	Late             int64 // summed over rounds
	NewConnsSum      int64 // summed over rounds (timed part)
	Hung             int   // rounds in which the cell hung
	Failed           int   // rounds without a single operation, left out of the figures
	CancelsSent      int64 // summed over rounds; -1 unknown
	AcquireTimeouts  int64 // summed over rounds; -1 unknown
	Skipped          string
}

func aggregateSamples(ss []sample) map[cellKey]*aggregate {
	groups := map[cellKey][]sample{}
	for _, s := range ss {
		k := cellKey{s.Workload, s.Conc, s.Driver}
		groups[k] = append(groups[k], s)
	}
	out := make(map[cellKey]*aggregate, len(groups))
	for k, g := range groups {
		a := &aggregate{cellKey: k, AllocsPerOp: -1, CancelsSent: -1, AcquireTimeouts: -1}
		var ops, cpu, allocs, p50, p99 []float64
		for _, s := range g {
			if s.Skipped != "" {
				a.Skipped = s.Skipped
				continue
			}
			if s.Ops == 0 && s.Errors > 0 {
				// A round that failed outright (pgbench could not run,
				// the client could not open) has no throughput to show;
				// its error is listed, the spread is of the others.
				a.Errors += s.Errors
				if a.FirstErr == "" {
					a.FirstErr = s.FirstErr
				}
				a.Failed++
				continue
			}
			a.Rounds++
			ops = append(ops, s.OpsPerSec())
			if s.Ops > 0 {
				cpu = append(cpu, float64(s.CPU)/float64(s.Ops))
				if s.Mallocs >= 0 {
					allocs = append(allocs, float64(s.Mallocs)/float64(s.Ops))
				}
			}
			if s.P50 > 0 {
				p50 = append(p50, float64(s.P50))
				p99 = append(p99, float64(s.P99))
			}
			a.NewConns = max(a.NewConns, s.NewConns)
			a.Opened = max(a.Opened, s.Opened)
			a.NewConnsSum += s.NewConns
			a.Errors += s.Errors
			if s.Hung {
				a.Hung++
			}
			if s.CancelsSent >= 0 {
				a.CancelsSent = max(a.CancelsSent, 0) + s.CancelsSent
				a.AcquireTimeouts = max(a.AcquireTimeouts, 0) + s.AcquireTimeouts
			}
			a.Timeouts += s.Timeouts
			a.Late += s.Late
			if a.FirstErr == "" {
				a.FirstErr = s.FirstErr
			}
		}
		if len(ops) > 0 {
			a.Median = median(ops)
			a.Min, a.Max = minMax(ops)
		}
		if len(cpu) > 0 {
			a.CPUPerOp = time.Duration(median(cpu))
		}
		if len(allocs) > 0 {
			a.AllocsPerOp = median(allocs)
		}
		if len(p50) > 0 {
			a.P50, a.P99 = time.Duration(median(p50)), time.Duration(median(p99))
		}
		out[k] = a
	}
	return out
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minMax(xs []float64) (lo, hi float64) {
	lo, hi = xs[0], xs[0]
	for _, x := range xs[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// errNoRows reports a run that measured nothing.
var errNoRows = errors.New("no cell produced any operation")
