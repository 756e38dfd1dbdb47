package pgpurepy

import "sync/atomic"

// counters are the pool-wide statistics kept outside internal/pool.
type counters struct {
	cancelsSent atomic.Uint64
	cancelsKept atomic.Uint64
	cancelsLost atomic.Uint64
	recovering  atomic.Int64
	failovers   atomic.Uint64
	// replacedForFailover counts sessions closed because they were on a
	// server that is no longer the writable one.
	replacedForFailover atomic.Uint64
	// staleRetries counts statements run again, described afresh, after
	// the server lost or changed their cached statement.
	staleRetries atomic.Uint64
	// listeners counts the open listeners (listen.go), each with a
	// session outside the pool.
	listeners atomic.Int64
	// standbyStatements counts the statements marked with PreferStandby
	// that got a standby's session.
	standbyStatements atomic.Uint64
	// muxStatements counts the statements carriers sent, muxRoundTrips
	// the writes that carried them, and muxSlowExclusive and
	// muxLargeExclusive the multiplexable statements run on a connection
	// of their own because they ran slowly before or returned a large
	// result (see mux.go).
	muxStatements     atomic.Uint64
	muxRoundTrips     atomic.Uint64
	muxSlowExclusive  atomic.Uint64
	muxLargeExclusive atomic.Uint64
}
