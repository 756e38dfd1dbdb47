package sqltest_test

import (
	"context"
	"fmt"
	"log"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// A test package gets one server from TestMain, started by the first test
// that needs it, and one fresh database per test from DB:
//
//	func TestMain(m *testing.M) { sqltest.Main(m) }
//
//	func TestOrders(t *testing.T) {
//		t.Parallel()
//		db, err := sql.Open("pgpurepy", sqltest.DB(t))
//		...
//	}
func ExampleDB() {
	testOrders := func(t *testing.T) {
		dsn := sqltest.DB(t) // dropped when the test ends
		conn, err := pgconn.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		// ... exercise the code under test against dsn ...
	}
	_ = testOrders
}

// Start gives full control over one server, here with an extra setting.
func ExampleStart() {
	ctx := context.Background()
	s, err := sqltest.Start(ctx, sqltest.Options{ServerConfig: map[string]string{"work_mem": "8MB"}})
	if err != nil {
		log.Fatal(err) // says what to install when there is no PostgreSQL
	}
	defer s.Close()

	conn, err := pgconn.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "SELECT 6 * 7").ReadAll()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res[0].Rows[0][0]))
	// Output: 42
}

// A Proxy between client and server injects network faults.
func ExampleNewProxy() {
	var s *sqltest.Server // from sqltest.Shared(t) or sqltest.Start
	if s == nil {
		return
	}
	p, err := sqltest.NewProxy(fmt.Sprintf("%s:%d", s.Host(), s.Port()))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	// Connect through p.Host() and p.Port() instead of the server's, then:
	p.Pause()  // the server's replies are held: queries hang
	p.Resume() // and go on
	p.Cut()    // every connection breaks
}
