package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// outcome is how one test ended.
type outcome int

const (
	passed outcome = iota + 1
	failed
	skipped
	// unfinished: the test started and never ended, because the test binary
	// panicked in another test, timed out or was killed. It counts as a
	// failure.
	unfinished
)

func (o outcome) String() string {
	switch o {
	case passed:
		return "pass"
	case failed:
		return "FAIL"
	case skipped:
		return "skip"
	case unfinished:
		return "FAIL (did not finish)"
	}
	return "not run"
}

// packageTest is the name under which a failure of the test binary itself
// (build error, panic in init, TestMain exit) is recorded when no test
// failed, so that it is counted and compared like a test.
const packageTest = "(package)"

// testEvent is one line of `go test -json` (see `go doc test2json`).
type testEvent struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events
	Test       string
	Output     string
}

// testResult is one test's end and the lines it printed.
type testResult struct {
	outcome outcome
	output  []string
}

// runResult holds every test, at every level, of one `go test -json` run of
// one package.
type runResult struct {
	tests         map[string]*testResult // by full name: TestA, TestA/sub
	packageFailed bool
	packageOutput []string // output not attributed to a test (build errors, panics in init)
}

// parseEvents reads the output of `go test -json`.
func parseEvents(r io.Reader) (*runResult, error) {
	res := &runResult{tests: map[string]*testResult{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev testEvent
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			// go itself prints errors as plain text (a missing module, a
			// broken go.mod); keep them with the package's output.
			res.packageOutput = append(res.packageOutput, string(line))
			continue
		}
		if ev.Test == "" {
			switch ev.Action {
			case "output", "build-output":
				res.packageOutput = append(res.packageOutput, strings.TrimRight(ev.Output, "\n"))
			case "fail", "build-fail":
				res.packageFailed = true
			}
			continue
		}
		t := res.tests[ev.Test]
		if t == nil {
			t = &testResult{outcome: unfinished}
			res.tests[ev.Test] = t
		}
		switch ev.Action {
		case "output":
			t.output = append(t.output, strings.TrimRight(ev.Output, "\n"))
		case "pass":
			t.outcome = passed
		case "fail":
			t.outcome = failed
		case "skip":
			t.outcome = skipped
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read go test output: %w", err)
	}
	return res, nil
}

// topLevel returns the outcome of every top-level test, the unit the
// runner counts and compares (a parent fails when a subtest fails). A
// failed binary with no failed test adds packageTest.
func (r *runResult) topLevel() map[string]outcome {
	out := map[string]outcome{}
	anyFailed := false
	for name, t := range r.tests {
		if t.outcome == failed || t.outcome == unfinished {
			anyFailed = true
		}
		if !strings.Contains(name, "/") {
			out[name] = t.outcome
		}
	}
	if r.packageFailed && !anyFailed {
		out[packageTest] = failed
	}
	return out
}

// failedLeaves returns the failures inside test: each failed subtest
// without a failed subtest of its own, or test itself.
func (r *runResult) failedLeaves(test string) []string {
	var out []string
	for _, name := range sortedKeys(r.tests) {
		t := r.tests[name]
		inTest := name == test || strings.HasPrefix(name, test+"/")
		bad := t.outcome == failed || t.outcome == unfinished
		if inTest && bad && !r.childFailed(name) {
			out = append(out, name)
		}
	}
	return out
}

// failures returns what failed in test: its failed leaves, each with up
// to max lines of its output.
func (r *runResult) failures(test string, max int) []string {
	if test == packageTest {
		return errorLines(r.packageOutput, max)
	}
	var out []string
	for _, name := range r.failedLeaves(test) {
		indent := ""
		if name != test {
			out = append(out, name+": "+r.tests[name].outcome.String())
			indent = "  "
		}
		for _, l := range errorLines(r.tests[name].output, max) {
			out = append(out, indent+strings.TrimSpace(l))
		}
	}
	return out
}

func (r *runResult) childFailed(parent string) bool {
	for name, t := range r.tests {
		if strings.HasPrefix(name, parent+"/") && (t.outcome == failed || t.outcome == unfinished) {
			return true
		}
	}
	return false
}

// ansiColor matches the terminal color codes that gorm's logger writes.
var ansiColor = regexp.MustCompile("\x1b\\[[0-9;]*m")

// errorLines returns the lines of a test's output that say what failed:
// everything but the framing lines of go test, at most max lines, without
// color codes.
func errorLines(lines []string, max int) []string {
	var out []string
	for _, l := range lines {
		l = ansiColor.ReplaceAllString(l, "")
		s := strings.TrimSpace(l)
		if s == "" || strings.HasPrefix(s, "=== ") || strings.HasPrefix(s, "--- ") {
			continue
		}
		if len(out) == max {
			out = append(out, "...")
			break
		}
		out = append(out, l)
	}
	return out
}

// counts are the numbers of a summary row.
type counts struct {
	passed, failed, skipped int
}

func countOutcomes(tests map[string]outcome) counts {
	var c counts
	for _, o := range tests {
		switch o {
		case passed:
			c.passed++
		case skipped:
			c.skipped++
		default:
			c.failed++
		}
	}
	return c
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
