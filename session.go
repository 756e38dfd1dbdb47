package pgpurepy

import (
	"context"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// session is one physical connection to the server: what the pool holds. It
// is used by one goroutine at a time (the pool hands it to one holder, and
// database/sql serialises each driver connection), so it has no mutex; pgconn
// watches the context of each call itself.
type session struct {
	pg *pgconn.PgConn
	p  *poolState
	tm *pgtype.Map

	cancel *cancelHandler
	framer *framer
	// recovery is set while the session recovers from a cancel request
	// (see cancel.go); only the holder reads and writes the field.
	recovery *recovery
	stmts    stmtCache
	// prepared holds explicitly prepared statements outside stmts, drops
	// the names of statements to deallocate, and closed the statements
	// closed by other goroutines (see stmtcache.go).
	prepared map[string]*stmtDesc
	drops    []string
	closed   closedStmts
	// peeker and grace serve the pool's checkout check (poolState.check).
	peeker *peeker
	grace  graceCtx

	// regVersion is the converter registry version applied to tm.
	regVersion uint64
	// converted maps OIDs of registered converters to the Go type their
	// values decode into.
	converted map[uint32]*conversion

	// reusable buffers for encoding arguments
	paramValues  [][]byte
	paramFormats []int16
	argBuf       []byte
	// namedBuf holds the extension's arguments (Conn.namedArgs).
	namedBuf []driver.NamedValue

	// begin is the BEGIN of the holder's transaction while it has not gone
	// to the server (see carryBegin).
	begin string

	// broken is set when the connection must not be used again.
	broken error
	// generation is the pool's failover generation when s was opened.
	generation uint64
}

func newSession(p *poolState, pg *pgconn.PgConn, h *cancelHandler) *session {
	s := &session{
		pg:     pg,
		p:      p,
		tm:     pgtype.NewMap(),
		cancel: h,
		framer: h.f,
		peeker: newPeeker(pg.Conn()),
		stmts:  stmtCache{capacity: p.cfg.StatementCacheCapacity, prefix: "pgpurepy_" + strconv.FormatUint(rand.Uint64(), 36) + "_"},
	}
	return s
}

// sync brings the session up to date with the pool's converter registry. It
// does no I/O and is cheap when nothing changed: one atomic load.
func (s *session) sync() error {
	if s.p.reg.version.Load() == s.regVersion {
		return nil
	}
	return s.p.reg.apply(s)
}

// plan fills the result formats, column names and decoders of d.
func (s *session) plan(d *stmtDesc) {
	n := len(d.sd.Fields)
	d.resultFormats = make([]int16, n)
	d.columns = make([]string, n)
	d.decoders = make([]decoder, n)
	for i, f := range d.sd.Fields {
		d.resultFormats[i] = s.resultFormat(f.DataTypeOID)
		d.columns[i] = f.Name
		d.decoders[i] = s.decoderFor(f.DataTypeOID, d.resultFormats[i])
	}
}

// execParams starts an extended-protocol statement. The returned reader must
// be closed and its error passed through finish.
func (s *session) execParams(ctx context.Context, sql string, args []driver.NamedValue, o *queryOptions) (*pgconn.ResultReader, *stmtDesc, error) {
	if err := s.ready(ctx); err != nil {
		return nil, nil, err
	}
	if s.carryBegin() {
		defer s.landBegin()
	}
	if err := s.sync(); err != nil {
		return nil, nil, err
	}
	d, err := s.describe(ctx, sql, o.naming)
	if err != nil {
		return nil, nil, s.finish(ctx, err)
	}
	if len(args) != len(d.sd.ParamOIDs) {
		return nil, nil, fmt.Errorf("pgpurepy: statement has %d parameters but %d arguments were given", len(d.sd.ParamOIDs), len(args))
	}
	if err := s.encodeArgs(d, args); err != nil {
		return nil, nil, err
	}
	formats := d.resultFormats
	if f := o.resultFormats(d.sd.Fields); f != nil {
		formats = f
	}
	var rr *pgconn.ResultReader
	if d.sd.Name != "" {
		rr = s.pg.ExecStatement(ctx, d.sd, s.paramValues, s.paramFormats, formats)
	} else {
		rr = s.pg.ExecParams(ctx, sql, s.paramValues, d.sd.ParamOIDs, s.paramFormats, formats)
	}
	if cap(s.argBuf) > keepBufMax {
		// Sent by now; a large argument's buffer is not kept for the
		// session's life (see keepBufMax).
		s.argBuf = nil
		clear(s.paramValues)
	}
	return rr, d, nil
}

// encodeArgs encodes args for d's parameters into the session's buffers,
// each in the format its codec prefers, falling back to the other one.
func (s *session) encodeArgs(d *stmtDesc, args []driver.NamedValue) error {
	s.paramValues = s.paramValues[:0]
	s.paramFormats = s.paramFormats[:0]
	buf := s.argBuf[:0]
	if buf == nil {
		// pgtype returns nil for NULL; a non-nil buffer keeps an empty
		// value (an empty bytea or text) from looking like one.
		buf = make([]byte, 0, 256)
	}
	for i, a := range args {
		if a.Name != "" {
			return fmt.Errorf("pgpurepy: argument %q: named arguments are not supported, use $1, $2, ... in the SQL", a.Name)
		}
		oid := d.sd.ParamOIDs[i]
		if a.Value == nil {
			s.paramValues = append(s.paramValues, nil)
			s.paramFormats = append(s.paramFormats, pgtype.TextFormatCode)
			continue
		}
		start := len(buf)
		if out, format, ok := s.encodeFast(oid, a.Value, buf); ok {
			buf = out
			s.paramValues = append(s.paramValues, buf[start:len(buf):len(buf)])
			s.paramFormats = append(s.paramFormats, format)
			continue
		}
		format := s.tm.FormatCodeForOID(oid)
		out, err := s.tm.Encode(oid, format, a.Value, buf)
		if err != nil {
			format = 1 - format
			out, err = s.tm.Encode(oid, format, a.Value, buf[:start])
		}
		if err != nil {
			return &ArgumentError{Position: i + 1, GoType: fmt.Sprintf("%T", a.Value), PgType: s.typeName(oid), Err: err}
		}
		if out == nil {
			s.paramValues = append(s.paramValues, nil)
		} else {
			buf = out
			s.paramValues = append(s.paramValues, buf[start:len(buf):len(buf)])
		}
		s.paramFormats = append(s.paramFormats, format)
	}
	s.argBuf = buf
	return nil
}

// encodeFast appends the commonest arguments, Go integers for integer
// parameters and strings for text ones, in the format pgtype would choose,
// without pgtype's plan lookup (which boxes every int it encodes). ok is
// false when it does not apply; an integer out of its parameter's range is
// left to pgtype, which names the error.
func (s *session) encodeFast(oid uint32, v any, buf []byte) (out []byte, format int16, ok bool) {
	if _, conv := s.converted[oid]; conv {
		return nil, 0, false
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case string:
		if oid == pgtype.TextOID || oid == pgtype.VarcharOID {
			return append(buf, x...), pgtype.TextFormatCode, true
		}
		return nil, 0, false
	default:
		return nil, 0, false
	}
	switch {
	case oid == pgtype.Int8OID:
		return binary.BigEndian.AppendUint64(buf, uint64(n)), pgtype.BinaryFormatCode, true
	case oid == pgtype.Int4OID && n == int64(int32(n)):
		return binary.BigEndian.AppendUint32(buf, uint32(n)), pgtype.BinaryFormatCode, true
	case oid == pgtype.Int2OID && n == int64(int16(n)):
		return binary.BigEndian.AppendUint16(buf, uint16(n)), pgtype.BinaryFormatCode, true
	}
	return nil, 0, false
}

func (s *session) typeName(oid uint32) string {
	if t, ok := s.tm.TypeForOID(oid); ok {
		return t.Name
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10)
}

// execSimple runs sql, which may hold several statements, with the simple
// query protocol.
func (s *session) execSimple(ctx context.Context, sql string) (*pgconn.MultiResultReader, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if err := s.beginNow(ctx); err != nil {
		return nil, err
	}
	if err := s.sync(); err != nil {
		return nil, err
	}
	return s.pg.Exec(ctx, sql), nil
}

// usable reports why the session cannot run a statement, if it cannot.
func (s *session) usable() error {
	if s.broken != nil {
		return fmt.Errorf("pgpurepy: %w: connection unusable: %w", driver.ErrBadConn, s.broken)
	}
	if s.pg.IsClosed() {
		return fmt.Errorf("pgpurepy: %w: connection closed", driver.ErrBadConn)
	}
	return nil
}

// finish runs after every statement and turns err into what the caller
// should see. After a cancel request it hands the session to a recovery
// (see cancel.go), and returns without waiting for it.
func (s *session) finish(ctx context.Context, err error) error {
	if s.cancel.fired.Load() {
		defer s.startRecovery(err)
	}
	s.checkBegin(err)
	if err == nil {
		return nil
	}
	ctxErr := ctx.Err()
	if s.framer.owed > 0 {
		// The framer made the error up: what the server says comes later.
		if ctxErr != nil {
			return fmt.Errorf("pgpurepy: %w: the server was asked to cancel the statement", ctxErr)
		}
		return err
	}
	if s.pg.IsClosed() && s.broken == nil {
		s.broken = err
	}
	if isCode(err, "25006") && s.broken == nil && s.p.checkWritable(ctx, s) != nil {
		// A write reached a server that became read-only under us: keep
		// the error for this caller, replace the connection for the next.
		s.broken = err
	}
	if ctxErr != nil && (isCode(err, "57014") || pgconn.Timeout(err) || errors.Is(err, ctxErr)) {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("pgpurepy: %w", err)
		}
		return fmt.Errorf("pgpurepy: %w: %w", ctxErr, err)
	}
	if pgconn.SafeToRetry(err) && s.pg.TxStatus() == 'I' {
		return fmt.Errorf("pgpurepy: %w: %w", driver.ErrBadConn, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return err
	}
	return fmt.Errorf("pgpurepy: %w", err)
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// isStaleStatement reports errors after which a cached statement must be
// described again: its plan changed result type, it vanished (DISCARD ALL),
// or, in describe mode, its column count changed under the cached result
// formats. The SQLSTATEs are shared with other errors, so the server
// function that raised them tells these apart: the message is translated
// under lc_messages, the function name is not.
func isStaleStatement(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "26000":
		return true
	case "0A000":
		return pgErr.Routine == "RevalidateCachedQuery"
	case "08P01":
		return pgErr.Routine == "PortalSetResultFormat"
	}
	return false
}

// healthy reports whether the session may run another statement. During a
// recovery it says yes: the recovery decides, and replaces the session if
// it must.
func (s *session) healthy() bool {
	return s.recovery != nil || (s.broken == nil && !s.pg.IsClosed())
}

// rollbackCtx returns a context for cleanup that must run even though the
// caller's context is done, bounded by the cancel grace.
func (s *session) rollbackCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.p.cfg.CancelGrace)
}

// resetTx rolls back a transaction the last holder left open, so that the
// next holder starts clean; it reports whether the session is still usable.
func (s *session) resetTx() bool {
	s.begin = ""
	if s.broken != nil || s.pg.IsClosed() {
		return false
	}
	if s.pg.TxStatus() == 'I' {
		return true
	}
	ctx, cancel := s.rollbackCtx()
	defer cancel()
	_, err := s.pg.Exec(ctx, "ROLLBACK").ReadAll()
	return err == nil && s.pg.TxStatus() == 'I'
}

// close ends the session with a Terminate message, bounded in time.
func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.pg.Close(ctx)
}
