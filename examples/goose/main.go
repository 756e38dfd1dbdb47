// Command goose runs github.com/pressly/goose/v3 migrations, embedded in the
// binary with embed.FS, on a pgpurepy *sql.DB: Up, then the status of each
// migration and the database version. It then migrates down to version 1
// and up again, to show both directions.
//
//	cd examples && go run ./goose
package main

import (
	"context"
	"embed"
	"fmt"
	"log"
	"os"

	"github.com/pressly/goose/v3"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
)

//go:embed migrations/*.sql
var migrations embed.FS

func main() { demo.Run(run) }

func run(ctx context.Context, dsn string) error {
	db, err := pgpurepy.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	// A throwaway server starts empty; against your own DSN, start from
	// scratch so that the example runs more than once.
	for _, q := range []string{
		`DROP FUNCTION IF EXISTS goose_total_balance()`,
		`DROP TABLE IF EXISTS goose_accounts, goose_db_version`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}

	goose.SetBaseFS(migrations)
	goose.SetTableName("goose_db_version")
	goose.SetLogger(goose.NopLogger())
	if err := goose.SetDialect("postgres"); err != nil {
		return err
	}

	if err := goose.UpContext(ctx, db, "migrations"); err != nil {
		return fmt.Errorf("goose up: %w", err)
	}
	v, err := goose.GetDBVersionContext(ctx, db)
	if err != nil {
		return err
	}
	fmt.Printf("goose up: database at version %d\n", v)

	// Status prints through goose's logger: show it on stdout.
	goose.SetLogger(log.New(os.Stdout, "goose status: ", 0))
	if err := goose.StatusContext(ctx, db, "migrations"); err != nil {
		return fmt.Errorf("goose status: %w", err)
	}
	goose.SetLogger(goose.NopLogger())

	var total string
	if err := db.QueryRowContext(ctx, `SELECT goose_total_balance()::text`).Scan(&total); err != nil {
		return err
	}
	fmt.Printf("goose_total_balance() = %s\n", total)

	if err := goose.DownToContext(ctx, db, "migrations", 1); err != nil {
		return fmt.Errorf("goose down-to 1: %w", err)
	}
	if v, err = goose.GetDBVersionContext(ctx, db); err != nil {
		return err
	}
	fmt.Printf("goose down-to 1: database at version %d\n", v)
	if err := goose.UpContext(ctx, db, "migrations"); err != nil {
		return fmt.Errorf("goose up again: %w", err)
	}
	if v, err = goose.GetDBVersionContext(ctx, db); err != nil {
		return err
	}
	fmt.Printf("goose up again: database at version %d\n", v)
	if v != 3 {
		return fmt.Errorf("version %d, want 3", v)
	}

	ext, err := pgpurepy.Ext(db)
	if err != nil {
		return err
	}
	st := ext.Stats()
	fmt.Printf("pool: Acquires=%d ConnectionsOpened=%d (MaxConnections %d)\n", st.Acquires, st.ConnectionsOpened, st.MaxConnections)
	return nil
}
