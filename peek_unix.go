//go:build unix

package pgpurepy

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// peek looks at the socket without blocking or consuming anything: EOF means
// the server or a proxy closed it; pending bytes on an idle connection mean
// the server said something unprompted (typically a FATAL before closing).
// The caller must have stopped pgconn's background reader (SyncConn).
// Control, unlike Read, takes no read lock, so peek can never wait for a
// reader parked on the socket.
func peek(nc net.Conn) (pending bool, err error) {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, err
	}
	var buf [1]byte
	var n int
	var rerr error
	err = rc.Control(func(fd uintptr) {
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	if err != nil {
		return false, err
	}
	switch {
	case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		return false, nil
	case rerr != nil:
		return false, fmt.Errorf("pgpurepy: connection broken: %w", rerr)
	case n == 0:
		return false, errors.New("pgpurepy: connection closed by the server")
	}
	return true, nil
}
