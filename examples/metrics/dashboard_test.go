package main

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgpurepy/pgpurepy/promstats"
)

// The dashboard graphs every metric promstats exports, and nothing else:
// a metric added to promstats without a panel, or a panel left behind by a
// renamed metric, fails here.
func TestDashboardGraphsEveryMetric(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	graphed := map[string]string{}
	name := regexp.MustCompile(`pgpurepy_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				graphed[m] = p.Title
			}
		}
	}

	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc)
	go func() {
		// The descriptors never read the pool's statistics.
		promstats.NewCollector(nil).Describe(ch)
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		exported[m[1]] = true
	}
	if len(exported) < 20 {
		t.Fatalf("promstats described %d metrics, expected more", len(exported))
	}
	for m := range exported {
		if _, ok := graphed[m]; !ok {
			t.Errorf("%s is exported by promstats but no panel graphs it", m)
		}
	}
	for m, title := range graphed {
		if !exported[m] {
			t.Errorf("panel %q graphs %s, which promstats does not export", title, m)
		}
	}
}
