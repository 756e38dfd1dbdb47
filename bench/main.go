// Command bench measures pgpurepy side by side with pgx's stdlib, lib/pq,
// pgxpool and pgbench on one PostgreSQL server, in turns, and writes the
// results as a Markdown table (stdout and RESULTS.md) and an SVG chart.
//
//	make bench                      # or: cd bench && go run .
//	cd bench && go run . -quick     # a smoke run of about a minute
//
// It starts a throwaway server through sqltest, or uses the server named by
// PGPUREPY_DSN. See README.md for the columns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// envDSN names the variable holding the DSN of an existing server to use.
const envDSN = "PGPUREPY_DSN"

// benchDatabase is the database created on a server that sqltest started.
const benchDatabase = "pgpurepy_bench"

// options are the command-line settings.
type options struct {
	Duration  time.Duration
	Warmup    time.Duration
	Rounds    int
	Conc      string
	Workloads string
	Drivers   string
	Out       string // RESULTS.md path; "" writes none
	Chart     string // chart.svg path; "" writes none
	Quick     bool
	// CopyRows is the size of each load of the copy section; 0 skips it.
	CopyRows int
	// MuxConc are the concurrencies of the multiplexing section; "" skips
	// it.
	MuxConc string
	DSN     string // from PGPUREPY_DSN; "" starts a server
	// CPUProfile is a pprof CPU profile of the measured cells (not the
	// server start or the report); run one driver to see its hot path.
	CPUProfile string
}

func defaultOptions() options {
	return options{
		Duration:  400 * time.Millisecond,
		Warmup:    100 * time.Millisecond,
		Rounds:    3,
		Conc:      "1,8,64",
		Workloads: strings.Join(defaultWorkloads, ","),
		Drivers:   strings.Join(allDriverNames(), ","),
		Out:       "RESULTS.md",
		Chart:     "chart.svg",
		CopyRows:  1_000_000,
		MuxConc:   "1,8,64,256",
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := defaultOptions()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.Duration, "duration", o.Duration, "measured time of each cell")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "unmeasured warm-up before each cell, on the same client")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds; each runs every cell once, drivers in turns")
	fs.StringVar(&o.Conc, "conc", o.Conc, "comma-separated concurrencies")
	fs.StringVar(&o.Workloads, "workloads", o.Workloads, "comma-separated workloads (default: the first five): "+strings.Join(workloadNames, ","))
	fs.StringVar(&o.Drivers, "drivers", o.Drivers, "comma-separated drivers: "+strings.Join(allDriverNames(), ","))
	fs.StringVar(&o.Out, "out", o.Out, "Markdown report path (empty: none)")
	fs.StringVar(&o.Chart, "chart", o.Chart, "SVG chart path (empty: none)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the measurements to this file")
	fs.IntVar(&o.CopyRows, "copy-rows", o.CopyRows, "rows of each load of the copy section (0: skip it)")
	fs.StringVar(&o.MuxConc, "mux-conc", o.MuxConc, "comma-separated concurrencies of the multiplexing section (empty: skip it)")
	fs.BoolVar(&o.Quick, "quick", false, "smoke run: 300ms cells, 100ms warm-up, 1 round, c=1,8 (also in the multiplexing section), 100,000 copy rows (explicit flags still win)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.Duration = 300 * time.Millisecond
		}
		if !set["warmup"] {
			o.Warmup = 100 * time.Millisecond
		}
		if !set["rounds"] {
			o.Rounds = 1
		}
		if !set["conc"] {
			o.Conc = "1,8"
		}
		if !set["copy-rows"] {
			o.CopyRows = 100_000
		}
		if !set["mux-conc"] {
			o.MuxConc = "1,8"
		}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	o.DSN = os.Getenv(envDSN)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run measures what o asks for, prints the report to stdout and writes the
// files o names. Progress goes to stderr.
func run(ctx context.Context, o options, stdout, stderr io.Writer) (*results, error) {
	p, err := o.plan()
	if err != nil {
		return nil, err
	}
	started := time.Now()
	binDir := ""
	if o.DSN != "" {
		p.DSN = o.DSN
	} else {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		// The DSN variable of sqltest itself is ignored: PGPUREPY_DSN is
		// this command's, and an empty Env makes sqltest start a server.
		srv, err := sqltest.Start(sctx, sqltest.Options{Progress: stderr, Env: []string{}})
		cancel()
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		if err := srv.Exec(ctx, "", "CREATE DATABASE "+benchDatabase); err != nil {
			return nil, err
		}
		p.DSN = srv.DSN(benchDatabase)
		binDir = srv.BinDir()
	}
	cfg, err := pgpurepy.ParseConfig(p.DSN)
	if err != nil {
		return nil, err
	}
	serverVersion, err := setupSchema(ctx, p.DSN)
	if err != nil {
		return nil, err
	}
	if slices.Contains(p.Drivers, pgbenchName) {
		p.Pgbench = findPgbench(binDir)
	}
	fmt.Fprintf(stderr, "bench: PostgreSQL %s, %d workloads × %d concurrencies × %d drivers, %s cells, %d round(s)\n",
		serverVersion, len(p.Workloads), len(p.Conc), len(p.Drivers), p.Duration, p.Rounds)

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	samples := measure(ctx, p, stderr)
	var muxSamples []sample
	if mp, ok := p.muxPlan(); ok && ctx.Err() == nil {
		fmt.Fprintf(stderr, "bench: multiplexing section, %v × %d concurrencies × %d drivers\n", mp.Workloads, len(mp.Conc), len(mp.Drivers))
		muxSamples = measure(ctx, mp, stderr)
	}
	var copies []copySample
	if p.CopyRows > 0 && ctx.Err() == nil {
		if copies, err = measureCopy(ctx, p.DSN, p.CopyRows, p.Rounds, stderr); err != nil {
			return nil, err
		}
	}
	pprof.StopCPUProfile()
	res := &results{
		Plan:    p,
		Machine: describeMachine(serverVersion, p.Pgbench, cfg.ConnectionCount),
		Aggs:    aggregateSamples(samples),
		Copy:    aggregateCopy(copies),
		Took:    time.Since(started),
	}
	if mp, ok := p.muxPlan(); ok {
		res.Mux = &results{Plan: mp, Machine: res.Machine, Aggs: aggregateSamples(muxSamples)}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	md := res.markdown()
	if _, err := io.WriteString(stdout, md); err != nil {
		return res, err
	}
	if o.Out != "" {
		if err := os.WriteFile(o.Out, []byte(md), 0o644); err != nil {
			return res, err
		}
	}
	if o.Chart != "" {
		if err := os.WriteFile(o.Chart, []byte(res.svgChart()), 0o644); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(stderr, "bench: done in %s\n", res.Took.Round(time.Second))
	for _, s := range append(samples, muxSamples...) {
		if s.Ops > 0 {
			return res, nil
		}
	}
	for _, s := range copies {
		if s.Rows > 0 {
			return res, nil
		}
	}
	return res, errNoRows
}

// plan checks o's lists and turns them into a plan.
func (o options) plan() (plan, error) {
	p := plan{Duration: o.Duration, Warmup: o.Warmup, Rounds: o.Rounds, CopyRows: o.CopyRows}
	if o.Duration <= 0 || o.Warmup < 0 || o.Rounds < 1 || o.CopyRows < 0 {
		return p, errors.New("-duration must be positive, -warmup and -copy-rows not negative and -rounds at least 1")
	}
	for _, s := range splitList(o.Conc) {
		c, err := strconv.Atoi(s)
		if err != nil || c < 1 {
			return p, fmt.Errorf("-conc: %q is not a positive integer", s)
		}
		p.Conc = append(p.Conc, c)
	}
	for _, s := range splitList(o.MuxConc) {
		c, err := strconv.Atoi(s)
		if err != nil || c < 1 {
			return p, fmt.Errorf("-mux-conc: %q is not a positive integer", s)
		}
		p.MuxConc = append(p.MuxConc, c)
	}
	var err error
	if p.Workloads, err = pick("-workloads", o.Workloads, workloadNames); err != nil {
		return p, err
	}
	if p.Drivers, err = pick("-drivers", o.Drivers, allDriverNames()); err != nil {
		return p, err
	}
	if len(p.Workloads) == 0 && (p.CopyRows > 0 || len(p.MuxConc) > 0) {
		return p, nil // the copy or multiplexing section only
	}
	if len(p.Conc) == 0 || len(p.Workloads) == 0 || len(p.Drivers) == 0 {
		return p, errors.New("-conc, -workloads and -drivers must not be empty (-workloads may be, with -copy-rows or -mux-conc)")
	}
	return p, nil
}

// pick returns the names of list that occur in known, in known's order.
func pick(flagName, list string, known []string) ([]string, error) {
	want := splitList(list)
	for _, w := range want {
		if !slices.Contains(known, w) {
			return nil, fmt.Errorf("%s: unknown %q (known: %s)", flagName, w, strings.Join(known, ","))
		}
	}
	var out []string
	for _, k := range known {
		if slices.Contains(want, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
