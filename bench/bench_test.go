package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// TestMain gives the package one throwaway server (or PGPUREPY_TEST_DSN's).
func TestMain(m *testing.M) { sqltest.Main(m) }

var schema struct {
	once sync.Once
	err  error
}

// benchDSN returns the DSN of the shared server with the benchmark tables
// created once per process.
func benchDSN(tb testing.TB) string {
	tb.Helper()
	dsn := sqltest.Shared(tb).DSN("")
	schema.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, schema.err = setupSchema(ctx, dsn)
	})
	if schema.err != nil {
		tb.Fatal(schema.err)
	}
	return dsn
}

// TestHarnessQuick runs the harness end to end for a few drivers with tiny
// cells. It checks that every cell measured operations without errors and
// that the report and chart are written; it asserts nothing about speed.
func TestHarnessQuick(t *testing.T) {
	dir := t.TempDir()
	o := defaultOptions()
	o.DSN = benchDSN(t)
	o.Duration, o.Warmup, o.Rounds = 100*time.Millisecond, 20*time.Millisecond, 1
	o.Conc = "1,4"
	o.Workloads = "point,rows100,insert,tx"
	o.Drivers = "pgpurepy-default,pgpurepy-tuned,pgpurepy-ext,pgpurepy-ext-tuned,pgx-stdlib-tuned,pgxpool"
	o.Out, o.Chart = filepath.Join(dir, "RESULTS.md"), filepath.Join(dir, "chart.svg")
	o.CopyRows = 2500 // more than a warm-up, and not a multiple of an INSERT's rows
	o.MuxConc = ""    // TestHarnessMux runs that section

	var stdout, stderr bytes.Buffer
	res, err := run(context.Background(), o, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, stderr.String())
	}
	if got, want := len(res.Aggs), 4*2*6; got != want {
		t.Errorf("%d cells measured, want %d", got, want)
	}
	for k, a := range res.Aggs {
		if a.Median <= 0 || a.Errors != 0 {
			t.Errorf("%+v: %.0f ops/s, %d errors (%s)", k, a.Median, a.Errors, a.FirstErr)
		}
	}
	if len(res.Copy) != len(copyMethods) {
		t.Errorf("copy section: %d methods measured, want %d", len(res.Copy), len(copyMethods))
	}
	for _, a := range res.Copy {
		if a.Rounds != 1 || a.Median <= 0 || a.Errors != 0 {
			t.Errorf("copy %s: %+v", a.Method, a)
		}
	}
	md := stdout.String()
	for _, want := range []string{"| 4 | pgpurepy-default |", "| 4 | pgpurepy-tuned |", "| 1 | pgxpool |", "## Targets", "## rows100",
		"point c=4: pgpurepy-ext-tuned", "## copy", "Loading 2,500 rows", "| pgpurepy-copyfrom |", "| pgpurepy-insert-1000 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// pgpurepy-tuned's pool holds c connections, like the tuned peers.
	for _, c := range []int{1, 4} {
		for _, d := range []string{"pgpurepy-tuned", "pgpurepy-ext-tuned"} {
			if a := res.Aggs[cellKey{"point", c, d}]; a == nil || a.Opened != int64(c) {
				t.Errorf("point c=%d %s: opened %+v connections, want %d", c, d, a, c)
			}
		}
	}
	if b, err := os.ReadFile(o.Out); err != nil || string(b) != md {
		t.Errorf("RESULTS.md differs from stdout (err %v)", err)
	}
	svg, err := os.ReadFile(o.Chart)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Errorf("chart.svg is not well-formed XML: %v", err)
	}
}

// TestHarnessMux runs the multiplexing section alone with tiny cells: every
// cell measured operations without errors, the mixed workload's slow
// statements among them, and the report has the section's table and
// targets. It asserts nothing about speed.
func TestHarnessMux(t *testing.T) {
	o := defaultOptions()
	o.DSN = benchDSN(t)
	o.Duration, o.Warmup, o.Rounds = 150*time.Millisecond, 20*time.Millisecond, 1
	o.Workloads, o.CopyRows, o.Out, o.Chart = "", 0, "", ""
	o.MuxConc = "1,16"
	o.Drivers = "pgpurepy-opendb,pgpurepy-mux,pgxpool"

	var stdout, stderr bytes.Buffer
	res, err := run(context.Background(), o, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, stderr.String())
	}
	if len(res.Aggs) != 0 || res.Mux == nil {
		t.Fatalf("main cells %d, multiplexing section %v; want only the section", len(res.Aggs), res.Mux)
	}
	if got, want := len(res.Mux.Aggs), 2*2*3; got != want {
		t.Errorf("%d cells measured, want %d", got, want)
	}
	for k, a := range res.Mux.Aggs {
		if a.Median <= 0 || a.Errors != 0 {
			t.Errorf("%+v: %.0f ops/s, %d errors (%s)", k, a.Median, a.Errors, a.FirstErr)
		}
	}
	md := stdout.String()
	for _, want := range []string{"## Multiplexing (issue 18)", "| mixed | 16 | pgpurepy-mux |", "| point | 1 | pgxpool |",
		"### Targets (issue 18)", "mixed c=16: point selects' p99", "point c=16 (this section): "} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < -0.07 || d > 0.07 {
			t.Errorf("quantile(%v) = %v, want %v ± 7%%", tc.q, got, tc.want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { h.record(time.Millisecond) }); allocs != 0 {
		t.Errorf("record allocates %v times", allocs)
	}
}

func TestParseFlagsQuick(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-rounds", "2"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if o.Duration != 300*time.Millisecond || o.Rounds != 2 || o.Conc != "1,8" || o.CopyRows != 100_000 || o.MuxConc != "1,8" {
		t.Errorf("-quick -rounds 2 gave %+v", o)
	}
	if _, err := (options{Duration: time.Second, Rounds: 1, Conc: "1", Workloads: "point", Drivers: "nope"}).plan(); err == nil {
		t.Error("unknown driver accepted")
	}
}

func TestWithConnectionCount(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?connection_count=64&sslmode=disable"},
		{"postgresql://u@h/db?connection_count=5", "postgresql://u@h/db?connection_count=64"},
		{"host=h dbname=db ", "host=h dbname=db connection_count=64"},
	} {
		got, err := withConnectionCount(tc.dsn, 64)
		if err != nil || got != tc.want {
			t.Errorf("withConnectionCount(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
		cfg, err := pgpurepy.ParseConfig(got)
		if err != nil || cfg.ConnectionCount != 64 {
			t.Errorf("%q: ParseConfig gives %v, %v", got, cfg, err)
		}
	}
}

func TestPgbenchOutput(t *testing.T) {
	out := "transaction type: x.sql\nnumber of clients: 8\nnumber of transactions actually processed: 30123\n" +
		"number of failed transactions: 0 (0.000%)\nlatency average = 0.265 ms\n" +
		"initial connection time = 12.345 ms\ntps = 30110.123456 (without initial connection time)\n"
	if m := reTPS.FindStringSubmatch(out); m == nil || m[1] != "30110.123456" {
		t.Errorf("tps: %q", m)
	}
	if m := reProcessed.FindStringSubmatch(out); m == nil || m[1] != "30123" {
		t.Errorf("processed: %q", m)
	}
}

// openBench opens driver name for conc and closes it when b ends.
func openBench(b *testing.B, name string, conc int) client {
	b.Helper()
	spec, err := findDriver(name)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := spec.open(benchDSN(b), conc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.close() })
	// One round trip, so that connecting is not measured; then let
	// pgpurepy's background fill finish.
	if _, err := cl.point(context.Background(), 1); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleLimit)
	cl.settle(ctx)
	cancel()
	return cl
}

// BenchmarkPointSelect is the point select per driver, serial and with
// b.RunParallel (GOMAXPROCS goroutines; tuned drivers get as many
// connections).
func BenchmarkPointSelect(b *testing.B) {
	for _, d := range driverSpecs {
		b.Run(d.name, func(b *testing.B) {
			b.Run("serial", func(b *testing.B) {
				cl := openBench(b, d.name, 1)
				ctx := context.Background()
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if n, err := cl.point(ctx, i); err != nil || n != i+1 {
						b.Fatal(n, err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				cl := openBench(b, d.name, runtime.GOMAXPROCS(0))
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer() // openBench's connecting is not measured
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						if n, err := cl.point(ctx, i); err != nil || n != i+1 {
							b.Error(n, err)
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkRows100 is the 100-row scan per driver, serial: mostly the row
// decoding path.
func BenchmarkRows100(b *testing.B) {
	for _, d := range driverSpecs {
		b.Run(d.name, func(b *testing.B) {
			cl := openBench(b, d.name, 1)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if n, err := cl.rows100(ctx); err != nil || n != 100 {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// BenchmarkAcquireRelease is a checkout and return of one pgpurepy
// connection without any I/O, through the extension (Checkout) and through
// database/sql (db.Conn + Close on an OpenDB handle, whose idle list is
// off, so every call reaches the pool). "contended" runs 4 goroutines per
// CPU against the default pool size.
func BenchmarkAcquireRelease(b *testing.B) {
	dsn := benchDSN(b)
	c, err := pgpurepy.NewConnector(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	x := c.Pool()
	dbc, err := openPgpurepyOpenDB(dsn, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer dbc.close()
	db := dbc.(*sqlClient).db
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, settleLimit)
	xdb, _ := pgpurepy.Ext(db)
	settlePool(sctx, x)
	settlePool(sctx, xdb)
	cancel()
	noop := func(*pgpurepy.Conn) error { return nil }
	ext := func() error { return x.Checkout(ctx, noop) }
	viaSQL := func() error {
		cn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		return cn.Close()
	}
	for _, tc := range []struct {
		name string
		f    func() error
	}{{"ext", ext}, {"database-sql", viaSQL}} {
		b.Run(tc.name+"/uncontended", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/contended", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := tc.f(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPointSelectConc is the point select at the harness's
// concurrencies with as many server connections as goroutines, for the
// drivers the targets compare. Besides ns/op it reports the process's CPU
// time per operation (getrusage): on a machine whose cores the server
// shares, that is the client's cost, and it is less noisy than throughput;
// and how many checkouts had to wait in line (a park and a wake-up each).
func BenchmarkPointSelectConc(b *testing.B) {
	for _, conc := range []int{8, 64} {
		for _, name := range []string{"pgpurepy-tuned", "pgpurepy-ext-tuned", "pgx-stdlib-tuned"} {
			b.Run(fmt.Sprintf("c=%d/%s", conc, name), func(b *testing.B) {
				cl := openBench(b, name, conc)
				ctx := context.Background()
				b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
				b.ReportAllocs()
				waitsBefore := waits(cl)
				before := takeSnapshot(syscall.RUSAGE_SELF)
				b.ResetTimer() // neither openBench's connecting nor the snapshot is measured
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						if n, err := cl.point(ctx, i); err != nil || n != i+1 {
							b.Error(n, err)
							return
						}
					}
				})
				b.StopTimer()
				after := takeSnapshot(syscall.RUSAGE_SELF)
				b.ReportMetric(float64(after.cpu-before.cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
				b.ReportMetric(float64(waits(cl)-waitsBefore)/float64(b.N), "waits/op")
			})
		}
	}
}

// waits counts the checkouts of cl that waited in line: in pgpurepy's pool,
// or in database/sql's for the other database/sql clients.
func waits(cl client) int64 {
	switch c := cl.(type) {
	case *extClient:
		return int64(c.x.Stats().WaitedAcquires)
	case *sqlClient:
		if c.x != nil {
			return int64(c.x.Stats().WaitedAcquires)
		}
		return c.db.Stats().WaitCount
	}
	return 0
}

// A cell whose rounds differ by more than 3× is flagged, and only that one.
func TestUnstableNotes(t *testing.T) {
	r := &results{
		Plan: plan{Workloads: []string{"point"}, Conc: []int{256}, Drivers: []string{"pgxpool", muxDriver}},
		Aggs: map[cellKey]*aggregate{
			{"point", 256, "pgxpool"}: {Rounds: 3, Median: 367, Min: 316, Max: 34985},
			{"point", 256, muxDriver}: {Rounds: 3, Median: 75474, Min: 72482, Max: 80362},
		},
	}
	got := r.unstableNotes()
	if !strings.Contains(got, "point c=256 pgxpool") || strings.Contains(got, muxDriver) {
		t.Errorf("unstableNotes() = %q, want only pgxpool's cell", got)
	}
}

// sleepyClient answers point selects at once and sleeps 20 ms for the
// mixed workload's slow statement; the rest is never called.
type sleepyClient struct{ client }

func (sleepyClient) point(_ context.Context, x int) (int, error) { return x + 1, nil }
func (sleepyClient) sleep(context.Context) error {
	time.Sleep(20 * time.Millisecond)
	return nil
}

// The mixed workload's latencies are its point selects' only: the sleeps
// run (they take the time) but are not recorded.
func TestMixedRecordsPointSelectsOnly(t *testing.T) {
	ws, stuck := runWorkers(sleepyClient{}, "mixed", 2, 300*time.Millisecond, nil, nil)
	if stuck > 0 {
		t.Fatalf("%d workers stuck", stuck)
	}
	var h histogram
	var ops int64
	for i := range ws {
		h.merge(&ws[i].hist)
		ops += ws[i].ops
	}
	if ops == 0 {
		t.Fatal("no operation ran")
	}
	if got := h.quantile(1); got >= 10*time.Millisecond {
		t.Errorf("largest recorded latency %v: a 20 ms sleep was recorded", got)
	}
}
