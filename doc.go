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
// ([Pool.Checkout], [Pool.CheckoutInTransaction]), bulk COPY
// ([Pool.CopyFrom], [Pool.CopyTo]), batches of statements in one round trip
// ([Pool.SendBatch]), and LISTEN/NOTIFY on a
// connection of its own that reconnects by itself ([Pool.Listen],
// [Listener.Notifications], [ErrNotificationsMissed]).
//
// # Read routing
//
// For a DSN that lists several hosts, [PreferStandby] marks a context whose
// autocommit statements run on a standby, from a second pool opened on the
// first of them; transactions and checkouts stay on the primary, and when
// no standby can be reached the marked statements run there too.
// load_balance_hosts=random spreads the connections over the hosts.
//
// # Configuration
//
// [ParseConfig] reads URL and keyword/value DSNs and the PG* environment
// through pgconn, and takes out the pool's own keys (connection_count,
// min_connections, query_mode, statement_cache_capacity, ping_after_idle, cancel_grace,
// max_cancel_dials, max_conn_lifetime, max_conn_lifetime_jitter,
// max_conn_idle_time, keepalive_interval, load_balance_hosts, multiplexing),
// and the keys of pgx, pgxpool and lib/pq that a DSN brings along
// (pool_max_conns, default_query_exec_mode, ...), which it translates to
// ours. [NewConnectorConfig] takes a
// [Config] with a logger, a tracer or a BeforeConnect hook set; [OpenDB]
// opens a *sql.DB with database/sql limits that suit the pool.
//
// # Architecture
//
// The package is layered; a file uses only files of its own layer or below
// (database/sql's conn, rows, stmt and tx use each other, as database/sql
// makes them):
//
//	face     driver.go connector.go conn.go rows.go stmt.go tx.go args.go   database/sql
//	         ext.go row.go stats.go listen.go copy.go batch.go               the extension
//	         pipeline.go mux.go                                              pipelines, multiplexing
//	session  dial.go health.go exec.go statements.go naming.go catalog.go
//	         begin.go finish.go recovery.go session.go                       one connection
//	         standby.go
//	parts    decode.go encode.go coltypes.go stmtcache.go registry.go
//	         nullable.go cancel.go failover.go balance.go counters.go config.go
//	         log.go gracectx.go sqltext.go saslprep.go trace.go errors.go
//	wire     internal/wire (Framer, Peeker), internal/pool, pgx's pgconn and pgtype
//
// Where each behaviour of the seed's pool API lives:
//
//   - open_pool, connection_count: config.go (ParseConfig, the DSN keys),
//     connector.go (NewConnector, OpenDB), internal/pool (the pool itself),
//     dial.go (one connection);
//   - max_connections, idle_connections, waiting_tasks and the counters:
//     stats.go, counters.go;
//   - execute, fetch, fetch_one, fetch_one_or_none: ext.go, over conn.go
//     and exec.go (statements.go keeps their descriptions);
//   - checkout_connection, checkout_in_transaction: ext.go (Checkout,
//     CheckoutInTransaction), tx.go, begin.go (the deferred BEGIN);
//   - add_converter, add_converter_with_array: ext.go (AddConverter),
//     registry.go, catalog.go (the type's catalog entry), decode.go and
//     encode.go (applying it), the converters package;
//   - cancellation: cancel.go (the cancel request), internal/wire (ending
//     the read at the deadline), recovery.go (draining and settling),
//     finish.go (the caller's error);
//   - COPY (beyond the seed): copy.go (CopyFrom, CopyTo, the encoder),
//     internal/wire (an interrupted COPY is failed, never committed), and
//     recovery.go (the 57014 that answers a CopyFail is not a spent cancel);
//   - batches (beyond the seed): batch.go (the API), pipeline.go (new texts
//     described together, every argument encoded before anything is sent,
//     one pipeline with a Sync per statement, the guard of a carried
//     BEGIN), internal/wire (Framer.Pipelined: the made-up ends of a
//     cancelled pipeline);
//   - multiplexing (beyond the seed, multiplexing=on): mux.go (the queue,
//     the carriers, the routes of slow texts and large results, the
//     buffered rows),
//     pipeline.go (one round trip for many callers' statements),
//     sqltext.go (multiplexable), conn.go (route: which statements of a
//     conn without a session are multiplexed), ext.go (the pool-level
//     calls), coltypes.go (column types read after the session moved on);
//   - LISTEN/NOTIFY (beyond the seed): listen.go (a Listener with its own
//     session from dial.go, reconnects, the missed marker), dial.go
//     (OnNotification forwards to the session's listener);
//   - read routing and load balancing (beyond the seed): standby.go
//     (PreferStandby, the standby pool, the fallback to the primary),
//     conn.go (a conn checked out with a marked context binds at its call;
//     a routed statement holds its session alone), ext.go (autoConn),
//     health.go (a promoted standby's session is replaced), balance.go
//     and dial.go (load_balance_hosts=random);
//   - connections closed while idle (the seed's warning): health.go (the
//     checkout's check), internal/pool (replacement), finish.go
//     (driver.ErrBadConn when nothing was sent).
//
// # Ownership and locks
//
// A session (one server connection) has one holder at a time: the pool
// hands it to a database/sql connection or an extension Conn, and only the
// holder's goroutine calls pgconn on it, so a session has no mutex. Two
// exceptions, both by design:
//
//   - After a cancel request the session belongs to its recovery goroutine
//     until the recovery ends. The holder keeps its reference but waits in
//     ready, bounded by its own context, before any I/O; a holder that lets
//     go meanwhile leaves the release to the recovery.
//
//   - pgconn's context watcher calls cancelHandler.HandleCancel on its own
//     goroutine: it sets an atomic flag, interrupts the Framer (safe from any
//     goroutine) and sends the cancel request on yet another. A statement
//     closed by a conn that no longer holds its session hands it over
//     through closedStmts, which has a mutex of its own.
//
//   - During Conn.CopyFrom, pgconn's CopyFrom runs on a helper goroutine
//     while the holder runs the source and encodes rows; the holder uses
//     the session again only after the helper returned.
//
//   - With multiplexing on, a carrier (mux.go) is the holder of the session
//     it checked out, like any other: only its goroutine calls pgconn on
//     it, describes, encodes and decodes with its codecs, until it gives
//     the session back. The callers whose statements it carries never
//     touch the session: they hand it their arguments through a
//     muxRequest, which the carrier reads under the request's mutex only
//     while the caller still waits, and get back rows decoded into values
//     of their own. A carrier never sends a cancel request (it could stop
//     a neighbour's statement): its context is the pool's life without its
//     end.
//
//   - A Listener's session belongs to the goroutine that ranges over it (or
//     Listen's, before a range starts). Only an interrupt runs elsewhere,
//     when the listener's context ends or Close is called: under
//     Listener.mu it moves the socket's read deadline to now, or closes a
//     session that no range owns.
//
// A pool whose DSN lists several hosts has a second internal/pool for its
// standby sessions, with a lock of its own and its own background
// goroutines (openers, closers, maintenance), which Connector.Close ends
// with the pool's. A standby session has one holder as any other; a conn
// holds one for a single statement. The standby's retry time is an atomic.
//
// Every mutex (registry, nullability, failover, cancelHandler, recovery,
// closedStmts, Listener, both internal/pool's, the multiplexer's mux.mu and
// muxRequest.mu) is a leaf: none is held while another is taken, during
// I/O, or while user code runs, with one exception: a carrier holds a
// muxRequest's mu while it encodes that request's arguments, which may run
// the caller's driver.Valuer; only that caller, giving up, waits for it.
// Converters (the Converter's Codec and GoType), the Tracer and the Logger
// are always called without a lock held: a converter is checked on a copy
// of a connection's types before the registry's lock is taken, and the
// registry's entries are applied outside it.
package pgpurepy
