package converters_test

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgpurepy/pgpurepy/converters"
)

type Mood string

// Item matches `create type item as (name text, qty int4, mood mood)`.
type Item struct {
	Name string `db:"name"`
	Qty  *int32 `db:"qty"` // a pointer, so that a NULL qty scans
	Mood Mood   `db:"mood"`
}

// The root package reads each TypeInfo from the catalog and registers the converters on every connection's Map,
// enum first because the composite has a mood attribute.
func Example() {
	m := pgtype.NewMap()
	mood := converters.TypeInfo{Name: "mood", OID: 90001, ArrayOID: 90000, Kind: 'e', EnumLabels: []string{"sad", "ok", "happy"}}
	item := converters.TypeInfo{Name: "item", OID: 90011, ArrayOID: 90010, Kind: 'c', Fields: []converters.Field{
		{Name: "name", OID: pgtype.TextOID}, {Name: "qty", OID: pgtype.Int4OID}, {Name: "mood", OID: mood.OID},
	}}
	if err := converters.Register(m, converters.Enum[Mood]("mood"), mood, true); err != nil {
		panic(err)
	}
	if err := converters.Register(m, converters.Composite[Item]("item"), item, true); err != nil {
		panic(err)
	}

	// select array['happy', 'sad']::mood[], array[row('tea', 2, 'happy'), row('cake', null, 'ok')]::item[]
	var moods []Mood
	if err := m.Scan(mood.ArrayOID, pgtype.TextFormatCode, []byte(`{happy,sad}`), &moods); err != nil {
		panic(err)
	}
	var items []Item
	if err := m.Scan(item.ArrayOID, pgtype.TextFormatCode, []byte(`{"(tea,2,happy)","(cake,,ok)"}`), &items); err != nil {
		panic(err)
	}
	fmt.Println(moods)
	for _, it := range items {
		fmt.Println(it.Name, it.Qty != nil, it.Mood)
	}

	// Parameters: encode an Item for the item OID the server inferred.
	buf, err := m.Encode(item.OID, pgtype.TextFormatCode, Item{Name: "jam jar", Mood: "ok"}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(buf))

	// Output:
	// [happy sad]
	// tea true happy
	// cake false ok
	// (jam jar,,ok)
}
