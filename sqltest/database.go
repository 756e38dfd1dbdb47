package sqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// NewDatabase creates a fresh, empty database for the calling test and
// returns its DSN (as from DSN). The database is copied from a template
// made once per server (template0 on an external server) and gets a unique
// name derived from t.Name(). t.Cleanup drops it with DROP DATABASE ...
// WITH (FORCE), which also ends sessions the test left open. When the
// database cannot be created NewDatabase fails the test with t.Fatalf; when
// it cannot be dropped the cleanup reports it with t.Errorf.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.createDatabase(ctx, name); err != nil {
		t.Fatalf("sqltest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		gone := s.closed || (s.kind == kindLocal && !s.running)
		s.mu.Unlock()
		if gone {
			return // the server, and the database with it, is gone or down
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Exec(ctx, "", "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("sqltest: drop database %s: %v", name, err)
		}
	})
	return s.DSN(name)
}

func (s *Server) createDatabase(ctx context.Context, name string) error {
	sql := "CREATE DATABASE " + quoteIdent(name) + " TEMPLATE " + quoteIdent(s.template)
	for attempt := 0; ; attempt++ {
		err := s.Exec(ctx, "", sql)
		// 55006: the template is in use by another session, which can
		// happen on an external server; try again briefly.
		var pgErr *pgconn.PgError
		if err == nil || attempt == 20 || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// databaseName returns a unique database name that starts with a readable
// form of the test name.
func databaseName(testName string) string {
	var b strings.Builder
	b.WriteString("sqltest_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	var rnd [5]byte
	rand.Read(rnd[:])
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}
