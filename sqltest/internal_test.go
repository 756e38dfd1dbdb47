package sqltest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
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

type fakeM struct{ code int }

func (m fakeM) Run() int { return m.code }

func TestRunMainPrintsLogOnFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	var out bytes.Buffer
	if code := runMain(fakeM{code: 3}, &out); code != 3 {
		t.Errorf("code = %d", code)
	}
	if !strings.Contains(out.String(), "sqltest: server log:") || !strings.Contains(out.String(), "ready to accept connections") {
		t.Errorf("no server log after failure:\n%s", out.String())
	}
}
