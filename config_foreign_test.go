package pgpurepy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgpurepy/pgpurepy"
)

// A DSN written for pgx, pgxpool or lib/pq connects unchanged: the other
// drivers' keys are taken out (pgconn would send them to the server, which
// refuses the connection) and set the keys of ours they stand for.
func TestForeignKeysConnect(t *testing.T) {
	db, _ := openDB(t, "pool_max_conns=3", "pool_min_conns=1", "pool_health_check_period=1m",
		"default_query_exec_mode=exec", "description_cache_capacity=64", "binary_parameters=yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 42 {
		t.Fatalf("got %d", n)
	}
	st := ext(t, db).Stats()
	if st.MaxConnections != 3 || st.NamedStatements {
		t.Errorf("MaxConnections %d (want 3 from pool_max_conns), NamedStatements %v (want false from default_query_exec_mode=exec)", st.MaxConnections, st.NamedStatements)
	}
}

func TestForeignKeysEachTranslated(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		value string
		get   func(*pgpurepy.Config) any
		want  any
	}{
		"default_query_exec_mode":       {"cache_describe", func(c *pgpurepy.Config) any { return c.QueryMode }, pgpurepy.QueryModeDescribe},
		"pool_max_conns":                {"7", func(c *pgpurepy.Config) any { return c.ConnectionCount }, 7},
		"pool_min_conns":                {"2", func(c *pgpurepy.Config) any { return c.MinConnections }, 2},
		"pool_max_conn_lifetime":        {"1h", func(c *pgpurepy.Config) any { return c.MaxConnLifetime }, time.Hour},
		"pool_max_conn_lifetime_jitter": {"5m", func(c *pgpurepy.Config) any { return c.MaxConnLifetimeJitter }, 5 * time.Minute},
		"pool_max_conn_idle_time":       {"30m", func(c *pgpurepy.Config) any { return c.MaxConnIdleTime }, 30 * time.Minute},
	}
	for _, k := range pgpurepy.ForeignKeys() {
		value := "1"
		c, ok := cases[k.Name]
		if k.Ours != "" {
			if !ok {
				t.Errorf("%s sets %s but has no case here", k.Name, k.Ours)
				continue
			}
			value = c.value
		}
		cfg, err := pgpurepy.ParseConfig("postgres://app@localhost/app?" + k.Name + "=" + value)
		if err != nil {
			t.Errorf("%s=%s: %v", k.Name, value, err)
			continue
		}
		if _, sent := cfg.ConnConfig.RuntimeParams[k.Name]; sent {
			t.Errorf("%s would be sent to the server", k.Name)
		}
		if k.Ours != "" {
			if got := c.get(cfg); got != c.want {
				t.Errorf("%s=%s: %s is %v, want %v", k.Name, value, k.Ours, got, c.want)
			}
			if _, sent := cfg.ConnConfig.RuntimeParams[k.Ours]; sent {
				t.Errorf("%s would be sent to the server", k.Ours)
			}
		}
	}
}

func TestForeignKeysExecModes(t *testing.T) {
	t.Parallel()
	for mode, want := range map[string]string{
		"cache_statement": pgpurepy.QueryModeAuto,
		"cache_describe":  pgpurepy.QueryModeDescribe,
		"describe_exec":   pgpurepy.QueryModeDescribe,
		"exec":            pgpurepy.QueryModeDescribe,
		"simple_protocol": pgpurepy.QueryModeDescribe,
	} {
		cfg, err := pgpurepy.ParseConfig("host=localhost default_query_exec_mode=" + mode)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if cfg.QueryMode != want {
			t.Errorf("%s: query_mode %s, want %s", mode, cfg.QueryMode, want)
		}
	}
}

// A bad value names the key the DSN wrote, not ours, and never echoes the
// value; a key of ours set next to the foreign key for it is refused.
func TestForeignKeysErrors(t *testing.T) {
	t.Parallel()
	for dsn, key := range map[string]string{
		"host=localhost password=hunter2 pool_max_conns=hunter2":          "pool_max_conns",
		"host=localhost password=hunter2 pool_max_conn_lifetime=hunter2":  "pool_max_conn_lifetime",
		"host=localhost password=hunter2 default_query_exec_mode=hunter2": "default_query_exec_mode",
		"host=localhost pool_max_conns=4 connection_count=4":              "pool_max_conns",
		"host=localhost pool_min_conns=9 pool_max_conns=4":                "",
	} {
		cfg, err := pgpurepy.ParseConfig(dsn)
		if key == "" {
			// Both parse; the connector checks min against max.
			if err != nil {
				t.Fatalf("%s: %v", dsn, err)
			}
			if _, err := pgpurepy.NewConnectorConfig(cfg); err == nil || !strings.Contains(err.Error(), "min_connections") {
				t.Errorf("%s: NewConnectorConfig gave %v, want an error on min_connections", dsn, err)
			}
			continue
		}
		var ce *pgpurepy.ConfigError
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%s: got %v, want a ConfigError on %s", dsn, err, key)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error echoes the value: %v", dsn, err)
		}
	}
}

func TestREADMEListsForeignKeys(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "| key | driver | in pgpurepy |\n| --- | --- | --- |\n")
	if !ok {
		t.Fatal("README.md has no table of other drivers' DSN keys")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	var want []string
	for _, k := range pgpurepy.ForeignKeys() {
		want = append(want, fmt.Sprintf("| `%s` | %s | %s |", k.Name, k.Driver, k.Doc))
	}
	if got := strings.Split(strings.TrimRight(table, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("README.md's table of other drivers' keys:\n%s\nconfig.go:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
