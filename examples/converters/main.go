// Command converters registers converters for an enum type and a composite
// type, with their array types, and then uses them through plain
// database/sql: enum and composite values and arrays come back as Go types
// (Mood, []Mood, Item, []Item) and go out as arguments the same way.
//
//	cd examples && go run ./converters
package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/converters"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
)

// Mood is the Go type of the enum mood.
type Mood string

// The labels of mood.
const (
	Sad   Mood = "sad"
	OK    Mood = "ok"
	Happy Mood = "happy"
)

// Item is the Go type of the composite type item(name text, qty int). With
// no db tags, attributes map to fields in order.
type Item struct {
	Name string
	Qty  int32
}

func main() { demo.Run(run) }

func run(ctx context.Context, dsn string) error {
	db, err := pgpurepy.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	for _, q := range []string{
		`DROP TABLE IF EXISTS conv_orders`,
		`DROP TYPE IF EXISTS item`,
		`DROP TYPE IF EXISTS mood`,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TYPE item AS (name text, qty int)`,
		`CREATE TABLE conv_orders (
			id        int PRIMARY KEY,
			mood      mood NOT NULL,
			history   mood[] NOT NULL,
			main_item item,
			items     item[] NOT NULL)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}

	// Register once per pool, after the types exist. Every connection,
	// open now or later, then knows them; WithArray adds mood[] and item[].
	ext, err := pgpurepy.Ext(db)
	if err != nil {
		return err
	}
	if err := ext.AddConverterWithArray(ctx, converters.Enum[Mood]("mood")); err != nil {
		return fmt.Errorf("register mood: %w", err)
	}
	if err := ext.AddConverterWithArray(ctx, converters.Composite[Item]("item")); err != nil {
		return fmt.Errorf("register item: %w", err)
	}
	fmt.Println("registered converters for mood, mood[], item and item[]")

	// Arguments: Go values of the registered types, and slices of them.
	_, err = db.ExecContext(ctx,
		`INSERT INTO conv_orders (id, mood, history, main_item, items) VALUES ($1, $2, $3, $4, $5)`,
		1, Happy, []Mood{Sad, OK, Happy}, Item{Name: "apple", Qty: 3},
		[]Item{{Name: "apple", Qty: 3}, {Name: "pear", Qty: 1}})
	if err != nil {
		return fmt.Errorf("insert 1: %w", err)
	}
	if _, err := db.ExecContext(ctx,
		`INSERT INTO conv_orders (id, mood, history, main_item, items) VALUES ($1, $2, $3, NULL, $4)`,
		2, OK, []Mood{"ok"}, []Item{}); err != nil {
		return fmt.Errorf("insert 2: %w", err)
	}
	fmt.Println("inserted 2 rows with Mood, []Mood, Item and []Item arguments")

	// Results: scan straight into the Go types.
	rows, err := db.QueryContext(ctx, `SELECT id, mood, history, main_item, items FROM conv_orders ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id    int
			m     Mood
			ms    []Mood
			main  *Item // NULL composite: scan into a pointer
			items []Item
		)
		if err := rows.Scan(&id, &m, &ms, &main, &items); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		fmt.Printf("row %d: mood=%s history=%v main_item=%s items=%+v\n", id, m, ms, describe(main), items)
		if id == 1 && (m != Happy || !slices.Equal(ms, []Mood{Sad, OK, Happy}) || main == nil || len(items) != 2) {
			return fmt.Errorf("row 1 came back as %v %v %v %v", m, ms, main, items)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}

	// An enum array as a query argument.
	var n int
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM conv_orders WHERE mood = ANY($1)`, []Mood{OK, Sad}).Scan(&n); err != nil {
		return fmt.Errorf("mood = ANY: %w", err)
	}
	fmt.Printf("orders whose mood is ok or sad: %d\n", n)

	// The extension's own API returns the same Go types.
	row, err := ext.FetchOne(ctx, `SELECT array_agg(mood ORDER BY id) AS moods FROM conv_orders`)
	if err != nil {
		return err
	}
	moods, _ := row.Get("moods")
	fmt.Printf("ext.FetchOne: moods=%v (%T)\n", moods, moods)

	var nullMood sql.Null[Mood]
	if err := db.QueryRowContext(ctx, `SELECT NULL::mood`).Scan(&nullMood); err != nil {
		return fmt.Errorf("null mood: %w", err)
	}
	fmt.Printf("NULL::mood scans into sql.Null[Mood]: valid=%v\n", nullMood.Valid)
	return nil
}

func describe(it *Item) string {
	if it == nil {
		return "NULL"
	}
	return fmt.Sprintf("%+v", *it)
}
