// Package pgpurepy is a PostgreSQL driver for database/sql with a persistent
// connection pool of its own that the application can see and steer.
//
//	db, err := sql.Open("pgpurepy", "postgres://app@localhost/app?sslmode=disable")
//	ext, err := pgpurepy.Ext(db) // the same pool: stats, converters, pooled queries
//	n, err := ext.Execute(ctx, "UPDATE t SET x = $1", 1)
//
// # The pool
//
// Each *sql.DB owns one pool of connection_count connections (default
// runtime.NumCPU()*2+1). The pool opens its first connection on first use,
// then fills itself in the background and keeps the connections open. A
// connection that database/sql parks in its own idle list hands its server
// session back to the pool, so database/sql's default MaxIdleConns of 2 never
// costs a reconnect, and the pool's counts (Pool.IdleConnections,
// Pool.WaitingTasks, Pool.Stats) are exact. Callers that find every
// connection busy wait first come first served, bounded by their context.
//
// Before a connection that sat idle is handed out, the pool looks at its
// socket without a round trip (a server or proxy that closed it is seen at
// once) and pings it when it sat idle longer than ping_after_idle. Dead connections are replaced
// in the background with backoff; a statement that failed before anything
// reached the server is retried by database/sql on another connection.
//
// # Cancellation
//
// When the context of a statement ends while the server runs it, the call
// returns the context's error at once and the driver sends a cancel request.
// In the background it lets the server stop the statement, drains the rest of
// its answer and keeps the connection, in transactions too; the connection
// serves again only once that is done. A late cancel never reaches the next
// statement. A server that does not answer within cancel_grace loses the
// connection, which is replaced.
//
// # Transactions
//
// Beginning a transaction sends nothing: the BEGIN goes to the server in the
// same write as the transaction's first statement, which saves a round trip
// per transaction, and a transaction that runs no statement costs none.
//
// # The extension
//
// [Ext] returns a [Pool] for any *sql.DB of this driver, also under sqlx or
// gorm: stats ([Pool.Stats]), converters for custom types and their arrays
// ([Pool.AddConverter], [Pool.AddConverterWithArray]), pooled queries
// ([Pool.Execute], [Pool.Fetch], [Pool.FetchOne], [Pool.FetchOneOrNone],
// [Pool.Query]) and checkout of a connection or a transaction
// ([Pool.Checkout], [Pool.CheckoutInTransaction]).
//
// # Configuration
//
// [ParseConfig] reads URL and keyword/value DSNs and the PG* environment
// through pgconn, and takes out the pool's own keys (connection_count,
// query_mode, statement_cache_capacity, ping_after_idle, cancel_grace,
// max_cancel_dials, max_conn_lifetime, max_conn_lifetime_jitter,
// max_conn_idle_time, keepalive_interval). [NewConnectorConfig] takes a
// [Config] with a logger or tracer set; [OpenDB] opens a *sql.DB with
// database/sql limits that suit the pool.
package pgpurepy
