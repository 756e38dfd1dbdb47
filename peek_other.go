//go:build !unix

package pgpurepy

import "net"

// peek cannot look at the socket without reading on this platform; checkouts
// rely on the idle ping alone.
func peek(net.Conn) (pending bool, err error) { return false, nil }
