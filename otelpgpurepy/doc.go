// Package otelpgpurepy traces a pgpurepy pool with OpenTelemetry and
// exports its statistics as OpenTelemetry metrics.
//
//	cfg, err := pgpurepy.ParseConfig(dsn)
//	cfg.Tracer = otelpgpurepy.NewTracer(otelpgpurepy.WithPoolName("main"))
//	connector, err := pgpurepy.NewConnectorConfig(cfg)
//	db := sql.OpenDB(connector)
//	db.SetMaxIdleConns(cfg.ConnectionCount) // as pgpurepy.OpenDB does
//	unregister, err := otelpgpurepy.RegisterMetrics(connector.Pool(), otelpgpurepy.WithPoolName("main"))
//
// It is a module of its own so that the driver does not depend on
// OpenTelemetry.
//
// # Spans
//
// The [Tracer] makes a span per statement (through database/sql and
// through the extension), per transaction, per checkout that waited, per
// connect, and per recovery of a connection after a cancelled statement;
// see [Tracer] for their names and attributes. Spans take the
// TracerProvider of [WithTracerProvider], or the global one.
//
// # Metrics
//
// [RegisterMetrics] registers the pool gauges db.client.connection.count
// (state idle and used), .max, .idle.max, .pending_requests and the
// .timeouts counter, read from [pgpurepy.Pool.Stats]; the Tracer records
// the histograms db.client.connection.wait_time (every successful
// checkout) and .create_time (every successful connect). Every metric
// carries db.client.connection.pool.name ([WithPoolName]) and
// db.system.name=postgresql. Not exported: .idle.min (the pool has no
// minimum of idle connections: it keeps connection_count open) and
// .use_time (the pool tells no tracer when a connection comes back).
//
// # Semantic conventions
//
// Names, units and attributes are those of the OpenTelemetry semantic
// conventions 1.43.0 (go.opentelemetry.io/otel/semconv/v1.43.0, the
// newest that go.opentelemetry.io/otel v1.47.0 ships), whose spans and
// metrics name the database system db.system.name; the older db.system
// (conventions 1.25 and before) is not set. db.namespace is the database
// name of the connection settings (the conventions' {database}|{schema}
// without the schema, which would take a query to learn). server.address
// and server.port are the first host of the configuration and its port,
// not the host a connection reached, as the conventions ask.
package otelpgpurepy
