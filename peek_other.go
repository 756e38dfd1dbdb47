//go:build !unix

package pgpurepy

import "net"

// peeker cannot look at the socket without reading on this platform;
// checkouts rely on the idle ping alone.
type peeker struct{}

func newPeeker(net.Conn) *peeker { return &peeker{} }

func (*peeker) peek() (pending bool, err error) { return false, nil }
