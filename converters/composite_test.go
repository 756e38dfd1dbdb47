package converters

import (
	"database/sql"
	"fmt"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// compositeScanTests are also the seed corpus of FuzzCompositeDecode.
var compositeScanTests = []struct {
	name   string
	format int16
	src    []byte
	want   Pair
}{
	{"text", pgtype.TextFormatCode, []byte("(1,a)"), Pair{1, ptr("a")}},
	{"text quoted", pgtype.TextFormatCode, []byte(`(2,"b c")`), Pair{2, ptr("b c")}},
	{"text escapes", pgtype.TextFormatCode, []byte(`(3,"x\"y\\z,()")`), Pair{3, ptr(`x"y\z,()`)}},
	{"text doubled quote", pgtype.TextFormatCode, []byte(`(4,"a""b")`), Pair{4, ptr(`a"b`)}},
	{"text empty string", pgtype.TextFormatCode, []byte(`(5,"")`), Pair{5, ptr("")}},
	{"text NULL attribute", pgtype.TextFormatCode, []byte("(6,)"), Pair{6, nil}},
	{"binary", pgtype.BinaryFormatCode, binRecord(binAttr{pgtype.Int4OID, int4Bytes(7)}, binAttr{pgtype.TextOID, []byte("b c")}), Pair{7, ptr("b c")}},
	{"binary NULL attribute", pgtype.BinaryFormatCode, binRecord(binAttr{pgtype.Int4OID, int4Bytes(-8)}, binAttr{pgtype.TextOID, nil}), Pair{-8, nil}},
}

func TestCompositeScan(t *testing.T) {
	m := newTestMap(t)
	for _, tt := range compositeScanTests {
		t.Run(tt.name, func(t *testing.T) {
			var got Pair
			if err := m.Scan(pairOID, tt.format, tt.src, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %s, want %s", fmtPair(got), fmtPair(tt.want))
			}

			var a any
			if err := m.Scan(pairOID, tt.format, tt.src, &a); err != nil || !reflect.DeepEqual(a, any(tt.want)) {
				t.Errorf("into *any: %#v, %v", a, err)
			}
		})
	}
}

func fmtPair(p Pair) string {
	if p.S == nil {
		return fmt.Sprintf("(%d,NULL)", p.N)
	}
	return fmt.Sprintf("(%d,%q)", p.N, *p.S)
}

func TestCompositeScanByTag(t *testing.T) {
	m := pgtype.NewMap()
	if err := Register(m, Composite[TaggedPair]("pair"), pairInfo, true); err != nil {
		t.Fatal(err)
	}
	want := TaggedPair{Label: "b c", Number: 2}
	var got TaggedPair
	if err := m.Scan(pairOID, pgtype.TextFormatCode, []byte(`(2,"b c")`), &got); err != nil || got != want {
		t.Errorf("text: %+v, %v", got, err)
	}
	got = TaggedPair{}
	src := binRecord(binAttr{pgtype.Int4OID, int4Bytes(2)}, binAttr{pgtype.TextOID, []byte("b c")})
	if err := m.Scan(pairOID, pgtype.BinaryFormatCode, src, &got); err != nil || got != want {
		t.Errorf("binary: %+v, %v", got, err)
	}

	// NULL into a string attribute is an error naming the attribute.
	err := m.Scan(pairOID, pgtype.TextFormatCode, []byte(`(2,)`), &got)
	wantErrContains(t, err, "converters: cannot decode pair into converters.TaggedPair", "attribute s")

	buf, err := m.Encode(pairOID, pgtype.TextFormatCode, TaggedPair{Label: "x y", Skipped: "no", Number: 9}, nil)
	if err != nil || string(buf) != `(9,x y)` { // record_in keeps inner spaces unquoted
		t.Errorf("encode: %q, %v", buf, err)
	}
}

func TestCompositeTagMatchingByName(t *testing.T) {
	type mixed struct {
		S string `db:"s"`
		N int32  // untagged: matched to attribute n ignoring case
	}
	m := pgtype.NewMap()
	if err := Register(m, Composite[mixed]("pair"), pairInfo, false); err != nil {
		t.Fatal(err)
	}
	var got mixed
	if err := m.Scan(pairOID, pgtype.TextFormatCode, []byte("(1,a)"), &got); err != nil || got != (mixed{"a", 1}) {
		t.Errorf("%+v, %v", got, err)
	}
}

func TestCompositeNullValue(t *testing.T) {
	m := newTestMap(t)
	var got Pair
	err := m.Scan(pairOID, pgtype.TextFormatCode, nil, &got)
	wantErrContains(t, err, "converters: cannot decode NULL pair into converters.Pair")

	p := &Pair{N: 1}
	if err := m.Scan(pairOID, pgtype.BinaryFormatCode, nil, &p); err != nil || p != nil {
		t.Errorf("NULL into **Pair: %v, %v", p, err)
	}
}

func TestCompositeNullableFieldTypes(t *testing.T) {
	type nullable struct {
		N pgtype.Int4
		S sql.NullString
	}
	m := pgtype.NewMap()
	if err := Register(m, Composite[nullable]("pair"), pairInfo, false); err != nil {
		t.Fatal(err)
	}
	for _, src := range []struct {
		format int16
		data   []byte
	}{
		{pgtype.TextFormatCode, []byte("(,)")},
		{pgtype.BinaryFormatCode, binRecord(binAttr{pgtype.Int4OID, nil}, binAttr{pgtype.TextOID, nil})},
	} {
		got := nullable{N: pgtype.Int4{Int32: 1, Valid: true}, S: sql.NullString{String: "x", Valid: true}}
		if err := m.Scan(pairOID, src.format, src.data, &got); err != nil || got != (nullable{}) {
			t.Errorf("format %d: %+v, %v", src.format, got, err)
		}
	}
	for _, format := range []int16{pgtype.TextFormatCode, pgtype.BinaryFormatCode} {
		in := nullable{S: sql.NullString{String: "s", Valid: true}}
		buf, err := m.Encode(pairOID, format, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out nullable
		if err := m.Scan(pairOID, format, buf, &out); err != nil || out != in {
			t.Errorf("format %d round trip: %+v, %v", format, out, err)
		}
	}
}

func TestCompositeArray(t *testing.T) {
	m := newTestMap(t)
	text := []byte(`{"(1,a)","(2,\"b c\")",NULL}`)
	bin := binArray(pairOID,
		binRecord(binAttr{pgtype.Int4OID, int4Bytes(1)}, binAttr{pgtype.TextOID, []byte("a")}),
		binRecord(binAttr{pgtype.Int4OID, int4Bytes(2)}, binAttr{pgtype.TextOID, []byte("b c")}),
		nil)
	want := []*Pair{{1, ptr("a")}, {2, ptr("b c")}, nil}
	for _, src := range []struct {
		format int16
		data   []byte
	}{{pgtype.TextFormatCode, text}, {pgtype.BinaryFormatCode, bin}} {
		var got []*Pair
		if err := m.Scan(pairArrayOID, src.format, src.data, &got); err != nil {
			t.Fatalf("format %d: %v", src.format, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("format %d: got %v", src.format, got)
		}

		var notNullable []Pair
		err := m.Scan(pairArrayOID, src.format, src.data, &notNullable)
		wantErrContains(t, err, "NULL pair", "converters.Pair")
	}

	var got []Pair
	if err := m.Scan(pairArrayOID, pgtype.TextFormatCode, []byte(`{"(1,a)","(2,)"}`), &got); err != nil {
		t.Fatal(err)
	}
	if want := []Pair{{1, ptr("a")}, {2, nil}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
}

func TestCompositeEncode(t *testing.T) {
	m := newTestMap(t)
	tests := []struct {
		name   string
		oid    uint32
		format int16
		value  any
		want   []byte
	}{
		{"text", pairOID, pgtype.TextFormatCode, Pair{1, ptr("a")}, []byte("(1,a)")},
		{"text quoting", pairOID, pgtype.TextFormatCode, Pair{2, ptr(`b "c"`)}, []byte(`(2,"b \"c\"")`)},
		{"text NULL attribute", pairOID, pgtype.TextFormatCode, Pair{3, nil}, []byte("(3,)")},
		{"binary", pairOID, pgtype.BinaryFormatCode, Pair{7, ptr("b c")},
			binRecord(binAttr{pgtype.Int4OID, int4Bytes(7)}, binAttr{pgtype.TextOID, []byte("b c")})},
		{"binary NULL attribute", pairOID, pgtype.BinaryFormatCode, Pair{7, nil},
			binRecord(binAttr{pgtype.Int4OID, int4Bytes(7)}, binAttr{pgtype.TextOID, nil})},
		{"array text", pairArrayOID, pgtype.TextFormatCode, []Pair{{1, ptr("a")}, {2, ptr("b c")}},
			[]byte(`{"(1,a)","(2,b c)"}`)},
		{"array of pointers", pairArrayOID, pgtype.TextFormatCode, []*Pair{{1, nil}, nil}, []byte(`{"(1,)",NULL}`)},
		{"array binary", pairArrayOID, pgtype.BinaryFormatCode, []Pair{{1, ptr("a")}},
			binArray(pairOID, binRecord(binAttr{pgtype.Int4OID, int4Bytes(1)}, binAttr{pgtype.TextOID, []byte("a")}))},
		{"unknown OID", 0, pgtype.TextFormatCode, Pair{1, ptr("a")}, []byte("(1,a)")},
		{"unknown OID array", 0, pgtype.TextFormatCode, []Pair{{1, ptr("a")}}, []byte(`{"(1,a)"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Encode(tt.oid, tt.format, tt.value, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCompositeNestedRoundTrip(t *testing.T) {
	m := newTestMap(t)
	values := []Outer{
		{ID: 1, P: &Pair{2, ptr(`a "b", (c)`)}, Mood: "happy"},
		{ID: -1, P: nil, Mood: "sad"},
		{ID: 0, P: &Pair{0, nil}, Mood: ""},
	}
	for _, format := range []int16{pgtype.TextFormatCode, pgtype.BinaryFormatCode} {
		for _, in := range values {
			buf, err := m.Encode(outerOID, format, in, nil)
			if err != nil {
				t.Fatalf("format %d: encode %+v: %v", format, in, err)
			}
			var out Outer
			if err := m.Scan(outerOID, format, buf, &out); err != nil {
				t.Fatalf("format %d: scan %q: %v", format, buf, err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Errorf("format %d: got %+v, want %+v", format, out, in)
			}
		}
		buf, err := m.Encode(outerArrayOID, format, values, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []Outer
		if err := m.Scan(outerArrayOID, format, buf, &out); err != nil || !reflect.DeepEqual(values, out) {
			t.Errorf("format %d: array round trip: %+v, %v", format, out, err)
		}
	}

	// What a server sends for `select row(1, row(2, 'x y'), 'ok')::outer` in text format.
	var got Outer
	if err := m.Scan(outerOID, pgtype.TextFormatCode, []byte(`(1,"(2,""x y"")",ok)`), &got); err != nil {
		t.Fatal(err)
	}
	if want := (Outer{1, &Pair{2, ptr("x y")}, "ok"}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

func TestCompositeFormats(t *testing.T) {
	m := newTestMap(t)
	if got := m.FormatCodeForOID(pairOID); got != pgtype.BinaryFormatCode {
		t.Errorf("pair prefers format %d, want binary", got)
	}
	if got := m.FormatCodeForOID(pairArrayOID); got != pgtype.BinaryFormatCode {
		t.Errorf("pair[] prefers format %d, want binary", got)
	}

	// An attribute type the Map does not know (an extension type, say) leaves the text format.
	info := TypeInfo{Name: "tagged", OID: 90071, Kind: 'c', Fields: []Field{{"n", pgtype.Int4OID}, {"tag", 77777}}}
	type tagged struct {
		N   int32
		Tag string
	}
	if err := Register(m, Composite[tagged]("tagged"), info, false); err != nil {
		t.Fatal(err)
	}
	if got := m.FormatCodeForOID(info.OID); got != pgtype.TextFormatCode {
		t.Errorf("tagged prefers format %d, want text", got)
	}
	var got tagged
	if err := m.Scan(info.OID, pgtype.TextFormatCode, []byte("(1,abc)"), &got); err != nil || got != (tagged{1, "abc"}) {
		t.Errorf("%+v, %v", got, err)
	}
	buf, err := m.Encode(info.OID, pgtype.TextFormatCode, tagged{2, "x"}, nil)
	if err != nil || string(buf) != "(2,x)" {
		t.Errorf("encode: %q, %v", buf, err)
	}
}

func TestCompositeFieldsTarget(t *testing.T) {
	m := newTestMap(t)
	var n int32
	var s string
	if err := m.Scan(pairOID, pgtype.BinaryFormatCode, binRecord(binAttr{pgtype.Int4OID, int4Bytes(3)}, binAttr{pgtype.TextOID, []byte("c")}),
		pgtype.CompositeFields{&n, &s}); err != nil || n != 3 || s != "c" {
		t.Errorf("CompositeFields: %d %q %v", n, s, err)
	}
}
