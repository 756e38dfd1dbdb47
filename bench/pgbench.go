package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// pgbenchScript is the point select, with a random argument like the Go
// clients'.
const pgbenchScript = "\\set x random(1, 1048576)\nSELECT :x::int4 + 1;\n"

// findPgbench returns the pgbench next to the server's binaries, else the
// newest one under /usr/lib/postgresql, else the one on PATH, else "".
func findPgbench(binDir string) string {
	if binDir != "" {
		if p := filepath.Join(binDir, "pgbench"); isExecutable(p) {
			return p
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) > pgMajor(matches[j]) })
	for _, p := range matches {
		if isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	return ""
}

func pgMajor(path string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(path))), 64)
	return v
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// pgbenchConnectAllowance is the seconds added to pgbench's -T for
// connecting, plus one per 32 clients.
const pgbenchConnectAllowance = 1

var (
	reTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	reFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
)

// runPgbench runs pgbench -M prepared with the point select at concurrency
// conc. pgbench only takes whole seconds, and its -T includes connecting
// (64 connections can take more than a second on a busy 2-core machine), so
// it runs for d rounded up plus pgbenchConnectAllowance; its tps excludes
// the connection time. Its client
// CPU comes from RUSAGE_CHILDREN; latency percentiles and allocations are
// not measured. The DSN is passed as pgbench's dbname, which libpq expands
// as a connection string.
func runPgbench(bin, dsn string, conc int, d time.Duration) sample {
	s := sample{Workload: "point", Conc: conc, Driver: pgbenchName, Mallocs: -1}
	if bin == "" {
		s.Skipped = "pgbench not found"
		return s
	}
	f, err := os.CreateTemp("", "pgpurepy-bench-*.sql")
	if err != nil {
		s.Skipped = err.Error()
		return s
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(pgbenchScript); err != nil {
		s.Skipped = err.Error()
		return s
	}
	_ = f.Close()
	secs := max(1, int(math.Ceil(d.Seconds()))) + pgbenchConnectAllowance + conc/32
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-n", "-M", "prepared", "-f", f.Name(),
		"-c", strconv.Itoa(conc), "-j", strconv.Itoa(min(conc, 2)), "-T", strconv.Itoa(secs), dsn)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	before := takeSnapshot(syscall.RUSAGE_CHILDREN)
	err = cmd.Run()
	after := takeSnapshot(syscall.RUSAGE_CHILDREN)
	text := out.String()
	if err != nil {
		s.Errors, s.FirstErr = 1, fmt.Sprintf("pgbench: %v: %s", err, lastLine(text))
		return s
	}
	m := reTPS.FindStringSubmatch(text)
	n := reProcessed.FindStringSubmatch(text)
	if m == nil || n == nil {
		s.Errors, s.FirstErr = 1, "pgbench: no tps in output: "+lastLine(text)
		return s
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	if tps == 0 {
		s.Errors, s.FirstErr = 1, "pgbench: no transaction in "+strconv.Itoa(secs)+"s: "+lastLine(text)
		return s
	}
	s.Ops, _ = strconv.ParseInt(n[1], 10, 64)
	if tps > 0 {
		s.Elapsed = time.Duration(float64(s.Ops) / tps * float64(time.Second))
	}
	if fl := reFailed.FindStringSubmatch(text); fl != nil {
		s.Errors, _ = strconv.ParseInt(fl[1], 10, 64)
	}
	s.CPU = after.cpu - before.cpu
	s.NewConns = int64(conc)
	s.Opened = int64(conc)
	return s
}

func lastLine(s string) string {
	s = string(bytes.TrimSpace([]byte(s)))
	if i := bytes.LastIndexByte([]byte(s), '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
