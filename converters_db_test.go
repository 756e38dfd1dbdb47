package pgpurepy_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/converters"
)

// Tests of converters (issue 5) through database/sql on the real server.

// convMood is the Go type of the enum mood in the issue's example.
type convMood string

// convColor is the Go type of the enum app.color.
type convColor string

// convShade is the Go type of app.color found through search_path.
type convShade string

// convPair maps the composite pair(name text, qty int4, note text) by field order.
type convPair struct {
	Name *string
	Qty  *int32
	Note *string
}

// convPairTagged maps the composite pair2 (same attributes as pair) by db tag, in another order.
type convPairTagged struct {
	Note    *string `db:"note"`
	Qty     *int32  `db:"qty"`
	Name    *string `db:"name"`
	Ignored string  `db:"-"`
}

// convInner and convOuter map nested composites.
type convInner struct {
	A *int32
	B *string
}

type convOuter struct {
	ID     int32       `db:"id"`
	Inner  *convInner  `db:"inner_v"`
	Inners []convInner `db:"inners"`
	Mood   *convMood   `db:"mood"`
}

// convDoc is a JSON document.
type convDoc struct {
	Title string   `json:"title"`
	Tags  []string `json:"tags,omitempty"`
	N     int      `json:"n"`
}

// convPosInt is the Go type of the domain posint.
type convPosInt int64

// convStrict has non-pointer fields, so a NULL attribute cannot be decoded.
type convStrict struct {
	Label string
	N     int32
}

func convCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func convExec(t testing.TB, ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func convPtr[T any](v T) *T { return &v }

func convMoodSetup(t testing.TB, ctx context.Context, db *sql.DB) {
	t.Helper()
	convExec(t, ctx, db,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TABLE t (id serial PRIMARY KEY, m mood, ms mood[])`)
}

// convAnyType scans the first column of query into *any and returns its dynamic type and value.
func convAny(t testing.TB, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) any {
	t.Helper()
	var v any
	if err := q.QueryRowContext(ctx, query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

// The issue's example, verbatim, in both query modes and both protocols.
func TestConvEnumIssueExample(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{pgpurepy.QueryModePrepare, pgpurepy.QueryModeDescribe} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := convCtx(t)
			db, _ := openDB(t, "query_mode="+mode)
			convMoodSetup(t, ctx, db)
			ext := ext(t, db)

			type Mood = convMood
			err := ext.AddConverterWithArray(ctx, converters.Enum[Mood]("mood"))
			if err != nil {
				t.Fatal(err)
			}
			var m Mood
			var ms []Mood
			// No arguments: the simple protocol, text format.
			if err := db.QueryRowContext(ctx, "SELECT 'happy'::mood, ARRAY['sad','ok']::mood[]").Scan(&m, &ms); err != nil {
				t.Fatal(err)
			}
			if m != "happy" || !slices.Equal(ms, []Mood{"sad", "ok"}) {
				t.Fatalf("simple protocol: got %q %q", m, ms)
			}
			// With arguments: the extended protocol, arguments encoded by the converter.
			m, ms = "", nil
			if err := db.QueryRowContext(ctx, "SELECT $1::mood, $2::mood[]", Mood("ok"), []Mood{"happy", "sad"}).Scan(&m, &ms); err != nil {
				t.Fatal(err)
			}
			if m != "ok" || !slices.Equal(ms, []Mood{"happy", "sad"}) {
				t.Fatalf("extended protocol: got %q %q", m, ms)
			}
			// Arguments whose parameter type is inferred from the column.
			if _, err := db.ExecContext(ctx, "INSERT INTO t(ms) VALUES ($1)", []Mood{"ok"}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO t(m, ms) VALUES ($1, $2)", Mood("sad"), []Mood{}); err != nil {
				t.Fatal(err)
			}
			rows, err := db.QueryContext(ctx, "SELECT m, ms FROM t ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			type rec struct {
				m  sql.Null[Mood]
				ms []Mood
			}
			var got []rec
			for rows.Next() {
				var r rec
				if err := rows.Scan(&r.m, &r.ms); err != nil {
					t.Fatal(err)
				}
				got = append(got, r)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].m.Valid || !slices.Equal(got[0].ms, []Mood{"ok"}) ||
				!got[1].m.Valid || got[1].m.V != "sad" || got[1].ms == nil || len(got[1].ms) != 0 {
				t.Fatalf("read back: %+v", got)
			}
			// The same with arguments in the WHERE clause, through a prepared *sql.Stmt.
			st, err := db.PrepareContext(ctx, "SELECT ms FROM t WHERE m = $1 OR $2 = ANY(ms)")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for range 3 {
				var n int
				rows, err := st.QueryContext(ctx, Mood("sad"), Mood("ok"))
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				if n != 2 {
					t.Fatalf("prepared: %d rows, want 2", n)
				}
			}

			// Scan into *any gives the Go type.
			for _, q := range []string{"SELECT 'happy'::mood", "SELECT $1::mood"} {
				var args []any
				if strings.Contains(q, "$1") {
					args = []any{Mood("happy")}
				}
				if v := convAny(t, ctx, db, q, args...); v != Mood("happy") {
					t.Errorf("%s into *any: %T %#v, want convMood", q, v, v)
				}
			}
			if v := convAny(t, ctx, db, "SELECT ARRAY['ok','sad']::mood[]"); !reflect.DeepEqual(v, []Mood{"ok", "sad"}) {
				t.Errorf("mood[] into *any: %T %#v, want []convMood", v, v)
			}
			if v := convAny(t, ctx, db, "SELECT $1::mood[]", []Mood{"ok"}); !reflect.DeepEqual(v, []Mood{"ok"}) {
				t.Errorf("mood[] argument into *any: %T %#v, want []convMood", v, v)
			}

			// Column types report the converter's Go type.
			rows, err = db.QueryContext(ctx, "SELECT m, ms FROM t")
			if err != nil {
				t.Fatal(err)
			}
			cts, err := rows.ColumnTypes()
			if err != nil {
				t.Fatal(err)
			}
			if st := cts[0].ScanType(); st != reflect.TypeFor[Mood]() {
				t.Errorf("ScanType of mood: %v", st)
			}
			if st := cts[1].ScanType(); st != reflect.TypeFor[[]Mood]() {
				t.Errorf("ScanType of mood[]: %v", st)
			}
			t.Logf("DatabaseTypeName: %q %q", cts[0].DatabaseTypeName(), cts[1].DatabaseTypeName())
			if err := rows.Close(); err != nil {
				t.Fatal(err)
			}

			// In a transaction.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.QueryRowContext(ctx, "SELECT $1::mood", Mood("ok")).Scan(&m); err != nil || m != "ok" {
				t.Fatalf("in tx: %q %v", m, err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConvEnumNull(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t)
	convMoodSetup(t, ctx, db)
	if err := ext(t, db).AddConverterWithArray(ctx, converters.Enum[convMood]("mood")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query string
		args        []any
	}{
		{"simple", "SELECT NULL::mood", nil},
		{"extended", "SELECT $1::mood", []any{nil}},
		{"typed nil", "SELECT $1::mood", []any{(*convMood)(nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pm := convPtr(convMood("x"))
			if err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&pm); err != nil || pm != nil {
				t.Errorf("into **Mood: %v %v", pm, err)
			}
			var nm sql.Null[convMood]
			nm.Valid = true
			if err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&nm); err != nil || nm.Valid {
				t.Errorf("into sql.Null[Mood]: %+v %v", nm, err)
			}
			var a any = "x"
			if err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&a); err != nil || a != nil {
				t.Errorf("into *any: %#v %v", a, err)
			}
			var m convMood
			if err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&m); err == nil {
				t.Errorf("NULL into *Mood: no error, got %q", m)
			}
		})
	}
	var pm *convMood
	if err := db.QueryRowContext(ctx, "SELECT 'ok'::mood").Scan(&pm); err != nil || pm == nil || *pm != "ok" {
		t.Errorf("non-NULL into **Mood: %v %v", pm, err)
	}
	var nm sql.Null[convMood]
	if err := db.QueryRowContext(ctx, "SELECT $1::mood", convMood("happy")).Scan(&nm); err != nil || !nm.Valid || nm.V != "happy" {
		t.Errorf("non-NULL into sql.Null[Mood]: %+v %v", nm, err)
	}
	// database/sql (before Go 1.27's RowsColumnScanner) cannot store NULL
	// into a plain slice; sql.Null says NULL, as for any other type.
	nms := sql.Null[[]convMood]{V: []convMood{"x"}, Valid: true}
	if err := db.QueryRowContext(ctx, "SELECT NULL::mood[]").Scan(&nms); err != nil || nms.Valid {
		t.Errorf("NULL mood[] into sql.Null[[]Mood]: %#v %v", nms, err)
	}
}

// A NULL element inside mood[] comes back into []*Mood.
func TestConvEnumArrayNullElement(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t, "connection_count=1")
	convMoodSetup(t, ctx, db)
	if err := ext(t, db).AddConverterWithArray(ctx, converters.Enum[convMood]("mood")); err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, db)
	for _, tc := range []struct {
		name, query string
		args        []any
	}{
		{"simple", "SELECT ARRAY['sad', NULL, 'ok']::mood[] AS ms", nil},
		{"extended", "SELECT $1::mood[] AS ms", []any{[]*convMood{convPtr(convMood("sad")), nil, convPtr(convMood("ok"))}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*convMood
			err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&ps)
			if err != nil {
				t.Errorf("into []*Mood: %v", err)
			} else if len(ps) != 3 || ps[0] == nil || *ps[0] != "sad" || ps[1] != nil || ps[2] == nil || *ps[2] != "ok" {
				t.Errorf("into []*Mood: %v", ps)
			}
			// Into []Mood it cannot be stored: a clear error, not a silent "".
			var ms []convMood
			err = db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&ms)
			if err == nil {
				t.Errorf("NULL element into []Mood: no error, got %q", ms)
			} else {
				t.Logf("NULL element into []Mood: %v", err)
			}
		})
	}
	if got := backendPID(t, db); got != pid {
		t.Errorf("backend changed from %d to %d", pid, got)
	}
}

func TestConvComposite(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t)
	convExec(t, ctx, db,
		`CREATE TYPE pair AS (name text, qty int4, note text)`,
		`CREATE TYPE pair2 AS (name text, qty int4, note text)`,
		`CREATE TABLE pt (id int PRIMARY KEY, p pair, ps pair[], q pair2, qs pair2[])`)
	x := ext(t, db)
	if err := x.AddConverterWithArray(ctx, converters.Composite[convPair]("pair")); err != nil {
		t.Fatal(err)
	}
	if err := x.AddConverterWithArray(ctx, converters.Composite[convPairTagged]("pair2")); err != nil {
		t.Fatal(err)
	}

	full := convPair{Name: convPtr("a,b \"c\""), Qty: convPtr(int32(7)), Note: convPtr("")}
	nulls := convPair{Name: convPtr("n")}
	allNull := convPair{}
	fullT := convPairTagged{Name: full.Name, Qty: full.Qty, Note: full.Note}
	nullsT := convPairTagged{Name: nulls.Name}

	check := func(t *testing.T, what string, p convPair, ps []convPair, q convPairTagged, qs []convPairTagged) {
		t.Helper()
		if !reflect.DeepEqual(p, full) {
			t.Errorf("%s: pair %s", what, convFmtPair(p))
		}
		if len(ps) != 3 || !reflect.DeepEqual(ps, []convPair{nulls, allNull, full}) {
			t.Errorf("%s: pair[] %d elements: %v", what, len(ps), convFmtPairs(ps))
		}
		if !reflect.DeepEqual(q, nullsT) {
			t.Errorf("%s: pair2 %+v", what, q)
		}
		if !reflect.DeepEqual(qs, []convPairTagged{fullT, {}}) {
			t.Errorf("%s: pair2[] %+v", what, qs)
		}
	}

	t.Run("literal", func(t *testing.T) {
		var p convPair
		var ps []convPair
		var q convPairTagged
		var qs []convPairTagged
		err := db.QueryRowContext(ctx, `SELECT ROW('a,b "c"', 7, '')::pair,
			ARRAY[ROW('n', NULL, NULL)::pair, ROW(NULL, NULL, NULL)::pair, ROW('a,b "c"', 7, '')::pair],
			ROW('n', NULL, NULL)::pair2,
			ARRAY[ROW('a,b "c"', 7, '')::pair2, ROW(NULL, NULL, NULL)::pair2]`).Scan(&p, &ps, &q, &qs)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "literal", p, ps, q, qs)
	})
	t.Run("arguments", func(t *testing.T) {
		var p convPair
		var ps []convPair
		var q convPairTagged
		var qs []convPairTagged
		err := db.QueryRowContext(ctx, `SELECT $1::pair, $2::pair[], $3::pair2, $4::pair2[]`,
			full, []convPair{nulls, allNull, full}, nullsT, []convPairTagged{fullT, {}}).Scan(&p, &ps, &q, &qs)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "arguments", p, ps, q, qs)
	})
	t.Run("table", func(t *testing.T) {
		if _, err := db.ExecContext(ctx, `INSERT INTO pt VALUES ($1, $2, $3, $4, $5)`,
			1, full, []convPair{nulls, allNull, full}, nullsT, []convPairTagged{fullT, {}}); err != nil {
			t.Fatal(err)
		}
		// What the server stored, in its own text form.
		var text string
		if err := db.QueryRowContext(ctx, `SELECT p::text || ' ' || ps::text FROM pt WHERE id = 1`).Scan(&text); err != nil {
			t.Fatal(err)
		}
		if want := `("a,b ""c""",7,"") {"(n,,)","(,,)","(\"a,b \"\"c\"\"\",7,\"\")"}`; text != want {
			t.Errorf("stored %s, want %s", text, want)
		}
		for _, q := range []string{`SELECT p, ps, q, qs FROM pt WHERE id = 1`, `SELECT p, ps, q, qs FROM pt WHERE id = $1`} {
			var args []any
			if strings.Contains(q, "$1") {
				args = []any{1}
			}
			var p convPair
			var ps []convPair
			var q2 convPairTagged
			var qs []convPairTagged
			if err := db.QueryRowContext(ctx, q, args...).Scan(&p, &ps, &q2, &qs); err != nil {
				t.Fatal(err)
			}
			check(t, q, p, ps, q2, qs)
		}
	})
	t.Run("null composite", func(t *testing.T) {
		for _, q := range []string{`SELECT NULL::pair`, `SELECT $1::pair`} {
			var args []any
			if strings.Contains(q, "$1") {
				args = []any{nil}
			}
			pp := &convPair{}
			if err := db.QueryRowContext(ctx, q, args...).Scan(&pp); err != nil || pp != nil {
				t.Errorf("%s into **Pair: %v %v", q, pp, err)
			}
			var a any = 1
			if err := db.QueryRowContext(ctx, q, args...).Scan(&a); err != nil || a != nil {
				t.Errorf("%s into *any: %v %v", q, a, err)
			}
		}
	})
	t.Run("any", func(t *testing.T) {
		v := convAny(t, ctx, db, `SELECT ROW('a,b "c"', 7, '')::pair`)
		if !reflect.DeepEqual(v, full) {
			t.Errorf("pair into *any: %T %v", v, v)
		}
		v = convAny(t, ctx, db, `SELECT $1::pair2[]`, []convPairTagged{fullT})
		if !reflect.DeepEqual(v, []convPairTagged{fullT}) {
			t.Errorf("pair2[] into *any: %T %v", v, v)
		}
	})
}

func convFmtPair(p convPair) string {
	f := func(v any) string {
		rv := reflect.ValueOf(v)
		if rv.IsNil() {
			return "NULL"
		}
		return fmt.Sprintf("%q", fmt.Sprint(rv.Elem().Interface()))
	}
	return "(" + f(p.Name) + "," + f(p.Qty) + "," + f(p.Note) + ")"
}

func convFmtPairs(ps []convPair) string {
	var s []string
	for _, p := range ps {
		s = append(s, convFmtPair(p))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// A composite with an enum, a composite and a composite[] attribute, registered after the types it uses.
func TestConvCompositeNested(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t)
	convExec(t, ctx, db,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TYPE inner_t AS (a int4, b text)`,
		`CREATE TYPE outer_t AS (id int4, inner_v inner_t, inners inner_t[], mood mood)`,
		`CREATE TABLE nt (o outer_t, os outer_t[])`)
	x := ext(t, db)
	for _, c := range []converters.Converter{
		converters.Enum[convMood]("mood"),
		converters.Composite[convInner]("inner_t"),
		converters.Composite[convOuter]("outer_t"),
	} {
		if err := x.AddConverterWithArray(ctx, c); err != nil {
			t.Fatalf("%s: %v", c.TypeName(), err)
		}
	}
	want := convOuter{
		ID:     1,
		Inner:  &convInner{A: convPtr(int32(2)), B: convPtr("two (2)")},
		Inners: []convInner{{A: convPtr(int32(3))}, {B: convPtr("")}},
		Mood:   convPtr(convMood("happy")),
	}
	sparse := convOuter{ID: 2}
	lit := `ROW(1, ROW(2, 'two (2)')::inner_t, ARRAY[ROW(3, NULL)::inner_t, ROW(NULL, '')::inner_t], 'happy')::outer_t`
	for _, tc := range []struct {
		name, query string
		args        []any
	}{
		{"literal", `SELECT ` + lit + `, ARRAY[` + lit + `, ROW(2, NULL, NULL, NULL)::outer_t]`, nil},
		{"arguments", `SELECT $1::outer_t, $2::outer_t[]`, []any{want, []convOuter{want, sparse}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o convOuter
			var os []convOuter
			if err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&o, &os); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o, want) {
				t.Errorf("outer_t: %+v", o)
			}
			if !reflect.DeepEqual(os, []convOuter{want, sparse}) {
				t.Errorf("outer_t[]: %+v", os)
			}
		})
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO nt VALUES ($1, $2)`, want, []convOuter{sparse, want}); err != nil {
		t.Fatal(err)
	}
	var o convOuter
	var os []convOuter
	if err := db.QueryRowContext(ctx, `SELECT o, os FROM nt WHERE (o).id = $1`, 1).Scan(&o, &os); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, want) || !reflect.DeepEqual(os, []convOuter{sparse, want}) {
		t.Errorf("table round trip: %+v %+v", o, os)
	}
	var mood convMood
	if err := db.QueryRowContext(ctx, `SELECT (o).mood FROM nt`).Scan(&mood); err != nil || mood != "happy" {
		t.Errorf("attribute of stored value: %q %v", mood, err)
	}
}

// JSON documents into a struct: JSON[T] on jsonb itself (which captures every jsonb column of the pool), and on a
// domain over jsonb.
func TestConvJSON(t *testing.T) {
	t.Parallel()
	docs := []convDoc{{Title: "a", Tags: []string{"x", "y"}, N: 1}, {Title: `q"uote`, N: 2}}

	t.Run("jsonb", func(t *testing.T) {
		t.Parallel()
		ctx := convCtx(t)
		db, _ := openDB(t)
		convExec(t, ctx, db, `CREATE TABLE jt (id int, d jsonb, ds jsonb[])`)
		if err := ext(t, db).AddConverterWithArray(ctx, converters.JSON[convDoc]("jsonb")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO jt VALUES (1, $1, $2)`, docs[0], docs); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`SELECT d, ds FROM jt`, `SELECT d, ds FROM jt WHERE id = $1`} {
			var args []any
			if strings.Contains(q, "$1") {
				args = []any{1}
			}
			var d convDoc
			var ds []convDoc
			if err := db.QueryRowContext(ctx, q, args...).Scan(&d, &ds); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if !reflect.DeepEqual(d, docs[0]) || !reflect.DeepEqual(ds, docs) {
				t.Errorf("%s: %+v %+v", q, d, ds)
			}
		}
		if v := convAny(t, ctx, db, `SELECT '{"title":"lit","n":3}'::jsonb`); !reflect.DeepEqual(v, convDoc{Title: "lit", N: 3}) {
			t.Errorf("jsonb into *any: %T %+v", v, v)
		}
		var s string
		if err := db.QueryRowContext(ctx, `SELECT d->>'title' FROM jt`).Scan(&s); err != nil || s != "a" {
			t.Errorf("stored: %q %v", s, err)
		}
	})

	t.Run("domain", func(t *testing.T) {
		t.Parallel()
		ctx := convCtx(t)
		db, _ := openDB(t)
		convExec(t, ctx, db,
			`CREATE DOMAIN doc AS jsonb`,
			`CREATE TABLE dt (id int, d doc, ds doc[], raw jsonb)`)
		if err := ext(t, db).AddConverterWithArray(ctx, converters.JSON[convDoc]("doc")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO dt VALUES (1, $1, $2, '{"other":true}')`, docs[0], docs); err != nil {
			t.Fatal(err)
		}
		var s string
		if err := db.QueryRowContext(ctx, `SELECT (d->>'title') || (ds[2]->>'title') FROM dt`).Scan(&s); err != nil || s != `aq"uote` {
			t.Errorf("stored: %q %v", s, err)
		}
		// doc[] columns are reported as doc[] and decode into []Doc.
		for _, q := range []string{`SELECT ds FROM dt`, `SELECT ds FROM dt WHERE id = $1`, `SELECT $1::doc[]`} {
			var args []any
			switch {
			case strings.HasPrefix(q, "SELECT $1"):
				args = []any{docs}
			case strings.Contains(q, "$1"):
				args = []any{1}
			}
			var ds []convDoc
			if err := db.QueryRowContext(ctx, q, args...).Scan(&ds); err != nil {
				t.Errorf("%s: %v", q, err)
			} else if !reflect.DeepEqual(ds, docs) {
				t.Errorf("%s: %+v", q, ds)
			}
		}
		// Plain jsonb is not captured by the domain's converter.
		var raw []byte
		if err := db.QueryRowContext(ctx, `SELECT raw FROM dt`).Scan(&raw); err != nil || string(raw) != `{"other": true}` {
			t.Errorf("plain jsonb: %s %v", raw, err)
		}
	})
}

// A single column of a domain is described by PostgreSQL with the domain's
// base type OID (printtup.c sends getBaseTypeAndTypmod), so a converter
// registered on a domain is not consulted for it: doc arrives as jsonb bytes
// and posint as int64, as the README says. Scanning into the domain's Go type
// still works where database/sql can convert the base value (posint), and
// arrays of the domain, arguments and composite attributes use the converter
// (TestConvDomain and the JSON tests).
func TestConvDomainColumnArrivesAsBaseType(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t)
	convExec(t, ctx, db,
		`CREATE DOMAIN doc AS jsonb`,
		`CREATE DOMAIN posint AS int8 CHECK (VALUE > 0)`,
		`CREATE TABLE dt (id int, d doc, p posint)`,
		`INSERT INTO dt VALUES (1, '{"title":"a","n":1}', 7)`)
	x := ext(t, db)
	if err := x.AddConverterWithArray(ctx, converters.JSON[convDoc]("doc")); err != nil {
		t.Fatal(err)
	}
	if err := x.AddConverterWithArray(ctx, converters.Domain[convPosInt]("posint")); err != nil {
		t.Fatal(err)
	}
	want := convDoc{Title: "a", N: 1}
	for _, tc := range []struct {
		query string
		args  []any
	}{
		{`SELECT d, p FROM dt`, nil},
		{`SELECT d, p FROM dt WHERE id = $1`, []any{1}},
		{`SELECT $1::doc, $2::posint`, []any{want, convPosInt(7)}},
	} {
		var raw []byte
		var p convPosInt
		if err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&raw, &p); err != nil {
			t.Errorf("%s into *[]byte, *PosInt: %v", tc.query, err)
			continue
		}
		var d convDoc
		if err := json.Unmarshal(raw, &d); err != nil || !reflect.DeepEqual(d, want) || p != 7 {
			t.Errorf("%s: %s %v %v", tc.query, raw, p, err)
		}
		var ad, ap any
		if err := db.QueryRowContext(ctx, tc.query, tc.args...).Scan(&ad, &ap); err != nil {
			t.Errorf("%s into *any: %v", tc.query, err)
		} else if _, ok := ad.([]byte); !ok || ap != int64(7) {
			t.Errorf("%s into *any: %T, %T; want the base types []byte, int64", tc.query, ad, ap)
		}
	}
}

func TestConvDomain(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t, "connection_count=1")
	convExec(t, ctx, db,
		`CREATE DOMAIN posint AS int8 CHECK (VALUE > 0)`,
		`CREATE TABLE dm (id serial, v posint, vs posint[])`)
	if err := ext(t, db).AddConverterWithArray(ctx, converters.Domain[convPosInt]("posint")); err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, db)
	if _, err := db.ExecContext(ctx, `INSERT INTO dm (v, vs) VALUES ($1, $2)`, convPosInt(42), []convPosInt{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT v, vs FROM dm`, `SELECT v, vs FROM dm WHERE v = $1`} {
		var args []any
		if strings.Contains(q, "$1") {
			args = []any{convPosInt(42)}
		}
		var v convPosInt
		var vs []convPosInt
		if err := db.QueryRowContext(ctx, q, args...).Scan(&v, &vs); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if v != 42 || !slices.Equal(vs, []convPosInt{1, 2, 3}) {
			t.Errorf("%s: %v %v", q, v, vs)
		}
		var a any
		if err := db.QueryRowContext(ctx, q, args...).Scan(&a, new(any)); err != nil {
			t.Fatal(err)
		}
		// The server describes a domain column by its base type, so *any gets the base type's Go value.
		t.Logf("%s: posint into *any: %T", q, a)
	}
	var vs any
	if err := db.QueryRowContext(ctx, `SELECT vs FROM dm`).Scan(&vs); err != nil || !reflect.DeepEqual(vs, []convPosInt{1, 2, 3}) {
		t.Errorf("posint[] into *any: %T %v %v", vs, vs, err)
	}

	// A check violation is the server's error, unwrapped.
	for _, tc := range []struct {
		query string
		args  []any
	}{
		{`INSERT INTO dm (v) VALUES ($1)`, []any{convPosInt(-1)}},
		{`INSERT INTO dm (vs) VALUES ($1)`, []any{[]convPosInt{1, 0}}},
		{`SELECT $1::posint`, []any{convPosInt(0)}},
		{`INSERT INTO dm (v) VALUES (-5)`, nil},
	} {
		_, err := db.ExecContext(ctx, tc.query, tc.args...)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s %v: got %v, want *pgconn.PgError 23514", tc.query, tc.args, err)
		} else if !strings.Contains(pgErr.Message, "posint") {
			t.Errorf("message does not name the domain: %s", pgErr.Message)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM dm`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows: %d %v", n, err)
	}
	if got := backendPID(t, db); got != pid {
		t.Errorf("backend changed from %d to %d", pid, got)
	}
}

func TestConvSchema(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, dsn := openDB(t)
	convExec(t, ctx, db,
		`CREATE SCHEMA app`,
		`CREATE TYPE app.color AS ENUM ('red', 'green', 'blue')`,
		`CREATE TYPE app."Odd Name" AS ENUM ('x', 'y')`,
		`CREATE TABLE app.things (c app.color, cs app.color[])`,
		`CREATE TABLE public.color (id int)`) // a table called color in public must not be confused with the type

	x := ext(t, db)
	if err := x.AddConverterWithArray(ctx, converters.Enum[convColor]("app.color")); err != nil {
		t.Fatal(err)
	}
	// Not on the search_path: the unqualified name does not exist for this pool. (public.color is a table, whose
	// row type is a composite: registering Enum on it must fail.)
	if err := x.AddConverter(ctx, converters.Enum[convShade]("color")); err == nil {
		t.Error(`Enum for "color" (a table's row type in public) registered`)
	}
	if err := x.AddConverterWithArray(ctx, converters.Enum[convShade](`app."Odd Name"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO app.things VALUES ($1, $2)`, convColor("green"), []convColor{"red", "blue"}); err != nil {
		t.Fatal(err)
	}
	var c convColor
	var cs []convColor
	if err := db.QueryRowContext(ctx, `SELECT c, cs FROM app.things`).Scan(&c, &cs); err != nil {
		t.Fatal(err)
	}
	if c != "green" || !slices.Equal(cs, []convColor{"red", "blue"}) {
		t.Errorf("app.color: %q %q", c, cs)
	}
	if v := convAny(t, ctx, db, `SELECT 'y'::app."Odd Name"`); v != convShade("y") {
		t.Errorf(`app."Odd Name" into *any: %T %v`, v, v)
	}

	// A second pool on the same database with search_path=app finds the type as "color".
	db2, err := sql.Open("pgpurepy", dsn+"&search_path=app")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := ext(t, db2).AddConverterWithArray(ctx, converters.Enum[convShade]("color")); err != nil {
		t.Fatal(err)
	}
	var s convShade
	var ss []convShade
	if err := db2.QueryRowContext(ctx, `SELECT c, cs FROM things`).Scan(&s, &ss); err != nil {
		t.Fatal(err)
	}
	if s != "green" || !slices.Equal(ss, []convShade{"red", "blue"}) {
		t.Errorf("color through search_path: %q %q", s, ss)
	}
	if v := convAny(t, ctx, db2, `SELECT $1::color`, convShade("blue")); v != convShade("blue") {
		t.Errorf("color through search_path into *any: %T %v", v, v)
	}
	// The first pool is unaffected by the second's registration.
	if v := convAny(t, ctx, db, `SELECT 'blue'::app.color`); v != convColor("blue") {
		t.Errorf("first pool: %T %v", v, v)
	}
}

func TestConvRegistrationErrors(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t, "connection_count=1")
	convExec(t, ctx, db,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TYPE pair AS (name text, qty int4, note text)`)
	x := ext(t, db)
	pid := backendPID(t, db)

	t.Run("does not exist", func(t *testing.T) {
		for _, name := range []string{"no_such_type", "nosuchschema.mood", "public.no_such_type"} {
			err := x.AddConverterWithArray(ctx, converters.Enum[convMood](name))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: %v", name, err)
			} else {
				t.Logf("%s: %v", name, err)
			}
		}
	})
	t.Run("invalid name", func(t *testing.T) {
		// Not even a valid type name: to_regtype raises a syntax error on PostgreSQL 15. The error should still
		// say which name it was about.
		name := "mood[["
		if err := x.AddConverter(ctx, converters.Enum[convMood](name)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if v := convAny(t, ctx, db, `SELECT 'ok'::mood`); v != "ok" {
			t.Errorf("after the failed registration: %T %v", v, v)
		}
	})

	t.Run("no array type", func(t *testing.T) {
		var typarray uint32
		if err := db.QueryRowContext(ctx, `SELECT typarray FROM pg_type WHERE oid = 'void'::regtype`).Scan(&typarray); err != nil {
			t.Fatal(err)
		}
		if typarray != 0 {
			t.Skipf("void has an array type (%d) on this server", typarray)
		}
		c := converters.Func("void", func(s string) (string, error) { return s, nil }, func(s string) (string, error) { return s, nil })
		err := x.AddConverterWithArray(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "void") || !strings.Contains(err.Error(), "array") {
			t.Errorf("void with array: %v", err)
		} else {
			t.Logf("void with array: %v", err)
		}
	})

	t.Run("does not fit", func(t *testing.T) {
		before := convAny(t, ctx, db, `SELECT ROW('a', 1, 'b')::pair`)
		beforeArr := convAny(t, ctx, db, `SELECT ARRAY[ROW('a', 1, 'b')::pair]`)
		for _, c := range []converters.Converter{
			converters.Enum[convMood]("pair"),
			converters.Composite[convPair]("mood"),
			converters.Composite[convStrict]("pair"),  // 2 fields for 3 attributes
			converters.Composite[string]("pair"),      // not a struct
			converters.JSON[convDoc]("pair"),          // not json
			converters.Domain[int64]("pair"),          // not a domain
			converters.Func[string]("pair", nil, nil), // no functions
		} {
			err := x.AddConverterWithArray(ctx, c)
			if err == nil {
				t.Errorf("%T on %s: registered", c, c.TypeName())
				continue
			}
			if !strings.Contains(err.Error(), c.TypeName()) {
				t.Errorf("%T on %s: error does not name the type: %v", c, c.TypeName(), err)
			}
			t.Logf("%v", err)
		}
		// Nothing was registered: values decode as before.
		if after := convAny(t, ctx, db, `SELECT ROW('a', 1, 'b')::pair`); !reflect.DeepEqual(after, before) {
			t.Errorf("pair after failed registrations: %T %v, before %T %v", after, after, before, before)
		}
		if after := convAny(t, ctx, db, `SELECT ARRAY[ROW('a', 1, 'b')::pair]`); !reflect.DeepEqual(after, beforeArr) {
			t.Errorf("pair[] after failed registrations: %T %v, before %T %v", after, after, beforeArr, beforeArr)
		}
		if v := convAny(t, ctx, db, `SELECT 'ok'::mood`); v != "ok" {
			t.Errorf("mood after failed registrations: %T %v", v, v)
		}
		// And a good registration still works afterwards.
		if err := x.AddConverterWithArray(ctx, converters.Composite[convPair]("pair")); err != nil {
			t.Fatal(err)
		}
		if v := convAny(t, ctx, db, `SELECT ROW('a', 1, 'b')::pair`); !reflect.DeepEqual(v, convPair{Name: convPtr("a"), Qty: convPtr(int32(1)), Note: convPtr("b")}) {
			t.Errorf("pair after a good registration: %T %v", v, v)
		}
	})
	if got := backendPID(t, db); got != pid {
		t.Errorf("backend changed from %d to %d", pid, got)
	}
}

// Connections held by other goroutines while the converter is registered see it on their next statement.
func TestConvRegisterWhileHeld(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t, "connection_count=3")
	convMoodSetup(t, ctx, db)
	x := ext(t, db)

	// Warm the pool: three connections, so one stays idle while two are held.
	var warm []*sql.Conn
	for range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range warm {
		_ = c.Close()
	}

	registered := make(chan struct{})
	heldA, heldB := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	fail := func(format string, args ...any) { errs <- fmt.Errorf(format, args...) }

	// A holds a *sql.Conn, with a statement prepared before the registration.
	wg.Go(func() {
		c, err := db.Conn(ctx)
		if err != nil {
			fail("A: %v", err)
			close(heldA)
			return
		}
		defer c.Close()
		st, err := c.PrepareContext(ctx, `SELECT $1::mood, ARRAY[$1::mood]`)
		if err != nil {
			fail("A: prepare: %v", err)
			close(heldA)
			return
		}
		defer st.Close()
		var pid1, pid2 int
		if err := c.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid1); err != nil {
			fail("A: %v", err)
		}
		var v, vs any
		if err := st.QueryRowContext(ctx, "ok").Scan(&v, &vs); err != nil || v != "ok" {
			fail("A: before: %T %v %v", v, v, err)
		}
		close(heldA)
		<-registered
		if err := st.QueryRowContext(ctx, convMood("happy")).Scan(&v, &vs); err != nil {
			fail("A: prepared after: %v", err)
		} else if v != convMood("happy") || !reflect.DeepEqual(vs, []convMood{"happy"}) {
			fail("A: prepared after: %T %v %T %v", v, v, vs, vs)
		}
		if err := c.QueryRowContext(ctx, `SELECT 'sad'::mood`).Scan(&v); err != nil || v != convMood("sad") {
			fail("A: simple after: %T %v %v", v, v, err)
		}
		if err := c.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid2); err != nil || pid2 != pid1 {
			fail("A: backend changed from %d to %d (%v)", pid1, pid2, err)
		}
	})
	// B holds a connection of the extension.
	wg.Go(func() {
		err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
			row, err := c.FetchOne(ctx, `SELECT 'ok'::mood AS m, pg_backend_pid() AS pid`)
			if err != nil {
				return err
			}
			if v, _ := row.Get("m"); v != "ok" {
				fail("B: before: %T %v", v, v)
			}
			pid1, _ := row.Get("pid")
			close(heldB)
			<-registered
			row, err = c.FetchOne(ctx, `SELECT $1::mood AS m, ARRAY['sad']::mood[] AS ms, pg_backend_pid() AS pid`, convMood("ok"))
			if err != nil {
				return err
			}
			if v, _ := row.Get("m"); v != convMood("ok") {
				fail("B: after: %T %v", v, v)
			}
			if v, _ := row.Get("ms"); !reflect.DeepEqual(v, []convMood{"sad"}) {
				fail("B: after: %T %v", v, v)
			}
			if pid2, _ := row.Get("pid"); pid2 != pid1 {
				fail("B: backend changed from %v to %v", pid1, pid2)
			}
			return nil
		})
		if err != nil {
			fail("B: %v", err)
		}
	})
	<-heldA
	<-heldB
	if n := x.IdleConnections(); n != 1 {
		t.Logf("idle connections while two are held: %d", n)
	}
	if err := x.AddConverterWithArray(ctx, converters.Enum[convMood]("mood")); err != nil {
		close(registered)
		wg.Wait()
		t.Fatal(err)
	}
	close(registered)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every connection of the pool, including the one that was idle, decodes mood now.
	var conns []*sql.Conn
	for range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if v := convAny(t, ctx, c, `SELECT 'ok'::mood`); v != convMood("ok") {
			t.Errorf("connection %d: %T %v", len(conns), v, v)
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if st := x.Stats(); st.ConnectionsOpened != 3 {
		t.Logf("connections opened: %d", st.ConnectionsOpened)
	}
}

// Registration survives the loss of every connection: the replacements apply it when they connect.
func TestConvSurvivesReconnect(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, dsn := openDB(t, "connection_count=2")
	convMoodSetup(t, ctx, db)
	x := ext(t, db)
	if err := x.AddConverterWithArray(ctx, converters.Enum[convMood]("mood")); err != nil {
		t.Fatal(err)
	}
	pids := convPoolPIDs(t, ctx, db, 2)

	admin, err := sql.Open("pgpurepy", dsn+"&connection_count=1")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(p)) FROM unnest($1::int4[]) p`, pids).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 2 {
		t.Fatalf("terminated %d backends, want 2", killed)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)`, pids).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backends %v still there", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var m convMood
	var ms []convMood
	for attempt := 1; ; attempt++ {
		err := db.QueryRowContext(ctx, `SELECT 'happy'::mood, ARRAY['ok']::mood[]`).Scan(&m, &ms)
		if err == nil {
			break
		}
		t.Errorf("query %d after the backends were terminated: %v (the checkout health check should have replaced them)", attempt, err)
		if attempt == 3 {
			t.FailNow()
		}
	}
	if m != "happy" || !slices.Equal(ms, []convMood{"ok"}) {
		t.Errorf("after reconnect: %q %q", m, ms)
	}
	newPIDs := convPoolPIDs(t, ctx, db, 2)
	for _, p := range newPIDs {
		if slices.Contains(pids, p) {
			t.Errorf("backend %d survived termination", p)
		}
	}
	// Both replacement connections decode mood, with arguments too.
	var conns []*sql.Conn
	for range 2 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if v := convAny(t, ctx, c, `SELECT $1::mood`, convMood("sad")); v != convMood("sad") {
			t.Errorf("replacement connection: %T %v", v, v)
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	st := x.Stats()
	t.Logf("stats after reconnect: opened %d closed %v", st.ConnectionsOpened, st.ConnectionsClosed)
	if st.ConnectionsOpened < 4 {
		t.Errorf("connections opened: %d, want at least 4", st.ConnectionsOpened)
	}
}

// convPoolPIDs holds n connections of db at once and returns their backend PIDs.
func convPoolPIDs(t testing.TB, ctx context.Context, db *sql.DB, n int) []int64 {
	t.Helper()
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var pids []int64
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		pids = append(pids, int64(backendPID(t, c)))
	}
	slices.Sort(pids)
	if len(slices.Compact(slices.Clone(pids))) != n {
		t.Fatalf("pids %v are not distinct", pids)
	}
	return pids
}

// Plain Go slices are accepted as arguments for arrays of built-in types.
func TestConvPlainSlices(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t)
	convExec(t, ctx, db, `CREATE TABLE arr (id int PRIMARY KEY, i8 int8[], tx text[], f8 float8[], b bool[], ba bytea[], ts timestamptz[])`)

	ints := []int64{1, -2, math.MaxInt64, math.MinInt64}
	strs := []string{"a", "b,c", `"q"`, "", "NULL", `back\slash`, "{brace}", " sp ", "ünï"}
	floats := []float64{1.5, -0.25, 0, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1)}
	bools := []bool{true, false, true}
	blobs := [][]byte{{0, 1, 2, 255}, {}, []byte(`"\`)}
	t0 := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	times := []time.Time{t0, t0.Add(-100 * 365 * 24 * time.Hour), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)}

	if _, err := db.ExecContext(ctx, `INSERT INTO arr VALUES (1, $1, $2, $3, $4, $5, $6)`, ints, strs, floats, bools, blobs, times); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO arr VALUES (2, $1, $2, $3, $4, $5, $6)`,
		[]int64{}, []string{}, []float64{}, []bool{}, [][]byte{}, []time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO arr VALUES (3, $1, $2, $3, $4, $5, $6)`,
		[]int64(nil), []string(nil), []float64(nil), []bool(nil), [][]byte(nil), []time.Time(nil)); err != nil {
		t.Fatal(err)
	}
	// What the server stored.
	var card string
	if err := db.QueryRowContext(ctx, `SELECT concat_ws(' ', cardinality(i8), cardinality(tx), cardinality(f8), cardinality(b), cardinality(ba), cardinality(ts), tx[5] IS NULL, tx[5], ba[2] = ''::bytea, ts[1] = '2024-02-29 23:59:58.123456+00') FROM arr WHERE id = 1`).Scan(&card); err != nil {
		t.Fatal(err)
	}
	if card != "4 9 7 3 3 3 f NULL t t" {
		t.Errorf("stored: %s", card)
	}
	var nulls string
	if err := db.QueryRowContext(ctx, `SELECT concat_ws(' ', i8 IS NULL, tx IS NULL, ba IS NULL, ts IS NULL, cardinality((SELECT i8 FROM arr WHERE id = 2))) FROM arr WHERE id = 3`).Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if nulls != "t t t t 0" {
		t.Errorf("nil and empty slices: %s", nulls)
	}

	m := pgtype.NewMap()
	for _, q := range []string{`SELECT i8, tx, f8, b, ba, ts FROM arr WHERE id = 1`, `SELECT i8, tx, f8, b, ba, ts FROM arr WHERE id = $1`} {
		var args []any
		if strings.Contains(q, "$1") {
			args = []any{1}
		}
		var gi []int64
		var gs []string
		var gf []float64
		var gb []bool
		var gba [][]byte
		var gt []time.Time
		if err := db.QueryRowContext(ctx, q, args...).Scan(m.SQLScanner(&gi), m.SQLScanner(&gs), m.SQLScanner(&gf), m.SQLScanner(&gb), m.SQLScanner(&gba), m.SQLScanner(&gt)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !slices.Equal(gi, ints) {
			t.Errorf("int8[]: %v", gi)
		}
		if !slices.Equal(gs, strs) {
			t.Errorf("text[]: %q", gs)
		}
		if !slices.Equal(gf, floats) {
			t.Errorf("float8[]: %v", gf)
		}
		if !slices.Equal(gb, bools) {
			t.Errorf("bool[]: %v", gb)
		}
		if !slices.EqualFunc(gba, blobs, bytes.Equal) {
			t.Errorf("bytea[]: %q", gba)
		}
		if !slices.EqualFunc(gt, times, time.Time.Equal) {
			t.Errorf("timestamptz[]: %v", gt)
		}
	}
	// Directly as arguments, read back through the same scanners.
	var gi []int64
	var gs []string
	var gt []time.Time
	if err := db.QueryRowContext(ctx, `SELECT $1::int8[], $2::text[], $3::timestamptz[]`, ints, strs, times).Scan(m.SQLScanner(&gi), m.SQLScanner(&gs), m.SQLScanner(&gt)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gi, ints) || !slices.Equal(gs, strs) || !slices.EqualFunc(gt, times, time.Time.Equal) {
		t.Errorf("arguments: %v %q %v", gi, gs, gt)
	}
	// Empty and NULL arrays through the scanners.
	gi, gs = []int64{9}, []string{"9"}
	if err := db.QueryRowContext(ctx, `SELECT i8, tx FROM arr WHERE id = 2`).Scan(m.SQLScanner(&gi), m.SQLScanner(&gs)); err != nil {
		t.Fatal(err)
	}
	if gi == nil || len(gi) != 0 || gs == nil || len(gs) != 0 {
		t.Errorf("empty arrays: %#v %#v", gi, gs)
	}
	if err := db.QueryRowContext(ctx, `SELECT i8, tx FROM arr WHERE id = 3`).Scan(m.SQLScanner(&gi), m.SQLScanner(&gs)); err != nil {
		t.Fatal(err)
	}
	if gi != nil || gs != nil {
		t.Errorf("NULL arrays: %#v %#v", gi, gs)
	}
	// Other slice types pgtype knows: []int32 and []int into int4[]/int8[], a nested slice into a 2-D array.
	var s string
	if err := db.QueryRowContext(ctx, `SELECT $1::int4[]::text || $2::int8[]::text || $3::int8[]::text`,
		[]int32{1, 2}, []int{3}, [][]int64{{1, 2}, {3, 4}}).Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s != "{1,2}{3}{{1,2},{3,4}}" {
		t.Errorf("other slices: %s", s)
	}
	// The parameter type decides: text[] for a column, an unknown-typed parameter is an error from the server,
	// not a panic in the driver.
	var tx string
	if err := db.QueryRowContext(ctx, `SELECT array_to_string($1::text[], '|')`, []string{"x", "y"}).Scan(&tx); err != nil || tx != "x|y" {
		t.Errorf("array_to_string: %q %v", tx, err)
	}
}

// A value that cannot be decoded gives an error naming the column, the PostgreSQL type and the Go type, and the
// connection stays usable.
func TestConvDecodeError(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t, "connection_count=1")
	convExec(t, ctx, db,
		`CREATE TYPE rec AS (label text, n int4)`,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`)
	x := ext(t, db)
	if err := x.AddConverterWithArray(ctx, converters.Composite[convStrict]("rec")); err != nil {
		t.Fatal(err)
	}
	if err := x.AddConverterWithArray(ctx, converters.Enum[convMood]("mood")); err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, db)
	for _, tc := range []struct {
		name, query string
		args        []any
		pgType      string
		goType      string
		column      string
	}{
		{"simple", `SELECT 1 AS one, ROW('x', NULL)::rec AS my_rec FROM generate_series(1, 3)`, nil, "rec", "convStrict", "my_rec"},
		{"extended", `SELECT 1 AS one, $1::rec AS my_rec FROM generate_series(1, 3)`, []any{pgtype.CompositeFields{"x", nil}}, "rec", "convStrict", "my_rec"},
		{"array", `SELECT ARRAY[ROW('y', 1)::rec, ROW(NULL, 2)::rec] AS recs`, nil, "rec", "convStrict", "recs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := db.QueryContext(ctx, tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			// Before Go 1.27 the error comes from Next; with the column
			// scanner it comes from Scan.
			var scanErr error
			for rows.Next() {
				cols, _ := rows.Columns()
				dest := make([]any, len(cols))
				for i := range dest {
					dest[i] = new(any)
				}
				if scanErr = rows.Scan(dest...); scanErr != nil {
					break
				}
				t.Error("got a row")
			}
			err = rows.Err()
			if scanErr != nil {
				err = scanErr
			}
			_ = rows.Close()
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("%v", err)
			var de *pgpurepy.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%T is not a *DecodeError", err)
			}
			for _, want := range []string{tc.column, tc.pgType, tc.goType} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %q", want)
				}
			}
			if de.Column != tc.column || !strings.HasPrefix(de.PgType, tc.pgType) || !strings.Contains(de.GoType, tc.goType) {
				t.Errorf("DecodeError fields: %+v", de)
			}
			// The connection is the same and usable.
			if got := backendPID(t, db); got != pid {
				t.Errorf("backend changed from %d to %d", pid, got)
			}
			if v := convAny(t, ctx, db, `SELECT ROW('z', 3)::rec`); !reflect.DeepEqual(v, convStrict{Label: "z", N: 3}) {
				t.Errorf("after the error: %T %v", v, v)
			}
		})
	}
	// QueryRow reports it the same way.
	var r convStrict
	err := db.QueryRowContext(ctx, `SELECT ROW(NULL, 1)::rec AS r1`).Scan(&r)
	var de *pgpurepy.DecodeError
	if !errors.As(err, &de) || de.Column != "r1" {
		t.Errorf("QueryRow: %v", err)
	}
	if got := backendPID(t, db); got != pid {
		t.Errorf("backend changed from %d to %d", pid, got)
	}
}

// The pool's checkout health check must not block when another reader is parked on the connection's socket. pgconn
// leaves one behind: when a statement's write is slow (over 15ms, common under -race and load) pgconn starts its
// background reader, which can read the whole response while still running and then park in Read on the idle
// socket, holding the fd's read lock until the server sends again. peek used RawConn.Read, which takes that lock, so
// the next checkout of the idle connection hung forever (seen as a 10-minute timeout of the Conv tests, with
// goroutines in peek -> (*FD).RawRead -> readLock and in bgreader.bgRead). This test parks a reader the same way.
func TestConvCheckoutWithParkedReader(t *testing.T) {
	t.Parallel()
	ctx := convCtx(t)
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	nc, check, destroy, err := pgpurepy.CheckoutSession(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var b [1]byte
		_, _ = nc.Read(b[:]) // parks in the netpoller holding the read lock, like pgconn's background reader
	}()
	time.Sleep(100 * time.Millisecond)
	checked := make(chan error, 1)
	go func() { checked <- check(ctx) }()
	select {
	case err := <-checked:
		if err != nil {
			t.Errorf("check: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Error("the checkout health check blocked on a connection with a parked reader")
		// Unblock both by closing the socket under pgconn, then wait for check before touching the session again.
		_ = nc.Close()
		select {
		case <-checked:
		case <-time.After(5 * time.Second):
			t.Error("check still blocked after the socket was closed")
		}
	}
	_ = nc.Close() // ends the parked reader; the session cannot be used any more
	<-readerDone
	destroy()
}
