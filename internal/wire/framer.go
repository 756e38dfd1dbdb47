// Package wire holds what pgpurepy adds under pgconn's protocol decoder: the
// Framer, which frames the backend's messages so that a statement can end at
// its caller's deadline without losing the connection and which carries a
// transaction's deferred BEGIN, and the Peeker, which looks at an idle
// connection's socket without reading it. It knows nothing of the pool, of
// sessions or of database/sql, and its tests need no server.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Framer sits between pgconn's socket and its protocol decoder (it is built
// by pgconn.Config.BuildFrontend, and the frontend writes through it too). It
// hands the decoder whole backend messages only, keeping back the start of a
// message that arrived in pieces, so whenever it waits on the socket the
// decoder holds nothing half-read.
//
// That is what lets a statement end at its caller's deadline and still keep
// the connection: after Interrupt, a read that would wait on the server
// returns a made-up ErrorResponse (57014) and ReadyForQuery instead. pgconn
// ends the statement as it would any failed one and stays usable; the
// server's real answer, still on its way, is read and dropped by Skip before
// the connection serves again. An interrupted COPY FROM STDIN, which pgconn
// ends with CopyDone, is failed instead (see failCopy), so that the server
// never commits data the interrupt cut short.
//
// It also carries a transaction's deferred BEGIN (ArmBegin): it writes the
// BEGIN in front of the next extended-protocol write and takes the BEGIN's
// answer out of what the decoder reads.
//
// Interrupt may be called from any goroutine; every other method is called
// by the goroutine that uses the connection (pgconn's, or a recovery's).
// The one overlap is pgconn's CopyFrom, which writes the data from a
// goroutine of its own while it reads: Write and Read share only atomics
// then, and lead, which no COPY arms.
type Framer struct {
	r  io.Reader
	nc net.Conn
	// pg is the connection being framed (a *pgconn.PgConn), set once it is
	// established; Read asks it for the transaction status to put in a
	// made-up ReadyForQuery.
	pg TxStatuser

	// held is what was read from r and not handed out yet; buf backs it.
	held []byte
	buf  []byte
	// rest is how much of a message already partly handed out is still in
	// held (only a message longer than the decoder's buffer is split).
	rest int
	// made is the made-up messages still to hand out.
	made []byte
	// owed counts the real ReadyForQuery messages still to come for
	// statements that were ended with made-up ones.
	owed int
	// pipelined is set while pgconn runs a pipeline (see Pipelined).
	pipelined bool

	// lead, when set, is a transaction's deferred BEGIN (see ArmBegin),
	// encoded as Parse, Bind and Execute of the unnamed statement without a
	// Sync. The next Write sends it in front of pgconn's messages, in the
	// same write.
	lead []byte
	// leading is set from then until the BEGIN's answer (ParseComplete,
	// BindComplete, CommandComplete) has been taken out of what Read hands
	// out: pgconn expects its own statement's answer only. leadFailed is
	// set when the server answered the BEGIN with an error instead; that
	// error is the statement's, and the server skipped the statement.
	// leadUnseen is set when an interrupt came before the BEGIN's answer.
	leading    bool
	leadFailed bool
	leadUnseen bool
	// wbuf joins lead and a write; it is kept only while small.
	wbuf []byte
	// leadMsgs is the encoding of the BEGIN text leadSQL.
	leadSQL  string
	leadMsgs []byte

	// startup, when set, sees each message handed out until the
	// connection is established (see OnStartup).
	startup func(typ byte, body []byte)

	interrupted atomic.Bool
	// writing is set while pgconn writes to the socket through Write.
	writing atomic.Bool
}

// TxStatuser is what the Framer needs of the connection it frames: its
// transaction status as of the last ReadyForQuery (*pgconn.PgConn has it).
type TxStatuser interface{ TxStatus() byte }

// errAbandonedRead is what a read gets while the real end of an abandoned
// statement has not been skipped: using the connection then would mix two
// statements' answers, so pgconn closes it instead.
var errAbandonedRead = errors.New("pgpurepy: read on a connection whose cancelled statement was not drained")

// abandonedMessage is the message of the made-up 57014 error. The driver
// never shows it to a caller whose context ended: that caller gets its
// context's error.
const abandonedMessage = "statement abandoned by pgpurepy: the caller stopped waiting and the server was asked to cancel it"

// framerBufSize is the size of the buffer that holds the start of a
// message between reads. A longer message grows it to its own length for
// as long as the message is held; above KeepBufMax the buffer is dropped
// once the message has been handed out.
const framerBufSize = 8192

// KeepBufMax is the largest buffer a connection keeps after the message or
// the arguments it was grown for, so that one large value does not pin its
// size in every connection for the connection's life.
const KeepBufMax = 1 << 20

// NewFramer returns a Framer that reads the backend's messages from r, the
// connection nc as pgconn built it (with TLS, if any), and writes to nc.
func NewFramer(r io.Reader, nc net.Conn) *Framer {
	return &Framer{r: r, nc: nc}
}

// Conn returns the connection the Framer writes to.
func (f *Framer) Conn() net.Conn { return f.nc }

// OnStartup has fn see every message handed to the decoder (its type and
// body) until Established: the authentication requests, for one.
func (f *Framer) OnStartup(fn func(typ byte, body []byte)) { f.startup = fn }

// Established tells the Framer that the connection pg is established: the
// startup hook is done, and made-up ends take their transaction status from
// pg.
func (f *Framer) Established(pg TxStatuser) { f.pg, f.startup = pg, nil }

// writeStall is how long a write may go on after its statement was
// interrupted. A write normally ends in microseconds, into the socket's
// buffer, and the connection is kept; one that has not ended by then (a
// statement or arguments larger than the buffers, to a server or network
// that does not take them) cannot be ended cleanly: it fails, and pgconn
// closes the connection so that the caller is not held.
const writeStall = 100 * time.Millisecond

// Interrupt makes the statement in progress end at the next read that would
// wait on the server, and wakes a read already waiting; a write in progress
// gets writeStall to finish. The connection must go through Skip (when Owed)
// and Settled before it serves again.
func (f *Framer) Interrupt() {
	f.interrupted.Store(true)
	now := time.Now()
	_ = f.nc.SetReadDeadline(now)
	if f.writing.Load() {
		_ = f.nc.SetWriteDeadline(now.Add(writeStall))
	}
}

// Write writes to the socket for pgconn, where Interrupt can bound it. Each
// side sets its flag before it looks at the other's, so that a write that
// starts as interrupt runs is bounded by one of them. The deadline outlives
// the write; the recovery that follows every interrupt resets it.
func (f *Framer) Write(b []byte) (int, error) {
	f.writing.Store(true)
	defer f.writing.Store(false)
	if f.interrupted.Load() {
		_ = f.nc.SetWriteDeadline(time.Now().Add(writeStall))
		if isCopyDone(b) {
			return f.failCopy(b)
		}
	}
	if f.lead == nil {
		return f.nc.Write(b)
	}
	return f.writeLead(b)
}

// copyDone is the CopyDone message, which pgconn writes on its own to end
// the data of a COPY FROM STDIN.
var copyDone = []byte{'c', 0, 0, 0, 4}

func isCopyDone(b []byte) bool { return string(b) == string(copyDone) }

// CopyFailRoutine is the server function that reports a CopyFail: its error
// has the SQLSTATE of a cancelled statement, 57014, but it answers the
// client's abort, not a cancel request.
const CopyFailRoutine = "CopyGetData"

// failCopy writes a CopyFail in place of the CopyDone b, which pgconn sends
// to end a COPY FROM STDIN also when the error that ended it was made up by
// an interrupt. The data sent until then may end between two rows, and the
// server would commit it as a whole copy; the CopyFail makes the server
// abort it instead. It reports b written.
func (f *Framer) failCopy(b []byte) (int, error) {
	msg, _ := (&pgproto3.CopyFail{Message: abandonedMessage}).Encode(nil)
	if _, err := f.nc.Write(msg); err != nil {
		return 0, err
	}
	return len(b), nil
}

// errLeadSimple guards the deferred BEGIN's one rule: it may only precede
// extended-protocol messages, which pgconn ends with a Sync. After a simple
// Query a failed BEGIN would leave the server waiting for that Sync.
var errLeadSimple = errors.New("pgpurepy: internal error: deferred BEGIN before a simple query")

// ArmBegin makes the BEGIN text sql the lead of the next write, which must
// be of the extended protocol: pgconn ends it with a Sync, so the server
// runs the BEGIN and the statement in one round trip, and skips the
// statement if the BEGIN fails. DisarmBegin must follow the calls that may
// write. The last text's encoding is kept: a connection's transactions
// mostly begin alike.
func (f *Framer) ArmBegin(sql string) {
	if sql != f.leadSQL {
		b, _ := (&pgproto3.Parse{Query: sql}).Encode(nil)
		b, _ = (&pgproto3.Bind{}).Encode(b)
		f.leadMsgs, _ = (&pgproto3.Execute{}).Encode(b)
		f.leadSQL = sql
	}
	f.lead = f.leadMsgs
}

// DisarmBegin ends what ArmBegin started and reports whether the BEGIN
// went out; it did not when nothing was written (an argument that did not
// encode), and then it must be armed again for the next statement.
func (f *Framer) DisarmBegin() (sent bool) {
	if f.lead != nil {
		f.lead = nil
		return false
	}
	return true
}

// BeginFailed reports, once, that the server answered the last BEGIN the
// Framer carried with an error. That error was the carrying statement's,
// and the server skipped the statement.
func (f *Framer) BeginFailed() bool {
	failed := f.leadFailed
	f.leadFailed = false
	return failed
}

// BeginUnseen reports, once, that the last interrupt came before the
// answer to the BEGIN the Framer carried: whether the BEGIN ran shows in
// the transaction status that Skip reports.
func (f *Framer) BeginUnseen() bool {
	unseen := f.leadUnseen
	f.leadUnseen = false
	return unseen
}

// writeLead writes the lead and b in one write and starts looking for the
// BEGIN's answer. It reports what it wrote of b.
func (f *Framer) writeLead(b []byte) (int, error) {
	switch b[0] {
	case 'P', 'B', 'D', 'C', 'S', 'H':
	default:
		f.lead = nil
		return 0, errLeadSimple
	}
	f.wbuf = append(append(f.wbuf[:0], f.lead...), b...)
	lead := len(f.lead)
	f.lead, f.leading, f.leadFailed = nil, true, false
	n, err := f.nc.Write(f.wbuf)
	if cap(f.wbuf) > framerBufSize {
		f.wbuf = nil
	}
	return max(0, n-lead), err
}

// dropLeadAnswer takes the BEGIN's answer out of p, whole messages but for
// possibly the start of one longer than p, and returns how much is left.
// Messages that are not the answer (a notice, a parameter status, a
// notification) stay where they are.
func (f *Framer) dropLeadAnswer(p []byte) int {
	w := 0
	for r := 0; r < len(p); {
		l := min(messageLen(p[r:]), len(p)-r)
		drop := false
		if f.leading {
			switch p[r] {
			case '1', '2':
				drop = true
			case 'C':
				drop, f.leading = true, false
			case 'E', 'Z':
				f.leading, f.leadFailed = false, p[r] == 'E'
			}
		}
		if !drop {
			w += copy(p[w:], p[r:r+l])
		}
		r += l
	}
	return w
}

// Buffered reports whether bytes wait that the decoder has not seen.
func (f *Framer) Buffered() bool { return len(f.held) > 0 || len(f.made) > 0 }

// Owed reports whether statements ended with made-up answers whose real
// ones Skip must still read: the error the caller got was the Framer's.
func (f *Framer) Owed() bool { return f.owed > 0 }

// Read hands out whole messages, without the answer to a deferred BEGIN.
func (f *Framer) Read(p []byte) (int, error) {
	for {
		piece := f.rest > 0
		n, err := f.read(p)
		if n > 0 && f.leading && !piece {
			if n = f.dropLeadAnswer(p[:n]); n == 0 {
				continue
			}
		}
		if n > 0 && f.startup != nil && !piece {
			for b := p[:n]; len(b) >= 5 && messageLen(b) <= len(b); b = b[messageLen(b):] {
				f.startup(b[0], b[5:messageLen(b)])
			}
		}
		return n, err
	}
}

// read hands out whole messages, reading from the socket straight into p
// when nothing is held.
func (f *Framer) read(p []byte) (int, error) {
	if f.owed > 0 && len(f.made) == 0 {
		if !f.pipelined {
			return 0, errAbandonedRead
		}
		// What is held belongs to the ends Skip drops.
		f.makeEnd()
	}
	for {
		if len(f.made) > 0 {
			n := copy(p, f.made)
			f.made = f.made[n:]
			return n, nil
		}
		n, err := f.handOut(p)
		if n > 0 || err != nil {
			return n, err
		}
		// held holds at most the start of one message: the next byte the
		// decoder needs would come from the server.
		if f.interrupted.Load() {
			f.makeEnd()
			continue
		}
		if need := f.needed(); need > len(p) {
			// A message longer than p: gather it whole, then hand it out
			// in pieces.
			if err := f.fill(need); err != nil && !f.woken(err) {
				return 0, err
			}
			continue
		}
		k := copy(p, f.held)
		n, err = f.r.Read(p[k:])
		n += k
		end, ferr := completeUpTo(p[:n])
		if ferr != nil {
			return 0, ferr
		}
		f.hold(p[end:n])
		if end > 0 {
			// An error with the bytes comes back on the next read.
			return end, nil
		}
		if err != nil && !f.woken(err) {
			return 0, err
		}
	}
}

// handOut copies from held into p what the decoder may have: the rest of a
// split message, or as many whole messages as fit.
func (f *Framer) handOut(p []byte) (int, error) {
	if f.rest > 0 {
		n := copy(p, f.held[:f.rest])
		f.rest -= n
		f.take(n)
		return n, nil
	}
	n, err := completeUpTo(f.held)
	if err != nil || n == 0 {
		return 0, err
	}
	if n > len(p) {
		// The whole messages that fit; a first message longer than p goes
		// in pieces.
		if n, _ = completeUpTo(f.held[:len(p)]); n == 0 {
			n = len(p)
			f.rest = messageLen(f.held) - n
		}
	}
	copy(p, f.held[:n])
	f.take(n)
	return n, nil
}

// needed is the length of the message whose start is held, or a header's.
func (f *Framer) needed() int {
	if len(f.held) < 5 {
		return 5
	}
	return messageLen(f.held)
}

// woken reports whether err is the wake-up of Interrupt, after which Read
// ends the statement instead of failing.
func (f *Framer) woken(err error) bool {
	var ne net.Error
	return f.interrupted.Load() && errors.As(err, &ne) && ne.Timeout()
}

// makeEnd queues the made-up end of the interrupted statement. A statement
// inside a transaction leaves it failed, as the real cancel does.
func (f *Framer) makeEnd() {
	status := byte('I')
	if f.pg.TxStatus() != 'I' {
		status = 'E'
	}
	b, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "57014", Message: abandonedMessage}).Encode(nil)
	b, _ = (&pgproto3.ReadyForQuery{TxStatus: status}).Encode(b)
	f.made = b
	f.owed++
	// Skip drops the BEGIN's answer with the rest; whether the BEGIN ran
	// shows in the status the server reports last. A pipeline's later
	// made-up ends keep what the first one noted.
	f.leadUnseen, f.leading = f.leadUnseen || f.leading, false
}

// Skip reads and drops the real end of every statement ended by a made-up
// one, through its ReadyForQuery. It reports whether the server ended one
// with 57014 (the cancel request was spent on it; not the 57014 that
// answers a CopyFail) and the transaction status the server reported last.
// Its reads are bounded by the socket's deadline.
func (f *Framer) Skip() (cancelled bool, status byte, err error) {
	for f.owed > 0 {
		if err := f.fill(5); err != nil {
			return cancelled, status, err
		}
		l := messageLen(f.held)
		if l < 5 {
			return cancelled, status, fmt.Errorf("pgpurepy: invalid message length %d", l-1)
		}
		if err := f.fill(l); err != nil {
			return cancelled, status, err
		}
		switch body := f.held[5:l]; f.held[0] {
		case 'E':
			var e pgproto3.ErrorResponse
			if e.Decode(body) == nil && e.Code == "57014" && e.Routine != CopyFailRoutine {
				cancelled = true
			}
		case 'Z':
			if len(body) == 1 {
				status = body[0]
			}
			f.owed--
		}
		f.take(l)
	}
	return cancelled, status, nil
}

// Pipelined tells the Framer whether pgconn is in pipeline mode, where one
// write carries several Syncs and pgconn reads one ReadyForQuery for each.
// After an interrupt, each read pgconn makes for a ReadyForQuery it still
// waits for then gets a made-up end of its own, instead of an error that
// would close the connection: pgconn's pipeline ends as after so many
// failed statements, and Skip drops the same number of real ends, one for
// each Sync the server had not answered.
func (f *Framer) Pipelined(on bool) { f.pipelined = on }

// Settled ends the interruption once Skip has run.
func (f *Framer) Settled() { f.interrupted.Store(false) }

// fill reads until held has at least n bytes.
func (f *Framer) fill(n int) error {
	if cap(f.buf) < n {
		f.buf = make([]byte, max(n, framerBufSize))
		f.held = f.buf[:copy(f.buf, f.held)]
	}
	for len(f.held) < n {
		if cap(f.held)-len(f.held) < n-len(f.held) {
			f.held = f.buf[:copy(f.buf, f.held)]
		}
		m, err := f.r.Read(f.held[len(f.held):cap(f.held)])
		f.held = f.held[:len(f.held)+m]
		if err != nil && len(f.held) < n {
			return err
		}
	}
	return nil
}

// hold keeps b, the start of a message, for the next read.
func (f *Framer) hold(b []byte) {
	if f.buf == nil {
		f.buf = make([]byte, framerBufSize)
	}
	if len(b) > cap(f.buf) {
		f.buf = make([]byte, len(b))
	}
	f.held = f.buf[:copy(f.buf, b)]
}

// take drops the first n held bytes.
func (f *Framer) take(n int) {
	f.held = f.held[n:]
	switch {
	case len(f.held) > 0 || f.buf == nil:
	case cap(f.buf) > KeepBufMax:
		f.buf, f.held = nil, nil
	default:
		f.held = f.buf[:0]
	}
}

// messageLen is the length of the message b starts with, type byte
// included; b holds at least its header.
func messageLen(b []byte) int {
	return 1 + int(int32(binary.BigEndian.Uint32(b[1:5])))
}

// completeUpTo returns where the last whole message in b ends.
func completeUpTo(b []byte) (int, error) {
	end := 0
	for len(b)-end >= 5 {
		l := messageLen(b[end:])
		if l < 5 {
			return 0, fmt.Errorf("pgpurepy: invalid message length %d", l-1)
		}
		if len(b)-end < l {
			break
		}
		end += l
	}
	return end, nil
}
