package pgpurepy_test

import "testing"

func TestColumnTypeNullable(t *testing.T) {
	db, _ := openDB(t)
	mustExec(t, db, "CREATE TABLE nt (a int NOT NULL, b text, c int PRIMARY KEY)")
	for _, q := range []string{
		"SELECT a, b, c, a + 1 AS e FROM nt WHERE c > $1",
		"SELECT a, b, c, a + 1 AS e FROM nt",
	} {
		var args []any
		if q[len(q)-1] == '1' {
			args = []any{0}
		}
		rows, err := db.Query(q, args...)
		if err != nil {
			t.Fatal(err)
		}
		cts, err := rows.ColumnTypes()
		if err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
		want := []struct{ nullable, ok bool }{{false, true}, {true, true}, {false, true}, {false, false}}
		for i, w := range want {
			n, ok := cts[i].Nullable()
			if n != w.nullable || ok != w.ok {
				t.Errorf("%s: column %s: Nullable() = %v, %v; want %v, %v", q, cts[i].Name(), n, ok, w.nullable, w.ok)
			}
		}
	}
}
