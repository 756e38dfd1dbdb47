//go:build unix

package wire

import (
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, closed when tb
// ends. peek looks at a socket, so a net.Pipe would not do.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return client, server
}

// TestPeek covers the three answers of a checkout's look at the socket:
// nothing pending, bytes pending (left unread), and closed by the peer.
func TestPeek(t *testing.T) {
	client, server := tcpPair(t)
	pk := NewPeeker(client)
	if pending, err := pk.Peek(); pending || err != nil {
		t.Fatalf("idle socket: pending %v, err %v", pending, err)
	}
	if _, err := server.Write([]byte("E")); err != nil {
		t.Fatal(err)
	}
	waitPeek(t, pk, func(pending bool, err error) bool { return pending && err == nil })
	// The byte is still there for pgconn to read.
	buf := make([]byte, 1)
	if n, err := client.Read(buf); n != 1 || err != nil || buf[0] != 'E' {
		t.Fatalf("read after peek: %d %q %v", n, buf[:n], err)
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	waitPeek(t, pk, func(pending bool, err error) bool { return err != nil })
}

// waitPeek peeks until ok accepts the answer: loopback delivery is quick
// but not synchronous with the peer's Write or Close.
func waitPeek(t *testing.T, pk *Peeker, ok func(bool, error) bool) {
	t.Helper()
	var pending bool
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if pending, err = pk.Peek(); ok(pending, err) {
			return
		}
	}
	t.Fatalf("last peek: pending %v, err %v", pending, err)
}

// BenchmarkPeek is the checkout's look at an idle socket: one syscall,
// which on a virtual machine costs more than the rest of a checkout.
func BenchmarkPeek(b *testing.B) {
	client, _ := tcpPair(b)
	pk := NewPeeker(client)
	b.ReportAllocs()
	for b.Loop() {
		if pending, err := pk.Peek(); pending || err != nil {
			b.Fatal(pending, err)
		}
	}
}
