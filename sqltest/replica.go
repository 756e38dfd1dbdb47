package sqltest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Pair is a primary server and a hot standby that streams from it, for
// high-availability tests. Both are local servers; use their methods (DSN,
// Exec, Log, ...) directly.
type Pair struct {
	Primary, Standby *Server
}

// StartPair starts a primary server (wal_level=replica, replication allowed
// from 127.0.0.1 in pg_hba.conf) as Start does from local binaries, and a
// hot standby made from it with `pg_basebackup -R -X stream`, each on its
// own free loopback port and as the postgres user when running as root.
// opts applies to both. It returns once the primary reports the standby as
// streaming in pg_stat_replication. It ignores PGPUREPY_TEST_DSN and
// Docker: it needs local binaries, and says so in its error. On error
// nothing is left running. The caller must Close the pair.
func StartPair(ctx context.Context, opts Options) (*Pair, error) {
	return startPair(ctx, opts)
}

func startPair(ctx context.Context, opts Options) (_ *Pair, err error) {
	binDir, tried := findBinDir(defaultSearch())
	if binDir == "" {
		return nil, fmt.Errorf("sqltest: start pair: %w", noServerError(tried, errors.New("not used for pairs")))
	}
	p := &Pair{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.Primary, err = startLocal(ctx, opts, binDir); err != nil {
		return nil, err
	}
	if p.Standby, err = newLocal(binDir); err != nil {
		return nil, err
	}
	sb := p.Standby
	err = run(sb.pgBin(ctx, "pg_basebackup", "-h", p.Primary.Host(), "-p", strconv.Itoa(p.Primary.Port()),
		"-U", "postgres", "-D", sb.dataDir, "-R", "-X", "stream", "--no-sync", "-c", "fast"))
	if err != nil {
		return nil, withLog(err, p.Primary.Log())
	}
	// The backup holds the primary's sqltest.conf; give the standby its own
	// port and socket directory.
	if err := sb.startOnFreePort(ctx, opts, opts.ServerConfig); err != nil {
		return nil, err
	}
	sb.password, sb.template = p.Primary.password, p.Primary.template
	if err := p.waitStreaming(ctx); err != nil {
		return nil, err
	}
	opts.progressf("sqltest: standby on %s:%d streams from primary on %s:%d", sb.host, sb.port, p.Primary.host, p.Primary.port)
	return p, nil
}

func (p *Pair) waitStreaming(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		n, err := p.Primary.queryValue(ctx, "", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
		if err == nil && n != "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return withLog(fmt.Errorf("sqltest: standby is not streaming: %w", ctx.Err()), p.Standby.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StopPrimary stops the primary at once (pg_ctl stop -m immediate), as in
// a crash. Its data directory is kept until Close.
func (p *Pair) StopPrimary(ctx context.Context) error {
	p.Primary.mu.Lock()
	defer p.Primary.mu.Unlock()
	if err := p.Primary.checkLocalLocked("stop primary"); err != nil {
		return err
	}
	return p.Primary.stopLocked(ctx, "immediate")
}

// Promote promotes the standby (pg_ctl promote) and waits until it accepts
// writes (pg_is_in_recovery() is false). The old primary is not rejoined;
// stop it first with StopPrimary to avoid two primaries. The error holds the
// tail of the standby's log.
func (p *Pair) Promote(ctx context.Context) error {
	sb := p.Standby
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if err := sb.checkLocalLocked("promote"); err != nil {
		return err
	}
	if err := run(sb.pgBin(ctx, "pg_ctl", "promote", "-D", sb.dataDir, "-w", "-t", "60")); err != nil {
		return withLog(err, sb.Log())
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		v, err := sb.queryValue(ctx, "", "SELECT pg_is_in_recovery()")
		if err == nil && v == "f" {
			return nil
		}
		select {
		case <-ctx.Done():
			return withLog(fmt.Errorf("sqltest: promoted standby still in recovery: %w", ctx.Err()), sb.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops both servers and removes their directories. It is
// idempotent and reports every failure.
func (p *Pair) Close() error {
	var errs []error
	for _, s := range []*Server{p.Standby, p.Primary} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
