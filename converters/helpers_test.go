package converters

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// OIDs of the types the tests register, as a server might have assigned them.
const (
	moodOID       = 90001
	moodArrayOID  = 90000
	pairOID       = 90011
	pairArrayOID  = 90010
	outerOID      = 90021
	outerArrayOID = 90020
	docOID        = 90031 // domain over jsonb
	docArrayOID   = 90030
	emailOID      = 90041 // domain over text
	emailArrayOID = 90040
	posintOID     = 90051 // domain over int8
	posintArray   = 90050
	pointOID      = 90061 // a base type with a text format like "(1,2)"
	pointArrayOID = 90060
)

type Mood string

// Pair matches `create type pair as (n int4, s text)` by field order.
type Pair struct {
	N int32
	S *string
}

// TaggedPair matches pair by db tag, in a different order, with an ignored field.
type TaggedPair struct {
	Label   string `db:"s"`
	Skipped string `db:"-"`
	Number  int32  `db:"n"`
}

// Outer matches `create type outer as (id int8, p pair, mood mood)`.
type Outer struct {
	ID   int64
	P    *Pair
	Mood Mood
}

type Doc struct {
	Title string   `json:"title"`
	Tags  []string `json:"tags,omitempty"`
}

type Point struct{ X, Y int }

var (
	moodInfo = TypeInfo{Name: "mood", OID: moodOID, ArrayOID: moodArrayOID, Kind: 'e',
		EnumLabels: []string{"sad", "ok", "happy"}}
	pairInfo = TypeInfo{Name: "pair", OID: pairOID, ArrayOID: pairArrayOID, Kind: 'c',
		Fields: []Field{{"n", pgtype.Int4OID}, {"s", pgtype.TextOID}}}
	outerInfo = TypeInfo{Name: "public.outer", OID: outerOID, ArrayOID: outerArrayOID, Kind: 'c',
		Fields: []Field{{"id", pgtype.Int8OID}, {"p", pairOID}, {"mood", moodOID}}}
	docInfo    = TypeInfo{Name: "doc", OID: docOID, ArrayOID: docArrayOID, Kind: 'd', BaseOID: pgtype.JSONBOID}
	emailInfo  = TypeInfo{Name: "email", OID: emailOID, ArrayOID: emailArrayOID, Kind: 'd', BaseOID: pgtype.TextOID}
	posintInfo = TypeInfo{Name: "posint", OID: posintOID, ArrayOID: posintArray, Kind: 'd', BaseOID: pgtype.Int8OID}
	pointInfo  = TypeInfo{Name: "ext.point2", OID: pointOID, ArrayOID: pointArrayOID, Kind: 'b'}
)

// newTestMap returns a Map with every test type registered, as the root package would register them.
func newTestMap(tb testing.TB) *pgtype.Map {
	tb.Helper()
	m := pgtype.NewMap()
	for _, r := range []struct {
		c    Converter
		info TypeInfo
	}{
		{Enum[Mood]("mood"), moodInfo},
		{Composite[Pair]("pair"), pairInfo},
		{Composite[Outer]("public.outer"), outerInfo},
		{JSON[Doc]("doc"), docInfo},
		{Domain[string]("email"), emailInfo},
		{Domain[int64]("posint"), posintInfo},
		{Func("ext.point2", parsePoint, formatPoint), pointInfo},
	} {
		if err := Register(m, r.c, r.info, true); err != nil {
			tb.Fatalf("Register(%s): %v", r.info.Name, err)
		}
	}
	return m
}

func parsePoint(s string) (Point, error) {
	var p Point
	_, err := fmt.Sscanf(s, "(%d,%d)", &p.X, &p.Y)
	return p, err
}

func formatPoint(p Point) (string, error) { return fmt.Sprintf("(%d,%d)", p.X, p.Y), nil }

func ptr[T any](v T) *T { return &v }

// binArray is the binary form of a one-dimensional array as PostgreSQL's array_send writes it; a nil element is NULL.
func binArray(elemOID uint32, elems ...[]byte) []byte {
	var b []byte
	hasNull := uint32(0)
	for _, e := range elems {
		if e == nil {
			hasNull = 1
		}
	}
	b = binary.BigEndian.AppendUint32(b, 1) // ndim
	b = binary.BigEndian.AppendUint32(b, hasNull)
	b = binary.BigEndian.AppendUint32(b, elemOID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(elems)))
	b = binary.BigEndian.AppendUint32(b, 1) // lower bound
	for _, e := range elems {
		if e == nil {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// binRecord is the binary form of a composite value as record_send writes it.
type binAttr struct {
	oid  uint32
	data []byte // nil is NULL
}

func binRecord(attrs ...binAttr) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(attrs)))
	for _, a := range attrs {
		b = binary.BigEndian.AppendUint32(b, a.oid)
		if a.data == nil {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(a.data)))
		b = append(b, a.data...)
	}
	return b
}

func int4Bytes(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func int8Bytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
