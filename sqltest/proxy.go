package sqltest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a target address that
// injects faults: it can hold bytes (Pause), slow them (SetLatency), drop
// every connection (Cut) and refuse new ones (Refuse). Its methods are safe
// for concurrent use.
//
// Each client connection gets its own connection to the target and two
// goroutines that copy chunks between them; Close waits for all of them.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // accept loop and pumps

	mu      sync.Mutex // protects the following fields
	conns   map[*proxyConn]struct{}
	resume  chan struct{} // closed by Resume; non-nil while paused
	refuse  bool
	latency time.Duration
	closed  bool
}

// proxyConn is one client connection and its connection to the target.
type proxyConn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed when the pair is closed
}

// close closes both sides at once; when abrupt, with a TCP reset.
func (c *proxyConn) close(abrupt bool) {
	c.once.Do(func() {
		if abrupt {
			for _, nc := range []net.Conn{c.client, c.server} {
				if tc, ok := nc.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
			}
		}
		c.client.Close()
		c.server.Close()
		close(c.done)
	})
}

// NewProxy starts a proxy listening on a free port of 127.0.0.1 that
// forwards to target (host:port, not checked until a client connects; a
// client whose target connection fails is closed). It returns an error
// when it cannot listen. The caller must Close it.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sqltest: proxy: %w", err)
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[*proxyConn]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the host:port that clients connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host returns the proxy's IP address, 127.0.0.1.
func (p *Proxy) Host() string { return p.ln.Addr().(*net.TCPAddr).IP.String() }

// Port returns the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE; retry
			continue
		}
		p.mu.Lock()
		refuse, closed := p.refuse, p.closed
		p.mu.Unlock()
		if refuse || closed {
			if tc, ok := client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			client.Close()
			continue
		}
		p.wg.Add(1)
		go p.connect(client)
	}
}

// connect dials the target for client and starts the two pumps.
func (p *Proxy) connect(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		client.Close()
		return
	}
	c := &proxyConn{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close(true)
		return
	}
	p.conns[c] = struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	go p.pump(c, client, server)
	go p.pump(c, server, client)
}

// pump copies chunks from src to dst, honouring pause and latency, until
// either side fails; then it closes the pair.
func (p *Proxy) pump(c *proxyConn, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		c.close(false)
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait holds a chunk while the proxy is paused and for the latency. It
// returns false when the connection was closed meanwhile.
func (p *Proxy) wait(c *proxyConn) bool {
	for {
		p.mu.Lock()
		resume, latency := p.resume, p.latency
		p.mu.Unlock()
		if resume == nil {
			if latency <= 0 {
				return true
			}
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
				return false
			}
			// Paused during the delay? Hold the chunk until resumed.
			p.mu.Lock()
			paused := p.resume != nil
			p.mu.Unlock()
			if !paused {
				return true
			}
			continue
		}
		select {
		case <-resume:
		case <-c.done:
			return false
		}
	}
}

// Pause stops forwarding bytes in both directions. Connections stay open;
// bytes already read are held, and the rest waits in the kernel's buffers,
// until Resume. New connections are still accepted, and paused too.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume == nil {
		p.resume = make(chan struct{})
	}
}

// Resume forwards the held bytes and the ones that follow.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
}

// Cut closes every current connection abruptly on both sides (with a TCP
// reset), dropping held bytes. New connections are still accepted unless
// Refuse is on.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close(true)
	}
}

// Refuse makes the proxy close new connections at once (with a TCP reset)
// while on is true. Current connections are not affected.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// SetLatency delays every forwarded chunk by d in each direction; 0 turns
// it off.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Connections returns the number of client connections currently open
// through the proxy.
func (p *Proxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits until all the
// proxy's goroutines have returned. It is idempotent and returns the error
// of closing the listener, if any.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	// Cut before releasing a pause, so that no held bytes slip through.
	p.Cut()
	p.Resume()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("sqltest: proxy: %w", err)
	}
	return nil
}
