package otelpgpurepy

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"

	"github.com/pgpurepy/pgpurepy"
)

// RegisterMetrics registers the pool's gauges on a MeterProvider (see
// WithMeterProvider and WithPoolName; other options are ignored), after
// the semantic conventions' database client metrics:
//
//	db.client.connection.count            {connection}  state=idle: open and not checked out; state=used: checked out
//	db.client.connection.max              {connection}  connections the pool keeps (connection_count)
//	db.client.connection.idle.max         {connection}  the same: every connection may sit idle
//	db.client.connection.pending_requests {request}     callers waiting for a connection
//	db.client.connection.timeouts         {timeout}     checkouts whose context ended while waiting (a counter)
//
// each with db.client.connection.pool.name and db.system.name=postgresql.
// A collection reads one pool.Stats() snapshot, so its values agree with
// each other; it takes no connection and never waits for one. The
// histograms db.client.connection.wait_time and .create_time come from the
// pool's Tracer (NewTracer): give both the same options.
//
// unregister stops the collection (the pool may outlive it, or the other
// way round); it is safe to call more than once. err is an instrument or
// the callback the MeterProvider refused, and then nothing is registered.
func RegisterMetrics(pool *pgpurepy.Pool, opts ...Option) (unregister func() error, err error) {
	return registerMetrics(pool.Stats, opts...)
}

func registerMetrics(stats func() pgpurepy.Stats, opts ...Option) (func() error, error) {
	c := newConfig(opts)
	meter := c.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	count, err1 := dbconv.NewClientConnectionCountObservable(meter)
	maxConns, err2 := dbconv.NewClientConnectionMaxObservable(meter)
	idleMax, err3 := dbconv.NewClientConnectionIdleMaxObservable(meter)
	pending, err4 := dbconv.NewClientConnectionPendingRequestsObservable(meter)
	timeouts, err5 := dbconv.NewClientConnectionTimeoutsObservable(meter)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}

	base := []attribute.KeyValue{semconv.DBClientConnectionPoolName(c.poolName), semconv.DBSystemNamePostgreSQL}
	withState := func(state dbconv.ClientConnectionStateAttr) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(base[:len(base):len(base)], count.AttrClientConnectionState(state))...))
	}
	idle, used := withState(dbconv.ClientConnectionStateIdle), withState(dbconv.ClientConnectionStateUsed)
	pooled := metric.WithAttributeSet(attribute.NewSet(base...))

	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(count.Inst(), int64(s.IdleConnections), idle)
		o.ObserveInt64(count.Inst(), int64(s.InUse), used)
		o.ObserveInt64(maxConns.Inst(), int64(s.MaxConnections), pooled)
		o.ObserveInt64(idleMax.Inst(), int64(s.MaxConnections), pooled)
		o.ObserveInt64(pending.Inst(), int64(s.WaitingTasks), pooled)
		o.ObserveInt64(timeouts.Inst(), int64(s.CanceledAcquires), pooled)
		return nil
	}, count.Inst(), maxConns.Inst(), idleMax.Inst(), pending.Inst(), timeouts.Inst())
	if err != nil {
		return nil, err
	}
	return sync.OnceValue(reg.Unregister), nil
}
