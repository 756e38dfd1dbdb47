package sqltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the start of the shared server.
const startTimeout = 3 * time.Minute

// shared holds the server of the running Main.
var shared struct {
	mu   sync.Mutex  // protects lazy
	lazy *lazyServer // nil outside Main
}

// errMainOver is what Shared reports once Main's tests have finished.
var errMainOver = errors.New("sqltest: no shared server: sqltest.Main has finished")

// lazyServer is the shared server of one run of Main: started by the first
// test that asks for it, once, whatever the outcome.
type lazyServer struct {
	start func(context.Context) (*Server, error)

	// mu is held while the server starts, so that callers that come
	// meanwhile wait for it; it protects the following fields.
	mu      sync.Mutex
	started bool // start was called
	over    bool // Main's tests have finished: start no more
	server  *Server
	err     error
}

// get returns the server, starting it on the first call. Every call after a
// failed start returns the same error.
func (l *lazyServer) get() (*Server, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return nil, errMainOver
	}
	if !l.started {
		l.started = true
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		l.server, l.err = l.start(ctx)
		cancel()
		if l.err == nil && l.server == nil {
			l.err = errors.New("sqltest: no server started")
		}
	}
	return l.server, l.err
}

// finish ends the lazy server's life: later calls of get fail, and the
// server, if one was started, is returned for Main to stop.
func (l *lazyServer) finish() *Server {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.over = true
	return l.server
}

// Main is the TestMain helper that gives a test package one server:
//
//	func TestMain(m *testing.M) { sqltest.Main(m) }
//
// It runs the tests, and the first of them that calls [Shared] or [DB]
// starts the server with [Start] (progress lines go to stderr); tests that
// ask at the same time wait for that start. Tests that need no server run
// without one, so a package whose tests ran none of that kind never starts
// PostgreSQL. When the server cannot be started, every test that asks for it
// fails with the error Start returned, and the others still run. After the
// tests, Main prints the server log to stderr when they failed, stops the
// server and removes its directory (if one was started), and exits with
// the tests' exit code. If a test panics, the process ends at once;
// sqltest's watchdog process then stops the server and removes its
// directory.
func Main(m *testing.M) {
	os.Exit(runMain(m, os.Stderr, func(ctx context.Context) (*Server, error) {
		return Start(ctx, Options{Progress: os.Stderr})
	}))
}

// runMain is Main with the tests' stderr and the server's start given.
func runMain(m interface{ Run() int }, stderr io.Writer, start func(context.Context) (*Server, error)) (code int) {
	lazy := &lazyServer{start: start}
	shared.mu.Lock()
	prev := shared.lazy
	shared.lazy = lazy
	shared.mu.Unlock()

	finished := false
	defer func() {
		shared.mu.Lock()
		shared.lazy = prev
		shared.mu.Unlock()
		s := lazy.finish()
		if s == nil {
			return // no test needed the server, or it did not start
		}
		if !finished || code != 0 {
			if log := s.Log(); log != "" {
				fmt.Fprintf(stderr, "sqltest: server log:\n%s\n", tail(log, 64<<10))
			}
		}
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

// Shared returns the server of the running Main, starting it if this is the
// first call; concurrent callers wait for that start. It fails t with
// t.Fatalf when the server could not be started (every caller gets the error
// of that one start), when Main is not this package's TestMain, or when
// Main has finished.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	lazy := shared.lazy
	shared.mu.Unlock()
	if lazy == nil {
		t.Fatalf("sqltest: no shared server: call sqltest.Main(m) from TestMain")
	}
	s, err := lazy.get()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return s
}

// DB creates a fresh database on the server of the running Main (starting
// it on first use), drops it when the test ends, and returns its DSN. It is
// Shared(t).NewDatabase(t) and fails the test the same ways.
func DB(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}
