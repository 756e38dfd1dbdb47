package pgpurepy

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Statements sent in one pipeline, each with a Sync of its own: what
// batches (batch.go) and the multiplexer (mux.go) share. New texts are
// described together, arguments encoded before anything is sent, results
// read in order and decoded into rows the caller owns.

// batchStmt is one statement of a batch on its way through runBatch.
type batchStmt struct {
	sql  string
	args []driver.NamedValue
	opts queryOptions
	// d is the statement's description; nil when describing it failed.
	d *stmtDesc
	// values and formats are the encoded arguments.
	values  [][]byte
	formats []int16

	tag  pgconn.CommandTag
	rows []*Row
	err  error
	// lost is set when err is the connection's, not the statement's own:
	// its result never came.
	lost bool
	// guard is the statement that guards this one, if any (see
	// execBatch); skipped is set when the guard found no transaction.
	guard   string
	skipped bool
	// stale is set when the server described the result differently
	// from d: the description must be made afresh next time.
	stale bool

	// For a multiplexed statement (mux.go), whose caller reads its result
	// after the session moved on: the result's columns as decoded (cols,
	// fields, types; fields are the caller's own), and when its result had
	// been read (ended), from which the carrier learns how long it ran.
	multiplexed bool
	cols        []string
	fields      []pgconn.FieldDescription
	types       []colType
	ended       time.Time

	traceCtx context.Context
}

// runBatch describes the statements the session does not know, encodes all
// the arguments, and sends the statements in one pipeline, each with its
// own Sync. It reports whether any statement was sent; if none was, err
// says why. Whatever went to the server passes through finish exactly once,
// and err is what finish made of the batch's first error, as a
// *BatchError.
func (c *conn) runBatch(ctx context.Context, stmts []batchStmt) (ran bool, err error) {
	s := c.s
	if err := s.start(ctx); err != nil {
		return false, err
	}
	carried := s.carryBegin()
	landBegin := func() {
		if carried {
			carried = false
			s.landBegin()
		}
	}
	defer landBegin()
	if err := s.sync(); err != nil {
		return false, err
	}

	described, err := s.describeBatch(ctx, stmts)
	if err != nil {
		landBegin()
		return false, s.finish(ctx, err)
	}
	// A BEGIN the descriptions carried and the server refused: nothing may
	// run as part of a transaction that is not open.
	s.checkBegin(firstErr(stmts))
	switch {
	case ctx.Err() != nil:
		// Sending now would run what the caller no longer waits for.
		landBegin()
		err := firstErr(stmts)
		if err == nil {
			err = ctx.Err()
		}
		return false, s.finish(ctx, err)
	case s.broken != nil:
		// The statement whose description carried the BEGIN has its
		// refusal; the others did not run.
		unusable, first := s.usable(), firstFailed(stmts, false)
		for i := range stmts {
			if i != first {
				stmts[i].err = unusable
			}
		}
	default:
		if err := s.encodeBatch(stmts); err != nil {
			landBegin()
			// Only descriptions went to the server, and went well: finish
			// has nothing to say, but it sees every batch.
			_ = s.finish(ctx, nil)
			return false, err
		}
		// A BEGIN the descriptions did not carry goes with the statements.
		c.execBatch(ctx, stmts, carried && !described)
	}
	landBegin()
	return true, s.settleBatch(ctx, stmts)
}

// firstErr returns the first error among stmts, in order.
func firstErr(stmts []batchStmt) error {
	if i := firstFailed(stmts, false); i >= 0 {
		return stmts[i].err
	}
	return nil
}

// firstFailed returns the index of the first statement with an error, of
// its own or, when lost is set, the connection's; -1 if there is none.
func firstFailed(stmts []batchStmt, lost bool) int {
	for i := range stmts {
		if stmts[i].err != nil && (!lost || stmts[i].lost) {
			return i
		}
	}
	return -1
}

// batchPooled reports whether a batch names no statement: behind a pooler
// in query_mode=auto, as inside a transaction there, because the batch's
// description and execution are two round trips that a transaction pooler
// may serve from two server connections, and a statement whose name went
// missing could not run again in its place in the batch.
func (s *session) batchPooled() bool {
	return s.pooled && s.sh.cfg.QueryMode == QueryModeAuto
}

// describeBatch describes, in one round trip, the texts of stmts that the
// session does not know yet, each text once and with a Sync of its own, so
// that a text that fails to be described fails alone; that error becomes
// the statements'. It reports whether it sent anything, and returns an
// error only when the connection failed. New descriptions go into the
// statement cache once the nullability of their tables is known, as for a
// single statement (see newDesc).
func (s *session) describeBatch(ctx context.Context, stmts []batchStmt) (sent bool, err error) {
	var (
		todo []int          // the first statement of each text to describe
		text map[string]int // a text's index in todo
	)
	for i := range stmts {
		st := &stmts[i]
		if st.d = s.lookup(st.sql); st.d != nil {
			continue
		}
		if _, dup := text[st.sql]; dup {
			continue
		}
		if text == nil {
			text = make(map[string]int)
		}
		text[st.sql] = len(todo)
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return false, nil
	}
	names := make([]string, len(todo))
	descs := make([]*stmtDesc, len(todo))
	errs := make([]error, len(todo))
	s.framer.Pipelined(true)
	p := s.pg.StartPipeline(ctx)
	for k, i := range todo {
		if !s.batchPooled() && s.named(stmts[i].opts.naming) {
			names[k] = s.stmts.nextName()
		}
		p.SendPrepare(names[k], stmts[i].sql, nil)
		p.SendPipelineSync()
	}
	fatal := p.Flush()
	for k, i := range todo {
		if fatal != nil {
			break
		}
		res, err := p.GetResults()
		if err == nil {
			if sd, ok := res.(*pgconn.StatementDescription); ok {
				// A pipeline's description lacks what Prepare fills in.
				sd.Name, sd.SQL = names[k], stmts[i].sql
				descs[k] = &stmtDesc{sql: stmts[i].sql, sd: sd, changesSession: changesSession(stmts[i].sql)}
			} else {
				err = fmt.Errorf("pgpurepy: batch: got %T for a description", res)
			}
		}
		if err != nil && !isServerError(err) {
			fatal = err
			break
		}
		syncErr, ferr := pipelineSync(p)
		if err == nil {
			err = syncErr
		}
		if err != nil {
			descs[k], errs[k] = nil, err
		}
		fatal = ferr
	}
	if err := p.Close(); fatal == nil && err != nil && !isServerError(err) {
		fatal = err
	}
	s.framer.Pipelined(false)
	for k := range todo {
		if descs[k] == nil && names[k] != "" && s.cancel.fired.Load() {
			// The server may have prepared it before the cancel landed.
			s.drops = append(s.drops, names[k])
		}
	}
	if fatal != nil {
		for _, d := range descs {
			if d != nil {
				s.drop(d)
			}
		}
		return true, fatal
	}
	if err := s.keepDescs(ctx, descs); err != nil {
		return true, err
	}
	for i := range stmts {
		if st := &stmts[i]; st.d == nil {
			k := text[st.sql]
			st.d, st.err = descs[k], errs[k]
		}
	}
	return true, nil
}

// keepDescs plans the decoding of new descriptions and puts them in the
// statement cache once their tables' nullability is known. When it cannot
// be learnt now, the batch uses them once, and named ones are
// deallocated.
func (s *session) keepDescs(ctx context.Context, descs []*stmtDesc) error {
	var tables []uint32
	for _, d := range descs {
		if d == nil {
			continue
		}
		d.plan(&s.codecs)
		for _, t := range s.sh.nulls.unknownTables(d.sd.Fields) {
			if !slices.Contains(tables, t) {
				tables = append(tables, t)
			}
		}
	}
	keep := true
	if len(tables) > 0 {
		if s.pg.TxStatus() == 'E' || ctx.Err() != nil {
			// A failed transaction cannot read the catalog, and a batch
			// whose context ended sends nothing more.
			keep = false
		} else if err := s.learnNullability(ctx, tables); err != nil {
			for _, d := range descs {
				if d != nil {
					s.drop(d)
				}
			}
			return err
		}
	}
	for _, d := range descs {
		switch {
		case d == nil:
		case keep:
			if old := s.stmts.put(d); old != nil {
				s.drop(old)
			}
		default:
			s.drop(d)
		}
	}
	return nil
}

// encodeBatch encodes the arguments of every statement that has a
// description, all before anything is sent, into one buffer. An argument
// that does not encode, or a count of arguments a statement does not take,
// gives a *BatchError naming the statement.
func (s *session) encodeBatch(stmts []batchStmt) error {
	e := newBatchEncoder(stmts)
	for i := range stmts {
		if stmts[i].d == nil {
			continue
		}
		if err := e.encode(s, &stmts[i]); err != nil {
			return &BatchError{Index: i, Err: err}
		}
	}
	return nil
}

// batchEncoder encodes the arguments of a batch's statements into shared
// slices and one buffer: a batch of small statements costs a few
// allocations, not several per statement.
type batchEncoder struct {
	values  [][]byte
	formats []int16
	p       params
}

func newBatchEncoder(stmts []batchStmt) *batchEncoder {
	total := 0
	for i := range stmts {
		total += len(stmts[i].args)
	}
	return &batchEncoder{values: make([][]byte, 0, total), formats: make([]int16, 0, total)}
}

// encode encodes the arguments of st, which has a description. An error
// leaves st unencoded and the encoder ready for the next statement.
func (e *batchEncoder) encode(s *session, st *batchStmt) error {
	s.dirty = s.dirty || st.d.changesSession
	n := len(st.args)
	if n != len(st.d.sd.ParamOIDs) {
		return fmt.Errorf("pgpurepy: statement has %d parameters but %d arguments were given", len(st.d.sd.ParamOIDs), n)
	}
	// Each statement's values and formats are the next n entries of the
	// shared slices, its bytes the next ones of the shared buffer (a new
	// one when it grows; the earlier values keep the old).
	p := &e.p
	p.values = e.values[len(e.values) : len(e.values) : len(e.values)+n]
	p.formats = e.formats[len(e.formats) : len(e.formats) : len(e.formats)+n]
	p.buf = p.buf[len(p.buf):]
	if err := p.encode(&s.codecs, st.d.sd.ParamOIDs, st.args); err != nil {
		return err
	}
	st.values, st.formats = p.values, p.formats
	e.values, e.formats = e.values[:len(e.values)+n], e.formats[:len(e.formats)+n]
	return nil
}

// guardCursor is the cursor that tells the statements of a batch that
// carries its transaction's BEGIN whether the transaction began.
const guardCursor = "pgpurepy_batch_guard"

// execBatch sends every described statement in one write, each with its
// own Sync, and reads the results in order. The statements it could not
// read a result for (the connection failed) get the connection's error.
//
// When the write carries the transaction's BEGIN (begins), each statement
// after the first is guarded: were the BEGIN refused, or cancelled as it
// ran, the server would run the statements after the first, each behind
// its own Sync, outside any transaction, and commit them one by one. So
// the first statement's part also declares a cursor, which only a
// transaction block keeps past its Sync, and each later part starts by
// moving it by nothing: where the transaction did not begin, that fails,
// and the server skips the statement. A MOVE costs the server next to
// nothing, and the batch still takes one write and one round trip.
func (c *conn) execBatch(ctx context.Context, stmts []batchStmt, begins bool) {
	sending := 0
	for i := range stmts {
		if stmts[i].err == nil {
			sending++
		}
	}
	if sending == 0 {
		return // every statement failed to be described
	}
	guard := begins && sending > 1
	s := c.s
	var alloc rowAlloc
	s.framer.Pipelined(true)
	defer s.framer.Pipelined(false)
	p := s.pg.StartPipeline(ctx)
	guarding := false
	for i := range stmts {
		st := &stmts[i]
		if st.err != nil {
			continue
		}
		if guard {
			if st.guard = "MOVE 0 IN " + guardCursor; !guarding {
				st.guard, guarding = "DECLARE "+guardCursor+" CURSOR FOR SELECT", true
			}
			p.SendQueryParams(st.guard, nil, nil, nil, nil)
		}
		formats := st.d.resultFormats
		if f := st.opts.resultFormats(st.d.sd.Fields); f != nil {
			formats = f
		}
		if !s.batchPooled() && s.byName(st.d) {
			p.SendQueryStatement(st.d.sd, st.values, st.formats, formats)
		} else {
			p.SendQueryParams(st.sql, st.values, st.d.sd.ParamOIDs, st.formats, formats)
		}
		p.SendPipelineSync()
	}
	fatal := p.Flush()
	for i := range stmts {
		st := &stmts[i]
		if st.err != nil {
			continue
		}
		if fatal == nil {
			fatal = c.readBatchResult(p, st, &alloc)
			if st.multiplexed {
				st.ended = time.Now()
			}
		}
		if fatal != nil && st.err == nil {
			st.err, st.lost = fatal, true
		}
	}
	if err := p.Close(); fatal == nil && err != nil && !isServerError(err) {
		// Every statement had its result; the connection failed after.
		for i := range stmts {
			if stmts[i].err == nil {
				stmts[i].err, stmts[i].lost = err, true
			}
		}
	}
}

// readBatchResult reads the result of st and the Sync that ends it. It
// returns an error only when the connection failed.
func (c *conn) readBatchResult(p *pgconn.Pipeline, st *batchStmt, alloc *rowAlloc) (fatal error) {
	if st.guard != "" {
		err := readGuard(p, st)
		if err != nil && !isServerError(err) {
			return err
		}
		if err != nil {
			// The server skipped the statement up to its Sync.
			_, fatal := pipelineSync(p)
			st.err = err
			return fatal
		}
	}
	res, err := p.GetResults()
	switch rr := res.(type) {
	case *pgconn.ResultReader:
		err = c.readBatchRows(rr, st, alloc)
	case nil:
	default:
		err = fmt.Errorf("pgpurepy: batch: got %T for a statement's result", res)
	}
	if err != nil && !isServerError(err) && !errors.As(err, new(*DecodeError)) {
		return err
	}
	syncErr, fatal := pipelineSync(p)
	if err == nil {
		err = syncErr
	}
	st.err = err
	return fatal
}

// readGuard reads the result of st's guard (see execBatch) and returns
// the statement's error when the guard failed: the refused BEGIN's, for the
// first statement; 25P02 when an earlier statement failed the transaction,
// as the statement would have; otherwise an error saying the transaction
// did not begin.
func readGuard(p *pgconn.Pipeline, st *batchStmt) error {
	res, err := p.GetResults()
	if rr, ok := res.(*pgconn.ResultReader); ok {
		_, err = rr.Close()
	}
	switch {
	case err == nil && res == nil:
		return errors.New("pgpurepy: batch: no result for a statement's guard")
	case !isServerError(err), strings.HasPrefix(st.guard, "DECLARE"), isCode(err, "25P02"):
		return err
	}
	st.skipped = true
	return fmt.Errorf("pgpurepy: not run: the transaction did not begin: %w", err)
}

// readBatchRows decodes the rows of st's result, as the statement cache's
// description says unless the server described the result otherwise (see
// conn.query), and reads its end. A value that cannot be decoded is the
// statement's error, and the rest of the result is read off the wire.
func (c *conn) readBatchRows(rr *pgconn.ResultReader, st *batchStmt, alloc *rowAlloc) error {
	fields := rr.FieldDescriptions()
	cols, decs := st.d.columns, st.d.decoders
	st.fields, st.types = st.d.sd.Fields, st.d.types
	if len(fields) > 0 {
		st.stale = !sameTypes(fields, st.d.sd.Fields)
		if st.stale || st.opts.formats != nil || st.opts.formatsByOID != nil {
			cols, decs = make([]string, len(fields)), make([]decoder, len(fields))
			for i, f := range fields {
				cols[i], decs[i] = f.Name, c.s.codecs.decoderFor(f.DataTypeOID, f.Format)
			}
			if st.multiplexed {
				// pgconn reuses the fields' memory for the next result.
				st.fields = slices.Clone(fields)
				st.types = c.s.codecs.colTypes(st.fields)
			}
		}
	}
	st.cols = cols
	var decodeErr error
	first := len(alloc.ptrs)
	for rr.NextRow() {
		if decodeErr != nil {
			continue
		}
		raw := rr.Values()
		row := alloc.next(cols)
		for i, dec := range decs {
			v, err := dec(raw[i])
			if err != nil {
				r := &rows{c: c, fields: fields, columns: cols}
				decodeErr = r.decodeError(i, r.scanTypeName(i), err)
				break
			}
			row.values[i] = v
		}
	}
	if n := len(alloc.ptrs); n > first && decodeErr == nil {
		st.rows = alloc.ptrs[first:n:n]
	}
	tag, err := rr.Close()
	st.tag = tag
	if err != nil {
		return err
	}
	return decodeErr
}

// rowAlloc hands out the rows of a batch's results from chunks that double
// up to rowChunkMax rows, as Conn.Query allocates them: a batch of
// one-row results costs a few allocations, not two per statement. A Row
// the caller keeps keeps its chunk alive. ptrs holds every row handed out,
// in order, so that each statement's rows are a part of it.
type rowAlloc struct {
	ptrs  []*Row
	rows  []Row
	vals  []driver.Value
	chunk int
}

// next returns a new row with room for a value per column.
func (a *rowAlloc) next(cols []string) *Row {
	if len(a.rows) == 0 || len(a.vals) < len(cols) {
		a.chunk = min(max(a.chunk*2, 1), rowChunkMax)
		a.rows = make([]Row, a.chunk)
		a.vals = make([]driver.Value, a.chunk*len(cols))
	}
	row := &a.rows[0]
	*row = Row{columns: cols, values: a.vals[:len(cols):len(cols)]}
	a.rows, a.vals = a.rows[1:], a.vals[len(cols):]
	a.ptrs = append(a.ptrs, row)
	return row
}

// pipelineSync reads p up to the end of the current statement, its
// PipelineSync. It returns a server error met on the way, which is the
// statement's (a deferred constraint fails after the statement's end), and
// an error after which p is unusable.
func pipelineSync(p *pgconn.Pipeline) (stmtErr, fatal error) {
	for {
		res, err := p.GetResults()
		switch {
		case isServerError(err):
			if stmtErr == nil {
				stmtErr = err
			}
		case err != nil:
			return stmtErr, err
		case res == nil:
			return stmtErr, errors.New("pgpurepy: batch: results ended before a statement's Sync")
		default:
			switch r := res.(type) {
			case *pgconn.PipelineSync:
				return stmtErr, nil
			case *pgconn.ResultReader:
				_, _ = r.Close()
			}
		}
	}
}

// isServerError reports whether err is the server's error about one
// statement, after which the connection goes on.
func isServerError(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// settleBatch passes the batch's error through finish, once: the
// connection's error if it failed, else the first statement's. The
// statements whose error that was get what finish made of it; after a
// cancellation, so do all whose results did not arrive. It forgets the
// descriptions that went stale and returns the batch's error: nil, or a
// *BatchError naming the statement that failed first (the first cancelled
// one after a cancellation; one that did not merely fail because an
// earlier failure aborted the transaction).
func (s *session) settleBatch(ctx context.Context, stmts []batchStmt) error {
	cause, lost := firstFailed(stmts, true), true
	if cause < 0 {
		cause, lost = firstFailed(stmts, false), false
	}
	var err error
	if cause >= 0 {
		err = stmts[cause].err
	}
	ferr := s.finish(ctx, err)
	if ferr == nil {
		return nil
	}
	cancelled := ctx.Err() != nil && errors.Is(ferr, ctx.Err())
	index := -1
	for i := range stmts {
		st := &stmts[i]
		switch {
		case st.err == nil:
		case cancelled:
			// A server error of the statement's own stays; the others
			// are the cancellation's.
			if st.lost || st.skipped || isCode(st.err, "57014") {
				st.err, st.lost = ferr, true
			}
		case i == cause, lost && st.lost:
			st.err = ferr
		}
		if st.err != nil && isStaleStatement(st.err) && st.d != nil {
			if isCode(st.err, "26000") {
				s.nameLost(st.d)
			}
			st.stale = true
		}
		if st.stale {
			s.forget(st.sql)
		}
		switch {
		case st.err == nil:
		case cancelled:
			if index < 0 && st.lost {
				index = i
			}
		case index < 0 || isCode(stmts[index].err, "25P02") && !isCode(st.err, "25P02"):
			index = i
		}
	}
	if index < 0 {
		index = cause
	}
	return &BatchError{Index: index, Err: stmts[index].err}
}

// traceBatchStart tells the Tracer, if any, of each statement's start.
func (c *conn) traceBatchStart(ctx context.Context, stmts []batchStmt) {
	if c.sh.cfg.Tracer == nil {
		return
	}
	for i := range stmts {
		stmts[i].traceCtx = c.traceStart(ctx, stmts[i].sql, stmts[i].args)
	}
}

// traceBatchEnd tells the Tracer, if any, of each statement's end: its
// command tag and error, or the batch's error when none ran.
func (c *conn) traceBatchEnd(stmts []batchStmt, ran bool, err error) {
	if c.sh.cfg.Tracer == nil {
		return
	}
	for i := range stmts {
		st := &stmts[i]
		if ran {
			c.traceEnd(st.traceCtx, st.tag.String(), st.err)
		} else {
			c.traceEnd(st.traceCtx, "", err)
		}
	}
}
