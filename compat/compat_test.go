package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// events builds `go test -json` output from "action test [output]" lines.
func events(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		f := strings.SplitN(l, " ", 3)
		test, out := "", ""
		if len(f) > 1 && f[1] != "-" {
			test = f[1]
		}
		if len(f) > 2 {
			out = f[2] + "\n"
		}
		b.WriteString(`{"Action":"` + f[0] + `","Package":"p","Test":"` + test + `","Output":` + quote(out) + "}\n")
	}
	return b.String()
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}

func parse(t *testing.T, text string) *runResult {
	t.Helper()
	r, err := parseEvents(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTopLevelOutcomes(t *testing.T) {
	r := parse(t, events(
		"run TestA", "run TestA/x", "pass TestA/x", "run TestA/y",
		"output TestA/y     a_test.go:9: boom", "fail TestA/y", "fail TestA",
		"run TestB", "skip TestB",
		"run TestC", "pass TestC",
		"run TestD", "output TestD panic: nil map",
		"fail -",
	))
	got := r.topLevel()
	want := map[string]outcome{"TestA": failed, "TestB": skipped, "TestC": passed, "TestD": unfinished}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("topLevel = %v, want %v", got, want)
	}
	if c := countOutcomes(got); c != (counts{passed: 1, failed: 2, skipped: 1}) {
		t.Errorf("counts = %+v", c)
	}
	if got := r.failures("TestA", 5); !reflect.DeepEqual(got, []string{"TestA/y: FAIL", "  a_test.go:9: boom"}) {
		t.Errorf("failures(TestA) = %q", got)
	}
}

func TestErrorLines(t *testing.T) {
	in := []string{"=== RUN   TestA", "\x1b[31;1mtests/a_test.go:9 \x1b[35;1mboom\x1b[0m", "    a_test.go:10: more", "--- FAIL: TestA", "extra"}
	if got, want := errorLines(in, 2), []string{"tests/a_test.go:9 boom", "    a_test.go:10: more", "..."}; !reflect.DeepEqual(got, want) {
		t.Errorf("errorLines = %q, want %q", got, want)
	}
}

func TestBuildFailureIsAPackageFailure(t *testing.T) {
	r := parse(t, `{"ImportPath":"p","Action":"build-output","Output":"./x.go:1: undefined: y\n"}`+"\n"+
		`{"ImportPath":"p","Action":"build-fail"}`+"\n"+events("fail -"))
	if got := r.topLevel(); !reflect.DeepEqual(got, map[string]outcome{packageTest: failed}) {
		t.Fatalf("topLevel = %v", got)
	}
	if got := r.failures(packageTest, 5); !reflect.DeepEqual(got, []string{"./x.go:1: undefined: y"}) {
		t.Errorf("failures = %q", got)
	}
}

func TestCompare(t *testing.T) {
	base := parse(t, events("pass TestOK", "pass TestNative", "pass TestBug", "pass TestKnown",
		"pass TestCrashLost", "fail TestBoth", "fail TestPgxOnly"))
	pureRun := parse(t, events("pass TestOK", "fail TestBug", "fail TestKnown", "fail TestBoth", "pass TestPgxOnly"))
	rep := &report{suite: suite{name: "s"}, runs: map[driver]*runResult{baseline: base, pure: pureRun}}
	rep.compare(map[string]string{"TestNative": "native API", "TestGone": "stale"},
		map[string]string{"TestKnown": "on purpose"})

	var regressions []string
	for _, d := range rep.regressions {
		regressions = append(regressions, d.test+"="+d.got.String())
	}
	if want := []string{"TestBug=FAIL", "TestCrashLost=not run"}; !reflect.DeepEqual(regressions, want) {
		t.Errorf("regressions = %q, want %q", regressions, want)
	}
	if len(rep.known) != 1 || rep.known[0].reason != "on purpose" {
		t.Errorf("known = %+v", rep.known)
	}
	if !reflect.DeepEqual(rep.bothFail, []string{"TestBoth"}) || !reflect.DeepEqual(rep.pgxOnly, []string{"TestPgxOnly"}) {
		t.Errorf("bothFail = %q, pgxOnly = %q", rep.bothFail, rep.pgxOnly)
	}
	if rep.notApplicable != 1 || rep.counts[pure] != (counts{passed: 2, failed: 3, skipped: 1}) {
		t.Errorf("notApplicable = %d, counts = %+v", rep.notApplicable, rep.counts[pure])
	}
	if len(rep.stale) != 1 || !strings.Contains(rep.stale[0], "TestGone") {
		t.Errorf("stale = %q", rep.stale)
	}
}

func TestKnownDifferenceOfSubtests(t *testing.T) {
	base := parse(t, events("pass TestA/x", "pass TestA/y", "pass TestA", "pass TestB/x", "pass TestB/y", "pass TestB"))
	pureRun := parse(t, events("fail TestA/x", "pass TestA/y", "fail TestA", "fail TestB/x", "fail TestB/y", "fail TestB"))
	rep := &report{suite: suite{name: "s"}, runs: map[driver]*runResult{baseline: base, pure: pureRun}}
	rep.compare(nil, map[string]string{"TestA/x": "on purpose", "TestB/x": "on purpose"})
	if len(rep.known) != 1 || rep.known[0].test != "TestA" {
		t.Errorf("known = %+v, want TestA only", rep.known)
	}
	if len(rep.regressions) != 1 || rep.regressions[0].test != "TestB" {
		t.Errorf("regressions = %+v, want TestB (its subtest y is not excused)", rep.regressions)
	}
}

func TestListFiles(t *testing.T) {
	l, err := parseList("l", "# comment\n\npgx-stdlib TestA   opens  pgx\nsqlx TestB/sub why\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, reason, ok := l.match("pgx-stdlib", "TestA/cache_statement"); !ok || reason != "opens pgx" {
		t.Errorf("match(TestA/cache_statement) = %q, %v", reason, ok)
	}
	if _, _, ok := l.match("sqlx", "TestB"); ok {
		t.Error("an entry for a subtest matched its parent")
	}
	for _, bad := range []string{"pgx-stdlib TestA", "s T r\ns T again"} {
		if _, err := parseList("l", bad); err == nil {
			t.Errorf("parseList(%q) accepted it", bad)
		}
	}
	// The committed lists parse.
	for _, f := range []string{notApplicableFile, knownDifferencesFile} {
		if _, err := readList(f); err != nil {
			t.Error(err)
		}
	}
}

func TestPatchApply(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.go")
	if err := os.WriteFile(path, []byte("open(x)\nopen(x)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (patch{file: "a.go", old: "open(x)", new: "open(y)"}).apply(dir); err == nil {
		t.Error("a patch whose text occurs twice was applied")
	}
	if err := (patch{file: "a.go", old: "open(x)", new: "open(y)", n: 2}).apply(dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "open(y)\nopen(y)\n" {
		t.Errorf("patched file = %q", b)
	}
	if err := (patch{file: "b.go", new: "package b\n"}).apply(dir); err != nil {
		t.Fatal(err)
	}
	if err := (patch{file: "b.go", new: "package b\n"}).apply(dir); err == nil {
		t.Error("an added file overwrote an existing one")
	}
}
