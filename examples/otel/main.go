// Command otel traces a pgpurepy pool with OpenTelemetry: spans from
// otelpgpurepy's Tracer go through the SDK's batch processor to the
// stdout trace exporter, and pool metrics from otelpgpurepy.RegisterMetrics
// to a manual reader. It runs a few statements, a failing one, a
// transaction through database/sql and one through the extension, and a
// cancelled statement, then prints the spans as a tree and the pool
// metrics.
//
//	cd examples && go run ./otel        # the spans as a tree
//	cd examples && go run ./otel -raw   # the exporter's JSON, one span a line
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
	"github.com/pgpurepy/pgpurepy/otelpgpurepy"
)

var raw = flag.Bool("raw", false, "print the stdout exporter's JSON as it is")

func main() {
	flag.Parse()
	demo.Run(run)
}

func run(ctx context.Context, dsn string) error {
	// The exporter writes to a buffer, printed at the end: as a tree, or
	// as it is with -raw. stdouttrace.New() alone writes to os.Stdout.
	var out bytes.Buffer
	exp, err := stdouttrace.New(stdouttrace.WithWriter(&out))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	opts := []otelpgpurepy.Option{
		otelpgpurepy.WithTracerProvider(tp),
		otelpgpurepy.WithMeterProvider(mp),
		otelpgpurepy.WithPoolName("example"),
	}

	cfg, err := pgpurepy.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cfg.ConnectionCount = 2
	cfg.Tracer = otelpgpurepy.NewTracer(opts...)
	connector, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxIdleConns(cfg.ConnectionCount) // as pgpurepy.OpenDB does
	ext := connector.Pool()
	unregister, err := otelpgpurepy.RegisterMetrics(ext, opts...)
	if err != nil {
		return err
	}
	defer func() { _ = unregister() }()

	// The application's span: the pool's spans are its children.
	rctx, root := tp.Tracer("example").Start(ctx, "handle request")
	if err := work(rctx, db, ext); err != nil {
		return err
	}
	root.End()
	// The cancelled statement's connection recovers in the background.
	for deadline := time.Now().Add(5 * time.Second); ext.Stats().InUse != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := tp.Shutdown(ctx); err != nil { // flushes the batch processor
		return err
	}

	if *raw {
		_, err := os.Stdout.Write(out.Bytes())
		return err
	}
	spans, err := decode(&out)
	if err != nil {
		return err
	}
	fmt.Printf("%d spans from the stdout exporter (-raw prints its JSON)", len(spans))
	printCommon(spans)
	printTree(spans)
	return printMetrics(ctx, reader)
}

// work is the traced traffic.
func work(ctx context.Context, db *sql.DB, ext *pgpurepy.Pool) error {
	for _, q := range []string{
		"DROP TABLE IF EXISTS otel_orders",
		"CREATE TABLE otel_orders (id int PRIMARY KEY, item text, qty int)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO otel_orders VALUES ($1, $2, $3)", 1, "tea", 2); err != nil {
		return err
	}
	// A statement without arguments is recorded with its literals as ?.
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM otel_orders WHERE item <> 'secret'").Scan(&n); err != nil {
		return err
	}
	// A server error: the span has the SQLSTATE.
	if _, err := db.ExecContext(ctx, "INSERT INTO otel_orders VALUES ($1, $2, $3)", 1, "dup", 1); err == nil {
		return errors.New("duplicate key accepted")
	}

	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, sql.ErrTxDone
	if _, err := tx.ExecContext(ctx, "INSERT INTO otel_orders VALUES ($1, $2, $3)", 2, "coffee", 1); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE otel_orders SET qty = qty + $1 WHERE id = $2", 1, 1); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}

	err = ext.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		_, err := c.Execute(ctx, "DELETE FROM otel_orders WHERE id = $1", 2)
		return err
	})
	if err != nil {
		return err
	}

	// A statement cancelled by its deadline; the connection recovers in
	// the background, which makes a "cancel recovery" span.
	qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := ext.Execute(qctx, "SELECT pg_sleep(1)"); !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pg_sleep(1) with a 50ms timeout: %w", err)
	}
	return nil
}

// span is what the tree shows of a span the stdout exporter wrote.
type span struct {
	Name        string
	SpanContext struct{ SpanID string }
	Parent      struct{ SpanID string }
	StartTime   time.Time
	EndTime     time.Time
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
	Status struct {
		Code        any
		Description string
	}
}

func decode(r *bytes.Buffer) ([]span, error) {
	var spans []span
	dec := json.NewDecoder(r)
	for dec.More() {
		var s span
		if err := dec.Decode(&s); err != nil {
			return nil, err
		}
		spans = append(spans, s)
	}
	return spans, nil
}

// shown are the attributes the tree prints, when a span has them.
var shown = []string{"db.query.text", "db.response.status_code", "error.type",
	"pgpurepy.transaction.committed", "pgpurepy.cancel.kept"}

// common are the attributes every span of the pool has, printed once.
var common = []string{"db.system.name", "db.namespace", "server.address", "server.port"}

// printCommon ends the heading with the attributes common to the pool's
// spans, taken from the last span that has them all.
func printCommon(spans []span) {
	for i := len(spans) - 1; i >= 0; i-- {
		var attrs []string
		for _, key := range common {
			for _, a := range spans[i].Attributes {
				if a.Key == key {
					attrs = append(attrs, fmt.Sprintf("%s=%v", key, a.Value.Value))
				}
			}
		}
		if len(attrs) == len(common) {
			fmt.Printf(", all of the pool's with\n  %s\n", strings.Join(attrs, " "))
			return
		}
	}
	fmt.Println(":")
}

// printTree prints spans under their parents, in start order.
func printTree(spans []span) {
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID] = true
	}
	slices.SortFunc(spans, func(a, b span) int { return a.StartTime.Compare(b.StartTime) })
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range spans {
			p := s.Parent.SpanID
			if !ids[p] {
				p = "" // a root, or a child of a span not exported here
			}
			if p != parent {
				continue
			}
			var attrs []string
			for _, key := range shown {
				for _, a := range s.Attributes {
					if a.Key == key {
						attrs = append(attrs, fmt.Sprintf("%s=%v", key, a.Value.Value))
					}
				}
			}
			status := ""
			if s.Status.Description != "" {
				status = " [error]"
			}
			line := fmt.Sprintf("%s%-*s %8s%s  %s", strings.Repeat("  ", depth), 22-2*depth, s.Name,
				s.EndTime.Sub(s.StartTime).Round(10*time.Microsecond), status, strings.Join(attrs, " "))
			fmt.Println(strings.TrimRight(line, " "))
			walk(s.SpanContext.SpanID, depth+1)
		}
	}
	walk("", 0)
}

// printMetrics prints the pool gauges and the wait-time histogram.
func printMetrics(ctx context.Context, reader *metric.ManualReader) error {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	fmt.Println("metrics:")
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					state, _ := dp.Attributes.Value("db.client.connection.state")
					fmt.Printf("  %-40s %-5s %d %s\n", m.Name, state.AsString(), dp.Value, m.Unit)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					fmt.Printf("  %-40s count %d, sum %.4f %s\n", m.Name, dp.Count, dp.Sum, m.Unit)
				}
			}
		}
	}
	return nil
}
