package pgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

func init() {
	sql.Register("pgpurepy", &Driver{})
}

// Driver is the database/sql driver registered as "pgpurepy".
//
// sql.Open("pgpurepy", dsn) calls OpenConnector once, so each *sql.DB gets
// exactly one pool. The Driver that db.Driver() returns for such a DB leads
// back to that pool, which is how Ext finds it.
type Driver struct {
	// c is the Connector this Driver belongs to; nil for the registered one.
	c *Connector
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

// Open opens a connection on a new pool of one connection and closes that
// pool with the connection. It exists because driver.Driver requires it;
// database/sql uses OpenConnector, which shares one pool per *sql.DB.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.ConnectionCount = 1
	// One connection for one caller: nothing to share.
	cfg.Multiplexing = false
	c, err := NewConnectorConfig(cfg)
	if err != nil {
		return nil, err
	}
	cn, err := c.Connect(context.Background())
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	cn.(*conn).closePool = c
	return cn, nil
}

// Driver returns a Driver that leads back to this Connector, which is how
// Ext finds the pool of a *sql.DB. It does no I/O.
func (c *Connector) Driver() driver.Driver { return &Driver{c: c} }

// OpenConnector parses dsn and returns a Connector with its own pool. It opens
// no connection; a bad DSN gives an error that names the problem and never
// contains the password.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	return NewConnector(dsn)
}
