package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// report is one suite's two runs and how pgpurepy's differs.
type report struct {
	suite suite
	runs  map[driver]*runResult
	// counts per driver; pgpurepy's skipped include the not-applicable tests.
	counts map[driver]counts
	// notApplicable counts the baseline's tests that the pgpurepy run
	// skipped because not-applicable.txt lists them.
	notApplicable int
	// regressions are the tests pgx's stdlib passes and pgpurepy does not
	// (failed, skipped by itself, or not run), not excused by a list.
	regressions []difference
	// known are such tests that known-differences.txt excuses.
	known []difference
	// bothFail are tests that fail with both drivers; pgxOnly are tests
	// that fail with pgx's stdlib and pass with pgpurepy.
	bothFail, pgxOnly []string
	// stale are list entries that name no test of the baseline run.
	stale []string
}

// difference is one test pgpurepy does not pass where pgx's stdlib does.
type difference struct {
	test   string
	got    outcome    // zero when the test did not run at all
	run    *runResult // pgpurepy's, for the failures' output
	reason string     // from known-differences.txt
}

// compare fills the report from the two runs and the suite's list entries.
func (rep *report) compare(notApplicable, knownDifferences map[string]string) {
	base, pureRun := rep.runs[baseline], rep.runs[pure]
	bl, pl := base.topLevel(), pureRun.topLevel()
	na := list{rep.suite.name: notApplicable}
	kd := list{rep.suite.name: knownDifferences}
	rep.counts = map[driver]counts{baseline: countOutcomes(bl), pure: countOutcomes(pl)}

	used := map[string]bool{}
	for _, test := range sortedKeys(bl) {
		if name, _, ok := na.match(rep.suite.name, test); ok {
			used["not applicable: "+name] = true
			if _, ran := pl[test]; !ran {
				rep.notApplicable++
			}
			continue
		}
		b, p := bl[test], pl[test]
		switch {
		case b == passed && p != passed:
			d := difference{test: test, got: p, run: pureRun}
			if names, reason, ok := rep.excuse(kd, d); ok {
				for _, n := range names {
					used["known difference: "+n] = true
				}
				d.reason = reason
				rep.known = append(rep.known, d)
			} else {
				rep.regressions = append(rep.regressions, d)
			}
		case b != passed && (p == failed || p == unfinished):
			rep.bothFail = append(rep.bothFail, test)
		case b == failed && p == passed:
			rep.pgxOnly = append(rep.pgxOnly, test)
		}
	}
	if _, ok := pl[packageTest]; ok && bl[packageTest] == 0 {
		rep.regressions = append(rep.regressions, difference{test: packageTest, got: failed, run: pureRun})
	}
	c := rep.counts[pure]
	c.skipped += rep.notApplicable
	rep.counts[pure] = c
	for name := range notApplicable {
		if !used["not applicable: "+name] {
			rep.stale = append(rep.stale, fmt.Sprintf("%s %s %s", notApplicableFile, rep.suite.name, name))
		}
	}
	for name := range knownDifferences {
		if !used["known difference: "+name] {
			rep.stale = append(rep.stale, fmt.Sprintf("%s %s %s", knownDifferencesFile, rep.suite.name, name))
		}
	}
}

// excuse reports whether known-differences.txt excuses d: it lists the
// test (or a parent), or, for a failed test, every failed subtest inside
// it. It returns the entries used and their reasons.
func (rep *report) excuse(kd list, d difference) (names []string, reason string, ok bool) {
	failures := []string{d.test}
	if d.got == failed || d.got == unfinished {
		failures = d.run.failedLeaves(d.test)
	}
	var reasons []string
	for _, f := range failures {
		name, r, ok := kd.match(rep.suite.name, f)
		if !ok {
			return nil, "", false
		}
		names = append(names, name)
		if !slices.Contains(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	return names, strings.Join(reasons, "; "), len(names) > 0
}

// printSummary prints the table and the differences, and reports whether
// pgpurepy passes every test that pgx's stdlib passes (or the list excuses
// it).
func printSummary(w io.Writer, reports []*report, verbose bool) bool {
	ok := true
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "suite\tversion\tdriver\tpassed\tfailed\tskipped\t\tpgpurepy-only failures\t")
	for _, rep := range reports {
		version := rep.suite.version
		if rep.suite.module == "" {
			version = "(dir)"
		}
		for _, drv := range []driver{baseline, pure} {
			c := rep.counts[drv]
			note, only := "", ""
			if drv == pure {
				only = fmt.Sprint(len(rep.regressions))
				if rep.notApplicable > 0 {
					note = fmt.Sprintf("(%d n/a)", rep.notApplicable)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t\n", rep.suite.name, version, drv, c.passed, c.failed, c.skipped, note, only)
		}
	}
	tw.Flush()
	for _, rep := range reports {
		name := rep.suite.name
		if len(rep.regressions) > 0 {
			ok = false
			fmt.Fprintf(w, "\n%s: pgpurepy-only failures (pgx's stdlib passes them):\n", name)
			var notRun []string
			for _, d := range rep.regressions {
				if d.got == 0 {
					notRun = append(notRun, d.test)
					continue
				}
				printDifference(w, d, verbose)
			}
			if len(notRun) > 0 {
				fmt.Fprintf(w, "  not run (the test binary ended before them): %s\n", strings.Join(notRun, ", "))
			}
		}
		if len(rep.known) > 0 {
			fmt.Fprintf(w, "\n%s: known differences (%s):\n", name, knownDifferencesFile)
			for _, d := range rep.known {
				fmt.Fprintf(w, "  %s: %s — %s\n", d.test, d.got, d.reason)
			}
		}
		if len(rep.bothFail) > 0 {
			fmt.Fprintf(w, "\n%s: failing with both drivers: %s\n", name, strings.Join(rep.bothFail, ", "))
		}
		if len(rep.pgxOnly) > 0 {
			fmt.Fprintf(w, "\n%s: failing with pgx's stdlib only: %s\n", name, strings.Join(rep.pgxOnly, ", "))
		}
		for _, s := range rep.stale {
			fmt.Fprintf(w, "\n%s: note: a list entry matches no test of this run (one built only by another Go version?): %s\n", name, s)
		}
		if base := rep.runs[baseline]; base.packageFailed && len(base.tests) == 0 {
			ok = false
			fmt.Fprintf(w, "\n%s: the pgx stdlib run did not run at all:\n  %s\n", name, strings.Join(errorLines(base.packageOutput, 20), "\n  "))
		}
	}
	fmt.Fprintln(w)
	return ok
}

func printDifference(w io.Writer, d difference, verbose bool) {
	max := 4
	if verbose {
		max = 200
	}
	fmt.Fprintf(w, "  %s: %s\n", d.test, d.got)
	for _, l := range d.run.failures(d.test, max) {
		fmt.Fprintf(w, "      %s\n", l)
	}
}
