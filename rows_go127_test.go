//go:build go1.27

package pgpurepy_test

import (
	"testing"
	"time"
)

// TestGo127ScanArrays scans built-in arrays into plain slices, which Go
// 1.27's RowsColumnScanner makes possible without pq.Array or pgtype
// wrappers, through both protocols.
func TestGo127ScanArrays(t *testing.T) {
	db, _ := openDB(t)
	for _, q := range []string{
		"SELECT ARRAY[1,2,3]::int8[], ARRAY['a','b c']::text[], ARRAY[1.5]::float8[], ARRAY[true,false], ARRAY['2024-01-02T03:04:05Z'::timestamptz], NULL::int8[], 7",
		"SELECT $1::int8[], ARRAY['a','b c']::text[], ARRAY[1.5]::float8[], ARRAY[true,false], ARRAY['2024-01-02T03:04:05Z'::timestamptz], NULL::int8[], 7",
	} {
		var args []any
		if q[len("SELECT ")] == '$' {
			args = []any{[]int64{1, 2, 3}}
		}
		var ints []int64
		var strs []string
		var floats []float64
		var bools []bool
		var times []time.Time
		nulls := []int64{9}
		var plain int
		if err := db.QueryRow(q, args...).Scan(&ints, &strs, &floats, &bools, &times, &nulls, &plain); err != nil {
			t.Fatal(err)
		}
		if len(ints) != 3 || ints[2] != 3 || len(strs) != 2 || strs[1] != "b c" || floats[0] != 1.5 || !bools[0] || bools[1] || plain != 7 {
			t.Fatalf("got %v %q %v %v %d", ints, strs, floats, bools, plain)
		}
		if !times[0].Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Fatalf("time %v", times[0])
		}
		if nulls != nil {
			t.Fatalf("NULL array scanned as %v", nulls)
		}
	}
}
