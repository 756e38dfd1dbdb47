//go:build unix

package wire

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Peeker looks at one connection's socket without blocking or consuming
// anything: EOF means the server or a proxy closed it; pending bytes on an
// idle connection mean the server said something unprompted (typically a
// FATAL before closing). It is made once per session, so that a checkout's
// look costs one syscall and no allocation.
type Peeker struct {
	rc    syscall.RawConn // nil: not a socket, nothing to look at
	fn    func(fd uintptr)
	buf   [1]byte
	n     int
	errno syscall.Errno
}

// NewPeeker returns a Peeker for nc; one that is not a socket (or whose
// socket cannot be reached) is never seen to hold anything.
func NewPeeker(nc net.Conn) *Peeker {
	pk := &Peeker{}
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return pk
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return pk
	}
	pk.rc = rc
	pk.fn = func(fd uintptr) { pk.n, pk.errno = recvPeek(fd, &pk.buf) }
	return pk
}

// Peek reports whether bytes are pending, and an error when the peer closed
// the connection or the socket broke. The caller must have stopped pgconn's
// background reader (SyncConn). Control, unlike Read, takes no read lock,
// so Peek can never wait for a reader parked on the socket.
func (pk *Peeker) Peek() (pending bool, err error) {
	if pk.rc == nil {
		return false, nil
	}
	if err := pk.rc.Control(pk.fn); err != nil {
		return false, err
	}
	n, errno := pk.n, pk.errno
	pk.errno = 0
	switch {
	case errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK:
		return false, nil
	case errno != 0:
		return false, fmt.Errorf("pgpurepy: connection broken: %w", errno)
	case n == 0:
		return false, errors.New("pgpurepy: connection closed by the server")
	}
	return true, nil
}
