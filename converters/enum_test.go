package converters

import (
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// enumScanTests are also the seed corpus of FuzzEnumDecode.
var enumScanTests = []struct {
	format int16
	src    []byte
	want   Mood
}{
	{pgtype.TextFormatCode, []byte("happy"), "happy"},
	{pgtype.BinaryFormatCode, []byte("sad"), "sad"},
	{pgtype.TextFormatCode, []byte("added later"), "added later"}, // ALTER TYPE ... ADD VALUE after registration
	{pgtype.TextFormatCode, []byte(""), ""},
}

func TestEnumScan(t *testing.T) {
	m := newTestMap(t)
	for _, tt := range enumScanTests {
		var got Mood
		if err := m.Scan(moodOID, tt.format, tt.src, &got); err != nil {
			t.Fatalf("Scan(%q, format %d): %v", tt.src, tt.format, err)
		}
		if got != tt.want {
			t.Errorf("Scan(%q, format %d) = %q, want %q", tt.src, tt.format, got, tt.want)
		}

		var s string
		if err := m.Scan(moodOID, tt.format, tt.src, &s); err != nil || s != string(tt.want) {
			t.Errorf("Scan(%q) into *string = %q, %v", tt.src, s, err)
		}

		var a any
		if err := m.Scan(moodOID, tt.format, tt.src, &a); err != nil || a != any(tt.want) {
			t.Errorf("Scan(%q) into *any = %#v, %v; want Mood", tt.src, a, err)
		}
	}
}

// TestEnumScanAsRoot scans the way the root package does: into reflect.New(c.GoType()).
func TestEnumScanAsRoot(t *testing.T) {
	m := newTestMap(t)
	c := Enum[Mood]("mood")
	ptr := reflect.New(c.GoType())
	if err := m.Scan(moodOID, pgtype.TextFormatCode, []byte("ok"), ptr.Interface()); err != nil {
		t.Fatal(err)
	}
	if got := ptr.Elem().Interface(); got != Mood("ok") {
		t.Errorf("got %#v", got)
	}

	slice := reflect.New(reflect.SliceOf(c.GoType()))
	if err := m.Scan(moodArrayOID, pgtype.TextFormatCode, []byte("{happy,sad}"), slice.Interface()); err != nil {
		t.Fatal(err)
	}
	if got := slice.Elem().Interface().([]Mood); !reflect.DeepEqual(got, []Mood{"happy", "sad"}) {
		t.Errorf("got %#v", got)
	}
}

func TestEnumNull(t *testing.T) {
	m := newTestMap(t)
	var got Mood = "sad"
	err := m.Scan(moodOID, pgtype.TextFormatCode, nil, &got)
	wantErrContains(t, err, "converters: ", "NULL", "mood", "converters.Mood")

	p := ptr(Mood("sad"))
	if err := m.Scan(moodOID, pgtype.TextFormatCode, nil, &p); err != nil || p != nil {
		t.Errorf("NULL into **Mood = %v, %v; want nil, nil", p, err)
	}
	if err := m.Scan(moodOID, pgtype.BinaryFormatCode, []byte("ok"), &p); err != nil || p == nil || *p != "ok" {
		t.Errorf("ok into **Mood = %v, %v", p, err)
	}

	var a any = "x"
	if err := m.Scan(moodOID, pgtype.TextFormatCode, nil, &a); err != nil || a != nil {
		t.Errorf("NULL into *any = %#v, %v", a, err)
	}
}

func TestEnumArray(t *testing.T) {
	m := newTestMap(t)
	tests := []struct {
		name   string
		format int16
		src    []byte
		want   []Mood
	}{
		{"text", pgtype.TextFormatCode, []byte("{happy,sad}"), []Mood{"happy", "sad"}},
		{"text quoted", pgtype.TextFormatCode, []byte(`{"added later",ok}`), []Mood{"added later", "ok"}},
		{"text empty", pgtype.TextFormatCode, []byte("{}"), []Mood{}},
		{"binary", pgtype.BinaryFormatCode, binArray(moodOID, []byte("happy"), []byte("sad")), []Mood{"happy", "sad"}},
		{"NULL array", pgtype.TextFormatCode, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Mood
			if err := m.Scan(moodArrayOID, tt.format, tt.src, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEnumArrayNullElement(t *testing.T) {
	m := newTestMap(t)
	for _, src := range []struct {
		format int16
		data   []byte
	}{
		{pgtype.TextFormatCode, []byte("{happy,NULL,sad}")},
		{pgtype.BinaryFormatCode, binArray(moodOID, []byte("happy"), nil, []byte("sad"))},
	} {
		var got []*Mood
		if err := m.Scan(moodArrayOID, src.format, src.data, &got); err != nil {
			t.Fatalf("format %d: %v", src.format, err)
		}
		if len(got) != 3 || *got[0] != "happy" || got[1] != nil || *got[2] != "sad" {
			t.Errorf("format %d: got %v", src.format, got)
		}

		var notNullable []Mood
		err := m.Scan(moodArrayOID, src.format, src.data, &notNullable)
		wantErrContains(t, err, "NULL mood", "converters.Mood")
	}

	// A quoted "NULL" is the label NULL, not SQL NULL.
	var got []*Mood
	if err := m.Scan(moodArrayOID, pgtype.TextFormatCode, []byte(`{"NULL"}`), &got); err != nil || *got[0] != "NULL" {
		t.Errorf(`{"NULL"}: %v, %v`, got, err)
	}
}

func TestEnumEncode(t *testing.T) {
	m := newTestMap(t)
	tests := []struct {
		name   string
		oid    uint32
		format int16
		value  any
		want   []byte
	}{
		{"text", moodOID, pgtype.TextFormatCode, Mood("happy"), []byte("happy")},
		{"binary", moodOID, pgtype.BinaryFormatCode, Mood("sad"), []byte("sad")},
		{"pointer", moodOID, pgtype.TextFormatCode, ptr(Mood("ok")), []byte("ok")},
		{"nil pointer", moodOID, pgtype.TextFormatCode, (*Mood)(nil), nil},
		{"string binary", moodOID, pgtype.BinaryFormatCode, "ok", []byte("ok")},
		{"empty label is not NULL", moodOID, pgtype.TextFormatCode, Mood(""), []byte{}},
		{"array text", moodArrayOID, pgtype.TextFormatCode, []Mood{"happy", "sad", "added later"}, []byte(`{happy,sad,"added later"}`)},
		{"array binary", moodArrayOID, pgtype.BinaryFormatCode, []Mood{"happy", "sad"}, binArray(moodOID, []byte("happy"), []byte("sad"))},
		{"array of pointers", moodArrayOID, pgtype.TextFormatCode, []*Mood{ptr(Mood("ok")), nil}, []byte(`{ok,NULL}`)},
		{"nil array", moodArrayOID, pgtype.TextFormatCode, []Mood(nil), nil},
		// The parameter OID is unknown: T and []T find the type registered by Register.
		{"unknown OID", 0, pgtype.TextFormatCode, Mood("ok"), []byte("ok")},
		{"unknown OID array", 0, pgtype.BinaryFormatCode, []Mood{"ok"}, binArray(moodOID, []byte("ok"))},
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

func TestEnumRoundTripArray(t *testing.T) {
	m := newTestMap(t)
	in := []Mood{"happy", "", "a,b", `q"uote`, "NULL"}
	for _, format := range []int16{pgtype.TextFormatCode, pgtype.BinaryFormatCode} {
		buf, err := m.Encode(moodArrayOID, format, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []Mood
		if err := m.Scan(moodArrayOID, format, buf, &out); err != nil {
			t.Fatalf("format %d: scan %q: %v", format, buf, err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("format %d: got %q, want %q", format, out, in)
		}
	}
}
