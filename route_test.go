package pgpurepy_test

import (
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// Tests of load_balance_hosts (balance.go) and of the reads a context
// marked with PreferStandby sends to a standby (standby.go), on real
// servers: two proxies in front of one server, and a primary with a
// streaming standby from sqltest.StartPair.

// lbTwoHosts returns a DSN on a fresh database of the shared server that
// lists two proxies in front of it, and the proxies.
func lbTwoHosts(t *testing.T, extra ...string) (string, *sqltest.Proxy, *sqltest.Proxy) {
	t.Helper()
	first, second := resProxy(t), resProxy(t)
	u, err := url.Parse(sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = first.Addr() + "," + second.Addr()
	dsn := u.String()
	for _, e := range extra {
		dsn += "&" + e
	}
	return dsn, first, second
}

// TestLoadBalanceHostsRandom fills a pool of 32 connections on a DSN of two
// hosts: with load_balance_hosts=random both get some (all 32 on one host
// has a chance of 2 in 2^32), with disable, the default, the first gets
// them all.
func TestLoadBalanceHostsRandom(t *testing.T) {
	t.Parallel()
	const n = 32
	for _, mode := range []string{"random", "disable", ""} {
		t.Run("load_balance_hosts="+mode, func(t *testing.T) {
			extra := []string{"connection_count=32", "min_connections=32"}
			if mode != "" {
				extra = append(extra, "load_balance_hosts="+mode)
			}
			dsn, first, second := lbTwoHosts(t, extra...)
			db, x := resOpen(t, dsn)
			resWarm(t, db, x)
			a, b := first.Connections(), second.Connections()
			t.Logf("first host: %d connections, second: %d", a, b)
			if a+b != n {
				t.Fatalf("%d connections through the proxies, want %d", a+b, n)
			}
			if mode == "random" && (a == 0 || b == 0) {
				t.Errorf("random: connections on the first host %d, on the second %d; want some on each", a, b)
			}
			if mode != "random" && b != 0 {
				t.Errorf("%q: %d connections on the second host, want all on the first", mode, b)
			}
		})
	}
}

// TestLoadBalanceHostsKeepsTLSOrder checks the shuffle on its own: every
// host comes first sometimes, and the two entries pgconn makes of a host
// for sslmode=prefer (TLS, then plain) stay together and in that order.
func TestLoadBalanceHostsKeepsTLSOrder(t *testing.T) {
	t.Parallel()
	cfg, err := pgconn.ParseConfig("host=a,b,c port=1,2,3 user=u sslmode=prefer")
	if err != nil {
		t.Fatal(err)
	}
	firsts := map[string]int{}
	for range 300 {
		cc := cfg.Copy()
		pgpurepy.ShuffleHosts(cc)
		all := append([]*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}, cc.Fallbacks...)
		if len(all) != 6 {
			t.Fatalf("%d entries after the shuffle, want 6", len(all))
		}
		seen := map[string]bool{}
		for i := 0; i < len(all); i += 2 {
			tlsFirst, plain := all[i], all[i+1]
			if tlsFirst.Host != plain.Host || tlsFirst.Port != plain.Port || tlsFirst.TLSConfig == nil || plain.TLSConfig != nil {
				t.Fatalf("entries %d and %d: %s:%d (TLS %v), %s:%d (TLS %v); want one host, TLS first",
					i, i+1, tlsFirst.Host, tlsFirst.Port, tlsFirst.TLSConfig != nil, plain.Host, plain.Port, plain.TLSConfig != nil)
			}
			seen[tlsFirst.Host] = true
		}
		if len(seen) != 3 {
			t.Fatalf("hosts after the shuffle: %v", seen)
		}
		firsts[cc.Host]++
	}
	if len(firsts) != 3 {
		t.Errorf("hosts tried first in 300 shuffles: %v, want each of a, b, c", firsts)
	}
	// The order the DSN gave is untouched.
	if cfg.Host != "a" || cfg.Fallbacks[1].Host != "b" || cfg.Fallbacks[3].Host != "c" {
		t.Errorf("the shuffle changed the parsed config")
	}
}
