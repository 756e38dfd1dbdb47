package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machine describes where a run happened, for the report's header.
type machine struct {
	Date          time.Time
	GoVersion     string
	CPU           string
	NumCPU        int
	ServerVersion string
	PoolSize      int // pgpurepy's default connection_count for the DSN
	Pgbench       string
}

func describeMachine(serverVersion, pgbench string, poolSize int) machine {
	return machine{
		Date:          time.Now().UTC(),
		GoVersion:     runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		CPU:           cpuModel(),
		NumCPU:        runtime.NumCPU(),
		ServerVersion: serverVersion,
		PoolSize:      poolSize,
		Pgbench:       pgbench,
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// results is everything a report is made of.
type results struct {
	Plan    plan
	Machine machine
	Aggs    map[cellKey]*aggregate
	Copy    []*copyAgg
	// Mux is the multiplexing section, measured after the tables in its
	// own turns; nil when it did not run.
	Mux  *results
	Took time.Duration
}

func (r *results) get(w string, c int, d string) *aggregate {
	a := r.Aggs[cellKey{w, c, d}]
	if a == nil || a.Rounds == 0 {
		return nil
	}
	return a
}

// ratio is a's median throughput over b's; 0 when either is missing.
func ratio(a, b *aggregate) float64 {
	if a == nil || b == nil || b.Median == 0 {
		return 0
	}
	return a.Median / b.Median
}

func fmtRatio(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

func fmtLat(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
}

func fmtOps(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

// markdown renders the whole report: header, one table per workload, and the
// targets of issue 7.
func (r *results) markdown() string {
	var b strings.Builder
	m, p := r.Machine, r.Plan
	fmt.Fprintf(&b, "# pgpurepy benchmark results\n\n")
	fmt.Fprintf(&b, "Produced by `make bench` (`cd bench && go run .`); see README.md for the columns.\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n", m.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "| go | %s |\n", m.GoVersion)
	fmt.Fprintf(&b, "| CPU | %s (nproc %d) |\n", m.CPU, m.NumCPU)
	fmt.Fprintf(&b, "| PostgreSQL | %s (same machine) |\n", m.ServerVersion)
	fmt.Fprintf(&b, "| pgbench | %s |\n", orDash(m.Pgbench))
	fmt.Fprintf(&b, "| cell | %s measured after %s warm-up, %d round(s), drivers in turns |\n", p.Duration, p.Warmup, p.Rounds)
	fmt.Fprintf(&b, "| pgpurepy pool | %d connections (default connection_count) for pgpurepy-default, -opendb and -ext; c connections (connection_count=c) for pgpurepy-tuned and -ext-tuned, as many as the tuned peers |\n", m.PoolSize)
	fmt.Fprintf(&b, "| run time | %s |\n\n", r.Took.Round(time.Second))

	for _, w := range p.Workloads {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", w, workloadDoc[w])
		b.WriteString("| c | driver | ops/s (median) | min–max | CPU µs/op | allocs/op | p50 | p99 | new conns (cell) | errors | × pgx-stdlib-tuned |")
		if w == "point" {
			b.WriteString(" × pgbench |")
		}
		if w == "churn" {
			b.WriteString(" timeouts (uncancelled) | conns / 1k timeouts | cancels sent / acquire timeouts |")
		}
		b.WriteString("\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		if w == "point" {
			b.WriteString("---:|")
		}
		if w == "churn" {
			b.WriteString("---:|---:|---:|")
		}
		b.WriteString("\n")
		for _, c := range p.Conc {
			ref := r.get(w, c, refDriver)
			pgb := r.get("point", c, pgbenchName)
			for _, d := range p.Drivers {
				if d == pgbenchName && w != "point" {
					continue
				}
				a := r.Aggs[cellKey{w, c, d}]
				if a == nil {
					continue
				}
				if a.Rounds == 0 {
					why := "skipped: " + a.Skipped
					if a.Skipped == "" {
						why = "no round ran (see below)"
					}
					fmt.Fprintf(&b, "| %d | %s | %s |||||||||", c, d, why)
					if w == "point" {
						b.WriteString("|")
					}
					if w == "churn" {
						b.WriteString("|||")
					}
					b.WriteString("\n")
					continue
				}
				allocs := "–"
				if a.AllocsPerOp >= 0 {
					allocs = fmt.Sprintf("%.1f", a.AllocsPerOp)
				}
				errs := fmt.Sprint(a.Errors)
				fmt.Fprintf(&b, "| %d | %s | %s | %s–%s | %.1f | %s | %s | %s | %d (%d) | %s | %s |",
					c, d, fmtOps(a.Median), fmtOps(a.Min), fmtOps(a.Max),
					float64(a.CPUPerOp)/1e3, allocs, fmtLat(a.P50), fmtLat(a.P99),
					a.NewConns, a.Opened, errs, fmtRatio(ratio(a, ref)))
				if w == "point" {
					fmt.Fprintf(&b, " %s |", fmtRatio(ratio(a, pgb)))
				}
				if w == "churn" {
					cancels := "–"
					if a.CancelsSent >= 0 {
						cancels = fmt.Sprintf("%d / %d", a.CancelsSent, a.AcquireTimeouts)
					}
					fmt.Fprintf(&b, " %d (%d) | %s | %s |", a.Timeouts, a.Late, connsPerKTimeouts(a), cancels)
				}
				b.WriteString("\n")
			}
		}
		b.WriteString("\n")
		if errs := r.errorNotes(w); errs != "" {
			b.WriteString(errs + "\n")
		}
	}
	b.WriteString(copyMarkdown(r.Copy, p.CopyRows))
	b.WriteString(r.muxMarkdown())
	b.WriteString(r.targets())
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

var workloadDoc = map[string]string{
	"point":   "`SELECT $1::int4 + 1` scanned into an int.",
	"rows100": "`SELECT id, t, ts, n FROM bench_rows`: 100 rows of int8, text, timestamptz, numeric, all scanned (numeric into a string).",
	"insert":  "One-row `INSERT INTO bench_insert (a, b) VALUES ($1, $2)`.",
	"tx":      "BEGIN; `SELECT v FROM bench_tx WHERE id = $1`; `UPDATE bench_tx SET v = v + 1 WHERE id = $1`; COMMIT (random id of 10,000).",
	"churn":   "`SELECT pg_sleep(0.05)` under a 10 ms context timeout (expected to fail), then a point select; one op is one such pair.",
	"mixed":   "The point select, and 1% of operations `SELECT pg_sleep(0.05)` instead: p50/p99 show what the fast statements pay for the slow ones.",
}

func connsPerKTimeouts(a *aggregate) string {
	if a.Timeouts == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(a.NewConnsSum)*1000/float64(a.Timeouts))
}

// errorNotes lists the first error of every cell of w that had errors.
func (r *results) errorNotes(w string) string {
	var lines []string
	for _, c := range r.Plan.Conc {
		for _, d := range r.Plan.Drivers {
			a := r.Aggs[cellKey{w, c, d}]
			if a != nil && a.Errors > 0 {
				hung := ""
				if a.Hung > 0 {
					hung = fmt.Sprintf(", hung in %d of %d rounds", a.Hung, a.Rounds)
				}
				if a.Failed > 0 {
					hung += fmt.Sprintf(", %d round(s) without any operation left out of the figures", a.Failed)
				}
				lines = append(lines, fmt.Sprintf("- errors, %s c=%d %s (%d%s): `%s`", w, c, d, a.Errors, hung, oneLine(a.FirstErr)))
			}
		}
	}
	return strings.Join(lines, "\n") + nlIf(len(lines) > 0)
}

func nlIf(b bool) string {
	if b {
		return "\n"
	}
	return ""
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// target is one checked line of the Targets section.
type target struct {
	ok   bool
	na   bool
	text string
}

func (t target) String() string {
	switch {
	case t.na:
		return "- N/A — " + t.text
	case t.ok:
		return "- PASS — " + t.text
	}
	return "- **FAIL** — " + t.text
}

// writeTargets writes one section of checked targets, with its tally.
func writeTargets(b *strings.Builder, title string, ts []target) {
	fmt.Fprintf(b, "### %s\n\n", title)
	if len(ts) == 0 {
		b.WriteString("- N/A — not measured in this run (workload, concurrency or driver left out)\n")
	}
	pass, fail := 0, 0
	for _, t := range ts {
		b.WriteString(t.String() + "\n")
		if !t.na {
			if t.ok {
				pass++
			} else {
				fail++
			}
		}
	}
	fmt.Fprintf(b, "\n%d pass, %d fail.\n\n", pass, fail)
}

// targets checks the targets of issue 7 against the measured medians.
func (r *results) targets() string {
	var b strings.Builder
	b.WriteString("## Targets (issue 7), computed from this run\n\n")
	section := func(title string, ts []target) { writeTargets(&b, title, ts) }
	// pgpurepy's clients: its database/sql clients with the pool's default
	// size, the one with as many connections as the tuned peers, and the
	// extension with either pool size.
	pgpAll := []string{"pgpurepy-default", "pgpurepy-opendb", "pgpurepy-tuned", "pgpurepy-ext", "pgpurepy-ext-tuned"}
	peerConcs := r.concsAtLeast(8)

	// 1. database/sql path ≥ 1.0× pgx stdlib tuned and lib/pq tuned: with
	// the same number of server connections (c) on both sides, and as the
	// issue's own clients run it (OpenDB, the pool's default size).
	const peersTitle = "database/sql path ≥ 1.0× pgx stdlib tuned and ≥ 1.0× lib/pq tuned (c ≥ 8, "
	for _, g := range []struct{ d, title, note string }{
		{"pgpurepy-tuned", peersTitle + "pgpurepy-tuned: c server connections on every side)",
			"pgpurepy-tuned has connection_count = c, the tuned peers SetMaxOpenConns(c) = SetMaxIdleConns(c): " +
				"all hold the same number of server connections.\n\n"},
		{"pgpurepy-opendb", peersTitle + fmt.Sprintf("pgpurepy-opendb: OpenDB with the default pool of %d against c server connections)", r.Machine.PoolSize), ""},
	} {
		d := g.d
		var ts []target
		for _, w := range []string{"point", "rows100", "insert", "tx"} {
			for _, c := range peerConcs {
				a := r.get(w, c, d)
				for _, peer := range []string{"pgx-stdlib-tuned", "pq-tuned"} {
					pa := r.get(w, c, peer)
					if a == nil || pa == nil {
						continue
					}
					x := ratio(a, pa)
					ts = append(ts, target{ok: x >= 1.0, text: fmt.Sprintf("%s c=%d: %s %s ops/s vs %s %s = %.2f× (≥ 1.00×)",
						w, c, d, fmtOps(a.Median), peer, fmtOps(pa.Median), x)})
				}
			}
		}
		section(g.title, ts)
		b.WriteString(g.note)
	}

	// 2. Default settings at the highest concurrency.
	var ts []target
	if cmax := r.maxConc(); cmax > 0 {
		for _, w := range r.Plan.Workloads {
			a := r.get(w, cmax, "pgpurepy-default")
			if a == nil {
				continue
			}
			ts = append(ts, target{ok: a.Opened <= int64(r.Machine.PoolSize), text: fmt.Sprintf(
				"%s c=%d: pgpurepy-default opened %d server connections in the whole cell (warm-up included; pool size %d), %d during the timed part",
				w, cmax, a.Opened, r.Machine.PoolSize, a.NewConns)})
			for _, peer := range []string{"pgx-stdlib-default", "pq-default"} {
				pa := r.get(w, cmax, peer)
				if pa == nil {
					continue
				}
				ts = append(ts, target{ok: pa.NewConns > 0, text: fmt.Sprintf(
					"%s c=%d: %s reconnects: %d new server connections during the timed part (%d in the whole cell)",
					w, cmax, peer, pa.NewConns, pa.Opened)})
				x := ratio(a, pa)
				ts = append(ts, target{ok: x >= 1.5, text: fmt.Sprintf("%s c=%d: pgpurepy-default %s ops/s vs %s %s = %.2f× (≥ 1.50×)",
					w, cmax, fmtOps(a.Median), peer, fmtOps(pa.Median), x)})
			}
		}
		section(fmt.Sprintf("Default sql.DB settings at c=%d: pgpurepy stays within its pool, the others reconnect, pgpurepy ≥ 1.5× their default", cmax), ts)
	} else {
		section("Default sql.DB settings at the highest concurrency", nil)
	}

	// 3. Timeout churn.
	ts = nil
	if slices.Contains(r.Plan.Workloads, "churn") {
		for _, c := range r.Plan.Conc {
			for _, d := range pgpAll {
				a := r.get("churn", c, d)
				if a == nil {
					continue
				}
				ts = append(ts, target{ok: a.NewConnsSum == 0 && a.Timeouts > 0, text: fmt.Sprintf(
					"churn c=%d: %s opened %d server connections over %d timeouts (%s per 1,000; target 0)",
					c, d, a.NewConnsSum, a.Timeouts, connsPerKTimeouts(a))})
			}
			for _, d := range pgpAll {
				a := r.get("churn", c, d)
				if a == nil {
					continue
				}
				best, bestName := 0.0, ""
				for _, peer := range r.Plan.Drivers {
					if strings.HasPrefix(peer, "pgpurepy") || peer == pgbenchName {
						continue
					}
					if pa := r.get("churn", c, peer); pa != nil && pa.Median > best {
						best, bestName = pa.Median, peer
					}
				}
				if bestName == "" {
					continue
				}
				ts = append(ts, target{ok: a.Median > best, text: fmt.Sprintf(
					"churn c=%d: %s %s cycles/s vs best peer %s %s cycles/s = %.2f× (> 1.00×)",
					c, d, fmtOps(a.Median), bestName, fmtOps(best), a.Median/best)})
			}
		}
	}
	section("Timeout churn: zero new connections per 1,000 timeouts, more cycles/s than every peer", ts)

	// 4. Extension path ≥ 1.1× database/sql on the point select.
	ts = nil
	// Each extension client against the database/sql clients with the
	// same pool size.
	extPairs := []struct{ ext, sql string }{
		{"pgpurepy-ext", "pgpurepy-default"},
		{"pgpurepy-ext", "pgpurepy-opendb"},
		{"pgpurepy-ext-tuned", "pgpurepy-tuned"},
	}
	for _, c := range r.Plan.Conc {
		for _, pr := range extPairs {
			e, a := r.get("point", c, pr.ext), r.get("point", c, pr.sql)
			if e == nil || a == nil {
				continue
			}
			x := ratio(e, a)
			ts = append(ts, target{ok: x >= 1.1, text: fmt.Sprintf("point c=%d: %s %s ops/s vs %s %s = %.2f× (≥ 1.10×)",
				c, pr.ext, fmtOps(e.Median), pr.sql, fmtOps(a.Median), x)})
		}
	}
	section("Extension path ≥ 1.1× the database/sql path on the point select", ts)

	// 5. Point select at c=8 ≥ 0.8× pgbench.
	ts = nil
	if pg := r.get("point", 8, pgbenchName); pg != nil {
		for _, d := range pgpAll {
			if a := r.get("point", 8, d); a != nil {
				x := ratio(a, pg)
				ts = append(ts, target{ok: x >= 0.8, text: fmt.Sprintf("point c=8: %s %s ops/s vs pgbench %s tps = %.2f× (≥ 0.80×)",
					d, fmtOps(a.Median), fmtOps(pg.Median), x)})
			}
		}
	}
	section("Point select at c=8 ≥ 0.8× pgbench -M prepared", ts)

	// 6. Allocations per point select ≤ pgx stdlib's.
	ts = nil
	for _, c := range r.Plan.Conc {
		ref := r.get("point", c, refDriver)
		for _, d := range pgpAll {
			a := r.get("point", c, d)
			if a == nil || ref == nil || a.AllocsPerOp < 0 || ref.AllocsPerOp < 0 {
				continue
			}
			ts = append(ts, target{ok: a.AllocsPerOp <= ref.AllocsPerOp, text: fmt.Sprintf(
				"point c=%d: %s %.1f allocs/op vs pgx-stdlib-tuned %.1f (≤)", c, d, a.AllocsPerOp, ref.AllocsPerOp)})
		}
	}
	section("Allocations per point select ≤ pgx stdlib's", ts)
	b.WriteString("Allocations are counted for the whole process during the timed part (runtime.MemStats.Mallocs) and include " +
		"the harness's own per-operation cost, which is the same for every driver; database/sql's own allocations count " +
		"against the database/sql drivers.\n")
	return b.String()
}

func (r *results) concsAtLeast(n int) []int {
	var out []int
	for _, c := range r.Plan.Conc {
		if c >= n {
			out = append(out, c)
		}
	}
	return out
}

func (r *results) maxConc() int {
	m := 0
	for _, c := range r.Plan.Conc {
		m = max(m, c)
	}
	return m
}
