package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgpurepy/pgpurepy"
)

// The copy section loads -copy-rows rows into bench_copy in three ways, in
// turns, once per round: pgpurepy's CopyFrom, pgx's Conn.CopyFrom, and
// multi-row INSERTs of copyBatch rows each through pgpurepy's extension,
// all in one transaction. Every way gets the same values from copyRow, has
// a fresh client warmed with a small load, and starts on an empty table.

// copyBatch is the number of rows of one INSERT of the batched method.
const copyBatch = 1000

// copyRef is the method the copy section's ratios are taken against.
const copyRef = "pgx-copyfrom"

var copyColumns = []string{"id", "n", "t", "ts", "f"}

const copyDDL = "CREATE TABLE bench_copy (id int8 NOT NULL, n int4 NOT NULL, t text NOT NULL, ts timestamptz NOT NULL, f float8 NOT NULL)"

// copyDoc describes the section in the report.
var copyDoc = "Loading %s rows of (int8, int4, text, timestamptz, float8) into an empty table without indexes: " +
	"pgpurepy's `Pool.CopyFrom` and pgx's `Conn.CopyFrom` (binary COPY, rows from an iterator / `CopyFromFunc`), " +
	"and `INSERT ... VALUES` of " + strconv.Itoa(copyBatch) + " rows per statement through pgpurepy's extension, " +
	"in one transaction. The time covers the load only; CPU and allocations are this process's, the server's not included."

// copyLabels are the text values, shared by all rows so that making a
// row allocates the same for every method.
var copyLabels = func() []string {
	out := make([]string, 1000)
	for i := range out {
		out[i] = "bench copy row label " + strconv.Itoa(i)
	}
	return out
}()

var copyEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// copyRow sets row to the values of row i.
func copyRow(row []any, i int) {
	row[0] = int64(i)
	row[1] = int32(i % 1000)
	row[2] = copyLabels[i%len(copyLabels)]
	row[3] = copyEpoch.Add(time.Duration(i) * time.Second)
	row[4] = float64(i) / 4
}

// copyLoader is one way of loading n rows, on a client opened once per
// round.
type copyLoader interface {
	load(ctx context.Context, n int) (int64, error)
	close() error
}

// copyMethods lists the ways of loading, in the order they run within a
// round and appear in the table.
var copyMethods = []struct {
	name string
	open func(ctx context.Context, dsn string) (copyLoader, error)
}{
	{"pgpurepy-copyfrom", openPgpurepyCopy},
	{copyRef, openPgxCopy},
	{"pgpurepy-insert-" + strconv.Itoa(copyBatch), openPgpurepyInsert},
}

type pgpurepyCopy struct {
	db *sql.DB
	x  *pgpurepy.Pool
}

func openPgpurepyLoader(dsn string) (*pgpurepyCopy, error) {
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		return nil, err
	}
	x, err := pgpurepy.Ext(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &pgpurepyCopy{db: db, x: x}, nil
}

func openPgpurepyCopy(_ context.Context, dsn string) (copyLoader, error) {
	return openPgpurepyLoader(dsn)
}

func (c *pgpurepyCopy) load(ctx context.Context, n int) (int64, error) {
	rows := func(yield func([]any, error) bool) {
		row := make([]any, len(copyColumns))
		for i := range n {
			copyRow(row, i)
			if !yield(row, nil) {
				return
			}
		}
	}
	return c.x.CopyFrom(ctx, pgpurepy.Identifier{"bench_copy"}, copyColumns, rows)
}

func (c *pgpurepyCopy) close() error { return c.db.Close() }

type pgxCopy struct{ conn *pgx.Conn }

func openPgxCopy(ctx context.Context, dsn string) (copyLoader, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &pgxCopy{conn: conn}, nil
}

func (c *pgxCopy) load(ctx context.Context, n int) (int64, error) {
	row := make([]any, len(copyColumns))
	i := 0
	return c.conn.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, copyColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		copyRow(row, i)
		i++
		return row, nil
	}))
}

func (c *pgxCopy) close() error { return c.conn.Close(context.Background()) }

// pgpurepyInsert loads with multi-row INSERTs; sqls caches the text for
// each batch size.
type pgpurepyInsert struct {
	*pgpurepyCopy
	sqls map[int]string
}

func openPgpurepyInsert(_ context.Context, dsn string) (copyLoader, error) {
	c, err := openPgpurepyLoader(dsn)
	if err != nil {
		return nil, err
	}
	return &pgpurepyInsert{pgpurepyCopy: c, sqls: map[int]string{}}, nil
}

func (c *pgpurepyInsert) insertSQL(rows int) string {
	if q, ok := c.sqls[rows]; ok {
		return q
	}
	var b strings.Builder
	b.WriteString("INSERT INTO bench_copy (" + strings.Join(copyColumns, ", ") + ") VALUES ")
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(")
		for col := range copyColumns {
			if col > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", r*len(copyColumns)+col+1)
		}
		b.WriteString(")")
	}
	c.sqls[rows] = b.String()
	return c.sqls[rows]
}

func (c *pgpurepyInsert) load(ctx context.Context, n int) (int64, error) {
	var total int64
	args := make([]any, copyBatch*len(copyColumns))
	err := c.x.CheckoutInTransaction(ctx, func(tx *pgpurepy.Conn) error {
		for start := 0; start < n; start += copyBatch {
			rows := min(copyBatch, n-start)
			for r := range rows {
				copyRow(args[r*len(copyColumns):(r+1)*len(copyColumns)], start+r)
			}
			got, err := tx.Execute(ctx, c.insertSQL(rows), args[:rows*len(copyColumns)]...)
			if err != nil {
				return err
			}
			total += got
		}
		return nil
	})
	return total, err
}

// copySample is one load of one round.
type copySample struct {
	Method  string
	Round   int
	Rows    int64
	Elapsed time.Duration
	CPU     time.Duration
	Mallocs int64
	Err     string
}

// copyAgg is one method's figures over its rounds.
type copyAgg struct {
	Method           string
	Rounds           int
	Median, Min, Max float64 // rows/s
	Elapsed          time.Duration
	CPUPerRow        float64 // ns
	AllocsPerRow     float64
	Errors           int
	FirstErr         string
}

// measureCopy runs every method once per round, in turns, loading n rows
// each time, and reports progress to progress.
func measureCopy(ctx context.Context, dsn string, n, rounds int, progress io.Writer) ([]copySample, error) {
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect for the copy section: %w", err)
	}
	defer admin.Close(context.Background())
	for _, q := range []string{"DROP TABLE IF EXISTS bench_copy", copyDDL} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("copy setup %q: %w", q, err)
		}
	}
	var out []copySample
	k, total := 0, rounds*len(copyMethods)
	for r := 1; r <= rounds; r++ {
		for _, m := range copyMethods {
			if ctx.Err() != nil {
				return out, nil
			}
			k++
			s := runCopy(ctx, admin, m.name, m.open, dsn, n)
			s.Round = r
			out = append(out, s)
			line := fmt.Sprintf("[copy %d/%d] %d rows %s round %d: ", k, total, n, m.name, r)
			if s.Err != "" {
				line += "error: " + s.Err
			} else {
				line += fmt.Sprintf("%.0f rows/s, %s", float64(s.Rows)/s.Elapsed.Seconds(), s.Elapsed.Round(time.Millisecond))
			}
			fmt.Fprintln(progress, line)
		}
	}
	_, _ = admin.Exec(context.Background(), "DROP TABLE IF EXISTS bench_copy")
	return out, nil
}

// runCopy opens a client of method, warms it with a small load, empties
// the table, and measures the load of n rows, checked by counting them.
func runCopy(ctx context.Context, admin *pgx.Conn, method string, open func(context.Context, string) (copyLoader, error), dsn string, n int) copySample {
	s := copySample{Method: method, Mallocs: -1}
	fail := func(what string, err error) copySample {
		s.Err = what + ": " + err.Error()
		return s
	}
	l, err := open(ctx, dsn)
	if err != nil {
		return fail("open", err)
	}
	defer func() { _ = l.close() }()
	if _, err := l.load(ctx, min(n, copyBatch)); err != nil {
		return fail("warm-up", err)
	}
	if _, err := admin.Exec(ctx, "TRUNCATE bench_copy"); err != nil {
		return fail("truncate", err)
	}
	runtime.GC()
	before := takeSnapshot(syscall.RUSAGE_SELF)
	got, err := l.load(ctx, n)
	after := takeSnapshot(syscall.RUSAGE_SELF)
	if err != nil {
		return fail("load", err)
	}
	s.Rows, s.Elapsed, s.CPU = got, after.at.Sub(before.at), after.cpu-before.cpu
	s.Mallocs = int64(after.mallocs - before.mallocs)
	var count int64
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM bench_copy").Scan(&count); err != nil {
		return fail("count", err)
	}
	if got != int64(n) || count != int64(n) {
		return fail("check", fmt.Errorf("loaded %d rows, the table has %d, want %d", got, count, n))
	}
	return s
}

// aggregateCopy sums up the samples per method, in copyMethods' order.
func aggregateCopy(ss []copySample) []*copyAgg {
	var out []*copyAgg
	for _, m := range copyMethods {
		a := &copyAgg{Method: m.name}
		var rate, elapsed, cpu, allocs []float64
		for _, s := range ss {
			if s.Method != m.name {
				continue
			}
			if s.Err != "" {
				a.Errors++
				if a.FirstErr == "" {
					a.FirstErr = s.Err
				}
				continue
			}
			a.Rounds++
			rate = append(rate, float64(s.Rows)/s.Elapsed.Seconds())
			elapsed = append(elapsed, float64(s.Elapsed))
			cpu = append(cpu, float64(s.CPU)/float64(s.Rows))
			allocs = append(allocs, float64(s.Mallocs)/float64(s.Rows))
		}
		if a.Rounds > 0 {
			a.Median = median(rate)
			a.Min, a.Max = minMax(rate)
			a.Elapsed = time.Duration(median(elapsed))
			a.CPUPerRow = median(cpu)
			a.AllocsPerRow = median(allocs)
		}
		if a.Rounds > 0 || a.Errors > 0 {
			out = append(out, a)
		}
	}
	return out
}

// copyMarkdown renders the copy section.
func copyMarkdown(aggs []*copyAgg, rows int) string {
	if len(aggs) == 0 {
		return ""
	}
	var ref *copyAgg
	for _, a := range aggs {
		if a.Method == copyRef && a.Rounds > 0 {
			ref = a
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## copy\n\n"+copyDoc+"\n\n", fmtCount(rows))
	b.WriteString("| method | rows/s (median) | min–max | time (median) | CPU ns/row | allocs/row | errors | × " + copyRef + " |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	var notes []string
	for _, a := range aggs {
		if a.Errors > 0 {
			notes = append(notes, fmt.Sprintf("- errors, copy %s (%d): `%s`", a.Method, a.Errors, oneLine(a.FirstErr)))
		}
		if a.Rounds == 0 {
			fmt.Fprintf(&b, "| %s | no round ran (see below) |||||| %d | – |\n", a.Method, a.Errors)
			continue
		}
		x := "–"
		if ref != nil {
			x = fmtRatio(a.Median / ref.Median)
		}
		fmt.Fprintf(&b, "| %s | %s | %s–%s | %s | %.0f | %.2f | %d | %s |\n", a.Method, fmtOps(a.Median), fmtOps(a.Min), fmtOps(a.Max),
			a.Elapsed.Round(time.Millisecond), a.CPUPerRow, a.AllocsPerRow, a.Errors, x)
	}
	b.WriteString("\n")
	if len(notes) > 0 {
		b.WriteString(strings.Join(notes, "\n") + "\n\n")
	}
	return b.String()
}

// fmtCount writes n with thousands separators.
func fmtCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
