package pgpurepy

import (
	"math/rand/v2"

	"github.com/jackc/pgx/v5/pgconn"
)

// shuffleHosts puts the hosts of cc, which pgconn tries in order (Host and
// Port first, then Fallbacks), in a random order: load_balance_hosts=random,
// which pgconn does not implement. pgconn lists a host once per TLS setting
// it tries (sslmode=prefer gives TLS, then plain), so the entries of one
// host move together and keep their order; shuffling them apart would make
// a connection try plain text first.
func shuffleHosts(cc *pgconn.Config) {
	if len(cc.Fallbacks) == 0 {
		return
	}
	all := make([]*pgconn.FallbackConfig, 0, len(cc.Fallbacks)+1)
	all = append(all, &pgconn.FallbackConfig{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig})
	all = append(all, cc.Fallbacks...)
	var groups [][]*pgconn.FallbackConfig
	for i, fb := range all {
		if i > 0 && fb.Host == all[i-1].Host && fb.Port == all[i-1].Port {
			groups[len(groups)-1] = append(groups[len(groups)-1], fb)
			continue
		}
		groups = append(groups, []*pgconn.FallbackConfig{fb})
	}
	if len(groups) < 2 {
		return
	}
	rand.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	all = all[:0]
	for _, g := range groups {
		all = append(all, g...)
	}
	cc.Host, cc.Port, cc.TLSConfig = all[0].Host, all[0].Port, all[0].TLSConfig
	cc.Fallbacks = all[1:]
}
