package pgpurepy

import (
	"slices"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// nullability remembers which table columns are declared NOT NULL, for
// ColumnTypeNullable. It is filled when a statement reading a table the pool
// has not seen yet is described: one catalog query per new table per pool,
// none per statement execution. A column altered later keeps its old answer
// until the pool is reopened.
type nullability struct {
	mu      sync.Mutex          // protects the fields below
	tables  map[uint32]struct{} // tables whose columns are known
	notNull map[uint64]bool     // tableOID<<16 | attnum → attnotnull
}

func columnKey(table uint32, attnum uint16) uint64 { return uint64(table)<<16 | uint64(attnum) }

// unknownTables returns the tables of fields whose columns are not known.
func (n *nullability) unknownTables(fields []pgconn.FieldDescription) []uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []uint32
	for _, f := range fields {
		if f.TableOID == 0 {
			continue
		}
		if _, ok := n.tables[f.TableOID]; ok {
			continue
		}
		if !slices.Contains(out, f.TableOID) {
			out = append(out, f.TableOID)
		}
	}
	return out
}

// lookup reports whether the column may be NULL, and whether that is known.
func (n *nullability) lookup(f pgconn.FieldDescription) (nullable, ok bool) {
	if f.TableOID == 0 {
		return false, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	notNull, ok := n.notNull[columnKey(f.TableOID, f.TableAttributeNumber)]
	return !notNull, ok
}

// learned records the NOT NULL flags read for tables.
func (n *nullability) learned(tables []uint32, notNull map[uint64]bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tables == nil {
		n.tables = make(map[uint32]struct{})
		n.notNull = make(map[uint64]bool)
	}
	for _, t := range tables {
		n.tables[t] = struct{}{}
	}
	for k, v := range notNull {
		n.notNull[k] = v
	}
}
