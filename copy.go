package pgpurepy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// COPY through the extension.
//
// CopyFrom describes the target columns once, as an unnamed statement
// (SELECT cols FROM table), so it knows their types, and encodes each row
// with the session's type map, where the registered converters live. It
// streams the encoded rows through pgconn's CopyFrom, a chunk at a time.
// The rows are never all in memory.
//
// Three goroutines take part. The source runs on the caller's goroutine,
// as any range loop does, so its panics and runtime.Goexit stay the
// caller's. pgconn's CopyFrom blocks its goroutine until the server has
// answered, so it gets a helper goroutine. pgconn reads the data (copyFeed)
// on a goroutine of its own. The caller keeps the session but does not
// touch it until the helper has returned, so the session still has one
// holder at a time.
//
// Atomicity. A binary COPY whose data stops between two rows commits the
// rows sent so far when pgconn ends it with CopyDone. So the copy is
// failed whenever its data is incomplete. A bad row or a failing source
// makes the feed's Read fail, and pgconn sends CopyFail. An interrupt,
// after which pgconn sends CopyDone, has that CopyDone turned into a
// CopyFail by the framer (see internal/wire).
//
// Cancellation uses the driver's machinery, as for every statement: the
// context watcher interrupts the framer and sends a cancel request, and
// finish hands the session to a recovery.

// Identifier is the name of a table, optionally qualified by its schema:
// Identifier{"app", "users"} is app.users, and Identifier{"users"} is
// found through search_path. Each part is quoted as a whole, so input in
// it is a name and never SQL.
type Identifier []string

// Sanitize returns the identifier quoted for SQL, as pgx's
// Identifier.Sanitize does: each part in double quotes with its double
// quotes doubled and its NUL bytes (which no name can hold) dropped, the
// parts joined by dots.
func (id Identifier) Sanitize() string {
	parts := make([]string, len(id))
	for i, p := range id {
		parts[i] = quoteIdent(p)
	}
	return strings.Join(parts, ".")
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `"`, `""`) + `"`
}

// CopyRows returns rows as a source for CopyFrom, which reads them in
// order. It copies nothing: rows must not change until CopyFrom returns.
func CopyRows(rows [][]any) iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		for _, r := range rows {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// CopyFrom copies rows into columns of table with COPY on the next free
// connection and returns the number of rows copied. It is all or nothing:
// a row that does not encode (a *CopyError naming the row and column), an
// error of rows or of the server leaves the table unchanged. If ctx ends,
// the copy is cancelled on the server, the connection stays in the pool,
// and the error satisfies errors.Is(err, ctx.Err()). See Conn.CopyFrom for
// the values rows may hold.
func (x *Pool) CopyFrom(ctx context.Context, table Identifier, columns []string, rows iter.Seq2[[]any, error]) (int64, error) {
	var n int64
	err := x.with(ctx, func(c *Conn) error {
		var err error
		n, err = c.CopyFrom(ctx, table, columns, rows)
		return err
	})
	return n, err
}

// CopyTo runs COPY (query) TO STDOUT on the next free connection, writes
// the rows to w in PostgreSQL's text format as they arrive, and returns
// their number. If ctx ends or w fails, the statement is cancelled on the
// server, the connection stays in the pool, and the error satisfies
// errors.Is(err, ctx.Err()) or wraps w's. See Conn.CopyTo.
func (x *Pool) CopyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
	var n int64
	err := x.with(ctx, func(c *Conn) error {
		var err error
		n, err = c.CopyTo(ctx, query, w)
		return err
	})
	return n, err
}

// CopyFrom copies rows into columns of table with COPY ... FROM STDIN and
// returns the number of rows copied. Inside CheckoutInTransaction it runs
// in the transaction.
//
// rows yields one []any per row, one value per column, of the Go types
// Execute takes as arguments: integers, floats, bool, string, []byte,
// time.Time, nil or a nil pointer for NULL, slices for arrays, registered
// converter types and their slices, pgtype values, driver.Valuer. A string
// is also taken for any type it is the text form of ("12.50" for numeric).
// A row's values are encoded before the source is asked for the next row,
// so a source may reuse one slice. Rows are sent in chunks of 64 KiB as
// the source yields them, so a source of any length needs the memory of
// two chunks. CopyRows makes a source of a [][]any.
//
// The columns' types are read from the server once per call. The rows go
// in PostgreSQL's binary format when every column's type has a binary
// codec (the built-in types, and converters but Func's, which are text
// only), else in the text format, each value in its text form: so a column
// of a type the pool knows nothing of (an enum without a converter,
// citext) takes strings.
//
// The copy is all or nothing. A row of the wrong width or a value that
// does not encode ends it with a *CopyError that names the row (the first
// is 1), the column and the Go type. An error yielded by rows ends it with
// that error, wrapped. Either way the server aborts the copy (CopyFail), so
// the table is unchanged, and the connection is kept. An error of the
// server (a constraint, a type's input function) is a *pgconn.PgError. If
// ctx ends, the copy is cancelled on the server, nothing is copied, the
// connection stays in the pool, and the error satisfies
// errors.Is(err, ctx.Err()). rows runs on the caller's goroutine, so
// CopyFrom returns when rows next yields. A panic in rows propagates after
// the copy has been aborted. Inside a transaction, a failed copy leaves
// the transaction failed, like any failed statement.
func (c *Conn) CopyFrom(ctx context.Context, table Identifier, columns []string, rows iter.Seq2[[]any, error]) (int64, error) {
	if len(table) == 0 {
		return 0, errors.New("pgpurepy: copy: no table named")
	}
	if len(columns) == 0 {
		return 0, fmt.Errorf("pgpurepy: copy into %s: no columns named", table.Sanitize())
	}
	if rows == nil {
		return 0, fmt.Errorf("pgpurepy: copy into %s: rows is nil", table.Sanitize())
	}
	if err := c.c.bind(ctx); err != nil {
		return 0, err
	}
	quoted := make([]string, len(columns))
	for i, col := range columns {
		quoted[i] = quoteIdent(col)
	}
	into := table.Sanitize() + " (" + strings.Join(quoted, ", ") + ")"
	ctx = c.c.traceStart(ctx, "COPY "+into+" FROM STDIN", nil)
	tag, err := copyFrom(ctx, c.c.s, into, "SELECT "+strings.Join(quoted, ", ")+" FROM "+table.Sanitize(), columns, rows)
	c.c.traceEnd(ctx, tag.String(), err)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// CopyTo runs COPY (query) TO STDOUT, writes the rows to w as they arrive,
// in PostgreSQL's text format (a line per row, tab-separated, \N for
// NULL), and returns the number of rows. Inside CheckoutInTransaction it
// runs in the transaction.
//
// query is a SELECT, VALUES, TABLE, or INSERT, UPDATE or DELETE with
// RETURNING. It takes no arguments, because COPY takes no parameters, so
// never build it from untrusted input.
//
// If ctx ends, the statement is cancelled on the server, the connection
// stays in the pool, and the error satisfies errors.Is(err, ctx.Err()).
// What reached w until then stays written. An error of w stops the copy in
// the same way and is returned wrapped, and the connection is kept. An
// error of the server is a *pgconn.PgError. A panic in w propagates, and
// the connection, which pgconn leaves in the middle of the copy, is
// replaced.
func (c *Conn) CopyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
	if err := c.c.bind(ctx); err != nil {
		return 0, err
	}
	// On lines of their own, the parentheses survive a query that ends in a
	// line comment; a trailing semicolon would end the COPY too early.
	sql := "COPY (\n" + strings.TrimRight(query, "; \t\r\n") + "\n) TO STDOUT"
	ctx = c.c.traceStart(ctx, sql, nil)
	tag, err := copyTo(ctx, c.c.s, sql, w)
	c.c.traceEnd(ctx, tag.String(), err)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// copyFrom runs COPY into FROM STDIN on s with the rows of src, after
// describing the columns with describe (SELECT cols FROM table). Each
// error that reached the server has been through finish, once.
func copyFrom(ctx context.Context, s *session, into, describe string, columns []string, src iter.Seq2[[]any, error]) (pgconn.CommandTag, error) {
	var none pgconn.CommandTag
	if err := s.start(ctx); err != nil {
		return none, err
	}
	if err := s.sync(); err != nil {
		return none, err
	}
	// The description can carry a transaction's deferred BEGIN; the COPY,
	// a simple query, could not.
	carried := s.carryBegin()
	sd, err := s.pg.Prepare(ctx, "", describe, nil)
	if carried {
		s.landBegin()
	}
	if err != nil {
		return none, s.finish(ctx, err)
	}
	enc := newCopyEncoder(&s.codecs, columns, sd.Fields)
	sql := "COPY " + into + " FROM STDIN"
	if enc.binary {
		sql += " (FORMAT binary)"
	}
	return copyIn(ctx, s, sql, enc, src)
}

// copyIn sends sql, a COPY FROM STDIN, with the rows of src encoded by enc,
// and passes the outcome through finish once, also when src panics.
func copyIn(ctx context.Context, s *session, sql string, enc *copyEncoder, src iter.Seq2[[]any, error]) (pgconn.CommandTag, error) {
	f := &copyFeed{chunks: make(chan []byte), free: make(chan []byte, copyBuffers)}
	var (
		tag     pgconn.CommandTag
		copyErr error
		ended   = make(chan struct{})
	)
	go func() {
		defer close(ended)
		tag, copyErr = s.pg.CopyFrom(ctx, f, sql)
	}()
	fed := false
	defer func() {
		if !fed {
			// src panicked or called runtime.Goexit: fail the copy and
			// settle the session before the panic goes on.
			f.end(true)
			<-ended
			_ = s.finish(ctx, copyErr)
		}
	}()
	abort, stopped := f.fill(ctx.Done(), ended, enc, src)
	f.end(abort != nil || stopped)
	fed = true
	<-ended
	err := s.finish(ctx, copyErr)
	if abort != nil {
		// The abort is the cause, unless the server had failed the copy
		// before it heard of the abort.
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || isCopyFail(pgErr) {
			return pgconn.CommandTag{}, abort
		}
	}
	return tag, err
}

// copyTo runs sql, a COPY TO STDOUT, on s and writes its data to w.
func copyTo(ctx context.Context, s *session, sql string, w io.Writer) (pgconn.CommandTag, error) {
	var none pgconn.CommandTag
	if err := s.start(ctx); err != nil {
		return none, err
	}
	if err := s.beginNow(ctx); err != nil {
		return none, s.finish(ctx, err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	out := &copyOut{w: w, stop: stop}
	done := false
	defer func() {
		if !done && s.broken == nil {
			// w panicked in the middle of pgconn's CopyTo, which leaves
			// the connection busy for good.
			s.broken = errCopyWriterPanicked
		}
	}()
	tag, err := s.pg.CopyTo(wctx, out, sql)
	done = true
	err = s.finish(wctx, err)
	if out.err != nil {
		return none, fmt.Errorf("pgpurepy: copy to: write: %w", out.err)
	}
	return tag, err
}

var errCopyWriterPanicked = errors.New("pgpurepy: the writer of a copy panicked")

// copyOut is the writer pgconn's CopyTo writes the data to. pgconn closes
// the connection when a write fails; copyOut instead keeps w's error,
// stops the copy through its context (a cancel request, after which the
// connection is kept) and drops the data that still comes.
type copyOut struct {
	w    io.Writer
	stop context.CancelFunc
	err  error
}

func (o *copyOut) Write(p []byte) (int, error) {
	if o.err != nil {
		return len(p), nil
	}
	n, err := o.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		o.err = err
		o.stop()
	}
	return len(p), nil
}

const (
	// copyChunk is how many bytes of rows go into one chunk: pgconn sends
	// what one Read gives in one CopyData message of 64 KiB, header
	// included.
	copyChunk = 64<<10 - 5
	// copyBuffers is how many chunks circulate: the caller encodes one
	// while pgconn sends another.
	copyBuffers = 2
)

// errCopyAbandoned ends the feed of a copy whose data is incomplete. pgconn
// sends it to the server as the CopyFail message; the caller sees the
// reason (a bad row, the source's error, its context's end) instead.
var errCopyAbandoned = errors.New("pgpurepy: the client abandoned the copy")

// copyFeed carries a copy's data from the caller's goroutine, which
// encodes the rows, to pgconn's, which reads it as an io.Reader and sends
// it. Chunks pass through channels, which also hand each chunk's memory
// from one goroutine to the other.
type copyFeed struct {
	chunks chan []byte // encoded chunks, in order; closed after the last
	free   chan []byte // chunks pgconn has sent, for reuse
	made   int         // chunks allocated so far (the caller's)
	// failed is set before chunks is closed when the data is incomplete:
	// Read then fails, and pgconn sends CopyFail.
	failed bool

	// Only pgconn's goroutine uses these.
	held []byte // the chunk being read
	rest []byte // its unread part
}

// Read hands out the chunks, and then io.EOF, or errCopyAbandoned when the
// data is incomplete.
func (f *copyFeed) Read(p []byte) (int, error) {
	for len(f.rest) == 0 {
		if f.held != nil {
			f.free <- f.held // never blocks: free has room for every chunk
			f.held = nil
		}
		b, ok := <-f.chunks
		if !ok {
			if f.failed {
				return 0, errCopyAbandoned
			}
			return 0, io.EOF
		}
		f.held, f.rest = b, b
	}
	n := copy(p, f.rest)
	f.rest = f.rest[n:]
	return n, nil
}

// end ends the data, as incomplete when failed is set.
func (f *copyFeed) end(failed bool) {
	f.failed = failed
	close(f.chunks)
}

// fill runs src and feeds its rows, encoded by enc, to Read, until src
// ends, fails, or the copy has ended or must end (ended, done). abort is
// why it stopped early because of a row or of src; stopped is set when it
// stopped because of ended or done.
func (f *copyFeed) fill(done, ended <-chan struct{}, enc *copyEncoder, src iter.Seq2[[]any, error]) (abort error, stopped bool) {
	buf, ok := f.take(ended)
	if !ok {
		return nil, true
	}
	if enc.binary {
		buf = append(buf, copyBinaryHeader...)
	}
	n, largest := 0, 0
	for vals, err := range src {
		// Cheap checks (a non-blocking receive each), so that a copy that
		// ended stops reading a slow source.
		if isClosed(ended) || isClosed(done) {
			return nil, true
		}
		if err != nil {
			return fmt.Errorf("pgpurepy: copy: the source failed after %d rows: %w", n, err), false
		}
		n++
		start := len(buf)
		out, err := enc.appendRow(buf, n, vals)
		if err != nil {
			return err, false
		}
		buf = out
		largest = max(largest, len(buf)-start)
		// Like pgx, flush before a row of the largest size so far could
		// overflow the chunk that one Read of pgconn's takes.
		if len(buf) > copyChunk-largest {
			if !f.send(buf, ended) {
				return nil, true
			}
			if buf, ok = f.take(ended); !ok {
				return nil, true
			}
		}
	}
	if enc.binary {
		buf = binary.BigEndian.AppendUint16(buf, 0xFFFF) // the trailer, -1
	}
	if !f.send(buf, ended) {
		return nil, true
	}
	return nil, false
}

// take returns an empty chunk to fill, allocating up to copyBuffers, and
// false when the copy ended while it waited for one.
func (f *copyFeed) take(ended <-chan struct{}) ([]byte, bool) {
	if f.made < copyBuffers {
		f.made++
		return make([]byte, 0, copyChunk+5), true
	}
	select {
	case b := <-f.free:
		return b[:0], true
	case <-ended:
		return nil, false
	}
}

// send hands b to Read, and reports false when the copy ended instead.
func (f *copyFeed) send(b []byte, ended <-chan struct{}) bool {
	select {
	case f.chunks <- b:
		return true
	case <-ended:
		return false
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// copyBinaryHeader starts the data of a binary COPY: the signature, the
// flags and the length of the header extension.
var copyBinaryHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyEncoder encodes rows for COPY in the binary or the text format.
type copyEncoder struct {
	c       *codecs
	columns []string
	oids    []uint32
	binary  bool
	// text holds one value's text form in the text format; it is never
	// nil, so that an empty value does not come back as NULL.
	text []byte
}

// newCopyEncoder encodes for columns with the types fields describe. It
// picks the binary format when every type has a binary codec in c.
func newCopyEncoder(c *codecs, columns []string, fields []pgconn.FieldDescription) *copyEncoder {
	e := &copyEncoder{c: c, columns: columns, oids: make([]uint32, len(fields)), binary: true, text: make([]byte, 0, 64)}
	for i, fd := range fields {
		e.oids[i] = fd.DataTypeOID
		if t, ok := c.tm.TypeForOID(fd.DataTypeOID); !ok || !t.Codec.FormatSupported(pgtype.BinaryFormatCode) {
			e.binary = false
		}
	}
	return e
}

// appendRow appends row number row, vals, to buf. On error buf is returned
// as it was.
func (e *copyEncoder) appendRow(buf []byte, row int, vals []any) ([]byte, error) {
	if len(vals) != len(e.oids) {
		return buf, e.widthError(row, vals)
	}
	start := len(buf)
	if e.binary {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(vals)))
	}
	for i, v := range vals {
		var out []byte
		var err error
		if e.binary {
			out, err = e.appendBinary(buf, e.oids[i], v)
		} else {
			if i > 0 {
				buf = append(buf, '\t')
			}
			out, err = e.appendText(buf, e.oids[i], v)
		}
		if err != nil {
			return buf[:start], &CopyError{Row: row, Column: e.columns[i], PgType: e.c.typeName(e.oids[i]), GoType: fmt.Sprintf("%T", v), Err: err}
		}
		buf = out
	}
	if !e.binary {
		buf = append(buf, '\n')
	}
	return buf, nil
}

func (e *copyEncoder) widthError(row int, vals []any) error {
	err := &CopyError{Row: row}
	if len(vals) < len(e.oids) {
		err.Column, err.PgType = e.columns[len(vals)], e.c.typeName(e.oids[len(vals)])
		err.Err = fmt.Errorf("no value: the row has %d values for %d columns", len(vals), len(e.oids))
	} else {
		err.GoType = fmt.Sprintf("%T", vals[len(e.oids)])
		err.Err = fmt.Errorf("a value too many: the row has %d values for %d columns", len(vals), len(e.oids))
	}
	return err
}

// appendBinary appends v as a field of the binary format: its length, or
// -1 for NULL, and its binary encoding for the type oid.
func (e *copyEncoder) appendBinary(buf []byte, oid uint32, v any) ([]byte, error) {
	at := len(buf)
	if v == nil {
		return binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF), nil
	}
	buf = append(buf, 0, 0, 0, 0)
	// encodeFast's strings (for text and varchar) are text format, whose
	// bytes are those of the binary format for these types.
	out, _, ok := e.c.encodeFast(oid, v, buf)
	if !ok {
		var err error
		if out, err = e.c.tm.Encode(oid, pgtype.BinaryFormatCode, v, buf); err != nil {
			var viaErr error
			if out, viaErr = e.viaText(oid, v, buf); viaErr != nil {
				return nil, err
			}
		}
	}
	if out == nil {
		// NULL: a nil pointer, or a driver.Valuer's nil.
		return binary.BigEndian.AppendUint32(buf[:at], 0xFFFFFFFF), nil
	}
	binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	return out, nil
}

// viaText encodes v, which has no binary encoding of its own for oid,
// through its text form, as pgx's CopyFrom does: the text (v itself when v
// is a string) is parsed by the type's codec and the result encoded in
// binary. So "12.50" goes into numeric, and a Func converter's type into a
// column of its base type.
func (e *copyEncoder) viaText(oid uint32, v any, buf []byte) ([]byte, error) {
	tm := e.c.tm
	s, ok := v.(string)
	if !ok {
		text, err := tm.Encode(oid, pgtype.TextFormatCode, v, nil)
		if err != nil {
			return nil, err
		}
		s = string(text)
	}
	if t, ok := tm.TypeForOID(oid); ok {
		if _, isArray := t.Codec.(*pgtype.ArrayCodec); isArray {
			// Keeps the dimensions of a multi-dimensional array.
			var arr pgtype.Array[any]
			if err := tm.Scan(oid, pgtype.TextFormatCode, []byte(s), &arr); err == nil {
				return tm.Encode(oid, pgtype.BinaryFormatCode, arr, buf)
			}
		}
	}
	var parsed any
	if err := tm.Scan(oid, pgtype.TextFormatCode, []byte(s), &parsed); err != nil {
		return nil, err
	}
	return tm.Encode(oid, pgtype.BinaryFormatCode, parsed, buf)
}

// appendText appends v as a field of the text format: its text form,
// escaped, or \N for NULL.
func (e *copyEncoder) appendText(buf []byte, oid uint32, v any) ([]byte, error) {
	if v == nil {
		return append(buf, `\N`...), nil
	}
	text, err := e.c.tm.Encode(oid, pgtype.TextFormatCode, v, e.text[:0])
	if err != nil {
		return nil, err
	}
	if text == nil {
		return append(buf, `\N`...), nil
	}
	e.text = text
	for {
		i := bytes.IndexAny(text, "\\\t\n\r")
		if i < 0 {
			return append(buf, text...), nil
		}
		buf = append(buf, text[:i]...)
		switch text[i] {
		case '\\':
			buf = append(buf, `\\`...)
		case '\t':
			buf = append(buf, `\t`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		}
		text = text[i+1:]
	}
}
