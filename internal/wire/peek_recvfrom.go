//go:build unix && !(linux && !386)

package wire

import (
	"errors"
	"syscall"
)

// recvPeek peeks at one byte of fd without waiting, through the portable
// syscall.Recvfrom (see peek_linux.go for the raw syscall).
func recvPeek(fd uintptr, buf *[1]byte) (n int, errno syscall.Errno) {
	n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != nil && !errors.As(err, &errno) {
		errno = syscall.EIO
	}
	return n, errno
}
