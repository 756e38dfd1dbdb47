package otelpgpurepy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/pgpurepy/pgpurepy"
)

// TestMetricsRealPool checks the gauges of a pool of 3 after traffic, with
// a caller waiting, and the histograms after it: wait_time has the wait of
// a pool of 1's second caller.
func TestMetricsRealPool(t *testing.T) {
	f := newFixture(t, 3, WithPoolName("main"))
	unregister, err := RegisterMetrics(f.pool, WithMeterProvider(f.mp), WithPoolName("main"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 10 {
		if _, err := f.db.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "the pool filled", func() bool { return f.pool.Stats().OpenConnections == 3 })

	// Hold all three connections, and have a fourth caller wait.
	var held []interface{ Close() error }
	for range 3 {
		c, err := f.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.db.ExecContext(ctx, "SELECT 2")
		done <- err
	}()
	poll(t, "a waiter", func() bool { return f.pool.WaitingTasks() == 1 })
	data := f.collect(t)
	for _, tc := range []struct {
		name, key, value string
		want             int64
	}{
		{"db.client.connection.count", "db.client.connection.state", "used", 3},
		{"db.client.connection.count", "db.client.connection.state", "idle", 0},
		{"db.client.connection.max", "", "", 3},
		{"db.client.connection.idle.max", "", "", 3},
		{"db.client.connection.pending_requests", "", "", 1},
		{"db.client.connection.timeouts", "", "", 0},
	} {
		if got := intValue(t, data, tc.name, tc.key, tc.value); got != tc.want {
			t.Errorf("%s %s=%s: %d, want %d", tc.name, tc.key, tc.value, got, tc.want)
		}
	}
	time.Sleep(30 * time.Millisecond)
	for _, c := range held {
		c.Close()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	data = f.collect(t)
	if got := intValue(t, data, "db.client.connection.count", "db.client.connection.state", "idle"); got != 3 {
		t.Errorf("idle connections after the traffic: %d, want 3", got)
	}
	if got := intValue(t, data, "db.client.connection.pending_requests", "", ""); got != 0 {
		t.Errorf("pending requests after the traffic: %d, want 0", got)
	}
	wait := histogram(t, data, "db.client.connection.wait_time")
	// 10 statements, 3 *sql.Conn, the waiter.
	if wait.Count != 14 {
		t.Errorf("wait_time count %d, want 14", wait.Count)
	}
	if mx, _ := wait.Max.Value(); mx < 0.025 {
		t.Errorf("wait_time max %v, want the waiter's 30ms", mx)
	}
	create := histogram(t, data, "db.client.connection.create_time")
	if create.Count != 3 {
		t.Errorf("create_time count %d, want 3", create.Count)
	}
	for name, agg := range data {
		if !hasPoolName(agg, "main") {
			t.Errorf("%s: a point without db.client.connection.pool.name=main", name)
		}
	}

	// After unregister the gauges are no longer collected; the histograms
	// stay, the Tracer's.
	if err := unregister(); err != nil {
		t.Fatal(err)
	}
	if err := unregister(); err != nil {
		t.Fatal(err)
	}
	data = f.collect(t)
	if sum, ok := data["db.client.connection.count"].(metricdata.Sum[int64]); ok && len(sum.DataPoints) != 0 {
		t.Errorf("db.client.connection.count collected after unregister: %+v", sum.DataPoints)
	}
	if _, ok := data["db.client.connection.wait_time"]; !ok {
		t.Error("wait_time gone after unregister")
	}
}

func hasPoolName(agg metricdata.Aggregation, name string) bool {
	var sets []attribute.Set
	switch a := agg.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range a.DataPoints {
			sets = append(sets, dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range a.DataPoints {
			sets = append(sets, dp.Attributes)
		}
	}
	for _, s := range sets {
		if v, _ := s.Value("db.client.connection.pool.name"); v.AsString() != name {
			return false
		}
	}
	return len(sets) > 0
}

// TestMetricsExposition checks names, units, descriptions, instrument
// kinds and values against a fixed snapshot, and that a collection reads
// one snapshot.
func TestMetricsExposition(t *testing.T) {
	var calls atomic.Int32
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	_, err := registerMetrics(func() pgpurepy.Stats {
		calls.Add(1)
		return pgpurepy.Stats{MaxConnections: 5, IdleConnections: 2, InUse: 3, OpenConnections: 5, WaitingTasks: 4, CanceledAcquires: 7}
	}, WithMeterProvider(mp), WithPoolName("p"))
	if err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("one collection called Stats %d times, want 1", n)
	}
	if len(rm.ScopeMetrics) != 1 || rm.ScopeMetrics[0].Scope.Name != ScopeName {
		t.Fatalf("scopes %+v", rm.ScopeMetrics)
	}
	pool := attribute.String("db.client.connection.pool.name", "p")
	system := attribute.String("db.system.name", "postgresql")
	point := func(v int64, extra ...attribute.KeyValue) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Attributes: attribute.NewSet(append([]attribute.KeyValue{pool, system}, extra...)...), Value: v}
	}
	gauge := func(name, unit, desc string, points ...metricdata.DataPoint[int64]) metricdata.Metrics {
		return metricdata.Metrics{Name: name, Unit: unit, Description: desc, Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality, IsMonotonic: false, DataPoints: points,
		}}
	}
	want := metricdata.ScopeMetrics{
		Scope: rm.ScopeMetrics[0].Scope,
		Metrics: []metricdata.Metrics{
			gauge("db.client.connection.count", "{connection}", "The number of connections that are currently in state described by the `state` attribute.",
				point(2, attribute.String("db.client.connection.state", "idle")),
				point(3, attribute.String("db.client.connection.state", "used"))),
			gauge("db.client.connection.max", "{connection}", "The maximum number of open connections allowed.", point(5)),
			gauge("db.client.connection.idle.max", "{connection}", "The maximum number of idle open connections allowed.", point(5)),
			gauge("db.client.connection.pending_requests", "{request}", "The number of current pending requests for an open connection.", point(4)),
			{Name: "db.client.connection.timeouts", Unit: "{timeout}",
				Description: "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
				Data:        metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: []metricdata.DataPoint[int64]{point(7)}}},
		},
	}
	metricdatatest.AssertEqual(t, want, rm.ScopeMetrics[0], metricdatatest.IgnoreTimestamp())
}
