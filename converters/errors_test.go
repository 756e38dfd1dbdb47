package converters

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestCodecInfoMismatch(t *testing.T) {
	type short struct{ N int32 }
	type wrongTags struct {
		N int32  `db:"n"`
		X string `db:"x"`
	}
	type twice struct {
		A int32 `db:"n"`
		B int32 `db:"n"`
		S string
	}
	type extra struct {
		N     int32 `db:"n"`
		S     string
		Extra bool
	}
	tests := []struct {
		name string
		c    Converter
		info TypeInfo
		want []string
	}{
		{"enum on composite", Enum[Mood]("pair"), pairInfo, []string{"converters: Enum[converters.Mood] used on pair (composite type, want enum)"}},
		{"composite on enum", Composite[Pair]("mood"), moodInfo, []string{"Composite[converters.Pair] used on mood (enum type, want composite)"}},
		{"composite not a struct", Composite[string]("pair"), pairInfo, []string{"string is not a struct"}},
		{"field count", Composite[short]("pair"), pairInfo, []string{"composite type pair has 2 attributes but struct converters.short has 1 fields"}},
		{"unknown tag", Composite[wrongTags]("pair"), pairInfo, []string{"attribute s has no field", "field X has no attribute"}},
		{"tag twice", Composite[twice]("pair"), pairInfo, []string{"field B has no attribute"}},
		{"extra field", Composite[extra]("pair"), pairInfo, []string{"field Extra has no attribute"}},
		{"domain on base", Domain[string]("text"), TypeInfo{Name: "text", OID: 25, ArrayOID: 1009, Kind: 'b'}, []string{"Domain[string] used on text (base type, want domain)"}},
		{"domain base unknown", Domain[string]("d"), TypeInfo{Name: "d", OID: 90091, ArrayOID: 90090, Kind: 'd', BaseOID: 77777}, []string{"base type (OID 77777) of domain d is not registered"}},
		{"json on text", JSON[Doc]("text"), TypeInfo{Name: "text", OID: 25, ArrayOID: 1009, Kind: 'b'}, []string{"JSON[converters.Doc] used on text, which is not json"}},
		{"json on domain over text", JSON[Doc]("email"), emailInfo, []string{"used on email"}},
		{"func without encode", Func[Point]("p", parsePoint, nil), pointInfo, []string{"needs both"}},
		{"no array", Enum[Mood]("mood"), TypeInfo{Name: "mood", OID: moodOID, Kind: 'e'}, []string{"converters: type mood has no array type"}},
		{"no OID", Enum[Mood]("mood"), TypeInfo{Name: "mood", Kind: 'e'}, []string{"converters: type mood has no OID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := pgtype.NewMap()
			err := Register(m, tt.c, tt.info, true)
			wantErrContains(t, err, tt.want...)
			if _, ok := m.TypeForOID(tt.info.OID); ok && tt.info.OID >= 90000 {
				t.Error("type registered despite the error")
			}
		})
	}
}

func TestDecodeErrorNamesTypes(t *testing.T) {
	m := newTestMap(t)
	tests := []struct {
		name   string
		oid    uint32
		format int16
		src    []byte
		dst    any
		want   []string
	}{
		{"composite bad text", pairOID, pgtype.TextFormatCode, []byte("(x,a)"), new(Pair), []string{"converters: cannot decode pair into converters.Pair", "attribute n"}},
		{"composite too few", pairOID, pgtype.TextFormatCode, []byte("(1)"), new(Pair), []string{"pair", "converters.Pair", "got 1 attributes, want 2"}},
		{"composite too many", pairOID, pgtype.TextFormatCode, []byte("(1,a,b)"), new(Pair), []string{"pair", "got more than 2 attributes"}},
		{"composite not a record", pairOID, pgtype.TextFormatCode, []byte("1,a"), new(Pair), []string{"pair", "converters.Pair"}},
		{"composite binary count", pairOID, pgtype.BinaryFormatCode, binRecord(binAttr{pgtype.Int4OID, int4Bytes(1)}), new(Pair), []string{"pair", "got 1 attributes, want 2"}},
		{"composite binary OID", pairOID, pgtype.BinaryFormatCode, binRecord(binAttr{pgtype.Int8OID, int8Bytes(1)}, binAttr{pgtype.TextOID, nil}), new(Pair), []string{"attribute n has type OID 20, want 23"}},
		{"composite binary short", pairOID, pgtype.BinaryFormatCode, []byte{0, 0}, new(Pair), []string{"converters: cannot decode pair into converters.Pair"}},
		{"nested", outerOID, pgtype.TextFormatCode, []byte(`(1,"(x,)",ok)`), new(Outer), []string{"converters: cannot decode public.outer into converters.Outer", "attribute p", "cannot decode pair into converters.Pair"}},
		{"enum NULL", moodOID, pgtype.TextFormatCode, nil, new(Mood), []string{"converters: cannot decode NULL mood into converters.Mood"}},
		{"array element", pairArrayOID, pgtype.TextFormatCode, []byte(`{"(1,a)","(x,b)"}`), new([]Pair), []string{"cannot decode pair into converters.Pair"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Scan(tt.oid, tt.format, tt.src, tt.dst)
			wantErrContains(t, err, tt.want...)
		})
	}
}

func TestDecodeErrorWraps(t *testing.T) {
	sentinel := errors.New("sentinel")
	m := pgtype.NewMap()
	c := Func("ext.point2", func(string) (Point, error) { return Point{}, sentinel }, formatPoint)
	if err := Register(m, c, pointInfo, false); err != nil {
		t.Fatal(err)
	}
	var p Point
	err := m.Scan(pointOID, pgtype.TextFormatCode, []byte("x"), &p)
	if !errors.Is(err, sentinel) {
		t.Errorf("%v does not wrap the decode error", err)
	}
	if !strings.HasPrefix(err.Error(), "converters: ") {
		t.Errorf("%v lacks the prefix", err)
	}
}

// TestDefaultPgTypeNotCaptured checks that Register leaves Go types pgtype already maps alone, so a Domain[string]
// does not turn every string with an unknown OID into that domain.
func TestDefaultPgTypeNotCaptured(t *testing.T) {
	m := newTestMap(t)
	if dt, ok := m.TypeForValue(""); ok && dt.Name != "text" {
		t.Errorf("string maps to %s", dt.Name)
	}
	if dt, ok := m.TypeForValue(int64(0)); ok && dt.Name != "int8" {
		t.Errorf("int64 maps to %s", dt.Name)
	}
	for v, want := range map[any]string{Mood(""): "mood", Pair{}: "pair", Point{}: "ext.point2"} {
		if dt, ok := m.TypeForValue(v); !ok || dt.Name != want {
			t.Errorf("%T maps to %v, want %s", v, dt, want)
		}
	}
}

func TestDefaultPgTypeFirstRegistrationWins(t *testing.T) {
	m := newTestMap(t)
	info := TypeInfo{Name: "strong_mood", OID: 90081, ArrayOID: 90080, Kind: 'd', BaseOID: moodOID}
	if err := Register(m, Domain[Mood]("strong_mood"), info, true); err != nil {
		t.Fatal(err)
	}
	if dt, ok := m.TypeForValue(Mood("")); !ok || dt.Name != "mood" {
		t.Errorf("Mood maps to %v, want mood", dt)
	}
	if dt, ok := m.TypeForValue([]Mood(nil)); !ok || dt.Name != "mood[]" {
		t.Errorf("[]Mood maps to %v, want mood[]", dt)
	}
}
