package converters

import (
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestDomainText(t *testing.T) {
	m := newTestMap(t)
	for _, format := range []int16{pgtype.TextFormatCode, pgtype.BinaryFormatCode} {
		var s string
		if err := m.Scan(emailOID, format, []byte("a@example.com"), &s); err != nil || s != "a@example.com" {
			t.Errorf("format %d: %q, %v", format, s, err)
		}
		var a any
		if err := m.Scan(emailOID, format, []byte("a@example.com"), &a); err != nil || a != any("a@example.com") {
			t.Errorf("format %d: into *any: %#v, %v", format, a, err)
		}
	}
	var s string
	err := m.Scan(emailOID, pgtype.BinaryFormatCode, nil, &s)
	wantErrContains(t, err, "NULL email", "string")

	var list []*string
	if err := m.Scan(emailArrayOID, pgtype.TextFormatCode, []byte(`{a@x,NULL,"b c@y"}`), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || *list[0] != "a@x" || list[1] != nil || *list[2] != "b c@y" {
		t.Errorf("got %v", list)
	}

	// array_recv wants the element OID of email[] to be email's, not text's.
	buf, err := m.Encode(emailArrayOID, pgtype.BinaryFormatCode, []string{"a@x"}, nil)
	if err != nil || !reflect.DeepEqual(buf, binArray(emailOID, []byte("a@x"))) {
		t.Errorf("encode: %q, %v", buf, err)
	}
}

func TestDomainInt8(t *testing.T) {
	m := newTestMap(t)
	tests := []struct {
		format int16
		src    []byte
	}{
		{pgtype.TextFormatCode, []byte("42")},
		{pgtype.BinaryFormatCode, int8Bytes(42)},
	}
	for _, tt := range tests {
		var n int64
		if err := m.Scan(posintOID, tt.format, tt.src, &n); err != nil || n != 42 {
			t.Errorf("format %d: %d, %v", tt.format, n, err)
		}
		var a any
		if err := m.Scan(posintOID, tt.format, tt.src, &a); err != nil || a != any(int64(42)) {
			t.Errorf("format %d: into *any: %#v, %v", tt.format, a, err)
		}
		var s string // text of the value, as for int8
		if err := m.Scan(posintOID, tt.format, tt.src, &s); err != nil || s != "42" {
			t.Errorf("format %d: into *string: %q, %v", tt.format, s, err)
		}
	}

	var n int64
	err := m.Scan(posintOID, pgtype.TextFormatCode, []byte("forty-two"), &n)
	wantErrContains(t, err, "converters: cannot decode posint into int64")

	var ns []int64
	if err := m.Scan(posintArray, pgtype.BinaryFormatCode, binArray(posintOID, int8Bytes(1), int8Bytes(2)), &ns); err != nil ||
		!reflect.DeepEqual(ns, []int64{1, 2}) {
		t.Errorf("array: %v, %v", ns, err)
	}

	buf, err := m.Encode(posintOID, pgtype.BinaryFormatCode, int64(7), nil)
	if err != nil || !reflect.DeepEqual(buf, int8Bytes(7)) {
		t.Errorf("encode: %q, %v", buf, err)
	}
	buf, err = m.Encode(posintArray, pgtype.TextFormatCode, []int64{1, 2}, nil)
	if err != nil || string(buf) != "{1,2}" {
		t.Errorf("encode array: %q, %v", buf, err)
	}
	if got := m.FormatCodeForOID(posintOID); got != pgtype.BinaryFormatCode {
		t.Errorf("posint prefers format %d, want int8's binary", got)
	}
}

// TestDomainOverEnum checks a domain whose base type is a registered converter's.
func TestDomainOverEnum(t *testing.T) {
	m := newTestMap(t)
	info := TypeInfo{Name: "strong_mood", OID: 90081, Kind: 'd', BaseOID: moodOID}
	if err := Register(m, Domain[Mood]("strong_mood"), info, false); err != nil {
		t.Fatal(err)
	}
	var got Mood
	if err := m.Scan(info.OID, pgtype.BinaryFormatCode, []byte("happy"), &got); err != nil || got != "happy" {
		t.Errorf("%q, %v", got, err)
	}
	err := m.Scan(info.OID, pgtype.BinaryFormatCode, nil, &got)
	wantErrContains(t, err, "NULL strong_mood", "converters.Mood")
}
