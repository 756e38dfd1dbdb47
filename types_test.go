package pgpurepy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the time zones below, on machines without zoneinfo
)

// rtCase is one value of one PostgreSQL type sent to the server and read
// back, with NULLs beside it, through sql.Null[T] and *T destinations.
type rtCase struct {
	name string
	typ  string // the PostgreSQL type, as written in a cast or a column
	arg  any    // the value, sent as an argument (extended protocol)
	lit  string // the same value as the text of a literal (simple protocol)
	// check scans the current row of rows, whose columns hold the value
	// where value[i] and NULL elsewhere, and reports mismatches.
	check func(t *testing.T, where string, rows *sql.Rows, value []bool)
}

// rt makes an rtCase whose values scan into T and compare with eq (nil
// means reflect.DeepEqual).
func rt[T any](typ string, arg any, lit string, want T, eq func(got, want T) bool) rtCase {
	if eq == nil {
		eq = func(got, want T) bool { return reflect.DeepEqual(got, want) }
	}
	return rtCase{
		name: typ + "/" + rtShort(lit),
		typ:  typ,
		arg:  arg,
		lit:  lit,
		check: func(t *testing.T, where string, rows *sql.Rows, value []bool) {
			t.Helper()
			// Even columns scan into sql.Null[T], odd ones into *T.
			nulls := make([]sql.Null[T], len(value))
			ptrs := make([]*T, len(value))
			dest := make([]any, len(value))
			for i := range value {
				if i%2 == 0 {
					dest[i] = &nulls[i]
				} else {
					// A non-nil pointer proves that NULL sets it to nil.
					ptrs[i] = new(T)
					dest[i] = &ptrs[i]
				}
			}
			if err := rows.Scan(dest...); err != nil {
				t.Errorf("%s: scan: %v", where, err)
				return
			}
			for i, isValue := range value {
				var got T
				var valid bool
				if i%2 == 0 {
					got, valid = nulls[i].V, nulls[i].Valid
				} else if ptrs[i] != nil {
					got, valid = *ptrs[i], true
				}
				switch {
				case valid != isValue:
					t.Errorf("%s: column %d: valid = %v, want %v (value %v)", where, i+1, valid, isValue, rtShort(fmt.Sprint(got)))
				case isValue && !eq(got, want):
					t.Errorf("%s: column %d: got %s, want %s", where, i+1, rtShort(fmt.Sprintf("%#v", got)), rtShort(fmt.Sprintf("%#v", want)))
				}
			}
		},
	}
}

// rtShort cuts long values down for test names and messages.
func rtShort(s string) string {
	if len(s) > 60 {
		return fmt.Sprintf("%s...(%d bytes)", s[:40], len(s))
	}
	return s
}

func rtLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func rtTimeEqual(got, want time.Time) bool { return got.Equal(want) }

func rtLocation(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func roundTripCases(t *testing.T) []rtCase {
	newYork := rtLocation(t, "America/New_York")
	kolkata := rtLocation(t, "Asia/Kolkata")
	big := make([]byte, 1<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	bin := []byte{0, 1, 2, 0xfe, 0xff, '\\', '\'', 'x'}
	tsNY := time.Date(2024, 3, 10, 3, 30, 0, 123456000, newYork) // just after the DST switch
	tsKolkata := time.Date(2023, 12, 31, 23, 59, 59, 999999000, kolkata)
	tsUTC := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	const tzLayout = "2006-01-02 15:04:05.999999-07:00"
	float32Eq := func(got, want float32) bool { return got == want }
	bytesEq := func(got, want []byte) bool { return bytes.Equal(got, want) && got != nil }
	nanEq := func(got, want float64) bool { return math.IsNaN(got) }
	return []rtCase{
		rt("bool", true, "true", true, nil),
		rt("bool", false, "false", false, nil),
		rt("int2", int16(math.MinInt16), "-32768", int16(math.MinInt16), nil),
		rt("int2", int16(math.MaxInt16), "32767", int16(math.MaxInt16), nil),
		rt("int4", int32(math.MinInt32), "-2147483648", int32(math.MinInt32), nil),
		rt("int4", 7, "7", int32(7), nil), // a Go int
		rt("int8", int64(math.MaxInt64), "9223372036854775807", int64(math.MaxInt64), nil),
		rt("int8", int64(math.MinInt64), "-9223372036854775808", int64(math.MinInt64), nil),
		rt("float4", float32(0.1), "0.1", float32(0.1), float32Eq),
		rt("float4", float32(16777216), "16777216", float32(16777216), float32Eq),
		rt("float8", 0.1, "0.1", 0.1, nil),
		rt("float8", 1.0000000000000002, "1.0000000000000002", 1.0000000000000002, nil),
		rt("float8", math.MaxFloat64, "1.7976931348623157e+308", math.MaxFloat64, nil),
		rt("float8", math.Inf(-1), "-Infinity", math.Inf(-1), nil),
		rt("float8", math.NaN(), "NaN", math.NaN(), nanEq),
		rt("numeric", "12345678901234567890.123456789", "12345678901234567890.123456789", "12345678901234567890.123456789", nil),
		rt("numeric", "-0.000000000000000000001000", "-0.000000000000000000001000", "-0.000000000000000000001000", nil),
		rt("numeric", "98765432109876543210987654321098765432109876543210", "98765432109876543210987654321098765432109876543210", "98765432109876543210987654321098765432109876543210", nil),
		rt("numeric", "NaN", "NaN", "NaN", nil),
		rt("numeric(30,9)", "12345678901234567890.123456789", "12345678901234567890.123456789", "12345678901234567890.123456789", nil),
		rt("text", "héllo 'wörld' \\ ✓\t\n", "héllo 'wörld' \\ ✓\t\n", "héllo 'wörld' \\ ✓\t\n", nil),
		rt("text", "", "", "", nil),
		rt("varchar", "plain varchar", "plain varchar", "plain varchar", nil),
		rt("varchar(20)", "twenty chars at most", "twenty chars at most", "twenty chars at most", nil),
		rt("bytea", bin, `\x`+hex.EncodeToString(bin), bin, bytesEq),
		rt("bytea", []byte{}, `\x`, []byte{}, bytesEq),
		rt("bytea", big, `\x`+hex.EncodeToString(big), big, bytesEq),
		rt("date", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "2024-02-29", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), rtTimeEqual),
		rt("date", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), rtTimeEqual),
		rt("timestamp", time.Date(2024, 7, 1, 12, 34, 56, 789012000, time.UTC), "2024-07-01 12:34:56.789012", time.Date(2024, 7, 1, 12, 34, 56, 789012000, time.UTC), rtTimeEqual),
		rt("timestamptz", tsNY, tsNY.Format(tzLayout), tsNY, rtTimeEqual),
		rt("timestamptz", tsKolkata, tsKolkata.Format(tzLayout), tsKolkata, rtTimeEqual),
		rt("timestamptz", tsUTC, tsUTC.Format(tzLayout), tsUTC, rtTimeEqual),
		rt("interval", "1 year 2 mons 3 days 04:05:06.789", "1 year 2 mons 3 days 04:05:06.789", "1 year 2 mons 3 days 04:05:06.789", nil),
		rt("interval", "-00:00:01", "-00:00:01", "-00:00:01", nil),
		rt("interval", 90*time.Minute, "01:30:00", "01:30:00", nil), // a time.Duration
		rt("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", nil),
		rt("uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", nil),
		rt("json", []byte(`{"b": [1, 2.5, "x"],  "a": null}`), `{"b": [1, 2.5, "x"],  "a": null}`, []byte(`{"b": [1, 2.5, "x"],  "a": null}`), bytesEq),
		rt("json", `[1,"two"]`, `[1,"two"]`, `[1,"two"]`, nil),
		rt("jsonb", []byte(`{"b":1, "a":[true,null,"é"]}`), `{"b":1, "a":[true,null,"é"]}`, []byte(`{"a": [true, null, "é"], "b": 1}`), bytesEq),
		rt("jsonb", `{"k": "v"}`, `{"k": "v"}`, `{"k": "v"}`, nil),
		rt("inet", "192.168.0.1/24", "192.168.0.1/24", "192.168.0.1/24", nil),
		rt("inet", "10.0.0.1", "10.0.0.1", "10.0.0.1", nil),
		rt("inet", "::1", "::1", "::1", nil),
		rt("inet", netip.MustParseAddr("2001:db8::1"), "2001:db8::1", "2001:db8::1", nil),
	}
}

// rtPtrTo returns a pointer to a copy of v, typed as *T for v's type T, and a
// nil pointer of the same type.
func rtPtrTo(v any) (ptr, nilPtr any) {
	p := reflect.New(reflect.TypeOf(v))
	p.Elem().Set(reflect.ValueOf(v))
	return p.Interface(), reflect.Zero(p.Type()).Interface()
}

// TestRoundTrip sends every value with the extended protocol (as an
// argument, beside NULLs given as nil, a nil pointer and an invalid
// sql.Null) and as a literal with the simple protocol (text results), both
// straight back and through a table column of the type.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	for i, tc := range roundTripCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ptr, nilPtr := rtPtrTo(tc.arg)
			cast := "::" + tc.typ
			lit := rtLiteral(tc.lit) + cast

			// Extended protocol, binary or text results as the driver picks.
			args := []any{tc.arg, ptr, nil, nilPtr}
			value := []bool{true, true, false, false}
			// sql.Null[any].Value converts its value to a driver.Value first,
			// which turns a time.Duration into a plain int64.
			if _, err := driver.DefaultParameterConverter.ConvertValue(tc.arg); err == nil && reflect.TypeOf(tc.arg) != reflect.TypeFor[time.Duration]() {
				args = append(args, sql.Null[any]{V: tc.arg, Valid: true}, sql.Null[any]{})
				value = append(value, true, false)
			}
			var cols []string
			for j := range args {
				cols = append(cols, fmt.Sprintf("$%d%s", j+1, cast))
			}
			rtQueryOne(t, db, "args", "SELECT "+strings.Join(cols, ", "), args, tc, value)

			// Simple protocol: literal SQL, text results.
			rtQueryOne(t, db, "literal", "SELECT "+lit+", NULL"+cast+", "+lit+", NULL"+cast, nil, tc, []bool{true, false, true, false})

			// Through a table column.
			table := fmt.Sprintf("rt_%d", i)
			mustExec(t, db, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v %s)", table, tc.typ))
			for j, a := range []any{tc.arg, nil, ptr, nilPtr} {
				if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" (id, v) VALUES ($1, $2)", j+1, a); err != nil {
					t.Fatalf("insert %T: %v", a, err)
				}
			}
			mustExec(t, db, fmt.Sprintf("INSERT INTO %s (id, v) VALUES (5, %s), (6, NULL)", table, lit))
			pivot := fmt.Sprintf("SELECT a.v, b.v, c.v, d.v, e.v, f.v FROM %[1]s a, %[1]s b, %[1]s c, %[1]s d, %[1]s e, %[1]s f WHERE a.id = %%s AND b.id = 2 AND c.id = 3 AND d.id = 4 AND e.id = 5 AND f.id = 6", table)
			tableValue := []bool{true, false, true, false, true, false}
			rtQueryOne(t, db, "table/literal", fmt.Sprintf(pivot, "1"), nil, tc, tableValue)
			rtQueryOne(t, db, "table/args", fmt.Sprintf(pivot, "$1"), []any{1}, tc, tableValue)
		})
	}
}

// rtQueryOne runs a query that returns one row and checks it with tc.
func rtQueryOne(t *testing.T, db *sql.DB, where, query string, args []any, tc rtCase, value []bool) {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Errorf("%s: %s: %v", where, rtShort(query), err)
		return
	}
	defer rows.Close()
	if !rows.Next() {
		t.Errorf("%s: no row: %v", where, rows.Err())
		return
	}
	tc.check(t, where, rows, value)
	if rows.Next() {
		t.Errorf("%s: more than one row", where)
	}
	if err := rows.Err(); err != nil {
		t.Errorf("%s: %v", where, err)
	}
}

// TestRoundTripNullTypes reads values and NULLs into the classic sql.Null*
// types with both protocols.
func TestRoundTripNullTypes(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	when := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	const cols = "%[1]s::bool, %[2]s::int2, %[3]s::int4, %[4]s::int8, %[5]s::float8, %[6]s::text, %[7]s::timestamptz, %[8]s::int2"
	queries := map[string]struct {
		query string
		args  []any
	}{
		"args":          {"SELECT " + fmt.Sprintf(cols, "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8"), []any{true, int16(-2), int32(-3), int64(-4), 1.5, "s", when, uint8(200)}},
		"literal":       {"SELECT " + fmt.Sprintf(cols, "true", "-2", "-3", "-4", "1.5", "'s'", "'2021-05-06 07:08:09Z'", "200"), nil},
		"args-null":     {"SELECT " + fmt.Sprintf(cols, "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8"), make([]any, 8)},
		"literal-null":  {"SELECT " + fmt.Sprintf(cols, "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"), nil},
		"args-nullvals": {"SELECT " + fmt.Sprintf(cols, "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8"), []any{sql.NullBool{}, sql.NullInt16{}, sql.NullInt32{}, sql.NullInt64{}, sql.NullFloat64{}, sql.NullString{}, sql.NullTime{}, sql.NullByte{}}},
		"args-validvals": {"SELECT " + fmt.Sprintf(cols, "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8"), []any{
			sql.NullBool{Bool: true, Valid: true}, sql.NullInt16{Int16: -2, Valid: true}, sql.NullInt32{Int32: -3, Valid: true},
			sql.NullInt64{Int64: -4, Valid: true}, sql.NullFloat64{Float64: 1.5, Valid: true}, sql.NullString{String: "s", Valid: true},
			sql.NullTime{Time: when, Valid: true}, sql.NullByte{Byte: 200, Valid: true}}},
	}
	for name, q := range queries {
		var (
			b   sql.NullBool
			i16 sql.NullInt16
			i32 sql.NullInt32
			i64 sql.NullInt64
			f   sql.NullFloat64
			s   sql.NullString
			tm  sql.NullTime
			by  sql.NullByte
		)
		if err := db.QueryRow(q.query, q.args...).Scan(&b, &i16, &i32, &i64, &f, &s, &tm, &by); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := []any{b, i16, i32, i64, f, s, tm.Valid, by}
		want := []any{
			sql.NullBool{Bool: true, Valid: true}, sql.NullInt16{Int16: -2, Valid: true}, sql.NullInt32{Int32: -3, Valid: true},
			sql.NullInt64{Int64: -4, Valid: true}, sql.NullFloat64{Float64: 1.5, Valid: true}, sql.NullString{String: "s", Valid: true},
			true, sql.NullByte{Byte: 200, Valid: true},
		}
		if strings.Contains(name, "null") {
			want = []any{sql.NullBool{}, sql.NullInt16{}, sql.NullInt32{}, sql.NullInt64{}, sql.NullFloat64{}, sql.NullString{}, false, sql.NullByte{}}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
		if tm.Valid && !tm.Time.Equal(when) {
			t.Errorf("%s: time %v, want %v", name, tm.Time, when)
		}
	}
}

// TestTimestamptzSessionTimeZone checks that timestamptz values keep their
// instant whatever the session's TimeZone, with both protocols, on a
// db.Conn whose TimeZone is SET.
func TestTimestamptzSessionTimeZone(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	instants := []time.Time{
		time.Date(2024, 3, 10, 3, 30, 0, 123456000, rtLocation(t, "America/New_York")),
		time.Date(2023, 12, 31, 23, 59, 59, 999999000, rtLocation(t, "Asia/Kolkata")),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1960, 6, 1, 12, 0, 0, 0, time.UTC), // Monrovia was UTC-00:44:30 then
	}
	for _, zone := range []string{"America/New_York", "Asia/Kolkata", "UTC", "America/St_Johns", "Africa/Monrovia"} {
		if _, err := conn.ExecContext(ctx, "SET TimeZone = "+rtLiteral(zone)); err != nil {
			t.Fatal(err)
		}
		var shown string
		if err := conn.QueryRowContext(ctx, "SHOW TimeZone").Scan(&shown); err != nil || shown != zone {
			t.Fatalf("SHOW TimeZone = %q, %v; want %q", shown, err, zone)
		}
		for _, want := range instants {
			var byArg, byLit time.Time
			var text string
			if err := conn.QueryRowContext(ctx, "SELECT $1::timestamptz, $1::timestamptz::text", want).Scan(&byArg, &text); err != nil {
				t.Errorf("%s: %v: args: %v", zone, want, err)
				continue
			}
			if !byArg.Equal(want) {
				t.Errorf("%s: args: got %v, want %v (server shows %s)", zone, byArg, want, text)
			}
			if err := conn.QueryRowContext(ctx, "SELECT "+rtLiteral(want.Format(time.RFC3339Nano))+"::timestamptz").Scan(&byLit); err != nil {
				t.Errorf("%s: %v: literal (server shows %s): %v", zone, want, text, err)
				continue
			}
			if !byLit.Equal(want) {
				t.Errorf("%s: literal: got %v, want %v (server shows %s)", zone, byLit, want, text)
			}
		}
		// timestamp without time zone keeps its wall clock.
		wall := time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)
		var ts1, ts2 time.Time
		if err := conn.QueryRowContext(ctx, "SELECT $1::timestamp", wall).Scan(&ts1); err != nil || !ts1.Equal(wall) {
			t.Errorf("%s: timestamp args: %v, %v", zone, ts1, err)
		}
		if err := conn.QueryRowContext(ctx, "SELECT '2024-07-01 12:00:00'::timestamp").Scan(&ts2); err != nil || !ts2.Equal(wall) {
			t.Errorf("%s: timestamp literal: %v, %v", zone, ts2, err)
		}
	}
}

// TestInfinityTimes: infinite dates and timestamps come back as the strings
// PostgreSQL uses.
func TestInfinityTimes(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	for _, q := range []string{
		"SELECT 'infinity'::timestamptz, '-infinity'::timestamp, 'infinity'::date",
		"SELECT $1::timestamptz, $2::timestamp, $1::date",
	} {
		var args []any
		if strings.Contains(q, "$") {
			args = []any{"infinity", "-infinity"}
		}
		var a, b, c string
		if err := db.QueryRow(q, args...).Scan(&a, &b, &c); err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if a != "infinity" || b != "-infinity" || c != "infinity" {
			t.Errorf("%s: got %q %q %q", q, a, b, c)
		}
	}
}
