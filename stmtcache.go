package pgpurepy

import (
	"container/list"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// stmtDesc is what one SQL text looks like on a connection (see
// statements.go).
type stmtDesc struct {
	sql           string
	sd            *pgconn.StatementDescription
	resultFormats []int16
	columns       []string
	decoders      []decoder
	// types describe the result columns for multiplexed results, whose
	// rows are read after the session moved on (see colType).
	types []colType
	// refs counts the open driver statements holding a description that
	// is in session.prepared; only the session's holder changes it.
	refs int
	// changesSession is set when the statement may leave session state
	// behind (see changesSession).
	changesSession bool
}

// stmtCache is a small LRU of statement descriptions keyed by SQL text.
type stmtCache struct {
	capacity int
	m        map[string]*list.Element
	l        list.List
	seq      uint64
	// prefix makes statement names unique to the connection, so that behind
	// a transaction-pooling proxy a statement prepared by another client
	// under the same name is an error (26000), never another query's
	// result.
	prefix string
	// seen holds the hashes of texts that ran once without being cached
	// (see ranBefore); seed is their hash's.
	seen map[uint64]struct{}
	seed maphash.Seed
}

// ranBefore reports whether sql ran on the connection since it was last
// cached, and remembers that it ran now. A text that runs once, as code
// that writes its values into the SQL runs every statement, is described
// and run unnamed: preparing it would cost the server a plan it never
// uses again, a deallocation, and a place in the LRU that a statement
// that runs again and again needs. Npgsql prepares automatically on the
// same grounds (Auto Prepare Min Usages). Texts are remembered by hash,
// as many as the cache holds; when they are more, they are forgotten all
// at once. A collision only prepares a text on its first run.
func (c *stmtCache) ranBefore(sql string) bool {
	if c.seen == nil {
		c.seen = make(map[uint64]struct{})
		c.seed = maphash.MakeSeed()
	}
	h := maphash.String(c.seed, sql)
	if _, ok := c.seen[h]; ok {
		delete(c.seen, h)
		return true
	}
	if len(c.seen) >= c.capacity {
		clear(c.seen)
	}
	c.seen[h] = struct{}{}
	return false
}

func (c *stmtCache) get(sql string) *stmtDesc {
	if e, ok := c.m[sql]; ok {
		c.l.MoveToFront(e)
		return e.Value.(*stmtDesc)
	}
	return nil
}

// put adds d and returns the description it evicted, if any.
func (c *stmtCache) put(d *stmtDesc) *stmtDesc {
	if c.m == nil {
		c.m = make(map[string]*list.Element)
	}
	c.m[d.sql] = c.l.PushFront(d)
	if c.l.Len() <= c.capacity {
		return nil
	}
	old := c.l.Remove(c.l.Back()).(*stmtDesc)
	delete(c.m, old.sql)
	return old
}

// remove drops sql and reports the description it held.
func (c *stmtCache) remove(sql string) *stmtDesc {
	e, ok := c.m[sql]
	if !ok {
		return nil
	}
	c.l.Remove(e)
	delete(c.m, sql)
	return e.Value.(*stmtDesc)
}

func (c *stmtCache) each(fn func(*stmtDesc)) {
	for e := c.l.Front(); e != nil; e = e.Next() {
		fn(e.Value.(*stmtDesc))
	}
}

func (c *stmtCache) nextName() string {
	c.seq++
	return c.prefix + strconv.FormatUint(c.seq, 10)
}

// plan fills the result formats, column names and decoders of d.
func (d *stmtDesc) plan(c *codecs) {
	n := len(d.sd.Fields)
	d.resultFormats = make([]int16, n)
	d.columns = make([]string, n)
	d.decoders = make([]decoder, n)
	for i, f := range d.sd.Fields {
		d.resultFormats[i] = c.resultFormat(f.DataTypeOID)
		d.columns[i] = f.Name
		d.decoders[i] = c.decoderFor(f.DataTypeOID, d.resultFormats[i])
	}
	d.types = c.colTypes(d.sd.Fields)
}

// closedStmts are explicitly prepared statements closed by a goroutine that
// did not hold their session at the time; the session's holder releases
// them before its next statement. add is safe from any goroutine.
type closedStmts struct {
	any  atomic.Bool
	mu   sync.Mutex // protects list
	list []*stmtDesc
}

func (c *closedStmts) add(d *stmtDesc) {
	c.mu.Lock()
	c.list = append(c.list, d)
	c.mu.Unlock()
	c.any.Store(true)
}

// take returns the statements added since the last take; it costs one
// atomic load when there are none.
func (c *closedStmts) take() []*stmtDesc {
	if !c.any.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.list
	c.list = nil
	c.any.Store(false)
	return list
}
