// Command compat runs the upstream test suites of libraries that people put
// on top of database/sql against pgpurepy, next to pgx's stdlib on the same
// server, and fails when pgpurepy fails a test that pgx's stdlib passes.
//
//	cd compat && go run .             # pgx's stdlib suite and sqlx's
//	cd compat && go run . -v          # also the patches and every failure's output
//	cd compat && go run . -gorm DIR   # also gorm's tests/, from a gorm checkout at DIR
//
// It starts one throwaway PostgreSQL (sqltest.Start: PGPUREPY_TEST_DSN, or
// local binaries, or Docker), downloads each suite at a pinned version
// through the module proxy, and for each suite runs `go test -json` twice,
// each run on a fresh database and a copy of the suite: once with pgx's
// stdlib (the suite as shipped where it already uses it) and once with the
// working tree's pgpurepy, where only the open call is patched (-v prints
// the patches). Results are counted and compared per top-level test (a
// test fails when one of its subtests does); the report names the failed
// subtests.
//
// Tests that exercise a library's native API and cannot apply to another
// driver are listed in not-applicable.txt and skipped in the pgpurepy run
// only; a pgpurepy failure where pgx's stdlib passes is an error unless
// known-differences.txt lists it with its reason. docs/COMPAT.md records
// the numbers.
//
// The server and every temporary directory are removed on exit, also after
// a failure, a panic or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/pgpurepy/pgpurepy/sqltest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// runner holds what every suite run shares.
type runner struct {
	goTool   *goTool
	server   *sqltest.Server
	tmp      string
	repoRoot string
	verbose  bool
	out      io.Writer // progress and the summary
	// notApplicable and knownDifferences are the two list files.
	notApplicable, knownDifferences list
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print the patches and the full output of every pgpurepy-only failure")
	suitesFlag := fs.String("suites", "pgx-stdlib,sqlx", "comma-separated suites to run from the module proxy: pgx-stdlib, sqlx")
	gormDir := fs.String("gorm", "", "also run gorm's tests/ from this gorm source tree (a checkout of the tag to test)")
	root := fs.String("root", "..", "the pgpurepy working tree whose driver the pgpurepy runs test")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	suites, err := selectSuites(*suitesFlag, *gormDir)
	if err != nil {
		fmt.Fprintln(stderr, "compat:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, cleanup, err := newRunner(ctx, *root, *verbose, stdout, stderr)
	defer cleanup()
	if err != nil {
		fmt.Fprintln(stderr, "compat:", err)
		return 1
	}
	start := time.Now()
	var reports []*report
	for _, s := range suites {
		rep, err := r.runSuite(ctx, s)
		if err != nil {
			fmt.Fprintf(stderr, "compat: %s: %v\n", s.name, err)
			return 1
		}
		reports = append(reports, rep)
	}
	ok := printSummary(stdout, reports, r.verbose)
	fmt.Fprintf(stdout, "compat: %d suites in %s\n", len(reports), time.Since(start).Round(time.Second))
	if !ok {
		return 1
	}
	return 0
}

// selectSuites returns the suites named in names (comma-separated), and
// gorm's when gormDir is set.
func selectSuites(names, gormDir string) ([]suite, error) {
	known := map[string]suite{pgxStdlib.name: pgxStdlib, sqlxSuite.name: sqlxSuite}
	var out []suite
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		s, ok := known[n]
		if !ok {
			return nil, fmt.Errorf("unknown suite %q (gorm runs with -gorm DIR)", n)
		}
		out = append(out, s)
	}
	if gormDir != "" {
		dir, err := filepath.Abs(gormDir)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(dir, "tests", "go.mod")); err != nil {
			return nil, fmt.Errorf("-gorm %s: not a gorm source tree: %w", gormDir, err)
		}
		s := gormSuite
		s.version = dir
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no suite to run")
	}
	return out, nil
}

// newRunner reads the list files, makes the temporary directory and starts
// the server. cleanup, which the caller must call even on error, stops the
// server and removes the directory.
func newRunner(ctx context.Context, root string, verbose bool, stdout, stderr io.Writer) (_ *runner, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	r := &runner{verbose: verbose, out: stdout}
	if r.repoRoot, err = filepath.Abs(root); err != nil {
		return nil, cleanup, err
	}
	if b, err := os.ReadFile(filepath.Join(r.repoRoot, "go.mod")); err != nil || !strings.Contains(string(b), "module "+pgpurepyModule+"\n") {
		return nil, cleanup, fmt.Errorf("-root %s: not the pgpurepy working tree", root)
	}
	if r.notApplicable, err = readList(notApplicableFile); err != nil {
		return nil, cleanup, err
	}
	if r.knownDifferences, err = readList(knownDifferencesFile); err != nil {
		return nil, cleanup, err
	}
	for s, tests := range r.notApplicable {
		for name := range tests {
			if strings.Contains(name, "/") {
				return nil, cleanup, fmt.Errorf("%s: %s %s: only top-level tests can be skipped", notApplicableFile, s, name)
			}
		}
	}
	goPath, err := exec.LookPath("go")
	if err != nil {
		return nil, cleanup, err
	}

	if r.tmp, err = os.MkdirTemp("", "pgpurepy-compat-"); err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() {
		if err := os.RemoveAll(r.tmp); err != nil {
			fmt.Fprintln(stderr, "compat:", err)
		}
	})
	for _, d := range []string{"go", "tmp"} {
		if err := os.Mkdir(filepath.Join(r.tmp, d), 0o755); err != nil {
			return nil, cleanup, err
		}
	}
	r.goTool = &goTool{path: goPath, env: append(os.Environ(),
		"GOWORK=off",
		// go test may add the sums of pgpurepy's dependencies to a copy.
		"GOFLAGS=-mod=mod",
		// No suite uses SQLite, whose C source would take a minute to
		// compile for nothing: without cgo mattn/go-sqlite3 builds a stub.
		"CGO_ENABLED=0",
		// The go command's work directories and the tests' temporary
		// files live in r.tmp, so that they go with it.
		"GOTMPDIR="+filepath.Join(r.tmp, "go"),
		"TMPDIR="+filepath.Join(r.tmp, "tmp"),
	)}

	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if r.server, err = sqltest.Start(startCtx, sqltest.Options{Progress: stderr}); err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() {
		if err := r.server.Close(); err != nil {
			fmt.Fprintln(stderr, "compat:", err)
		}
	})
	return r, cleanup, nil
}

// runSuite runs s with both drivers and compares the results.
func (r *runner) runSuite(ctx context.Context, s suite) (*report, error) {
	src := s.version // a directory, for gorm
	if s.module != "" {
		var err error
		if src, err = download(ctx, r.goTool, s.module, s.version); err != nil {
			return nil, err
		}
	}
	rep := &report{suite: s, runs: map[driver]*runResult{}}
	for _, drv := range []driver{baseline, pure} {
		if r.verbose && len(s.patches[drv]) > 0 {
			fmt.Fprintf(r.out, "== %s: patches for the %s run\n", s.name, drv)
			for _, p := range s.patches[drv] {
				fmt.Fprint(r.out, p.describe())
			}
		}
		res, err := r.runOnce(ctx, s, drv, src)
		if err != nil {
			return nil, fmt.Errorf("%s run: %w", drv, err)
		}
		rep.runs[drv] = res
	}
	rep.compare(r.notApplicable[s.name], r.knownDifferences[s.name])
	return rep, nil
}

// runOnce copies, patches and tests s with drv on a fresh database.
func (r *runner) runOnce(ctx context.Context, s suite, drv driver, src string) (*runResult, error) {
	dst := filepath.Join(r.tmp, s.name+"-"+string(drv))
	if err := prepareCopy(ctx, r.goTool, s, drv, src, dst, r.repoRoot); err != nil {
		return nil, err
	}
	// The pid keeps two runners apart on a shared PGPUREPY_TEST_DSN server.
	db := fmt.Sprintf("compat_%s_%s_%d", strings.ReplaceAll(s.name, "-", "_"), drv, os.Getpid())
	if err := r.server.Exec(ctx, "", `CREATE DATABASE "`+db+`"`); err != nil {
		return nil, err
	}
	defer func() {
		drop, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = r.server.Exec(drop, "", `DROP DATABASE IF EXISTS "`+db+`" WITH (FORCE)`)
	}()

	// -trimpath keeps the build cache's keys free of the copy's path, so
	// that packages of a copy compile once, not once per run.
	args := []string{"-count=1", "-trimpath", "-timeout", s.timeout.String()}
	if skip := skipPattern(r.notApplicable[s.name]); drv == pure && skip != "" {
		args = append(args, "-skip", skip)
	}
	args = append(args, s.pkg)
	dir := filepath.Join(dst, filepath.FromSlash(s.modDir))
	fmt.Fprintf(r.out, "== %s %s with %s: go test -json %s\n", s.name, s.version, drv, strings.Join(args, " "))
	start := time.Now()
	res, err := r.goTool.test(ctx, dir, s.env(r.server.DSN(db)), args...)
	if err != nil {
		return nil, err
	}
	c := countOutcomes(res.topLevel())
	fmt.Fprintf(r.out, "   passed %d, failed %d, skipped %d in %s\n", c.passed, c.failed, c.skipped, time.Since(start).Round(100*time.Millisecond))
	return res, nil
}

// skipPattern returns the -skip pattern for the listed top-level tests, ""
// for none.
func skipPattern(tests map[string]string) string {
	if len(tests) == 0 {
		return ""
	}
	names := sortedKeys(tests)
	for i, n := range names {
		names[i] = regexp.QuoteMeta(n)
	}
	return "^(" + strings.Join(names, "|") + ")$"
}
