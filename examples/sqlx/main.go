// Command sqlx shows pgpurepy under github.com/jmoiron/sqlx: sqlx.Open with
// the driver name "pgpurepy", NamedExec, Get and Select into structs, and the
// pgpurepy extension on the *sql.DB inside the *sqlx.DB.
//
//	cd examples && go run ./sqlx
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
)

// Book is one row of sqlx_books.
type Book struct {
	ID     int64     `db:"id"`
	Title  string    `db:"title"`
	Author string    `db:"author"`
	Year   int       `db:"year"`
	Added  time.Time `db:"added"`
}

func main() { demo.Run(run) }

func run(ctx context.Context, dsn string) error {
	// sqlx.Open("pgpurepy", dsn) picks PostgreSQL's $1 bind style because
	// sqlx knows the driver name; with a *sql.DB from pgpurepy.OpenDB use
	// sqlx.NewDb(db, "postgres").
	sqlx.BindDriver("pgpurepy", sqlx.DOLLAR)
	db, err := sqlx.Open("pgpurepy", dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	db.MustExecContext(ctx, `CREATE TABLE IF NOT EXISTS sqlx_books (
		id     bigserial PRIMARY KEY,
		title  text NOT NULL,
		author text NOT NULL,
		year   int NOT NULL,
		added  timestamptz NOT NULL DEFAULT now())`)
	db.MustExecContext(ctx, `TRUNCATE sqlx_books`)

	books := []Book{
		{Title: "The Go Programming Language", Author: "Donovan, Kernighan", Year: 2015},
		{Title: "PostgreSQL: Up and Running", Author: "Obe, Hsu", Year: 2017},
		{Title: "Designing Data-Intensive Applications", Author: "Kleppmann", Year: 2017},
	}
	res, err := db.NamedExecContext(ctx,
		`INSERT INTO sqlx_books (title, author, year) VALUES (:title, :author, :year)`, books)
	if err != nil {
		return fmt.Errorf("named insert: %w", err)
	}
	n, _ := res.RowsAffected()
	fmt.Printf("inserted %d books with NamedExecContext\n", n)

	var first Book
	if err := db.GetContext(ctx, &first,
		`SELECT id, title, author, year, added FROM sqlx_books WHERE year = $1 ORDER BY id LIMIT 1`, 2015); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	fmt.Printf("Get:    %d %q by %s (%d)\n", first.ID, first.Title, first.Author, first.Year)

	var recent []Book
	query, args, err := sqlx.In(`SELECT * FROM sqlx_books WHERE year IN (?) ORDER BY title`, []int{2017, 2018})
	if err != nil {
		return err
	}
	if err := db.SelectContext(ctx, &recent, db.Rebind(query), args...); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	for _, b := range recent {
		fmt.Printf("Select: %d %q by %s (%d)\n", b.ID, b.Title, b.Author, b.Year)
	}
	if len(recent) != 2 {
		return fmt.Errorf("select returned %d books, want 2", len(recent))
	}

	// The *sql.DB inside sqlx is a pgpurepy one, so the extension works.
	ext, err := pgpurepy.Ext(db.DB)
	if err != nil {
		return err
	}
	titles, err := pgpurepy.FetchStructs[Book](ctx, ext, `SELECT * FROM sqlx_books ORDER BY id`)
	if err != nil {
		return err
	}
	st := ext.Stats()
	fmt.Printf("pgpurepy.Ext(db.DB): %d books via FetchStructs; pool MaxConnections=%d IdleConnections=%d Acquires=%d ConnectionsOpened=%d\n",
		len(titles), st.MaxConnections, st.IdleConnections, st.Acquires, st.ConnectionsOpened)
	return nil
}
