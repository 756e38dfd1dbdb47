package sqltest

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// shared is the server Main started.
var shared struct {
	mu     sync.Mutex // protects server
	server *Server
}

// Main is the TestMain helper that gives a test package one server:
//
//	func TestMain(m *testing.M) { sqltest.Main(m) }
//
// It starts a server with Start (progress lines go to stderr), runs the
// tests, prints the server log to stderr when they failed, stops the server
// and removes its directory, and exits with the tests' exit code. When no
// server can be started it prints the reason and exits with code 1 without
// running the tests. If a test panics, the process ends at once; sqltest's
// watchdog process then stops the server and removes its directory.
func Main(m *testing.M) {
	os.Exit(runMain(m, os.Stderr))
}

func runMain(m interface{ Run() int }, stderr io.Writer) (code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	s, err := Start(ctx, Options{Progress: stderr})
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	shared.mu.Lock()
	prev := shared.server
	shared.server = s
	shared.mu.Unlock()

	finished := false
	defer func() {
		if !finished || code != 0 {
			if log := s.Log(); log != "" {
				fmt.Fprintf(stderr, "sqltest: server log:\n%s\n", tail(log, 64<<10))
			}
		}
		shared.mu.Lock()
		shared.server = prev
		shared.mu.Unlock()
		if err := s.Close(); err != nil {
			fmt.Fprintln(stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}()
	code = m.Run()
	finished = true
	return code
}

// tail returns the last n bytes of s, from a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return "...\n" + s[i+1:]
		}
	}
	return s
}

// Shared returns the server started by Main. It fails t with t.Fatalf when
// Main is not this package's TestMain (or has finished).
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	s := shared.server
	shared.mu.Unlock()
	if s == nil {
		t.Fatalf("sqltest: no shared server: call sqltest.Main(m) from TestMain")
	}
	return s
}

// DB creates a fresh database on the server started by Main, drops it when
// the test ends, and returns its DSN. It is Shared(t).NewDatabase(t) and
// fails the test the same ways.
func DB(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}
