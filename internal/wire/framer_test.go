package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

type txStatus byte

func (s txStatus) TxStatus() byte { return byte(s) }

// framerPipe returns a frontend reading through a framer from one end of an
// in-memory connection, and the other end, which plays the server.
func framerPipe(t *testing.T, status byte) (*pgproto3.Frontend, *Framer, net.Conn) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	f := NewFramer(client, client)
	f.Established(txStatus(status))
	return pgproto3.NewFrontend(f, client), f, server
}

func encodeAll(t *testing.T, msgs ...pgproto3.BackendMessage) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// serve writes b in chunks of random sizes, some splitting headers and some
// longer than the frontend's buffer.
func serve(t *testing.T, server net.Conn, b []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		for len(b) > 0 {
			n := min(len(b), 1+rand.IntN(20000))
			if rand.IntN(3) == 0 {
				n = min(len(b), 1+rand.IntN(7))
			}
			if _, err := server.Write(b[:n]); err != nil {
				done <- err
				return
			}
			b = b[n:]
		}
		done <- nil
	}()
	return done
}

func receive(t *testing.T, fe *pgproto3.Frontend) pgproto3.BackendMessage {
	t.Helper()
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFramerPassesMessagesWhole checks that whatever the chunking on the
// wire, the decoder gets every message intact, including ones longer than
// its buffer.
func TestFramerPassesMessagesWhole(t *testing.T) {
	fe, f, server := framerPipe(t, 'I')
	var want [][]byte
	var msgs []pgproto3.BackendMessage
	for i := range 300 {
		v := bytes.Repeat([]byte{byte(i)}, rand.IntN(100))
		if i%50 == 7 {
			v = bytes.Repeat([]byte{byte(i)}, 30000+rand.IntN(20000))
		}
		want = append(want, v)
		msgs = append(msgs, &pgproto3.DataRow{Values: [][]byte{v, nil}})
	}
	msgs = append(msgs, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 300")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	done := serve(t, server, encodeAll(t, msgs...))
	for i, v := range want {
		row, ok := receive(t, fe).(*pgproto3.DataRow)
		if !ok || len(row.Values) != 2 || !bytes.Equal(row.Values[0], v) || row.Values[1] != nil {
			t.Fatalf("message %d mangled", i)
		}
	}
	if _, ok := receive(t, fe).(*pgproto3.CommandComplete); !ok {
		t.Fatal("CommandComplete mangled")
	}
	if z, ok := receive(t, fe).(*pgproto3.ReadyForQuery); !ok || z.TxStatus != 'I' {
		t.Fatal("ReadyForQuery mangled")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.Buffered() {
		t.Fatal("framer holds bytes after the last message")
	}
}

// TestFramerInterrupt ends a statement whose answer stopped half-way through
// a message: the decoder gets a made-up 57014 and ReadyForQuery, skip then
// drops the real rest of the answer through its ReadyForQuery, and the next
// message comes through intact.
func TestFramerInterrupt(t *testing.T) {
	fe, f, server := framerPipe(t, 'T')
	row := encodeAll(t, &pgproto3.DataRow{Values: [][]byte{[]byte("first")}})
	done := serve(t, server, row)
	if _, ok := receive(t, fe).(*pgproto3.DataRow); !ok {
		t.Fatal("first row mangled")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Half a row, then silence.
	long := encodeAll(t, &pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("x"), 100)}})
	got := make(chan pgproto3.BackendMessage, 1)
	go func() {
		m, err := fe.Receive()
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	if _, err := server.Write(long[:40]); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		t.Fatalf("received %T from half a message", m)
	case <-time.After(50 * time.Millisecond):
	}
	f.Interrupt()
	e, ok := (<-got).(*pgproto3.ErrorResponse)
	if !ok || e.Code != "57014" {
		t.Fatalf("got %+v, want a made-up 57014", e)
	}
	if z, ok := receive(t, fe).(*pgproto3.ReadyForQuery); !ok || z.TxStatus != 'E' {
		t.Fatalf("got %+v, want ReadyForQuery E (inside a transaction)", z)
	}
	if _, err := fe.Receive(); !errors.Is(err, errAbandonedRead) {
		t.Fatalf("read before skip: %v, want errAbandonedRead", err)
	}

	_ = f.nc.SetReadDeadline(time.Time{})
	rest := encodeAll(t,
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "57014", Message: "canceling statement due to user request"},
		&pgproto3.ReadyForQuery{TxStatus: 'E'},
		&pgproto3.DataRow{Values: [][]byte{[]byte("next")}},
	)
	done = serve(t, server, append(long[40:], rest...))
	cancelled, status, err := f.Skip()
	if err != nil || !cancelled || status != 'E' {
		t.Fatalf("skip: cancelled %v, status %c, err %v", cancelled, status, err)
	}
	f.Settled()
	if r, ok := receive(t, fe).(*pgproto3.DataRow); !ok || string(r.Values[0]) != "next" {
		t.Fatalf("message after the skipped answer mangled: %+v", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFramerInvalidLength refuses a message length no server sends.
func TestFramerInvalidLength(t *testing.T) {
	fe, _, server := framerPipe(t, 'I')
	go func() { _, _ = server.Write([]byte{'D', 0, 0, 0, 2, 0, 0}) }()
	if _, err := fe.Receive(); err == nil {
		t.Fatal("invalid length accepted")
	}
}

// TestFramerCarriesBegin checks the deferred BEGIN: it goes out in the same
// write as the statement after it, its answer never reaches the decoder
// whatever the chunking, and a refused BEGIN is noted and passed on as the
// statement's error.
func TestFramerCarriesBegin(t *testing.T) {
	for i := range 50 {
		refused := i%5 == 4
		client, server := net.Pipe()
		f := NewFramer(client, client)
		f.Established(txStatus('I'))
		fe := pgproto3.NewFrontend(f, f)

		f.ArmBegin("BEGIN ISOLATION LEVEL SERIALIZABLE")
		fe.Send(&pgproto3.Bind{PreparedStatement: "s1"})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
		flushed := make(chan error, 1)
		go func() { flushed <- fe.Flush() }()
		buf := make([]byte, 1<<16)
		n, err := server.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
		be := pgproto3.NewBackend(bytes.NewReader(buf[:n]), nil)
		var got []string
		for {
			m, err := be.Receive()
			if err != nil {
				break
			}
			if p, ok := m.(*pgproto3.Parse); ok {
				got = append(got, "Parse "+p.Query)
				continue
			}
			got = append(got, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		}
		want := []string{"Parse BEGIN ISOLATION LEVEL SERIALIZABLE", "Bind", "Execute", "Bind", "Execute", "Sync"}
		if !slices.Equal(got, want) {
			t.Fatalf("one write carried %q, want %q", got, want)
		}

		var answer []pgproto3.BackendMessage
		if refused {
			answer = []pgproto3.BackendMessage{
				&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"},
				&pgproto3.ReadyForQuery{TxStatus: 'I'},
			}
		} else {
			answer = []pgproto3.BackendMessage{
				&pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
				&pgproto3.ParameterStatus{Name: "application_name", Value: "x"},
				&pgproto3.CommandComplete{CommandTag: []byte("BEGIN")},
				&pgproto3.BindComplete{},
				&pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("v"), rand.IntN(20000))}},
				&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
				&pgproto3.ReadyForQuery{TxStatus: 'T'},
			}
		}
		done := serve(t, server, encodeAll(t, answer...))
		var seen []string
		for {
			m := receive(t, fe)
			seen = append(seen, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
			if cc, ok := m.(*pgproto3.CommandComplete); ok && string(cc.CommandTag) != "SELECT 1" {
				t.Fatalf("the decoder got the BEGIN's CommandComplete %q", cc.CommandTag)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want = []string{"ParameterStatus", "BindComplete", "DataRow", "CommandComplete", "ReadyForQuery"}
		if refused {
			want = []string{"ErrorResponse", "ReadyForQuery"}
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("decoder got %q, want %q", seen, want)
		}
		if f.leadFailed != refused || f.leading {
			t.Fatalf("leadFailed %v, leading %v after a refused=%v BEGIN", f.leadFailed, f.leading, refused)
		}
		_ = client.Close()
		_ = server.Close()
	}
}

// TestFramerLeadOnlyBeforeExtended checks the guard: a deferred BEGIN in
// front of a simple query is refused rather than written.
func TestFramerLeadOnlyBeforeExtended(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	f := NewFramer(client, client)
	f.ArmBegin("BEGIN")
	b, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
	if _, err := f.Write(b); !errors.Is(err, errLeadSimple) {
		t.Fatalf("Write of a simple query after a lead: %v, want errLeadSimple", err)
	}
	if f.lead != nil || f.leading {
		t.Fatal("the refused lead is still armed")
	}
}

// TestFramerInterruptPipeline interrupts a pipeline of three statements,
// each with its Sync, in the second one's answer: the decoder gets a
// made-up end for the second and, being in pipeline mode, another for the
// third instead of an error; Skip then drops both real ends, and the next
// message comes through intact.
func TestFramerInterruptPipeline(t *testing.T) {
	fe, f, server := framerPipe(t, 'I')
	f.Pipelined(true)
	segment := func(v string) []byte {
		return encodeAll(t, &pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte(v)}},
			&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	first, second, third := segment("one"), segment("two"), segment("three")
	done := serve(t, server, first)
	for {
		if _, ok := receive(t, fe).(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The second answer's first message, and the start of the next, in
	// one write that one read takes whole.
	wrote := make(chan error, 1)
	go func() {
		_, err := server.Write(second[:10])
		wrote <- err
	}()
	if _, ok := receive(t, fe).(*pgproto3.BindComplete); !ok {
		t.Fatal("BindComplete mangled")
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	f.Interrupt()
	for i := range 2 {
		if e, ok := receive(t, fe).(*pgproto3.ErrorResponse); !ok || e.Code != "57014" {
			t.Fatalf("end %d: got %+v, want a made-up 57014", i, e)
		}
		if _, ok := receive(t, fe).(*pgproto3.ReadyForQuery); !ok {
			t.Fatalf("end %d: no made-up ReadyForQuery", i)
		}
	}
	f.Pipelined(false)
	if _, err := fe.Receive(); !errors.Is(err, errAbandonedRead) {
		t.Fatalf("read after the pipeline: %v, want errAbandonedRead", err)
	}
	if !f.Owed() || f.owed != 2 {
		t.Fatalf("owed %d, want the real ends of the 2 statements ended with made-up ones", f.owed)
	}

	_ = f.nc.SetReadDeadline(time.Time{})
	rest := append(append(second[10:], third...), encodeAll(t, &pgproto3.DataRow{Values: [][]byte{[]byte("next")}})...)
	done = serve(t, server, rest)
	cancelled, status, err := f.Skip()
	if err != nil || cancelled || status != 'I' {
		t.Fatalf("skip: cancelled %v, status %c, err %v", cancelled, status, err)
	}
	f.Settled()
	if r, ok := receive(t, fe).(*pgproto3.DataRow); !ok || string(r.Values[0]) != "next" {
		t.Fatalf("message after the skipped answers mangled: %+v", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFramerFailsInterruptedCopy checks that the CopyDone pgconn sends to
// end an interrupted COPY FROM STDIN goes out as a CopyFail, so that the
// server aborts the copy instead of committing the rows sent so far, and
// that a CopyDone without an interrupt goes out as it is.
func TestFramerFailsInterruptedCopy(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		client, server := net.Pipe()
		f := NewFramer(client, client)
		f.Established(txStatus('I'))
		fe := pgproto3.NewFrontend(f, f)
		if interrupted {
			f.Interrupt()
		}
		fe.Send(&pgproto3.CopyDone{})
		flushed := make(chan error, 1)
		go func() { flushed <- fe.Flush() }()
		be := pgproto3.NewBackend(server, nil)
		m, err := be.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if err := <-flushed; err != nil {
			t.Fatalf("flush: %v", err)
		}
		switch m := m.(type) {
		case *pgproto3.CopyFail:
			if !interrupted || m.Message != abandonedMessage {
				t.Fatalf("interrupted %v: the server got CopyFail %q", interrupted, m.Message)
			}
		case *pgproto3.CopyDone:
			if interrupted {
				t.Fatal("an interrupted copy was ended with CopyDone")
			}
		default:
			t.Fatalf("the server got %T", m)
		}
		_ = client.Close()
		_ = server.Close()
	}
}

// TestFramerSkipTellsCopyFailFromCancel checks that the 57014 with which
// the server answers a CopyFail does not count as a spent cancel request.
func TestFramerSkipTellsCopyFailFromCancel(t *testing.T) {
	for _, routine := range []string{"ProcessInterrupts", CopyFailRoutine} {
		fe, f, server := framerPipe(t, 'I')
		rest := encodeAll(t,
			&pgproto3.ErrorResponse{Severity: "ERROR", Code: "57014", Message: "m", Routine: routine},
			&pgproto3.ReadyForQuery{TxStatus: 'I'},
		)
		got := make(chan error, 1)
		go func() {
			_, err := fe.Receive()
			got <- err
		}()
		// The start of the answer, taken by the framer, then silence.
		if _, err := server.Write(rest[:1]); err != nil {
			t.Fatal(err)
		}
		f.Interrupt()
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if _, ok := receive(t, fe).(*pgproto3.ReadyForQuery); !ok {
			t.Fatal("no made-up ReadyForQuery")
		}
		_ = f.nc.SetReadDeadline(time.Time{})
		done := serve(t, server, rest[1:])
		cancelled, _, err := f.Skip()
		if err != nil {
			t.Fatal(err)
		}
		if want := routine != CopyFailRoutine; cancelled != want {
			t.Fatalf("routine %s: cancelled %v, want %v", routine, cancelled, want)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
