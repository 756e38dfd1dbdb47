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
