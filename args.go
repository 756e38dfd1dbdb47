package pgpurepy

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// queryOptions are pgx's per-statement options. pgx's stdlib takes them
// from the front of a statement's arguments, and libraries written for it
// pass them through database/sql (gorm's postgres migrator puts
// pgx.QueryExecModeSimpleProtocol first), so pgpurepy takes them the same
// way, through database/sql and the extension alike.
type queryOptions struct {
	// naming decides whether a statement described for this call is
	// prepared under a name; namingDefault follows the pool's query_mode.
	// A description already cached on the connection is used either way.
	naming naming
	// formats and formatsByOID choose the result columns' wire formats
	// (pgx.QueryResultFormats, pgx.QueryResultFormatsByOID).
	formats      pgx.QueryResultFormats
	formatsByOID pgx.QueryResultFormatsByOID
	// simple is set by pgx.QueryExecModeSimpleProtocol: code that asks
	// for it expects its statement alone on its connection, as pgx's
	// simple protocol sends it, so it is never multiplexed.
	simple bool
}

type naming uint8

const (
	namingDefault naming = iota
	namingNamed
	namingUnnamed
)

// takeOptions takes pgx's options off the front of args and applies a
// pgx.QueryRewriter (pgx.NamedArgs, for one) to query and the arguments
// after it. The common case, a first argument that is no option, costs one
// type switch.
//
// The execution modes map onto what pgpurepy does anyway:
// QueryExecModeCacheStatement prepares a named statement,
// QueryExecModeCacheDescribe, DescribeExec, Exec and SimpleProtocol run an
// unnamed one. pgpurepy never interpolates arguments into the text: the
// simple-protocol mode, whose point is to leave nothing prepared on the
// server, runs as an unnamed statement of the extended protocol, in one
// round trip once the connection has described the text.
func takeOptions(ctx context.Context, query string, args []driver.NamedValue) (string, []driver.NamedValue, queryOptions, error) {
	var o queryOptions
	for len(args) > 0 {
		switch v := args[0].Value.(type) {
		case pgx.QueryExecMode:
			switch v {
			case pgx.QueryExecModeCacheStatement:
				o.naming = namingNamed
			case pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec:
				o.naming = namingUnnamed
			case pgx.QueryExecModeSimpleProtocol:
				o.naming, o.simple = namingUnnamed, true
			default:
				return "", nil, o, fmt.Errorf("pgpurepy: unknown pgx.QueryExecMode %d", int32(v))
			}
		case pgx.QueryResultFormats:
			o.formats = v
		case pgx.QueryResultFormatsByOID:
			o.formatsByOID = v
		case pgx.QueryRewriter:
			return rewrite(ctx, v, query, args[1:], o)
		default:
			return query, args, o, nil
		}
		args = args[1:]
	}
	return query, args, o, nil
}

// rewrite applies r, which pgx's stdlib calls with its own connection; a
// rewriter that needs one (pgx.NamedArgs does not) gets nil.
func rewrite(ctx context.Context, r pgx.QueryRewriter, query string, args []driver.NamedValue, o queryOptions) (string, []driver.NamedValue, queryOptions, error) {
	plain := make([]any, len(args))
	for i, a := range args {
		plain[i] = a.Value
	}
	query, plain, err := r.RewriteQuery(ctx, nil, query, plain)
	if err != nil {
		return "", nil, o, fmt.Errorf("pgpurepy: rewrite query with %T: %w", r, err)
	}
	return query, namedArgs(plain), o, nil
}

// resultFormats returns the formats the options ask for, for a statement
// with the given result fields, or nil when they ask for none. A list of
// formats goes to the server as it is, which reads one format as every
// column's, and rejects a list of another length.
func (o *queryOptions) resultFormats(fields []pgconn.FieldDescription) []int16 {
	switch {
	case o.formatsByOID != nil:
		out := make([]int16, len(fields))
		for i, f := range fields {
			out[i] = o.formatsByOID[f.DataTypeOID]
		}
		return out
	case o.formats != nil:
		return o.formats
	}
	return nil
}

// namedArgs converts args into positional arguments $1, $2, ...
func namedArgs(args []any) []driver.NamedValue {
	if len(args) == 0 {
		return nil
	}
	return appendNamed(make([]driver.NamedValue, 0, len(args)), args)
}

// appendNamed appends args to dst as positional arguments $1, $2, ...
func appendNamed[T any](dst []driver.NamedValue, args []T) []driver.NamedValue {
	for i, a := range args {
		dst = append(dst, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	return dst
}
