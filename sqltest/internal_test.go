package sqltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestFindBinDirNothing(t *testing.T) {
	dir, tried := findBinDir(binSearch{
		lookPath: func(string) (string, error) { return "", exec.ErrNotFound },
		globs:    []string{t.TempDir() + "/*/bin"},
	})
	if dir != "" {
		t.Fatalf("found %q", dir)
	}
	err := noServerError(tried, errors.New("no docker CLI on PATH"))
	for _, want := range []string{"sqltest: ", "apt-get install postgresql", "PGPUREPY_TEST_DSN", "pg_config --bindir", "no docker CLI"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestFindBinDirHighestVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "16", "13"} {
		dir := root + "/" + v + "/bin"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"postgres", "initdb", "pg_ctl"} {
			if err := os.WriteFile(dir+"/"+name, nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir, _ := findBinDir(binSearch{
		lookPath: func(string) (string, error) { return "", exec.ErrNotFound },
		globs:    []string{root + "/*/bin"},
	})
	if want := root + "/16/bin"; dir != want {
		t.Fatalf("findBinDir = %q, want %q", dir, want)
	}
}

func TestReplaceDatabase(t *testing.T) {
	for _, tc := range []struct{ dsn, db, want string }{
		{"postgres://u:p@h:5/old?sslmode=disable", "new", "postgres://u:p@h:5/new?sslmode=disable"},
		{"postgresql://u@h/", "x y", "postgresql://u@h/x%20y"},
		{"host=h dbname=old", "new", "host=h dbname=old dbname='new'"},
		{"host=h", "it's", `host=h dbname='it\'s'`},
		{"postgres://h/old", "", "postgres://h/old"},
	} {
		if got := replaceDatabase(tc.dsn, tc.db); got != tc.want {
			t.Errorf("replaceDatabase(%q, %q) = %q, want %q", tc.dsn, tc.db, got, tc.want)
		}
	}
}

func TestDatabaseName(t *testing.T) {
	a, b := databaseName("TestX/sub-test #1"), databaseName("TestX/sub-test #1")
	if a == b || !strings.HasPrefix(a, "sqltest_testx_sub_test__1_") {
		t.Errorf("names %q %q", a, b)
	}
	if long := databaseName(strings.Repeat("TestVeryLong", 20)); len(long) > 63 {
		t.Errorf("name longer than 63 bytes: %q", long)
	}
}

func TestOptionsEnv(t *testing.T) {
	o := Options{Env: []string{"A=1", "PGPUREPY_TEST_DSN=x", "PGPUREPY_TEST_DSN=y=z"}}
	if got := o.getenv(EnvDSN); got != "y=z" {
		t.Errorf("getenv = %q", got)
	}
	if got := (&Options{Env: []string{}}).getenv("PATH"); got != "" {
		t.Errorf("empty Env read the process environment: %q", got)
	}
}

// TestWatchdog checks that a server is stopped and its directory removed
// when the process that started it dies without Close.
func TestWatchdog(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pid := s.postmasterPID()
	if pid == 0 {
		t.Fatal("no postmaster pid")
	}
	s.reaper.trigger() // as if this process had exited
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Errorf("%s survives the watchdog: %v", s.Dir(), err)
	}
	for i := 0; syscall.Kill(pid, 0) == nil; i++ {
		if i == 200 {
			t.Fatalf("postmaster %d survives the watchdog", pid)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// fakeM stands for testing.M: Run runs the function.
type fakeM func() int

func (m fakeM) Run() int { return m() }

// fatalTB records the message of Fatalf and ends its goroutine, as a test's
// Fatalf does. Shared calls only Helper and Fatalf.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// sharedFrom calls Shared from n goroutines at once, as parallel tests do,
// and returns what each got: a server, or the message it failed with.
func sharedFrom(n int) ([]*Server, []string) {
	servers, msgs := make([]*Server, n), make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tb := &fatalTB{}
			defer func() { msgs[i] = tb.msg }()
			servers[i] = Shared(tb)
		})
	}
	wg.Wait()
	return servers, msgs
}

// TestRunMainStartsNothingUnused: tests that do not ask for the server run
// without one, and Main has nothing to stop.
func TestRunMainStartsNothingUnused(t *testing.T) {
	var out bytes.Buffer
	code := runMain(fakeM(func() int { return 3 }), &out, func(context.Context) (*Server, error) {
		t.Error("the server was started although no test asked for it")
		return nil, errors.New("unexpected start")
	})
	if code != 3 {
		t.Errorf("code = %d, want the tests' 3", code)
	}
	if out.Len() != 0 {
		t.Errorf("output without a server:\n%s", out.String())
	}
}

// TestRunMainStartFailure: a server that cannot start fails every test that
// asks for it with the error of its one start, and Main stops nothing.
func TestRunMainStartFailure(t *testing.T) {
	var starts atomic.Int32
	startErr := errors.New("sqltest: no PostgreSQL available: install it")
	var out bytes.Buffer
	var servers []*Server
	var msgs []string
	var lazy *lazyServer
	code := runMain(fakeM(func() int {
		shared.mu.Lock()
		lazy = shared.lazy
		shared.mu.Unlock()
		servers, msgs = sharedFrom(8)
		_, later := sharedFrom(1)
		msgs = append(msgs, later...)
		return 1
	}), &out, func(context.Context) (*Server, error) {
		starts.Add(1)
		time.Sleep(50 * time.Millisecond) // the other callers come meanwhile
		return nil, startErr
	})
	if code != 1 {
		t.Errorf("code = %d", code)
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("%d starts, want 1", n)
	}
	for i, msg := range msgs {
		if msg != startErr.Error() {
			t.Errorf("caller %d failed with %q, want %q", i, msg, startErr)
		}
	}
	for i, s := range servers {
		if s != nil {
			t.Errorf("caller %d got a server", i)
		}
	}
	if out.Len() != 0 {
		t.Errorf("output without a server:\n%s", out.String())
	}
	// After Main, no start.
	if _, err := lazy.get(); !errors.Is(err, errMainOver) {
		t.Errorf("the server after Main: %v, want %v", err, errMainOver)
	}
}

// TestRunMainPrintsLogOnFailure: the first tests that ask start one server,
// which they share; when the tests failed, Main prints its log, and it
// stops the server and removes its directory in any case.
func TestRunMainPrintsLogOnFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	for _, testsCode := range []int{3, 0} {
		var starts atomic.Int32
		var out bytes.Buffer
		var servers []*Server
		var msgs []string
		code := runMain(fakeM(func() int {
			servers, msgs = sharedFrom(4)
			return testsCode
		}), &out, func(ctx context.Context) (*Server, error) {
			starts.Add(1)
			return Start(ctx, Options{Env: []string{}})
		})
		if code != testsCode {
			t.Errorf("code = %d, want %d", code, testsCode)
		}
		if n := starts.Load(); n != 1 {
			t.Errorf("%d starts, want 1", n)
		}
		for i := range servers {
			if msgs[i] != "" || servers[i] == nil || servers[i] != servers[0] {
				t.Fatalf("caller %d: server %p (first %p), failure %q", i, servers[i], servers[0], msgs[i])
			}
		}
		printed := strings.Contains(out.String(), "sqltest: server log:") && strings.Contains(out.String(), "ready to accept connections")
		if printed != (testsCode != 0) {
			t.Errorf("tests' code %d: server log printed %v:\n%s", testsCode, printed, out.String())
		}
		if dir := servers[0].Dir(); dir == "" {
			t.Error("no server directory")
		} else if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s survives Main: %v", dir, err)
		}
	}
}
