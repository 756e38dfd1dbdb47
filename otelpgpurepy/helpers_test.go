package otelpgpurepy

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestMain(m *testing.M) { sqltest.Main(m) }

// fixture is a pool of a fresh database traced into a span recorder, with
// its metrics on a manual reader.
type fixture struct {
	db       *sql.DB
	pool     *pgpurepy.Pool
	cfg      *pgpurepy.Config
	spans    *tracetest.SpanRecorder
	tp       *sdktrace.TracerProvider
	reader   *sdkmetric.ManualReader
	mp       *sdkmetric.MeterProvider
	tracer   *Tracer
	database string
}

// newFixture opens a pool of n connections whose Tracer takes opts (after
// the fixture's providers).
func newFixture(t *testing.T, n int, opts ...Option) *fixture {
	t.Helper()
	f := &fixture{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	f.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
	cfg, err := pgpurepy.ParseConfig(sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectionCount = n
	f.tracer = NewTracer(append([]Option{WithTracerProvider(f.tp), WithMeterProvider(f.mp)}, opts...)...)
	cfg.Tracer = f.tracer
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.db = sql.OpenDB(c)
	f.db.SetMaxIdleConns(n)
	f.pool, f.cfg, f.database = c.Pool(), cfg, cfg.ConnConfig.Database
	t.Cleanup(func() { f.db.Close() })
	return f
}

// parent starts a recording span of the test's, the caller's span.
func (f *fixture) parent(name string) (context.Context, func()) {
	ctx, span := f.tp.Tracer("test").Start(context.Background(), name)
	return ctx, func() { span.End() }
}

// ended returns the ended spans named name.
func (f *fixture) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the only ended span named name whose db.query.text is text
// ("" for any).
func (f *fixture) one(t *testing.T, name, text string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range f.ended(name) {
		if text == "" || attr(s, "db.query.text").AsString() == text {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %q with text %q; have %s", len(found), name, text, f.names())
	}
	return found[0]
}

func (f *fixture) names() string {
	var b strings.Builder
	for _, s := range f.spans.Ended() {
		fmt.Fprintf(&b, "[%s %q] ", s.Name(), attr(s, "db.query.text").AsString())
	}
	return b.String()
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func hasAttr(s sdktrace.ReadOnlySpan, key string) bool {
	return attr(s, key).Type() != attribute.EMPTY
}

// collect reads the metrics and returns them by name.
func (f *fixture) collect(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// intValue returns the value of an int64 sum's data point with the
// attribute key=value ("" for the only point).
func intValue(t *testing.T, data map[string]metricdata.Aggregation, name, key, value string) int64 {
	t.Helper()
	sum, ok := data[name].(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s: %T, want an int64 sum", name, data[name])
	}
	for _, dp := range sum.DataPoints {
		if v, _ := dp.Attributes.Value(attribute.Key(key)); key == "" || v.AsString() == value {
			return dp.Value
		}
	}
	t.Fatalf("%s: no point with %s=%s in %+v", name, key, value, sum.DataPoints)
	return 0
}

// histogram returns the only data point of a float64 histogram.
func histogram(t *testing.T, data map[string]metricdata.Aggregation, name string) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := data[name].(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 {
		t.Fatalf("%s: %#v, want a float64 histogram of one point", name, data[name])
	}
	return h.DataPoints[0]
}

// poll waits up to 10s for cond.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}
