package pgpurepy

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

type txStatus byte

func (s txStatus) TxStatus() byte { return byte(s) }

// framerPipe returns a frontend reading through a framer from one end of an
// in-memory connection, and the other end, which plays the server.
func framerPipe(t *testing.T, status byte) (*pgproto3.Frontend, *framer, net.Conn) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	f := newFramer(client, client)
	f.pg = txStatus(status)
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
	if f.buffered() {
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
	f.interrupt()
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
	cancelled, status, err := f.skip()
	if err != nil || !cancelled || status != 'E' {
		t.Fatalf("skip: cancelled %v, status %c, err %v", cancelled, status, err)
	}
	f.settled()
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
