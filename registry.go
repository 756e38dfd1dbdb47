package pgpurepy

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pgpurepy/pgpurepy/converters"
)

// registry holds the converters registered on a pool. Entries are only
// appended, so a session that applied the first n entries brings itself up
// to date by applying the rest; version is the number of entries, read with
// one atomic load before every statement.
type registry struct {
	version atomic.Uint64

	mu      sync.Mutex // protects entries; never held while a converter runs
	entries []regEntry
}

type regEntry struct {
	conv      converters.Converter
	info      converters.TypeInfo
	withArray bool
}

// changedSince reports whether entries were added after version.
func (r *registry) changedSince(version uint64) bool { return r.version.Load() != version }

// apply registers on c the entries after the first from and returns the
// version c is then at.
func (r *registry) apply(c *codecs, from uint64) (uint64, error) {
	r.mu.Lock()
	entries := r.entries
	r.mu.Unlock()
	for _, e := range entries[from:] {
		if err := e.applyTo(c); err != nil {
			return from, fmt.Errorf("pgpurepy: register converter for %s: %w", e.info.Name, err)
		}
		from++
	}
	return from, nil
}

// add checks that conv fits the type info describes, by applying it to a
// copy of c, which is up to date with the registry, and then adds it: every
// session applies it before its next statement. A converter that does not
// fit leaves the registry as it was.
func (r *registry) add(c *codecs, conv converters.Converter, info converters.TypeInfo, withArray bool) error {
	e := regEntry{conv: conv, info: info, withArray: withArray}
	scratch := codecs{tm: c.tm.Copy()}
	if err := e.applyTo(&scratch); err != nil {
		return fmt.Errorf("pgpurepy: register converter for %s: %w", info.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	r.version.Store(uint64(len(r.entries)))
	return nil
}

func (e *regEntry) applyTo(c *codecs) error {
	if err := converters.Register(c.tm, e.conv, e.info, e.withArray); err != nil {
		return err
	}
	if c.converted == nil {
		c.converted = make(map[uint32]*conversion)
	}
	c.converted[e.info.OID] = &conversion{name: e.info.Name, goType: e.conv.GoType()}
	if e.withArray {
		c.converted[e.info.ArrayOID] = &conversion{name: e.info.Name, goType: e.conv.GoType(), array: true}
	}
	return nil
}
