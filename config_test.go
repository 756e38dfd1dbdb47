package pgpurepy_test

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/pgpurepy/pgpurepy"
)

// Unit tests of ParseConfig: no server is involved.

func TestParseConfigDefaults(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"host=localhost user=app dbname=app",
		"postgres://app@localhost/app",
	} {
		c, err := pgpurepy.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", dsn, err)
		}
		want := pgpurepy.Config{
			ConnConfig:             c.ConnConfig,
			ConnectionCount:        runtime.NumCPU()*2 + 1,
			QueryMode:              pgpurepy.QueryModeAuto,
			StatementCacheCapacity: 512,
			PingAfterIdle:          time.Second,
			CancelGrace:            3 * time.Second,
			MaxCancelDials:         16,
		}
		if !reflect.DeepEqual(*c, want) {
			t.Errorf("ParseConfig(%q) =\n %+v, want\n %+v", dsn, *c, want)
		}
		if c.ConnConfig.Host != "localhost" || c.ConnConfig.User != "app" || c.ConnConfig.Database != "app" {
			t.Errorf("ParseConfig(%q): host %q user %q database %q", dsn, c.ConnConfig.Host, c.ConnConfig.User, c.ConnConfig.Database)
		}
	}
}

// cfgKeyCase is one value of one of our DSN keys: good ones give want from
// get, bad ones (bad == true) give a *ConfigError naming the key.
type cfgKeyCase struct {
	key   string
	value string
	bad   bool
	get   func(*pgpurepy.Config) any
	want  any
}

func cfgKeyCases() []cfgKeyCase {
	count := func(c *pgpurepy.Config) any { return c.ConnectionCount }
	mode := func(c *pgpurepy.Config) any { return c.QueryMode }
	capacity := func(c *pgpurepy.Config) any { return c.StatementCacheCapacity }
	dials := func(c *pgpurepy.Config) any { return c.MaxCancelDials }
	minConns := func(c *pgpurepy.Config) any { return c.MinConnections }
	standbyConns := func(c *pgpurepy.Config) any { return c.StandbyConnectionCount }
	balance := func(c *pgpurepy.Config) any { return c.LoadBalanceHosts }
	mux := func(c *pgpurepy.Config) any { return c.Multiplexing }
	durations := map[string]func(*pgpurepy.Config) any{
		"ping_after_idle":          func(c *pgpurepy.Config) any { return c.PingAfterIdle },
		"cancel_grace":             func(c *pgpurepy.Config) any { return c.CancelGrace },
		"max_conn_lifetime":        func(c *pgpurepy.Config) any { return c.MaxConnLifetime },
		"max_conn_lifetime_jitter": func(c *pgpurepy.Config) any { return c.MaxConnLifetimeJitter },
		"max_conn_idle_time":       func(c *pgpurepy.Config) any { return c.MaxConnIdleTime },
		"keepalive_interval":       func(c *pgpurepy.Config) any { return c.KeepaliveInterval },
	}
	cases := []cfgKeyCase{
		{key: "connection_count", value: "1", get: count, want: 1},
		{key: "connection_count", value: "64", get: count, want: 64},
		{key: "connection_count", value: "abc", bad: true},
		{key: "connection_count", value: "0", bad: true},
		{key: "connection_count", value: "-3", bad: true},
		{key: "connection_count", value: "1.5", bad: true},
		{key: "connection_count", value: "", bad: true},
		{key: "query_mode", value: "auto", get: mode, want: pgpurepy.QueryModeAuto},
		{key: "query_mode", value: "prepare", get: mode, want: pgpurepy.QueryModePrepare},
		{key: "query_mode", value: "describe", get: mode, want: pgpurepy.QueryModeDescribe},
		{key: "query_mode", value: "fast", bad: true},
		{key: "query_mode", value: "", bad: true},
		{key: "statement_cache_capacity", value: "1", get: capacity, want: 1},
		{key: "statement_cache_capacity", value: "4096", get: capacity, want: 4096},
		{key: "statement_cache_capacity", value: "0", bad: true},
		{key: "statement_cache_capacity", value: "many", bad: true},
		{key: "min_connections", value: "0", get: minConns, want: 0},
		{key: "min_connections", value: "3", get: minConns, want: 3},
		{key: "min_connections", value: "-1", bad: true},
		{key: "min_connections", value: "some", bad: true},
		{key: "standby_connection_count", value: "0", get: standbyConns, want: 0},
		{key: "standby_connection_count", value: "2", get: standbyConns, want: 2},
		{key: "standby_connection_count", value: "-1", bad: true},
		{key: "standby_connection_count", value: "half", bad: true},
		{key: "max_cancel_dials", value: "1", get: dials, want: 1},
		{key: "max_cancel_dials", value: "100", get: dials, want: 100},
		{key: "max_cancel_dials", value: "0", bad: true},
		{key: "max_cancel_dials", value: "x", bad: true},
		{key: "load_balance_hosts", value: "random", get: balance, want: true},
		{key: "load_balance_hosts", value: "disable", get: balance, want: false},
		{key: "load_balance_hosts", value: "true", bad: true},
		{key: "load_balance_hosts", value: "", bad: true},
		{key: "multiplexing", value: "on", get: mux, want: true},
		{key: "multiplexing", value: "off", get: mux, want: false},
		{key: "multiplexing", value: "yes", bad: true},
		{key: "multiplexing", value: "", bad: true},
	}
	for _, key := range []string{"ping_after_idle", "cancel_grace", "max_conn_lifetime", "max_conn_lifetime_jitter", "max_conn_idle_time", "keepalive_interval"} {
		get := durations[key]
		cases = append(cases,
			cfgKeyCase{key: key, value: "250ms", get: get, want: 250 * time.Millisecond},
			cfgKeyCase{key: key, value: "2m", get: get, want: 2 * time.Minute},
			cfgKeyCase{key: key, value: "1h30m", get: get, want: 90 * time.Minute},
			cfgKeyCase{key: key, value: "-1s", bad: true},
			cfgKeyCase{key: key, value: "10", bad: true}, // no unit
			cfgKeyCase{key: key, value: "soon", bad: true},
			cfgKeyCase{key: key, value: "", bad: true},
		)
		if key != "cancel_grace" {
			// cancel_grace=0 is discussed in TestCancelGraceZero.
			cases = append(cases, cfgKeyCase{key: key, value: "0", get: get, want: time.Duration(0)})
		}
	}
	return cases
}

// cfgQuoteKV quotes v for the keyword/value form.
func cfgQuoteKV(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func TestParseConfigKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range cfgKeyCases() {
		forms := map[string]string{
			"url":      "postgres://app@localhost/app?" + url.Values{tc.key: {tc.value}}.Encode(),
			"keywords": "host=localhost user=app dbname=app " + tc.key + "=" + cfgQuoteKV(tc.value),
		}
		for form, dsn := range forms {
			c, err := pgpurepy.ParseConfig(dsn)
			if tc.bad {
				var ce *pgpurepy.ConfigError
				if !errors.As(err, &ce) {
					t.Errorf("%s: ParseConfig(%q) = %v, want a *ConfigError", form, dsn, err)
					continue
				}
				if ce.Key != tc.key || !strings.Contains(err.Error(), tc.key) || ce.Err == nil {
					t.Errorf("%s: ParseConfig(%q): error %q (key %q) does not name %s", form, dsn, err, ce.Key, tc.key)
				}
				if !strings.HasPrefix(err.Error(), "pgpurepy: ") {
					t.Errorf("%s: ParseConfig(%q): error %q lacks the pgpurepy: prefix", form, dsn, err)
				}
				if len(tc.value) >= 3 && strings.Contains(err.Error(), tc.value) {
					t.Errorf("%s: ParseConfig(%q): error %q repeats the value", form, dsn, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: ParseConfig(%q): %v", form, dsn, err)
				continue
			}
			if got := tc.get(c); got != tc.want {
				t.Errorf("%s: ParseConfig(%q): %s = %v, want %v", form, dsn, tc.key, got, tc.want)
			}
			if _, ok := c.ConnConfig.RuntimeParams[tc.key]; ok {
				t.Errorf("%s: ParseConfig(%q): %s left in RuntimeParams, it would be sent to the server", form, dsn, tc.key)
			}
		}
	}
}

// Every key of the table is tested above, and the table is what ParseConfig
// reads.
func TestParseConfigKeysCovered(t *testing.T) {
	t.Parallel()
	tested := map[string]bool{}
	for _, tc := range cfgKeyCases() {
		tested[tc.key] = true
	}
	for _, k := range pgpurepy.DSNKeys() {
		if !tested[k.Name] {
			t.Errorf("dsn key %s has no test case", k.Name)
		}
		if k.Doc == "" || k.Default == "" {
			t.Errorf("dsn key %s lacks a default or doc line", k.Name)
		}
	}
	if keys := pgpurepy.DSNKeys(); len(tested) != len(keys) {
		t.Errorf("%d keys tested, %d in dsnKeys", len(tested), len(keys))
	}
}

func TestParseConfigAllKeysAtOnce(t *testing.T) {
	t.Parallel()
	q := url.Values{}
	kv := "host=db.example user=app dbname=app password=pw application_name=myapp"
	for _, k := range pgpurepy.DSNKeys() {
		v := "7"
		switch k.Name {
		case "query_mode":
			v = pgpurepy.QueryModeDescribe
		case "multiplexing":
			v = "on"
		case "ping_after_idle", "cancel_grace", "max_conn_lifetime", "max_conn_lifetime_jitter", "max_conn_idle_time", "keepalive_interval":
			v = "7s"
		case "load_balance_hosts":
			v = "random"
		}
		q.Set(k.Name, v)
		kv += " " + k.Name + "=" + v
	}
	q.Set("application_name", "myapp")
	for _, dsn := range []string{"postgres://app:pw@db.example/app?" + q.Encode(), kv} {
		c, err := pgpurepy.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", dsn, err)
		}
		want := pgpurepy.Config{
			ConnConfig:             c.ConnConfig,
			ConnectionCount:        7,
			MinConnections:         7,
			StandbyConnectionCount: 7,
			QueryMode:              pgpurepy.QueryModeDescribe,
			StatementCacheCapacity: 7,
			PingAfterIdle:          7 * time.Second,
			CancelGrace:            7 * time.Second,
			MaxCancelDials:         7,
			MaxConnLifetime:        7 * time.Second,
			MaxConnLifetimeJitter:  7 * time.Second,
			MaxConnIdleTime:        7 * time.Second,
			KeepaliveInterval:      7 * time.Second,
			LoadBalanceHosts:       true,
			Multiplexing:           true,
		}
		if !reflect.DeepEqual(*c, want) {
			t.Errorf("ParseConfig(%q) =\n %+v, want\n %+v", dsn, *c, want)
		}
		// Only the parameters that are not ours go to the server.
		wantParams := map[string]string{"application_name": "myapp"}
		if !reflect.DeepEqual(c.ConnConfig.RuntimeParams, wantParams) {
			t.Errorf("ParseConfig(%q): RuntimeParams = %v, want %v", dsn, c.ConnConfig.RuntimeParams, wantParams)
		}
		if c.ConnConfig.Host != "db.example" || c.ConnConfig.Password != "pw" {
			t.Errorf("ParseConfig(%q): host %q password %q", dsn, c.ConnConfig.Host, c.ConnConfig.Password)
		}
	}
}

// Unknown keys are not ours: they stay in RuntimeParams, for the server.
func TestParseConfigUnknownKeyIsRuntimeParam(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"host=h user=u search_path=s1 connection_count=3",
		"postgres://u@h/d?search_path=s1&connection_count=3",
	} {
		c, err := pgpurepy.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", dsn, err)
		}
		if c.ConnConfig.RuntimeParams["search_path"] != "s1" || c.ConnectionCount != 3 {
			t.Errorf("ParseConfig(%q): RuntimeParams %v, ConnectionCount %d", dsn, c.ConnConfig.RuntimeParams, c.ConnectionCount)
		}
	}
}

// Our keys are read from the DSN only, never from the environment, while
// pgconn's keys still come from the PG* variables (load_balance_hosts, which
// is libpq's too, is the exception: see TestParseConfigLoadBalanceEnv).
// t.Setenv makes this test sequential.
func TestParseConfigEnvironment(t *testing.T) {
	for _, k := range pgpurepy.DSNKeys() {
		up := strings.ToUpper(k.Name)
		t.Setenv("PG"+up, "bad")
		t.Setenv(up, "bad")
		t.Setenv("PGPUREPY_"+up, "bad")
		t.Setenv(k.Name, "bad")
	}
	t.Setenv("PGAPPNAME", "from-env")
	t.Setenv("PGOPTIONS", "")
	c, err := pgpurepy.ParseConfig("host=localhost user=app dbname=app")
	if err != nil {
		t.Fatalf("ParseConfig read the environment for our keys: %v", err)
	}
	if c.ConnectionCount != runtime.NumCPU()*2+1 || c.QueryMode != pgpurepy.QueryModeAuto || c.CancelGrace != 3*time.Second {
		t.Errorf("environment changed our defaults: %+v", *c)
	}
	for _, k := range pgpurepy.DSNKeys() {
		if _, ok := c.ConnConfig.RuntimeParams[k.Name]; ok {
			t.Errorf("%s reached RuntimeParams from the environment", k.Name)
		}
	}
	if got := c.ConnConfig.RuntimeParams["application_name"]; got != "from-env" {
		t.Errorf("PGAPPNAME not read: application_name = %q", got)
	}
}

// libpq reads load_balance_hosts from PGLOADBALANCEHOSTS; pgconn does not,
// so ParseConfig does, and a DSN's own value wins over it.
func TestParseConfigLoadBalanceEnv(t *testing.T) {
	t.Setenv("PGLOADBALANCEHOSTS", "random")
	c, err := pgpurepy.ParseConfig("host=a,b user=app dbname=app")
	if err != nil {
		t.Fatal(err)
	}
	if !c.LoadBalanceHosts {
		t.Error("PGLOADBALANCEHOSTS=random not read")
	}
	c, err = pgpurepy.ParseConfig("host=a,b user=app dbname=app load_balance_hosts=disable")
	if err != nil {
		t.Fatal(err)
	}
	if c.LoadBalanceHosts {
		t.Error("PGLOADBALANCEHOSTS won over the DSN's load_balance_hosts=disable")
	}
	t.Setenv("PGLOADBALANCEHOSTS", "sometimes")
	_, err = pgpurepy.ParseConfig("host=a,b user=app dbname=app")
	var ce *pgpurepy.ConfigError
	if !errors.As(err, &ce) || ce.Key != "PGLOADBALANCEHOSTS" {
		t.Errorf("bad PGLOADBALANCEHOSTS: got %v, want a ConfigError naming the variable", err)
	}
}

func TestConfigCopy(t *testing.T) {
	t.Parallel()
	c, err := pgpurepy.ParseConfig("postgres://app:pw@localhost/app?application_name=x&connection_count=5")
	if err != nil {
		t.Fatal(err)
	}
	n := c.Copy()
	if n == c || n.ConnConfig == c.ConnConfig {
		t.Fatal("Copy shares the Config or its ConnConfig")
	}
	if n.ConnectionCount != 5 || n.ConnConfig.Password != "pw" || n.ConnConfig.RuntimeParams["application_name"] != "x" {
		t.Fatalf("Copy lost fields: %+v", *n)
	}
	n.ConnectionCount = 9
	n.ConnConfig.RuntimeParams["application_name"] = "y"
	n.ConnConfig.Host = "elsewhere"
	if c.ConnectionCount != 5 || c.ConnConfig.RuntimeParams["application_name"] != "x" || c.ConnConfig.Host != "localhost" {
		t.Fatalf("changing the copy changed the original: %+v %+v", *c, *c.ConnConfig)
	}
}

// cfgSecretCase is a DSN with a password that does not parse. The secret
// must appear nowhere in the error.
type cfgSecretCase struct {
	dsn    string
	secret string
}

func cfgSecretCases() []cfgSecretCase {
	const pw = "Sekrit4711pw"
	cases := []cfgSecretCase{
		// Keys of our own.
		{"postgres://app:" + pw + "@localhost/app?connection_count=abc", pw},
		{"postgres://app@localhost/app?password=" + pw + "&cancel_grace=-1s", pw},
		{"host=localhost user=app password=" + pw + " query_mode=fast", pw},
		{"host=localhost user=app password='" + pw + "' keepalive_interval=x", pw},
		// The password pasted into one of our keys.
		{"host=localhost user=app connection_count=" + pw, pw},
		{"postgres://app@localhost/app?query_mode=" + pw, pw},
		// pgconn-level errors.
		{"port=notaport password=" + pw, pw},
		{"password=" + pw + " port=notaport", pw},
		{"host=h password=" + pw + " sslmode=bogus", pw},
		{"password='" + pw + " with space' port=bad", pw},
		{"password=" + pw + " connect_timeout=abc", pw},
		{"postgres://app:" + pw + "@localhost:notaport/app", pw},
		{"postgres://app:" + pw + "@localhost/app?sslmode=bogus", pw},
		{"postgresql://app:" + pw + "@[::1/app", pw},
		{"postgres://app@localhost/app?port=x&password=" + pw, pw},
		// Spellings that libpq and pgconn accept but a regular expression
		// looking for "password=" does not see.
		{"password = " + pw + " port=notaport", pw},
		{"password= " + pw + " port=notaport", pw},
		{"password\t=" + pw + " port=notaport", pw},
		{`password='Sek\'rit4711pw' port=notaport`, "rit4711pw"},
		{`password=Sek\ rit4711pw port=notaport`, "rit4711pw"},
	}
	return cases
}

func TestParseConfigErrorsHidePassword(t *testing.T) {
	t.Parallel()
	for _, tc := range cfgSecretCases() {
		_, err := pgpurepy.ParseConfig(tc.dsn)
		if err == nil {
			t.Errorf("ParseConfig(%q) succeeded", tc.dsn)
			continue
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("ParseConfig(%q): error contains the password: %v", tc.dsn, err)
		}
		if !strings.HasPrefix(err.Error(), "pgpurepy: ") {
			t.Errorf("ParseConfig(%q): error %q lacks the pgpurepy: prefix", tc.dsn, err)
		}
	}
}

// FuzzParseConfig checks that ParseConfig never panics, that a Config it
// returns can be copied, and that its errors never contain the password. The
// password is placed in the input in a way the DSN syntax makes certain to
// be a password: first in the keyword/value form, quoted; or as the URL's
// userinfo password or password query value, escaped.
func FuzzParseConfig(f *testing.F) {
	for i, tc := range cfgKeyCases() {
		f.Add(uint8(i%2), "Pw"+tc.value+"x1", tc.key+"="+cfgQuoteKV(tc.value))
		f.Add(uint8(2+i%2), "pw-"+tc.key, "localhost/app?"+url.Values{tc.key: {tc.value}}.Encode())
	}
	f.Add(uint8(0), "Sekrit4711pw", "port=notaport")
	f.Add(uint8(0), "S'e\\krit 47", "sslmode=bogus")
	f.Add(uint8(1), "Sekrit4711pw", "port=notaport")
	f.Add(uint8(2), "Sek@rit:4711", "localhost:notaport/app")
	f.Add(uint8(2), "Sekrit4711pw", "[::1/app")
	f.Add(uint8(3), "Sekrit4711pw", "localhost/app?port=x")
	f.Add(uint8(3), "Sekrit4711pw", "h1,h2:5432/db?target_session_attrs=bogus")
	keys := pgpurepy.DSNKeys()
	f.Fuzz(func(t *testing.T, form uint8, pw, rest string) {
		dsn, secrets := cfgSecretDSN(form, pw, rest)
		c, err := pgpurepy.ParseConfig(dsn)
		if err == nil {
			n := c.Copy()
			if n == nil || n.ConnConfig == nil || n.ConnConfig == c.ConnConfig {
				t.Fatalf("Copy of ParseConfig(%q) = %+v", dsn, n)
			}
			if n.ConnectionCount != c.ConnectionCount || n.QueryMode != c.QueryMode || n.ConnConfig.Password != c.ConnConfig.Password {
				t.Fatalf("Copy of ParseConfig(%q) differs: %+v vs %+v", dsn, *n, *c)
			}
			if c.ConnectionCount < 1 || c.StatementCacheCapacity < 1 || c.MaxCancelDials < 1 {
				t.Fatalf("ParseConfig(%q) accepted a non-positive count: %+v", dsn, *c)
			}
			if c.QueryMode != pgpurepy.QueryModeAuto && c.QueryMode != pgpurepy.QueryModePrepare && c.QueryMode != pgpurepy.QueryModeDescribe {
				t.Fatalf("ParseConfig(%q): query mode %q", dsn, c.QueryMode)
			}
			for _, k := range keys {
				if _, ok := c.ConnConfig.RuntimeParams[k.Name]; ok {
					t.Fatalf("ParseConfig(%q) left %s in RuntimeParams", dsn, k.Name)
				}
			}
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "pgpurepy: ") {
			t.Fatalf("ParseConfig(%q): error %q lacks the pgpurepy: prefix", dsn, msg)
		}
		// The same DSN with another password of the same length tells a
		// leak from text that the error contains anyway.
		// Letters and digits are replaced, everything else (quotes, spaces,
		// NUL bytes, backslashes) kept, so that the DSN parses the same way.
		other, _ := cfgSecretDSN(form, strings.Map(func(r rune) rune {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r):
				if r == 'Q' {
					return 'Z'
				}
				return 'Q'
			}
			return r
		}, pw), rest)
		_, otherErr := pgpurepy.ParseConfig(other)
		// Any 8 consecutive bytes of the password count, so that a partly
		// redacted password is caught too.
		for _, secret := range secrets {
			for _, s := range cfgWindows(secret, 8) {
				if !strings.Contains(msg, s) || strings.Contains(rest, s) || strings.Contains(strings.Replace(dsn, secret, "", 1), s) {
					continue
				}
				if otherErr != nil && strings.Contains(otherErr.Error(), s) {
					continue // the text is in the error whatever the password
				}
				t.Fatalf("ParseConfig(%q): error contains %q of the password %q: %s", dsn, s, secret, msg)
			}
		}
	})
}

// cfgSecretDSN places pw as the password of a DSN of one of four forms
// and returns the DSN and the strings that must not appear in an error:
// the password and its escaped spelling, when they are long enough to mean
// something and do not occur in the rest of the input.
func cfgSecretDSN(form uint8, pw, rest string) (dsn string, secrets []string) {
	var raw string
	switch form % 4 {
	case 0:
		raw = cfgQuoteKV(pw)
		dsn = "password=" + raw + " " + rest
	case 1:
		raw = cfgQuoteKV(pw)
		dsn = "host=localhost password=" + raw + " user=app " + rest
	case 2:
		u := url.UserPassword("app", pw).String()
		raw = strings.TrimPrefix(u, "app:")
		dsn = "postgres://" + u + "@" + rest
	default:
		raw = url.QueryEscape(pw)
		dsn = "postgres://" + rest + "&password=" + raw
		if !strings.Contains(rest, "?") {
			dsn = "postgres://" + rest + "?password=" + raw
		}
	}
	prefix := strings.Replace(dsn, raw, "", 1)
	for _, s := range []string{pw, raw} {
		if len(s) < 6 || strings.Contains(prefix, s) || strings.Contains(rest, s) {
			continue
		}
		secrets = append(secrets, s)
	}
	return dsn, secrets
}

// cfgWindows returns the substrings of s of n bytes, or s when it is
// shorter.
func cfgWindows(s string, n int) []string {
	if len(s) <= n {
		return []string{s}
	}
	w := make([]string, 0, len(s)-n+1)
	for i := 0; i+n <= len(s); i++ {
		w = append(w, s[i:i+n])
	}
	return w
}

// TestREADMEListsDSNKeys checks that the README's table of DSN keys is the
// package's own table, row for row: name, default and meaning.
func TestREADMEListsDSNKeys(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "| key | default | meaning |\n| --- | --- | --- |\n")
	if !ok {
		t.Fatal("README.md has no table of DSN keys")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	var want []string
	for _, k := range pgpurepy.DSNKeys() {
		def := k.Shown
		if def == "" {
			def = "`" + k.Default + "`"
		}
		want = append(want, fmt.Sprintf("| `%s` | %s | %s |", k.Name, def, k.Doc))
	}
	if got := strings.Split(strings.TrimRight(table, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("README.md's DSN table:\n%s\nconfig.go's keys:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
