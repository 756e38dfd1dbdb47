package otelpgpurepy

import "testing"

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT ?"},
		{"SELECT count(*) FROM t", "SELECT count(*) FROM t"},
		{"SELECT * FROM t WHERE name = 'o''hara' AND id = 42", "SELECT * FROM t WHERE name = ? AND id = ?"},
		{"SELECT $1::int, $2", "SELECT $1::int, $2"},
		{"SELECT 1.5e-3, .5, 0x1F, 1_000", "SELECT ?, ?, ?, ?"},
		{`SELECT E'it\'s', B'101', X'1F', N'x', U&'d\0061t', e'\\'`, "SELECT ?, ?, ?, ?, ?, ?"},
		{`SELECT "col 'x'", U&"d\0061t", t1.c2 FROM "t""q"`, `SELECT "col 'x'", U&"d\0061t", t1.c2 FROM "t""q"`},
		{"SELECT $$a 'b' $$, $fn$ body $x$ $fn$, 3", "SELECT ?, ?, ?"},
		{"SELECT a$b, TRUE, false, null", "SELECT a$b, ?, ?, null"},
		{"SELECT 1 -- it's 2\n, 'x' /* 'y' /* nested */ 5 */ FROM t", "SELECT ? -- it's 2\n, ? /* 'y' /* nested */ 5 */ FROM t"},
		{"INSERT INTO t VALUES ('unterminated", "INSERT INTO t VALUES (?"},
		{"SELECT interval '1 day', date '2024-01-01'", "SELECT interval ?, date ?"},
		{"CREATE TABLE t2 (v int)", "CREATE TABLE t2 (v int)"},
		{"", ""},
	} {
		if got := sanitize(tc.in); got != tc.want {
			t.Errorf("sanitize(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestSanitizeNoAlloc(t *testing.T) {
	q := "SELECT a, b FROM t WHERE c = $1"
	if n := testing.AllocsPerRun(100, func() { _ = sanitize(q) }); n != 0 {
		t.Errorf("sanitize of a text without literals allocates %v times", n)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT 'a''b'", "$x$ $x", "E'\\", "/* /*", "U&'", "1e+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := sanitize(q)
		if len(out) > len(q)+1 {
			t.Errorf("sanitize(%q) = %q grew", q, out)
		}
		if again := sanitize(out); again != out {
			t.Errorf("sanitize is not idempotent: %q -> %q -> %q", q, out, again)
		}
	})
}
