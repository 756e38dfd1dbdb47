package otelpgpurepy

import (
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultPoolName is the db.client.connection.pool.name of a pool given no
// WithPoolName.
const DefaultPoolName = "pgpurepy"

// DefaultAcquireSpanThreshold is how long a checkout must take before it
// gets a span of its own, unless WithAcquireSpans says otherwise.
const DefaultAcquireSpanThreshold = time.Millisecond

// Option configures NewTracer and RegisterMetrics. The two take the same
// options so that one slice serves both; each ignores those that do not
// concern it.
type Option func(*config)

type config struct {
	tp          trace.TracerProvider
	mp          metric.MeterProvider
	poolName    string
	queryText   queryTextMode
	acquireSpan time.Duration
}

type queryTextMode int

const (
	queryTextSanitized queryTextMode = iota
	queryTextRaw
	queryTextOff
)

func newConfig(opts []Option) config {
	c := config{poolName: DefaultPoolName, acquireSpan: DefaultAcquireSpanThreshold}
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	return c
}

// WithTracerProvider sets the TracerProvider spans come from; the default
// is the global one, otel.GetTracerProvider(), as it is when NewTracer
// runs.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider sets the MeterProvider the metrics are registered on:
// the histograms the Tracer records and the pool gauges RegisterMetrics
// registers. The default is the global one, otel.GetMeterProvider(), as it
// is when NewTracer or RegisterMetrics runs.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithPoolName sets db.client.connection.pool.name on every metric, and
// should be unique in the process: give each pool its own, and the same
// one to its Tracer and to its RegisterMetrics. The default is
// DefaultPoolName.
func WithPoolName(name string) Option {
	return func(c *config) { c.poolName = name }
}

// WithoutQueryText leaves db.query.text off statement spans.
func WithoutQueryText() Option {
	return func(c *config) { c.queryText = queryTextOff }
}

// WithUnsanitizedQueryText records db.query.text as the application wrote
// it for every statement. By default a statement run with arguments is
// recorded as written (its values travel as parameters), and one run
// without arguments has its literals replaced by ? first, as the semantic
// conventions ask: it may carry values in its text.
func WithUnsanitizedQueryText() Option {
	return func(c *config) { c.queryText = queryTextRaw }
}

// WithAcquireSpans sets how long a checkout of a connection from the pool
// must take to get a span of its own: 0 gives every checkout a span. The
// default, DefaultAcquireSpanThreshold, shows the checkouts that waited
// (for a busy pool, or for a connect) and not the immediate ones, which
// take microseconds and would double the spans of every trace. A checkout
// that fails always gets a span, and checkouts get spans only under a
// recording span of the caller's.
func WithAcquireSpans(threshold time.Duration) Option {
	return func(c *config) { c.acquireSpan = max(threshold, 0) }
}
