package converters

import (
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestJSONScan(t *testing.T) {
	m := newTestMap(t)
	want := Doc{Title: "a", Tags: []string{"x", "y"}}
	tests := []struct {
		name   string
		format int16
		src    []byte
	}{
		{"text", pgtype.TextFormatCode, []byte(`{"tags": ["x", "y"], "title": "a"}`)},
		{"binary", pgtype.BinaryFormatCode, append([]byte{1}, `{"tags": ["x", "y"], "title": "a"}`...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Doc{Title: "stale", Tags: []string{"stale"}}
			if err := m.Scan(docOID, tt.format, tt.src, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v", got)
			}
			var a any
			if err := m.Scan(docOID, tt.format, tt.src, &a); err != nil || !reflect.DeepEqual(a, any(want)) {
				t.Errorf("into *any: %#v, %v", a, err)
			}
			var s string
			if err := m.Scan(docOID, tt.format, tt.src, &s); err != nil || s != `{"tags": ["x", "y"], "title": "a"}` {
				t.Errorf("into *string: %q, %v", s, err)
			}
		})
	}

	var got Doc
	err := m.Scan(docOID, pgtype.TextFormatCode, nil, &got)
	wantErrContains(t, err, "NULL doc", "converters.Doc")
	err = m.Scan(docOID, pgtype.TextFormatCode, []byte(`{"title": 1}`), &got)
	wantErrContains(t, err, "converters: cannot decode doc into converters.Doc", "cannot unmarshal number")
	err = m.Scan(docOID, pgtype.BinaryFormatCode, []byte(`{}`), &got)
	wantErrContains(t, err, "converters: cannot decode doc into converters.Doc", "version")

	var p *Doc
	if err := m.Scan(docOID, pgtype.TextFormatCode, nil, &p); err != nil || p != nil {
		t.Errorf("NULL into **Doc: %v, %v", p, err)
	}
}

func TestJSONArray(t *testing.T) {
	m := newTestMap(t)
	text := []byte(`{"{\"title\": \"a\"}","{\"tags\": [\"x\"], \"title\": \"b\"}",NULL}`)
	bin := binArray(docOID, append([]byte{1}, `{"title": "a"}`...), append([]byte{1}, `{"tags": ["x"], "title": "b"}`...), nil)
	want := []*Doc{{Title: "a"}, {Title: "b", Tags: []string{"x"}}, nil}
	for _, src := range []struct {
		format int16
		data   []byte
	}{{pgtype.TextFormatCode, text}, {pgtype.BinaryFormatCode, bin}} {
		var got []*Doc
		if err := m.Scan(docArrayOID, src.format, src.data, &got); err != nil {
			t.Fatalf("format %d: %v", src.format, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("format %d: got %v", src.format, got)
		}
		var docs []Doc
		if err := m.Scan(docArrayOID, src.format, src.data, &docs); err == nil {
			t.Errorf("format %d: NULL element into []Doc: no error", src.format)
		}
	}
}

func TestJSONEncode(t *testing.T) {
	m := newTestMap(t)
	d := Doc{Title: "a,b"}
	tests := []struct {
		name   string
		oid    uint32
		format int16
		value  any
		want   []byte
	}{
		{"text", docOID, pgtype.TextFormatCode, d, []byte(`{"title":"a,b"}`)},
		{"binary", docOID, pgtype.BinaryFormatCode, d, []byte("\x01{\"title\":\"a,b\"}")},
		{"pointer", docOID, pgtype.TextFormatCode, &d, []byte(`{"title":"a,b"}`)},
		{"raw string", docOID, pgtype.TextFormatCode, `{"title":"raw"}`, []byte(`{"title":"raw"}`)},
		{"array text", docArrayOID, pgtype.TextFormatCode, []Doc{d}, []byte(`{"{\"title\":\"a,b\"}"}`)},
		{"array binary", docArrayOID, pgtype.BinaryFormatCode, []Doc{d}, binArray(docOID, []byte("\x01{\"title\":\"a,b\"}"))},
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

// TestJSONBuiltin registers JSON on jsonb itself (and on json) and round-trips jsonb[].
func TestJSONBuiltin(t *testing.T) {
	type item struct {
		ID int `json:"id"`
	}
	for _, info := range []TypeInfo{
		{Name: "jsonb", OID: pgtype.JSONBOID, ArrayOID: pgtype.JSONBArrayOID, Kind: 'b'},
		{Name: "json", OID: pgtype.JSONOID, ArrayOID: pgtype.JSONArrayOID, Kind: 'b'},
	} {
		t.Run(info.Name, func(t *testing.T) {
			m := pgtype.NewMap()
			if err := Register(m, JSON[item](info.Name), info, true); err != nil {
				t.Fatal(err)
			}
			in := []item{{1}, {2}}
			for _, format := range []int16{pgtype.TextFormatCode, pgtype.BinaryFormatCode} {
				buf, err := m.Encode(info.ArrayOID, format, in, nil)
				if err != nil {
					t.Fatal(err)
				}
				var out []item
				if err := m.Scan(info.ArrayOID, format, buf, &out); err != nil || !reflect.DeepEqual(in, out) {
					t.Errorf("format %d: %v, %v", format, out, err)
				}
			}
			var got item
			if err := m.Scan(info.OID, pgtype.TextFormatCode, []byte(`{"id": 5}`), &got); err != nil || got.ID != 5 {
				t.Errorf("%v, %v", got, err)
			}
		})
	}
}

func TestJSONMapAndString(t *testing.T) {
	m := pgtype.NewMap()
	if err := Register(m, JSON[map[string]any]("doc"), docInfo, false); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{"stale": true}
	if err := m.Scan(docOID, pgtype.TextFormatCode, nil, &got); err != nil || got != nil {
		t.Errorf("NULL into map: %v, %v", got, err)
	}
	if err := m.Scan(docOID, pgtype.TextFormatCode, []byte(`{"a": 1}`), &got); err != nil || !reflect.DeepEqual(got, map[string]any{"a": 1.0}) {
		t.Errorf("%v, %v", got, err)
	}

	m = pgtype.NewMap()
	if err := Register(m, JSON[string]("doc"), docInfo, false); err != nil {
		t.Fatal(err)
	}
	for _, format := range []int16{pgtype.TextFormatCode, pgtype.BinaryFormatCode} {
		src := []byte(`{"a": 1}`)
		if format == pgtype.BinaryFormatCode {
			src = append([]byte{1}, src...)
		}
		var s string
		if err := m.Scan(docOID, format, src, &s); err != nil || s != `{"a": 1}` {
			t.Errorf("format %d: JSON[string] = %q, %v", format, s, err)
		}
	}
}
