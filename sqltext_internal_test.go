package pgpurepy

import "testing"

func TestSingleStatement(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1":                              true,
		"SELECT 1;":                             true,
		"SELECT 1 ;  \n":                        true,
		"SELECT 1; SELECT 2":                    false,
		"SELECT ';'":                            true,
		"SELECT 'it''s;'":                       true,
		"SELECT E'\\';', 1":                     true,
		"SELECT \"a;b\" FROM t":                 true,
		"SELECT 1 -- ; comment\n":               true,
		"SELECT 1 -- comment\n; SELECT 2":       false,
		"SELECT /* ; /* nested; */ ; */ 1":      true,
		"SELECT $$;$$":                          true,
		"SELECT $fn$ a;b $fn$, $1":              true,
		"SELECT $1; SELECT 2":                   false,
		"SELECT 'unterminated":                  false,
		"SELECT /* unterminated":                false,
		"DO $$ BEGIN PERFORM 1; END $$":         true,
		"CREATE TABLE t (a int); INSERT INTO t": false,
	} {
		if got := singleStatement(sql); got != want {
			t.Errorf("singleStatement(%q) = %v, want %v", sql, got, want)
		}
	}
}

// FuzzSingleStatement only checks that the scanner never panics or loops.
func FuzzSingleStatement(f *testing.F) {
	for _, s := range []string{"SELECT 1; SELECT 2", "SELECT $a$;$a$", "SELECT E'\\'", "/* /* */", "$1$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { singleStatement(s) })
}

func TestChangesSession(t *testing.T) {
	for sql, want := range map[string]bool{
		"COMMIT":                          false,
		"SELECT 1":                        false,
		"SET search_path TO app":          true,
		"set local statement_timeout = 5": false,
		"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE": false,
		"  -- a comment\n  RESET ALL":                  true,
		"LISTEN jobs":                                  true,
		"CREATE TEMP TABLE t (v int)":                  true,
		"create local temporary table t (v int)":       true,
		"CREATE TABLE t (v int)":                       false,
		"SELECT pg_advisory_lock(1)":                   true,
		"SELECT pg_advisory_xact_lock(1)":              false,
		"SELECT set_config('a.b', 'c', false)":         true,
		"BEGIN; SET x = 1; COMMIT":                     true,
		"PREPARE p AS SELECT 1":                        true,
		"DECLARE c CURSOR WITH HOLD FOR SELECT 1":      true,
	} {
		if got := changesSession(sql); got != want {
			t.Errorf("changesSession(%q) = %v, want %v", sql, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { changesSession("COMMIT") }); n != 0 {
		t.Errorf("changesSession(COMMIT) allocates %v times", n)
	}
}

func TestMultiplexable(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT $1::int":                       true,
		"  select 1":                           true,
		"-- c\nINSERT INTO t VALUES ($1)":      true,
		"UPDATE t SET a = 1":                   true,
		"WITH x AS (SELECT 1) SELECT * FROM x": true,
		"SELECT 1; SELECT 2":                   false,
		"SET search_path = x":                  false,
		"BEGIN":                                false,
		"COMMIT":                               false,
		"START TRANSACTION":                    false,
		"SAVEPOINT a":                          false,
		"COPY t FROM STDIN":                    false,
		"DISCARD ALL":                          false,
		"DEALLOCATE ALL":                       false,
		"CALL p()":                             false,
		"/* c */ BEGIN":                        false,
		"(SELECT 1)":                           false,
		"CREATE TEMP TABLE t (a int)":          false,
		"SELECT * INTO TEMP t FROM x":          false,
		"SELECT lastval()":                     false,
		"SELECT currval('s')":                  false,
		"SELECT pg_backend_pid()":              false,
		"SELECT set_config('a.b', '1', false)": false,
		"SELECT pg_advisory_lock(1)":           false,
		"SELECT nextval('s')":                  true,
		"INSERT INTO t SELECT pg_advisory_xact_lock(1)": true,
	} {
		if got := multiplexable(sql); got != want {
			t.Errorf("multiplexable(%q) = %v, want %v", sql, got, want)
		}
	}
}
