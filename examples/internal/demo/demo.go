// Package demo is the little the examples share: where the database comes
// from, and how a main function fails.
//
// An example calls Run from main:
//
//	func main() { demo.Run(run) }
//
//	func run(ctx context.Context, dsn string) error { ... }
//
// Run takes the DSN from PGPUREPY_DSN or DATABASE_URL; when neither is set it
// starts a throwaway PostgreSQL server with sqltest (local binaries or
// Docker), says so on one line, and stops the server when run returns,
// whether it failed or not. It exits 1 when run returns an error.
package demo

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgpurepy/pgpurepy/sqltest"
)

// DSNEnv lists the environment variables Run reads a DSN from, first match
// first.
var DSNEnv = []string{"PGPUREPY_DSN", "DATABASE_URL"}

// Run runs fn with a DSN and exits the process: 0 when fn returns nil, 1 (with
// the error on stderr) otherwise. The context ends on SIGINT or SIGTERM.
func Run(fn func(ctx context.Context, dsn string) error) {
	if err := run(fn); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(fn func(ctx context.Context, dsn string) error) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dsn, cleanup, err := DSN(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return fn(ctx, dsn)
}

// DSN returns the DSN from the environment, or starts a throwaway server and
// returns its DSN. The caller must call cleanup, which stops that server (it
// does nothing for a DSN from the environment).
func DSN(ctx context.Context) (dsn string, cleanup func() error, err error) {
	for _, k := range DSNEnv {
		if v := os.Getenv(k); v != "" {
			return v, func() error { return nil }, nil
		}
	}
	fmt.Println("no PGPUREPY_DSN or DATABASE_URL set: starting a throwaway PostgreSQL server")
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	srv, err := sqltest.Start(sctx, sqltest.Options{Progress: os.Stderr})
	if err != nil {
		return "", nil, fmt.Errorf("start server: %w", err)
	}
	return srv.DSN(""), srv.Close, nil
}
