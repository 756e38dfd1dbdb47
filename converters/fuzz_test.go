package converters

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// The fuzzers feed arbitrary bytes, as a server (or a proxy in between) might send them, to the scan paths the root
// package uses. They require only that nothing panics; errors are expected. Their seed corpus is the table tests'
// input plus testdata/fuzz/<FuzzName>.

func formatCode(binary bool) int16 {
	if binary {
		return pgtype.BinaryFormatCode
	}
	return pgtype.TextFormatCode
}

func FuzzEnumDecode(f *testing.F) {
	for _, tt := range enumScanTests {
		f.Add(tt.format == pgtype.BinaryFormatCode, tt.src)
	}
	m := newTestMap(f)
	f.Fuzz(func(t *testing.T, binary bool, src []byte) {
		format := formatCode(binary)
		var mood Mood
		if err := m.Scan(moodOID, format, src, &mood); err == nil && mood != Mood(src) {
			t.Errorf("scanned %q as %q", src, mood)
		}
		var p *Mood
		_ = m.Scan(moodOID, format, src, &p)
		var a any
		_ = m.Scan(moodOID, format, src, &a)
	})
}

func FuzzCompositeDecode(f *testing.F) {
	for _, tt := range compositeScanTests {
		f.Add(tt.format == pgtype.BinaryFormatCode, tt.src)
	}
	f.Add(false, []byte(`(1,"(2,""x y"")",ok)`))
	m := newTestMap(f)
	f.Fuzz(func(t *testing.T, binary bool, src []byte) {
		format := formatCode(binary)
		var p Pair
		if err := m.Scan(pairOID, format, src, &p); err == nil {
			// Whatever decoded must encode again and decode to the same value.
			buf, err := m.Encode(pairOID, format, p, nil)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", p, err)
			}
			var again Pair
			if err := m.Scan(pairOID, format, buf, &again); err != nil {
				t.Fatalf("rescan %q: %v", buf, err)
			}
			if again.N != p.N || (again.S == nil) != (p.S == nil) || (p.S != nil && *again.S != *p.S) {
				t.Fatalf("round trip of %q: %+v then %+v", src, p, again)
			}
		}
		var o Outer
		_ = m.Scan(outerOID, format, src, &o)
		var po *Outer
		_ = m.Scan(outerOID, format, src, &po)
		var a any
		_ = m.Scan(pairOID, format, src, &a)
	})
}

func FuzzArrayDecode(f *testing.F) {
	f.Add(false, []byte("{happy,sad}"))
	f.Add(false, []byte(`{"(1,a)","(2,\"b c\")",NULL}`))
	f.Add(false, []byte(`[0:1]={happy,NULL}`))
	f.Add(false, []byte(`{{a,b},{c,d}}`))
	f.Add(true, binArray(moodOID, []byte("happy"), nil))
	f.Add(true, binArray(pairOID, binRecord(binAttr{pgtype.Int4OID, int4Bytes(1)}, binAttr{pgtype.TextOID, []byte("a")}), nil))
	f.Add(true, binArray(docOID, []byte("\x01{}")))
	m := newTestMap(f)
	f.Fuzz(func(t *testing.T, binary bool, src []byte) {
		format := formatCode(binary)
		var moods []Mood
		_ = m.Scan(moodArrayOID, format, src, &moods)
		var moodPtrs []*Mood
		_ = m.Scan(moodArrayOID, format, src, &moodPtrs)
		var pairs []Pair
		_ = m.Scan(pairArrayOID, format, src, &pairs)
		var pairPtrs []*Pair
		_ = m.Scan(pairArrayOID, format, src, &pairPtrs)
		var outers []*Outer
		_ = m.Scan(outerArrayOID, format, src, &outers)
		var docs []*Doc
		_ = m.Scan(docArrayOID, format, src, &docs)
		var points []*Point
		_ = m.Scan(pointArrayOID, format, src, &points)
	})
}
