package otelpgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgpurepy/pgpurepy"
)

// ScopeName is the instrumentation scope of the Tracer's spans and of the
// metrics.
const ScopeName = "github.com/pgpurepy/pgpurepy/otelpgpurepy"

// Span names of what is not a statement (a statement's span is named after
// its operation, see Tracer).
const (
	SpanTransaction    = "transaction"
	SpanAcquire        = "acquire connection"
	SpanConnect        = "connect"
	SpanCancelRecovery = "cancel recovery"
)

// Attributes of pgpurepy's own, beside the semantic conventions'.
const (
	// AttrBackendPID is the server process id of the connection (connect
	// and cancel recovery spans).
	AttrBackendPID = attribute.Key("pgpurepy.backend_pid")
	// AttrCancelKept tells whether the connection of a cancelled statement
	// went on serving (true) or was closed and replaced.
	AttrCancelKept = attribute.Key("pgpurepy.cancel.kept")
	// AttrTxIsolation is the isolation level a transaction asked for, as
	// database/sql names it ("Serializable"); absent for the default.
	AttrTxIsolation = attribute.Key("pgpurepy.transaction.isolation")
	// AttrTxReadOnly is set, true, on a read-only transaction.
	AttrTxReadOnly = attribute.Key("pgpurepy.transaction.read_only")
	// AttrTxCommitted tells whether a transaction committed.
	AttrTxCommitted = attribute.Key("pgpurepy.transaction.committed")
)

// Tracer turns the pool's events into OpenTelemetry spans and feeds the
// db.client.connection.wait_time and .create_time histograms. Put one in
// pgpurepy.Config.Tracer; it implements pgpurepy.Tracer and the optional
// TxTracer, AcquireTracer, ConnectTracer and CancelTracer.
//
// Spans, each with db.system.name=postgresql, db.namespace (the database
// name), server.address and server.port (the first host of the
// configuration, and its port):
//
//   - a CLIENT span per statement, through database/sql and through the
//     extension, named after its operation: the command the server
//     reports in its command tag (SELECT, INSERT, CREATE TABLE), also set
//     as db.operation.name; until the statement ends, and when it fails,
//     the first keyword of its text. It carries db.query.text (see
//     WithoutQueryText and WithUnsanitizedQueryText) and, on an error,
//     error status, error.type and, for a server error,
//     db.response.status_code (the SQLSTATE, which is also the
//     error.type); a statement cancelled by its context has error.type
//     "timeout" or "canceled". A statement's span ends when its rows are
//     closed.
//   - an INTERNAL span "transaction" per transaction begun through
//     database/sql or the extension's CheckoutInTransaction, from the
//     BeginTx to the end of the commit or rollback, with
//     pgpurepy.transaction.committed.
//   - an INTERNAL span "acquire connection" per checkout of a connection
//     that took WithAcquireSpans' threshold or more, or failed, under a
//     recording span of the caller's only.
//   - a CLIENT span "connect" per connection the pool opens, with
//     pgpurepy.backend_pid; the pool's own connects (filling it in the
//     background) are root spans.
//   - an INTERNAL root span "cancel recovery", of no duration, when the
//     connection of a cancelled statement has recovered (pgpurepy.cancel.kept
//     true) or was given up (false, with error status).
//
// Spans are children of the span in the caller's context. db.namespace
// and the server attributes come from the settings of the pool's latest
// connect (after Config.BeforeConnect), so one Tracer serves one pool.
//
// Its methods never block and are safe for concurrent use. When the
// TracerProvider samples nothing (a non-recording span) a statement costs
// a span start and end on the provider and no attribute work; a checkout
// under no recording span costs nothing but a clock read when the
// wait-time histogram is enabled. The span processor decides when spans
// are exported: the SDK's batch processor never blocks the statement, a
// synchronous one would.
type Tracer struct {
	tracer      trace.Tracer
	queryText   queryTextMode
	acquireSpan time.Duration

	// server holds the attributes of the pool's server, from the latest
	// connect's settings.
	server atomic.Pointer[server]

	waitTime, createTime metric.Float64Histogram
	// measure carries the metrics' attributes: the pool name and
	// db.system.name.
	measure metric.RecordOption
}

var _ interface {
	pgpurepy.Tracer
	pgpurepy.TxTracer
	pgpurepy.AcquireTracer
	pgpurepy.ConnectTracer
	pgpurepy.CancelTracer
} = (*Tracer)(nil)

// durationBuckets are the histograms' bucket boundaries in seconds, from
// 100µs (a checkout from the idle list) to 10s (a connect timing out).
var durationBuckets = []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewTracer returns a Tracer for one pool. It takes WithTracerProvider,
// WithMeterProvider, WithPoolName, WithoutQueryText,
// WithUnsanitizedQueryText and WithAcquireSpans. An instrument the
// MeterProvider refuses is reported to otel.Handle and left out.
func NewTracer(opts ...Option) *Tracer {
	c := newConfig(opts)
	t := &Tracer{
		tracer:      c.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		queryText:   c.queryText,
		acquireSpan: c.acquireSpan,
		measure:     metric.WithAttributeSet(metricAttrs(c.poolName)),
	}
	t.server.Store(newServer("", 0, ""))

	meter := c.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	buckets := metric.WithExplicitBucketBoundaries(durationBuckets...)
	wait, err := dbconv.NewClientConnectionWaitTime(meter, buckets)
	if err != nil {
		otel.Handle(err)
	}
	create, err := dbconv.NewClientConnectionCreateTime(meter, buckets)
	if err != nil {
		otel.Handle(err)
	}
	t.waitTime, t.createTime = wait.Inst(), create.Inst()
	return t
}

func metricAttrs(poolName string) attribute.Set {
	return attribute.NewSet(semconv.DBClientConnectionPoolName(poolName), semconv.DBSystemNamePostgreSQL)
}

// server is what the spans say of the server, built once per change of the
// connect settings.
type server struct {
	host     string
	port     uint16
	database string
	// client and internal start spans of the two kinds with the server's
	// attributes.
	client, internal []trace.SpanStartOption
}

func newServer(host string, port uint16, database string) *server {
	attrs := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL}
	if database != "" {
		attrs = append(attrs, semconv.DBNamespace(database))
	}
	if host != "" {
		attrs = append(attrs, semconv.ServerAddress(host), semconv.ServerPort(int(port)))
	}
	with := trace.WithAttributes(attrs...)
	return &server{
		host: host, port: port, database: database,
		client:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), with},
		internal: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), with},
	}
}

// noteServer returns the server of cc, updating t.server when it changed.
func (t *Tracer) noteServer(cc *pgconn.Config) *server {
	s := t.server.Load()
	if cc == nil || s.host == cc.Host && s.port == cc.Port && s.database == cc.Database {
		return s
	}
	s = newServer(cc.Host, cc.Port, cc.Database)
	t.server.Store(s)
	return s
}

// multiKey marks the context of a statement whose text holds several
// statements: its command tag is the last one's, not an operation name.
type multiKey struct{}

// TraceQueryStart starts the statement's span, a child of ctx's span.
func (t *Tracer) TraceQueryStart(ctx context.Context, sql string, args []driver.NamedValue) context.Context {
	srv := t.server.Load()
	if txCtx := pgpurepy.TxTraceContext(ctx); txCtx != nil {
		ctx = trace.ContextWithSpan(ctx, trace.SpanFromContext(txCtx))
	}
	ctx, span := t.tracer.Start(ctx, firstKeyword(sql), srv.client...)
	if !span.IsRecording() {
		return ctx
	}
	switch {
	case t.queryText == queryTextOff:
	case t.queryText == queryTextSanitized && len(args) == 0:
		span.SetAttributes(semconv.DBQueryText(sanitize(sql)))
	default:
		span.SetAttributes(semconv.DBQueryText(sql))
	}
	if len(args) == 0 && severalStatements(sql) {
		ctx = context.WithValue(ctx, multiKey{}, true)
	}
	return ctx
}

// TraceQueryEnd ends the statement's span with its operation or its
// error.
func (t *Tracer) TraceQueryEnd(ctx context.Context, commandTag string, err error) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		if err != nil {
			recordError(span, err)
		} else if op := tagOperation(commandTag); op != "" && ctx.Value(multiKey{}) == nil {
			span.SetName(op)
			span.SetAttributes(semconv.DBOperationName(op))
		}
	}
	span.End()
}

// TraceTxStart starts the transaction's span, a child of ctx's span.
func (t *Tracer) TraceTxStart(ctx context.Context, opts sql.TxOptions) context.Context {
	ctx, span := t.tracer.Start(ctx, SpanTransaction, t.server.Load().internal...)
	if span.IsRecording() {
		if opts.Isolation != sql.LevelDefault {
			span.SetAttributes(AttrTxIsolation.String(opts.Isolation.String()))
		}
		if opts.ReadOnly {
			span.SetAttributes(AttrTxReadOnly.Bool(true))
		}
	}
	return ctx
}

// TraceTxEnd ends the transaction's span; an error of the commit or
// rollback sets error status.
func (t *Tracer) TraceTxEnd(ctx context.Context, committed bool, err error) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.SetAttributes(AttrTxCommitted.Bool(committed))
		if err != nil {
			recordError(span, err)
		}
	}
	span.End()
}

// started is the start of a checkout or a connect, kept in its context.
type started struct {
	at time.Time
	// span is whether a span may be made of it (the caller's span records).
	span bool
}

type acquireKey struct{}

// TraceAcquireStart notes when a checkout began, when the wait-time
// histogram or a span may need it; otherwise it returns ctx as it is.
func (t *Tracer) TraceAcquireStart(ctx context.Context) context.Context {
	recording := trace.SpanFromContext(ctx).IsRecording()
	if !recording && !t.waitTime.Enabled(ctx) {
		return ctx
	}
	return context.WithValue(ctx, acquireKey{}, started{at: time.Now(), span: recording})
}

// TraceAcquireEnd records the wait of a successful checkout in
// db.client.connection.wait_time, and makes a span of a long or failed one.
func (t *Tracer) TraceAcquireEnd(ctx context.Context, err error) {
	st, ok := ctx.Value(acquireKey{}).(started)
	if !ok {
		return
	}
	now := time.Now()
	d := now.Sub(st.at)
	if err == nil {
		t.waitTime.Record(ctx, d.Seconds(), t.measure)
	}
	if st.span && (err != nil || d >= t.acquireSpan) {
		opts := append(t.server.Load().internal[:2:2], trace.WithTimestamp(st.at))
		_, span := t.tracer.Start(ctx, SpanAcquire, opts...)
		if err != nil {
			recordError(span, err)
		}
		span.End(trace.WithTimestamp(now))
	}
}

type connectKey struct{}

// TraceConnectStart starts the connect's span, a child of ctx's span, and
// notes the server cc connects to for the spans that follow.
func (t *Tracer) TraceConnectStart(ctx context.Context, cc *pgconn.Config) context.Context {
	srv := t.noteServer(cc)
	ctx, _ = t.tracer.Start(ctx, SpanConnect, srv.client...)
	if t.createTime.Enabled(ctx) {
		ctx = context.WithValue(ctx, connectKey{}, started{at: time.Now()})
	}
	return ctx
}

// TraceConnectEnd ends the connect's span, and records the time of a
// successful connect in db.client.connection.create_time.
func (t *Tracer) TraceConnectEnd(ctx context.Context, pid uint32, err error) {
	if st, ok := ctx.Value(connectKey{}).(started); ok && err == nil {
		t.createTime.Record(ctx, time.Since(st.at).Seconds(), t.measure)
	}
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		if err != nil {
			recordError(span, err)
		} else {
			span.SetAttributes(AttrBackendPID.Int64(int64(pid)))
		}
	}
	span.End()
}

// TraceCancelEnd records the end of a recovery after a cancelled statement
// as a root span of no duration: it runs in the background, after the
// statement's span ended.
func (t *Tracer) TraceCancelEnd(pid uint32, kept bool) {
	_, span := t.tracer.Start(context.Background(), SpanCancelRecovery, t.server.Load().internal...)
	if span.IsRecording() {
		span.SetAttributes(AttrBackendPID.Int64(int64(pid)), AttrCancelKept.Bool(kept))
		if !kept {
			span.SetStatus(codes.Error, "connection closed after a cancelled statement")
			span.SetAttributes(semconv.ErrorTypeOther)
		}
	}
	span.End()
}

// recordError sets span's error status and error.type: the SQLSTATE of a
// server error (also db.response.status_code), "timeout" or "canceled" for
// a context that ended, and the error's Go type otherwise.
func recordError(span trace.Span, err error) {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		span.SetAttributes(semconv.DBResponseStatusCode(pgErr.Code), semconv.ErrorTypeKey.String(pgErr.Code))
	case errors.Is(err, context.DeadlineExceeded):
		span.SetAttributes(semconv.ErrorTypeKey.String("timeout"))
	case errors.Is(err, context.Canceled):
		span.SetAttributes(semconv.ErrorTypeKey.String("canceled"))
	default:
		span.SetAttributes(semconv.ErrorType(err))
	}
	span.SetStatus(codes.Error, err.Error())
}

// tagOperation returns the operation of a command tag: the tag without its
// row counts ("INSERT 0 2" gives INSERT, "CREATE TABLE" stays).
func tagOperation(tag string) string {
	for {
		i := strings.LastIndexByte(tag, ' ')
		if i < 0 || !isCount(tag[i+1:]) {
			if isCount(tag) {
				return ""
			}
			return tag
		}
		tag = tag[:i]
	}
}

func isCount(s string) bool {
	return s != "" && digitsEnd(s, 0) == len(s)
}

// firstKeyword returns the first word of a statement's text, in upper
// case, past blanks, comments and opening parentheses; "postgresql" when
// there is none.
func firstKeyword(q string) string {
	i := 0
	for i < len(q) {
		switch c := q[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(':
			i++
		case strings.HasPrefix(q[i:], "--"):
			i = lineEnd(q, i)
		case strings.HasPrefix(q[i:], "/*"):
			i = blockCommentEnd(q, i)
		case isIdentStart(c) && c < 0x80:
			word := q[i:identEnd(q, i)]
			if up, ok := keywords[word]; ok {
				return up
			}
			return strings.ToUpper(word) // no copy when it is upper case already
		default:
			return semconv.DBSystemNamePostgreSQL.Value.AsString()
		}
	}
	return semconv.DBSystemNamePostgreSQL.Value.AsString()
}

// keywords maps the statements' usual first words, in lower case, to their
// upper case, so that naming a span allocates nothing in the common cases
// (a word in upper case is its own name).
var keywords = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"select", "insert", "update", "delete", "merge", "with", "values", "table",
		"begin", "start", "commit", "rollback", "savepoint", "release", "end", "abort",
		"create", "alter", "drop", "truncate", "comment", "grant", "revoke",
		"set", "show", "reset", "discard", "copy", "call", "do", "explain", "analyze", "vacuum",
		"listen", "notify", "unlisten", "lock", "prepare", "execute", "deallocate",
		"declare", "fetch", "move", "close", "refresh", "cluster", "reindex", "checkpoint",
	} {
		m[k] = strings.ToUpper(k)
	}
	return m
}()

// severalStatements reports whether q holds more than one statement: a ;
// outside strings, identifiers and comments with more than blanks and
// comments after it.
func severalStatements(q string) bool {
	if strings.IndexByte(q, ';') < 0 {
		return false
	}
	seenEnd := false
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
			continue
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			i = lineEnd(q, i)
			continue
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			i = blockCommentEnd(q, i)
			continue
		}
		if seenEnd && c != ';' {
			return true
		}
		switch {
		case c == ';':
			seenEnd = true
			i++
		case c == '\'':
			i = stringEnd(q, i, false)
		case c == '"':
			i = quotedEnd(q, i)
		case c == '$':
			if end, ok := dollarQuoteEnd(q, i); ok {
				i = end
			} else {
				i++
			}
		case isIdentStart(c):
			end := identEnd(q, i)
			if end-i == 1 && (c == 'e' || c == 'E') && end < len(q) && q[end] == '\'' {
				end = stringEnd(q, end, true)
			}
			i = end
		default:
			i++
		}
	}
	return false
}
