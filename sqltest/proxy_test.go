package sqltest_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// proxyDSN returns dsn with its host and port replaced by the proxy's.
func proxyDSN(dsn string, s *sqltest.Server, p *sqltest.Proxy) string {
	return strings.Replace(dsn, net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())), p.Addr(), 1)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProxy(t *testing.T) {
	t.Parallel()
	s := sqltest.Shared(t)
	p, err := sqltest.NewProxy(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Host() != "127.0.0.1" || p.Port() == 0 || p.Addr() != net.JoinHostPort(p.Host(), strconv.Itoa(p.Port())) {
		t.Fatalf("address %s %s %d", p.Addr(), p.Host(), p.Port())
	}
	dsn := proxyDSN(sqltest.DB(t), s, p)
	conn := connect(t, dsn)
	if got := queryValue(t, conn, "SELECT 41 + 1"); got != "42" {
		t.Fatalf("through proxy: %q", got)
	}
	if n := p.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1", n)
	}

	t.Run("pause and resume", func(t *testing.T) {
		p.Pause()
		done := make(chan string, 1)
		go func() {
			v, err := tryQueryValue(context.Background(), conn, "SELECT 'after pause'")
			if err != nil {
				v = err.Error()
			}
			done <- v
		}()
		select {
		case v := <-done:
			t.Fatalf("query finished while paused: %q", v)
		case <-time.After(300 * time.Millisecond):
		}
		p.Resume()
		select {
		case v := <-done:
			if v != "after pause" {
				t.Fatalf("after resume: %q", v)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("query did not finish after Resume")
		}
	})

	t.Run("latency", func(t *testing.T) {
		p.SetLatency(100 * time.Millisecond)
		start := time.Now()
		queryValue(t, conn, "SELECT 1")
		p.SetLatency(0)
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("round trip took %v with 100ms latency each way", d)
		}
	})

	t.Run("cut", func(t *testing.T) {
		p.Cut()
		if _, err := tryQueryValue(testContext(t), conn, "SELECT 1"); err == nil {
			t.Fatal("query succeeded on a cut connection")
		}
		waitFor(t, "no connections", func() bool { return p.Connections() == 0 })
		c2 := connect(t, dsn) // new connections are accepted
		queryValue(t, c2, "SELECT 1")
	})

	t.Run("refuse", func(t *testing.T) {
		p.Refuse(true)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c, err := pgconn.Connect(ctx, dsn); err == nil {
			c.Close(ctx)
			t.Fatal("connected while refusing")
		}
		p.Refuse(false)
		queryValue(t, connect(t, dsn), "SELECT 1")
	})

	t.Run("close while paused", func(t *testing.T) {
		c := connect(t, dsn)
		p.Pause()
		errc := make(chan error, 1)
		go func() {
			_, err := tryQueryValue(context.Background(), c, "SELECT 1")
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		if err := p.Close(); err != nil { // waits for every pump goroutine
			t.Fatal(err)
		}
		if err := <-errc; err == nil {
			t.Error("query succeeded through a closed proxy")
		}
		if n := p.Connections(); n != 0 {
			t.Errorf("Connections() after Close = %d", n)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}
