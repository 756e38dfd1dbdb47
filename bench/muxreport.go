package main

import (
	"fmt"
	"strings"
)

// muxOff is the client the multiplexing section compares pgpurepy-mux with:
// the same OpenDB on the same default pool, multiplexing off.
const muxOff = "pgpurepy-opendb"

// muxMarkdown renders the multiplexing section of issue 18: its table and
// its targets. It is empty when the section did not run.
func (r *results) muxMarkdown() string {
	m := r.Mux
	if m == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Multiplexing (issue 18)\n\n")
	fmt.Fprintf(&b, "The point select and the mixed workload (1%% `pg_sleep(0.05)`) at c = %s, in turns of their own after the tables above. "+
		"`pgpurepy-opendb` (multiplexing off) and `pgpurepy-mux` (`multiplexing=on`) use the default pool of %d connections; "+
		"`pgx-stdlib-tuned` and `pgxpool` get c connections and pgbench c clients. "+
		"The mixed workload's p50 and p99 are those of its point selects (its `pg_sleep(0.05)` takes 50 ms with every driver), "+
		"and its throughput depends on how many sleeps a cell drew: a handful per cell at c=1.\n\n",
		joinInts(m.Plan.Conc, ", "), r.Machine.PoolSize)
	b.WriteString("| workload | c | driver | ops/s (median) | min–max | p50 | p99 | allocs/op | new conns | errors | × multiplexing off | × pgxpool | × pgbench |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range m.Plan.Workloads {
		for _, c := range m.Plan.Conc {
			off, pool, pgb := m.get(w, c, muxOff), m.get(w, c, "pgxpool"), m.get("point", c, pgbenchName)
			for _, d := range m.Plan.Drivers {
				if d == pgbenchName && w != "point" {
					continue
				}
				a := m.get(w, c, d)
				if a == nil {
					continue
				}
				allocs := "–"
				if a.AllocsPerOp >= 0 {
					allocs = fmt.Sprintf("%.1f", a.AllocsPerOp)
				}
				xPgb := "–"
				if w == "point" {
					xPgb = fmtRatio(ratio(a, pgb))
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s–%s | %s | %s | %s | %d | %d | %s | %s | %s |\n",
					w, c, d, fmtOps(a.Median), fmtOps(a.Min), fmtOps(a.Max), fmtLat(a.P50), fmtLat(a.P99),
					allocs, a.NewConns, a.Errors, fmtRatio(ratio(a, off)), fmtRatio(ratio(a, pool)), xPgb)
			}
		}
	}
	b.WriteString("\n")
	for _, w := range m.Plan.Workloads {
		if errs := m.errorNotes(w); errs != "" {
			b.WriteString(errs + "\n")
		}
	}
	b.WriteString(m.unstableNotes())
	b.WriteString(r.muxTargets())
	return b.String()
}

// muxTargets checks the targets of issue 18: the multiplexing section's
// cells, and every cell of the main tables where both pgpurepy-mux and
// pgpurepy-opendb ran.
func (r *results) muxTargets() string {
	m := r.Mux
	var b strings.Builder
	b.WriteString("### Targets (issue 18), computed from this run\n\n")
	vs := func(w string, c int, peer string, min float64) []target {
		a, p := m.get(w, c, muxDriver), m.get(w, c, peer)
		if a == nil || p == nil {
			return nil
		}
		x := ratio(a, p)
		return []target{{ok: x >= min, text: fmt.Sprintf("%s c=%d: %s %s ops/s vs %s %s = %.2f× (≥ %.2f×)",
			w, c, muxDriver, fmtOps(a.Median), peer, fmtOps(p.Median), x, min)}}
	}
	var ts []target
	ts = append(ts, vs("point", 64, "pgxpool", 1.5)...)
	ts = append(ts, vs("point", 64, pgbenchName, 1.2)...)
	ts = append(ts, vs("point", 8, pgbenchName, 0.9)...)
	writeTargets(&b, "Point select with the default pool: ≥ 1.5× pgxpool and ≥ 1.2× pgbench at c=64, ≥ 0.9× pgbench at c=8", ts)

	ts = nil
	for _, c := range m.Plan.Conc {
		a, off := m.get("mixed", c, muxDriver), m.get("mixed", c, muxOff)
		if a == nil || off == nil || a.P99 <= 0 || off.P99 <= 0 {
			continue
		}
		x := float64(a.P99) / float64(off.P99)
		ts = append(ts, target{ok: x <= 2, text: fmt.Sprintf("mixed c=%d: point selects' p99 %s with multiplexing, %s without = %.2f× (≤ 2.00×)",
			c, fmtLat(a.P99), fmtLat(off.P99), x)})
	}
	writeTargets(&b, "Mixed workload: the point selects' p99 at most 2× the p99 without multiplexing", ts)

	ts = nil
	never := func(rr *results, where string) {
		for _, w := range rr.Plan.Workloads {
			for _, c := range rr.Plan.Conc {
				a, off := rr.get(w, c, muxDriver), rr.get(w, c, muxOff)
				if a == nil || off == nil {
					continue
				}
				x := ratio(a, off)
				ts = append(ts, target{ok: x >= 1, text: fmt.Sprintf("%s c=%d (%s): %s ops/s on, %s off = %.2f× (≥ 1.00×)",
					w, c, where, fmtOps(a.Median), fmtOps(off.Median), x)})
			}
		}
	}
	never(r, "main tables")
	never(m, "this section")
	writeTargets(&b, "Multiplexing never worse than off, in every cell (the condition for making it the default)", ts)
	b.WriteString("Medians of one run on a noisy machine: a ratio within a few percent of 1.00× is a tie, and a tie counts as a fail here. " +
		"`multiplexing` stays off by default unless every line of the last section passes. " +
		"Why the lines that fail do, with profiles: `NOTES.md`.\n\n")
	return b.String()
}

// unstableSpread is the max/min ratio of a cell's rounds above which its
// median says little: the ratios against it are flagged in the report.
const unstableSpread = 3

// unstableNotes lists the cells whose rounds differ by more than
// unstableSpread×, so that a ratio against one is not read as a result.
func (r *results) unstableNotes() string {
	var lines []string
	for _, w := range r.Plan.Workloads {
		for _, c := range r.Plan.Conc {
			for _, d := range r.Plan.Drivers {
				a := r.Aggs[cellKey{w, c, d}]
				if a != nil && a.Min > 0 && a.Max/a.Min > unstableSpread {
					lines = append(lines, fmt.Sprintf("- unstable, %s c=%d %s: its rounds ranged from %s to %s ops/s; ratios against its median are not meaningful",
						w, c, d, fmtOps(a.Min), fmtOps(a.Max)))
				}
			}
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n\n"
}
