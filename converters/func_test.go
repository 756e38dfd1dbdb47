package converters

import (
	"errors"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestFunc(t *testing.T) {
	m := newTestMap(t)
	var p Point
	if err := m.Scan(pointOID, pgtype.TextFormatCode, []byte("(1,-2)"), &p); err != nil || p != (Point{1, -2}) {
		t.Errorf("%v, %v", p, err)
	}
	var a any
	if err := m.Scan(pointOID, pgtype.TextFormatCode, []byte("(3,4)"), &a); err != nil || a != any(Point{3, 4}) {
		t.Errorf("into *any: %#v, %v", a, err)
	}
	var s string
	if err := m.Scan(pointOID, pgtype.TextFormatCode, []byte("(3,4)"), &s); err != nil || s != "(3,4)" {
		t.Errorf("into *string: %q, %v", s, err)
	}

	err := m.Scan(pointOID, pgtype.TextFormatCode, []byte("nope"), &p)
	wantErrContains(t, err, "converters: cannot decode ext.point2 into converters.Point")
	err = m.Scan(pointOID, pgtype.TextFormatCode, nil, &p)
	wantErrContains(t, err, "NULL ext.point2", "converters.Point")

	var ps []*Point
	if err := m.Scan(pointArrayOID, pgtype.TextFormatCode, []byte(`{"(1,2)",NULL}`), &ps); err != nil ||
		!reflect.DeepEqual(ps, []*Point{{1, 2}, nil}) {
		t.Errorf("array: %v, %v", ps, err)
	}

	buf, err := m.Encode(pointOID, pgtype.TextFormatCode, Point{5, 6}, nil)
	if err != nil || string(buf) != "(5,6)" {
		t.Errorf("encode: %q, %v", buf, err)
	}
	buf, err = m.Encode(pointArrayOID, pgtype.TextFormatCode, []Point{{5, 6}, {7, 8}}, nil)
	if err != nil || string(buf) != `{"(5,6)","(7,8)"}` {
		t.Errorf("encode array: %q, %v", buf, err)
	}
}

func TestFuncTextOnly(t *testing.T) {
	m := newTestMap(t)
	if got := m.FormatCodeForOID(pointOID); got != pgtype.TextFormatCode {
		t.Errorf("preferred format %d", got)
	}
	if got := m.FormatCodeForOID(pointArrayOID); got != pgtype.TextFormatCode {
		t.Errorf("array preferred format %d", got)
	}
	pt, _ := m.TypeForOID(pointOID)
	if pt.Codec.FormatSupported(pgtype.BinaryFormatCode) {
		t.Error("binary supported")
	}
	if _, err := m.Encode(pointOID, pgtype.BinaryFormatCode, Point{1, 2}, nil); err == nil {
		t.Error("binary encode: no error")
	}
	var p Point
	if err := m.Scan(pointOID, pgtype.BinaryFormatCode, []byte("(1,2)"), &p); err == nil {
		t.Error("binary scan: no error")
	}
}

func TestFuncEncodeError(t *testing.T) {
	m := pgtype.NewMap()
	c := Func("ext.point2", parsePoint, func(Point) (string, error) { return "", errors.New("boom") })
	if err := Register(m, c, pointInfo, false); err != nil {
		t.Fatal(err)
	}
	_, err := m.Encode(pointOID, pgtype.TextFormatCode, Point{}, nil)
	wantErrContains(t, err, "converters: cannot encode converters.Point as ext.point2", "boom")
}
