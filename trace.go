package pgpurepy

import (
	"context"
	"database/sql/driver"
)

// Tracer is told of every statement the pool runs, through database/sql and
// through the extension, so that OpenTelemetry spans or metrics can be wired
// without wrapping the driver. Set it in Config.Tracer; nil costs nothing.
//
// TraceQueryStart may return a derived context (carrying a span); the same
// context is passed to TraceQueryEnd. Neither may block: they run on the
// statement's goroutine.
type Tracer interface {
	TraceQueryStart(ctx context.Context, sql string, args []driver.NamedValue) context.Context
	// TraceQueryEnd gets the command tag ("SELECT 3", "UPDATE 1") and the
	// statement's error, nil on success.
	TraceQueryEnd(ctx context.Context, commandTag string, err error)
}
