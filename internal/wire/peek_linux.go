//go:build linux && !386

package wire

import (
	"syscall"
	"unsafe"
)

// recvPeek peeks at one byte of fd without waiting. It is a raw syscall,
// which skips the scheduler's bookkeeping for a call that may block (this
// one never does: MSG_DONTWAIT) and syscall.Recvfrom's error boxing: on a
// virtual machine, where every checkout's peek costs well over a
// microsecond, that is a tenth of it. (linux/386 has no recvfrom syscall.)
func recvPeek(fd uintptr, buf *[1]byte) (n int, errno syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(r), errno
}
