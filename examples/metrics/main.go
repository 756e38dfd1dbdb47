// Command metrics serves the pool's statistics as Prometheus metrics on
// /metrics (with the promstats collector) and as an expvar on /debug/vars,
// generates some traffic, scrapes its own /metrics once and prints the
// pgpurepy_* lines.
//
//	cd examples && go run ./metrics                        # scrape once and exit
//	cd examples && go run ./metrics -serve -addr :9187     # keep serving, with traffic
//
// grafana-dashboard.json beside this file graphs the metrics.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
	"github.com/pgpurepy/pgpurepy/promstats"
)

var (
	addr  = flag.String("addr", "127.0.0.1:0", "address to serve /metrics and /debug/vars on")
	serve = flag.Bool("serve", false, "keep serving (and generating traffic) until interrupted")
)

func main() {
	flag.Parse()
	demo.Run(run)
}

func run(ctx context.Context, dsn string) error {
	db, err := pgpurepy.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ext, err := pgpurepy.Ext(db)
	if err != nil {
		return err
	}

	// A registry of our own keeps the output to the pool's metrics; use
	// prometheus.MustRegister to add them to the default one instead.
	reg := prometheus.NewRegistry()
	reg.MustRegister(promstats.NewCollector(ext, promstats.WithConstLabels(prometheus.Labels{"pool": "main"})))
	promstats.Expvar("pgpurepy", ext)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/debug/vars", expvar.Handler())
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	fmt.Printf("serving %s/metrics and %s/debug/vars\n", base, base)

	if err := traffic(ctx, db, ext); err != nil {
		return err
	}
	fmt.Println("generated traffic: 32 goroutines x 20 queries, one cancelled pg_sleep")

	if *serve {
		fmt.Println("-serve: generating traffic every second until interrupted")
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case err := <-serveErr:
				return err
			case <-tick.C:
				if err := traffic(ctx, db, ext); err != nil && ctx.Err() == nil {
					return err
				}
			}
		}
	}

	lines, err := scrape(ctx, base+"/metrics")
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	for _, want := range []string{"pgpurepy_pool_idle_connections", "pgpurepy_pool_in_use_connections", "pgpurepy_pool_waiting_tasks"} {
		if !hasMetric(lines, want) {
			return fmt.Errorf("scrape has no %s", want)
		}
	}
	return nil
}

// traffic runs a burst of concurrent queries, more goroutines than
// connections so that some wait, and one statement cancelled by a timeout.
func traffic(ctx context.Context, db *sql.DB, ext *pgpurepy.Pool) error {
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for g := range errs {
		wg.Go(func() {
			for i := range 20 {
				var n int
				if err := db.QueryRowContext(ctx, `SELECT $1::int + count(*)::int FROM pg_sleep(0.001)`, i).Scan(&n); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	qctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := ext.Execute(qctx, `SELECT pg_sleep(1)`); !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pg_sleep(1) with a 20ms timeout: %w", err)
	}
	return nil
}

func hasMetric(lines []string, name string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			return true
		}
	}
	return false
}

// scrape fetches url and returns its pgpurepy_* sample lines.
func scrape(ctx context.Context, url string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "pgpurepy_") {
			out = append(out, sc.Text())
		}
	}
	return out, sc.Err()
}
