// Package compat tests pgpurepy's converters (registered enum, composite and array types) through the libraries
// people put on top of database/sql: sqlx and gorm, and lib/pq's array wrappers for arrays of built-in types.
package compat

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/converters"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestMain(m *testing.M) { sqltest.Main(m) }

// Mood is the Go type of the enum mood.
type Mood string

const (
	Sad   Mood = "sad"
	OK    Mood = "ok"
	Happy Mood = "happy"
)

// Item is the Go type of the composite item(name text, qty int4).
type Item struct {
	Name string `db:"name"`
	Qty  *int32 `db:"qty"`
}

func ptr[T any](v T) *T { return &v }

// open returns a *sql.DB on a fresh database with mood, mood[], item and item[] registered.
func open(t *testing.T) (*sql.DB, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db, err := sql.Open("pgpurepy", sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	for _, q := range []string{
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TYPE item AS (name text, qty int4)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ext, err := pgpurepy.Ext(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.AddConverterWithArray(ctx, converters.Enum[Mood]("mood")); err != nil {
		t.Fatal(err)
	}
	if err := ext.AddConverterWithArray(ctx, converters.Composite[Item]("item")); err != nil {
		t.Fatal(err)
	}
	return db, ctx
}

// sqlxRow is one row of sqlx_pets.
type sqlxRow struct {
	ID    int64  `db:"id"`
	Name  string `db:"name"`
	Mood  Mood   `db:"mood"`
	Moods []Mood `db:"moods"`
	Maybe *Mood  `db:"maybe"`
	Item  Item   `db:"item"`
	Items []Item `db:"items"`
}

func TestSqlx(t *testing.T) {
	sqlDB, ctx := open(t)
	sqlx.BindDriver("pgpurepy", sqlx.DOLLAR)
	db := sqlx.NewDb(sqlDB, "pgpurepy")
	db.MustExecContext(ctx, `CREATE TABLE sqlx_pets (
		id    bigserial PRIMARY KEY,
		name  text NOT NULL,
		mood  mood NOT NULL,
		moods mood[] NOT NULL,
		maybe mood,
		item  item NOT NULL,
		items item[] NOT NULL)`)

	pets := []sqlxRow{
		{Name: "rex", Mood: Happy, Moods: []Mood{Sad, OK}, Maybe: ptr(OK), Item: Item{Name: "bone", Qty: ptr(int32(2))}, Items: []Item{{Name: "ball"}}},
		{Name: "tom", Mood: Sad, Moods: []Mood{}, Item: Item{Name: "yarn"}, Items: []Item{}},
	}
	// Named parameters: struct fields of converter types become arguments.
	if _, err := db.NamedExecContext(ctx, `INSERT INTO sqlx_pets (name, mood, moods, maybe, item, items)
		VALUES (:name, :mood, :moods, :maybe, :item, :items)`, pets); err != nil {
		t.Fatal(err)
	}
	// Positional arguments through Rebind.
	if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO sqlx_pets (name, mood, moods, item, items) VALUES (?, ?, ?, ?, ?)`),
		"kit", OK, []Mood{Happy, Happy}, Item{Name: "mouse", Qty: ptr(int32(1))}, []Item{{Name: "a"}, {Name: "b", Qty: ptr(int32(0))}}); err != nil {
		t.Fatal(err)
	}
	pets = append(pets, sqlxRow{Name: "kit", Mood: OK, Moods: []Mood{Happy, Happy}, Item: Item{Name: "mouse", Qty: ptr(int32(1))}, Items: []Item{{Name: "a"}, {Name: "b", Qty: ptr(int32(0))}}})

	var got []sqlxRow
	if err := db.SelectContext(ctx, &got, `SELECT * FROM sqlx_pets ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pets) {
		t.Fatalf("got %d rows, want %d", len(got), len(pets))
	}
	for i := range pets {
		pets[i].ID = got[i].ID
		if !reflect.DeepEqual(got[i], pets[i]) {
			t.Errorf("row %d: got %+v, want %+v", i, got[i], pets[i])
		}
	}

	var one sqlxRow
	if err := db.GetContext(ctx, &one, `SELECT * FROM sqlx_pets WHERE mood = $1`, Happy); err != nil {
		t.Fatal(err)
	}
	if one.Name != "rex" || !slices.Equal(one.Moods, []Mood{Sad, OK}) || one.Maybe == nil || *one.Maybe != OK {
		t.Errorf("Get: %+v", one)
	}
	var moods []Mood
	if err := db.GetContext(ctx, &moods, `SELECT moods FROM sqlx_pets WHERE name = $1`, "kit"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moods, []Mood{Happy, Happy}) {
		t.Errorf("Get []Mood: %v", moods)
	}
	var names []string
	if err := db.SelectContext(ctx, &names, `SELECT name FROM sqlx_pets WHERE $1 = ANY(moods) ORDER BY name`, Happy); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"kit"}) {
		t.Errorf("ANY(moods): %v", names)
	}
	// sqlx.In expands a slice of a converter type into one argument per element.
	q, args, err := sqlx.In(`SELECT name FROM sqlx_pets WHERE mood IN (?) ORDER BY name`, []Mood{Sad, OK})
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	if err := db.SelectContext(ctx, &names, db.Rebind(q), args...); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"kit", "tom"}) {
		t.Errorf("sqlx.In: %v", names)
	}
	// Named query with a map.
	rows, err := db.NamedQueryContext(ctx, `SELECT id, name, mood, moods, maybe, item, items FROM sqlx_pets WHERE moods = :moods`,
		map[string]any{"moods": []Mood{Sad, OK}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var r sqlxRow
		if err := rows.StructScan(&r); err != nil {
			t.Fatal(err)
		}
		if r.Name != "rex" {
			t.Errorf("NamedQuery: %+v", r)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("NamedQuery: %d rows", n)
	}
}

// MoodList is []Mood for gorm: gorm expands every slice argument that is not a driver.Valuer into a row constructor
// ("($1,$2)"), which PostgreSQL types as record, so a plain []Mood field cannot be written through gorm (see
// TestGormPlainSlice). Implementing driver.Valuer stops the expansion. pgpurepy never calls Value: its
// NamedValueChecker passes the value through and pgtype encodes it as mood[] element by element; Value returns the
// array's text form for anything else that asks (gorm's SQL logger).
type MoodList []Mood

func (l MoodList) Value() (driver.Value, error) {
	if l == nil {
		return nil, nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(string(m)))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String(), nil
}

// Pet is a gorm model using the converter types.
type Pet struct {
	ID    uint     `gorm:"primaryKey"`
	Name  string   `gorm:"not null"`
	Mood  Mood     `gorm:"type:mood;not null"`
	Moods MoodList `gorm:"type:mood[]"`
	Maybe *Mood    `gorm:"type:mood"`
	Toy   *Item    `gorm:"type:item"`
}

func (Pet) TableName() string { return "gorm_pets" }

func openGorm(t *testing.T, sqlDB *sql.DB, ctx context.Context) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		t.Fatal(err)
	}
	return db.WithContext(ctx)
}

func TestGorm(t *testing.T) {
	sqlDB, ctx := open(t)
	db := openGorm(t, sqlDB, ctx)
	if err := db.AutoMigrate(&Pet{}); err != nil {
		t.Fatal(err)
	}
	var colType string
	if err := sqlDB.QueryRowContext(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'gorm_pets'::regclass AND attname = 'moods'`).Scan(&colType); err != nil {
		t.Fatal(err)
	}
	if colType != "mood[]" {
		t.Errorf("AutoMigrate made moods %s", colType)
	}
	// Again, as an application does at every start: GORM reads the
	// existing columns with pgx.QueryExecModeSimpleProtocol as the first
	// argument.
	if err := db.AutoMigrate(&Pet{}); err != nil {
		t.Fatalf("second AutoMigrate: %v", err)
	}

	pets := []Pet{
		{Name: "rex", Mood: Happy, Moods: MoodList{Sad, OK}, Maybe: ptr(Sad), Toy: &Item{Name: "bone", Qty: ptr(int32(3))}},
		{Name: "tom", Mood: Sad, Moods: MoodList{}},
		{Name: "kit", Mood: OK, Moods: MoodList{Happy}},
	}
	if err := db.Create(&pets).Error; err != nil {
		t.Fatal(err)
	}
	for _, p := range pets {
		if p.ID == 0 {
			t.Errorf("Create did not set the ID of %s", p.Name)
		}
	}
	one := Pet{Name: "solo", Mood: Happy, Moods: MoodList{OK, OK, Sad}}
	if err := db.Create(&one).Error; err != nil {
		t.Fatal(err)
	}
	pets = append(pets, one)

	var got []Pet
	if err := db.Order("id").Find(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pets) {
		t.Fatalf("Find: %d rows, want %d", len(got), len(pets))
	}
	for i := range pets {
		if !reflect.DeepEqual(got[i], pets[i]) {
			t.Errorf("row %d: got %+v, want %+v", i, got[i], pets[i])
		}
	}

	var happy []Pet
	if err := db.Where("mood = ?", Happy).Order("id").Find(&happy).Error; err != nil {
		t.Fatal(err)
	}
	if len(happy) != 2 || happy[0].Name != "rex" || happy[1].Name != "solo" {
		t.Errorf("Where mood: %+v", happy)
	}
	var withOK []Pet
	if err := db.Where("? = ANY(moods)", OK).Order("id").Find(&withOK).Error; err != nil {
		t.Fatal(err)
	}
	if len(withOK) != 2 || withOK[0].Name != "rex" || withOK[1].Name != "solo" {
		t.Errorf("Where ANY(moods): %+v", withOK)
	}
	var byList []Pet
	if err := db.Where("moods = ?", MoodList{Happy}).Find(&byList).Error; err != nil {
		t.Fatal(err)
	}
	if len(byList) != 1 || byList[0].Name != "kit" {
		t.Errorf("Where moods = list: %+v", byList)
	}
	var first Pet
	if err := db.Where(&Pet{Mood: OK}).First(&first).Error; err != nil {
		t.Fatal(err)
	}
	if first.Name != "kit" || !slices.Equal(first.Moods, MoodList{Happy}) {
		t.Errorf("First: %+v", first)
	}

	// Updates of converter-typed columns.
	if err := db.Model(&first).Updates(map[string]any{"mood": Sad, "moods": MoodList{Sad, Sad}, "maybe": Happy}).Error; err != nil {
		t.Fatal(err)
	}
	var again Pet
	if err := db.First(&again, first.ID).Error; err != nil {
		t.Fatal(err)
	}
	if again.Mood != Sad || !slices.Equal(again.Moods, MoodList{Sad, Sad}) || again.Maybe == nil || *again.Maybe != Happy {
		t.Errorf("after Updates: %+v", again)
	}
	// Pluck into a slice of the converter type.
	var moods []Mood
	if err := db.Model(&Pet{}).Order("id").Pluck("mood", &moods).Error; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moods, []Mood{Happy, Sad, Sad, Happy}) {
		t.Errorf("Pluck: %v", moods)
	}
	// Raw SQL through gorm with the example.
	var m Mood
	var ms []Mood
	if err := db.Raw("SELECT 'happy'::mood, ARRAY['sad','ok']::mood[]").Row().Scan(&m, &ms); err != nil {
		t.Fatal(err)
	}
	if m != Happy || !slices.Equal(ms, []Mood{Sad, OK}) {
		t.Errorf("Raw: %q %q", m, ms)
	}
}

// PlainPet has a plain []Mood field, as in the example.
type PlainPet struct {
	ID    uint   `gorm:"primaryKey"`
	Mood  Mood   `gorm:"type:mood"`
	Moods []Mood `gorm:"type:mood[]"`
}

func (PlainPet) TableName() string { return "gorm_plain_pets" }

// A plain []Mood field reads fine through gorm. Writing it cannot work with any driver: gorm turns a slice argument
// that is not a driver.Valuer into "($1,$2,...)" before the driver sees it. This test reads, and logs what writing
// does, so that a change on either side shows up.
func TestGormPlainSlice(t *testing.T) {
	sqlDB, ctx := open(t)
	db := openGorm(t, sqlDB, ctx)
	if err := db.AutoMigrate(&PlainPet{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlDB.ExecContext(ctx, `INSERT INTO gorm_plain_pets (mood, moods) VALUES ($1, $2)`, OK, []Mood{Sad, Happy}); err != nil {
		t.Fatal(err)
	}
	var got []PlainPet
	if err := db.Find(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Mood != OK || !slices.Equal(got[0].Moods, []Mood{Sad, Happy}) {
		t.Errorf("Find: %+v", got)
	}
	err := db.Create(&PlainPet{Mood: Happy, Moods: []Mood{OK}}).Error
	t.Logf("gorm Create with a plain []Mood field: %v", err)
	err = db.Exec("INSERT INTO gorm_plain_pets (moods) VALUES (?)", []Mood{OK}).Error
	t.Logf("gorm Exec with a plain []Mood argument: %v", err)
}

// lib/pq's array wrappers keep working for arrays of built-in types, as arguments and as scanners.
func TestPqArray(t *testing.T) {
	db, ctx := open(t)
	if _, err := db.ExecContext(ctx, `CREATE TABLE pq_arr (i8 int8[], tx text[], f8 float8[], b bool[], ba bytea[])`); err != nil {
		t.Fatal(err)
	}
	ints := []int64{1, -2, 1 << 62}
	strs := []string{"a", "b,c", `"q"`, "", "NULL", `back\slash`}
	floats := []float64{1.5, -0.25, 0}
	bools := []bool{true, false}
	blobs := [][]byte{{0, 1, 255}, {}, []byte(`\x`)}
	if _, err := db.ExecContext(ctx, `INSERT INTO pq_arr VALUES ($1, $2, $3, $4, $5)`,
		pq.Array(ints), pq.Array(strs), pq.Array(floats), pq.Array(bools), pq.Array(blobs)); err != nil {
		t.Fatal(err)
	}
	// Plain slices too, into the same table.
	if _, err := db.ExecContext(ctx, `INSERT INTO pq_arr VALUES ($1, $2, $3, $4, $5)`, ints, strs, floats, bools, blobs); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT i8, tx, f8, b, ba FROM pq_arr`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var gi []int64
		var gs []string
		var gf []float64
		var gb []bool
		var gba [][]byte
		if err := rows.Scan(pq.Array(&gi), pq.Array(&gs), pq.Array(&gf), pq.Array(&gb), pq.Array(&gba)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gi, ints) || !slices.Equal(gs, strs) || !slices.Equal(gf, floats) || !slices.Equal(gb, bools) ||
			!reflect.DeepEqual(gba, blobs) {
			t.Errorf("row %d: %v %q %v %v %q", n, gi, gs, gf, gb, gba)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d rows", n)
	}
	// As arguments with the extended protocol, read back through pq.Array.
	var gi []int64
	if err := db.QueryRowContext(ctx, `SELECT $1::int8[]`, pq.Array([]int64{7, 8})).Scan(pq.Array(&gi)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gi, []int64{7, 8}) {
		t.Errorf("argument: %v", gi)
	}
	var nullArr pq.Int64Array = []int64{1}
	if err := db.QueryRowContext(ctx, `SELECT NULL::int8[]`).Scan(&nullArr); err != nil || nullArr != nil {
		t.Errorf("NULL array: %v %v", nullArr, err)
	}
}
