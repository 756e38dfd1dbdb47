package pgpurepy_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
)

// BeforeConnect runs before every connection is dialled and may change its
// settings: a password from a secrets manager, an IAM token that expires.
// pgconn's AfterConnect sets each new session up. min_connections has the
// pool open connections when it is created, so the first burst of
// statements does not wait for dials.
func ExampleConfig_hooks() {
	dsn, drop := exampleDSN()
	defer drop()

	cfg, err := pgpurepy.ParseConfig(dsn + "&connection_count=3&min_connections=3")
	if err != nil {
		log.Fatal(err)
	}
	var dials atomic.Int64
	cfg.BeforeConnect = func(ctx context.Context, cc *pgconn.Config) error {
		// A real hook fetches a token here; cc is this dial's own copy.
		cc.RuntimeParams["application_name"] = fmt.Sprintf("worker-%d", dials.Add(1))
		return nil
	}
	cfg.ConnConfig.AfterConnect = func(ctx context.Context, pg *pgconn.PgConn) error {
		return pg.Exec(ctx, "SET statement_timeout = '5s'").Close()
	}
	connector, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	// No statement has run yet; the pool is filling itself.
	ext := connector.Pool()
	for deadline := time.Now().Add(30 * time.Second); ext.Stats().OpenConnections < 3; {
		if time.Now().After(deadline) {
			log.Fatal("the pool did not open min_connections")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("open before the first statement:", ext.Stats().OpenConnections)

	var app, timeout string
	if err := db.QueryRow("SELECT current_setting('application_name'), current_setting('statement_timeout')").Scan(&app, &timeout); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(app, "worker-"), timeout, dials.Load())
	// Output:
	// open before the first statement: 3
	// true 5s 3
}

// PgConn is the escape hatch to everything pgconn offers that the driver
// does not wrap. The connection is the checkout's until fn returns; what
// fn leaves on the session (here a SET) is reset before the next holder
// gets it.
func ExampleConn_PgConn() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	err := ext.Checkout(ctx, func(c *pgpurepy.Conn) error {
		pg := c.PgConn()
		if err := pg.Exec(ctx, "SET application_name = 'raw'").Close(); err != nil {
			return err
		}
		res := pg.ExecParams(ctx, "SELECT current_setting('application_name'), $1::text", [][]byte{[]byte("hi")}, nil, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		fmt.Printf("%s %s, parameter status: %s\n", res.Rows[0][0], res.Rows[0][1], pg.ParameterStatus("application_name"))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: raw hi, parameter status: raw
}
