package main

import (
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/syncbuf"
	"github.com/sluice-rl/sluice/server/store"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestUpstreamRedisSettings: upstream's REDIS_* settings, in the forms its
// README gives, become Sluice's store URL.
func TestUpstreamRedisSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // SLUICE_REDIS, or the error's text after "error: "
	}{
		{"single tcp", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "redis:6379"}, "redis://redis:6379"},
		{"socket type left out", map[string]string{"REDIS_URL": "redis.svc:6380"}, "redis://redis.svc:6380"},
		{"unix socket", map[string]string{"REDIS_SOCKET_TYPE": "unix", "REDIS_URL": "/var/run/redis.sock"}, "unix:///var/run/redis.sock"},
		{"upstream's default socket", map[string]string{"REDIS_TYPE": "single"}, "unix:///var/run/nutcracker/ratelimit.sock"},
		{"password", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "r:6379", "REDIS_AUTH": "p@ss/w rd"}, "redis://:p%40ss%2Fw%20rd@r:6379"},
		{"user and a password with a colon", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "r:6379", "REDIS_AUTH": "app:pa:ss"}, "redis://app:pa%3Ass@r:6379"},
		{"user and password", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "r:6379", "REDIS_AUTH": "app:secret"}, "redis://app:secret@r:6379"},
		{"tls", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "r:6379", "REDIS_TLS": "true"}, "rediss://r:6379"},
		{"sentinel", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_TYPE": "sentinel", "REDIS_URL": "mymaster,s1:26379,s2:26379", "REDIS_AUTH": "pw"},
			"redis+sentinel://:pw@s1:26379,s2:26379/mymaster"},
		{"sentinel auth", map[string]string{"REDIS_TYPE": "SENTINEL", "REDIS_URL": "mymaster,s1:26379", "REDIS_SENTINEL_AUTH": "sentuser:sentpw", "REDIS_TLS": "true"},
			"rediss+sentinel://s1:26379/mymaster?sentinel_password=sentpw&sentinel_username=sentuser"},
		{"cluster", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_TYPE": "cluster", "REDIS_URL": "n1:6379,n2:6379,n3:6379"}, "redis+cluster://n1:6379,n2:6379,n3:6379"},
		{"unknown type", map[string]string{"REDIS_TYPE": "ring", "REDIS_URL": "r:6379"}, `error: REDIS_TYPE="ring": want single, sentinel or cluster`},
		{"sentinel without master", map[string]string{"REDIS_TYPE": "sentinel", "REDIS_URL": "s1:26379"}, "error: REDIS_URL=\"s1:26379\": REDIS_TYPE=sentinel wants the master name"},
		{"a URL", map[string]string{"REDIS_URL": "redis://r:6379"}, "error: REDIS_URL=\"redis://r:6379\": envoyproxy/ratelimit's form is host:port"},
		{"no port", map[string]string{"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": "redis"}, `error: REDIS_URL: "redis" is not host:port`},
		{"bad tls", map[string]string{"REDIS_URL": "r:6379", "REDIS_TLS": "yes please"}, `error: REDIS_TLS="yes please": want true or false`},
	} {
		get, _, errs := upstreamEnv(envOf(tc.env))
		got := get("SLUICE_REDIS")
		if err := errs["SLUICE_REDIS"]; err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// The store reads the credentials back as upstream split them.
	for auth, want := range map[string][2]string{"p@ss/w rd": {"", "p@ss/w rd"}, "app:pa:ss": {"app", "pa:ss"}} {
		get, _, _ := upstreamEnv(envOf(map[string]string{"REDIS_URL": "r:6379", "REDIS_AUTH": auth}))
		st, err := store.Open(get("SLUICE_REDIS"))
		if err != nil {
			t.Fatal(err)
		}
		o := st.Client.(*goredis.Client).Options()
		if o.Username != want[0] || o.Password != want[1] {
			t.Errorf("REDIS_AUTH=%q: user %q password %q, want %q", auth, o.Username, o.Password, want)
		}
		_ = st.Close()
	}
}

// TestUpstreamSettingsAndPrecedence: each mapped setting reaches its SLUICE_*
// variable, and a SLUICE_* variable that is set wins over it.
func TestUpstreamSettingsAndPrecedence(t *testing.T) {
	env := map[string]string{
		"RUNTIME_ROOT": "/data", "RUNTIME_SUBDIRECTORY": "ratelimit",
		"HOST": "::", "GRPC_PORT": "9091", "DEBUG_HOST": "127.0.0.1",
		"LOG_LEVEL": "WARN", "LOG_FORMAT": "JSON", "SHADOW_MODE": "true", "MERGE_DOMAIN_CONFIG": "1",
		"REDIS_URL": "r:6379", "REDIS_TLS": "true", "REDIS_TLS_CACERT": "/tls/ca.crt", "REDIS_TLS_CLIENT_CERT": "/tls/c.crt",
		"REDIS_TLS_CLIENT_KEY": "/tls/c.key", "REDIS_TLS_SKIP_HOSTNAME_VERIFICATION": "true", "REDIS_POOL_SIZE": "20",
		"CACHE_KEY_PREFIX": "team-a:", "LOCAL_CACHE_SIZE_IN_BYTES": "1048576", "LIMIT_REMAINING_HEADER": "X-Left",
		"GRPC_SERVER_USE_TLS": "true", "GRPC_SERVER_TLS_CERT": "/tls/s.crt", "GRPC_SERVER_TLS_KEY": "/tls/s.key", "GRPC_CLIENT_TLS_CACERT": "/tls/clients.crt",
		"TRACING_ENABLED": "true", "TRACING_SERVICE_NAME": "rl", "TRACING_SAMPLING_RATE": "0.25",
		// SLUICE_* wins
		"SLUICE_QUOTA_MODE": "false", "QUOTA_MODE": "true",
	}
	get, r, errs := upstreamEnv(envOf(env))
	if err := allErrors(errs); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"SLUICE_CONFIG": "/data/ratelimit/config", "SLUICE_HTTP_ADDR": "[::]:8080", "SLUICE_GRPC_ADDR": ":9091", "SLUICE_HEALTH_ADDR": "127.0.0.1:6070",
		"SLUICE_LOG_LEVEL": "warn", "SLUICE_LOG_FORMAT": "json", "SLUICE_SHADOW_MODE": "true", "SLUICE_MERGE_DOMAIN_CONFIG": "true",
		"SLUICE_REDIS": "rediss://r:6379", "SLUICE_REDIS_TLS_CA": "/tls/ca.crt", "SLUICE_REDIS_TLS_CERT": "/tls/c.crt", "SLUICE_REDIS_TLS_KEY": "/tls/c.key",
		"SLUICE_REDIS_TLS_SKIP_HOSTNAME_VERIFICATION": "true", "SLUICE_REDIS_POOL_SIZE": "20", "SLUICE_KEY_PREFIX": "team-a:",
		"SLUICE_OVER_LIMIT_CACHE_BYTES": "1048576", "SLUICE_ENVOY_HEADER_NAMES": ",X-Left,",
		"SLUICE_TLS_CERT": "/tls/s.crt", "SLUICE_TLS_KEY": "/tls/s.key", "SLUICE_TLS_CLIENT_CA": "/tls/clients.crt",
		"OTEL_SERVICE_NAME": "rl", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
		"SLUICE_QUOTA_MODE": "false",
	} {
		if got := get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if !strings.Contains(strings.Join(r.overridden, ";"), "QUOTA_MODE (SLUICE_QUOTA_MODE is set)") {
		t.Errorf("overridden %v: QUOTA_MODE not named", r.overridden)
	}
	// TRACING_ENABLED without TRACING_EXPORTER_PROTOCOL=grpc: upstream would
	// export over HTTP, Sluice cannot — named.
	if !strings.Contains(strings.Join(r.unsupported, ";"), "TRACING_ENABLED=true") {
		t.Errorf("unsupported %v: TRACING_ENABLED over http not named", r.unsupported)
	}

	// Without REDIS_TLS the TLS files are ignored, as upstream ignores them,
	// and said so.
	get, r, _ = upstreamEnv(envOf(map[string]string{"REDIS_URL": "r:6379", "REDIS_TLS_CLIENT_CERT": "/tls/c.crt"}))
	if get("SLUICE_REDIS_TLS_CERT") != "" || !strings.Contains(strings.Join(r.unsupported, ";"), "REDIS_TLS_CLIENT_CERT (ignored as upstream ignores it") {
		t.Errorf("REDIS_TLS_CLIENT_CERT without REDIS_TLS: SLUICE_REDIS_TLS_CERT=%q, unsupported %v", get("SLUICE_REDIS_TLS_CERT"), r.unsupported)
	}
	// The server's TLS files count only with GRPC_SERVER_USE_TLS=true, which
	// needs the certificate and key.
	get, _, errs = upstreamEnv(envOf(map[string]string{"GRPC_SERVER_USE_TLS": "false", "GRPC_SERVER_TLS_CERT": "/tls/s.crt", "GRPC_CLIENT_TLS_CACERT": "/tls/c.crt"}))
	if get("SLUICE_TLS_CERT") != "" || get("SLUICE_TLS_CLIENT_CA") != "" || len(errs) != 0 {
		t.Errorf("GRPC_SERVER_USE_TLS=false: SLUICE_TLS_CERT=%q SLUICE_TLS_CLIENT_CA=%q, errors %v", get("SLUICE_TLS_CERT"), get("SLUICE_TLS_CLIENT_CA"), errs)
	}
	_, _, errs = upstreamEnv(envOf(map[string]string{"GRPC_SERVER_USE_TLS": "true", "GRPC_SERVER_TLS_CERT": "/tls/s.crt"}))
	if err := errs["SLUICE_TLS_KEY"]; err == nil || err.Error() != "GRPC_SERVER_USE_TLS=true needs GRPC_SERVER_TLS_KEY" {
		t.Errorf("GRPC_SERVER_USE_TLS=true without a key: %v", err)
	}
	// A mapped setting that gives nothing (its switch off, a cache size of 0)
	// is listed with those of no effect, not dropped silently.
	_, r, _ = upstreamEnv(envOf(map[string]string{"TRACING_SERVICE_NAME": "rl", "LOCAL_CACHE_SIZE_IN_BYTES": "0"}))
	if got := strings.Join(r.noEffect, ","); !strings.Contains(got, "TRACING_SERVICE_NAME") || !strings.Contains(got, "LOCAL_CACHE_SIZE_IN_BYTES") || len(r.applied) != 0 {
		t.Errorf("TRACING_SERVICE_NAME without TRACING_ENABLED, LOCAL_CACHE_SIZE_IN_BYTES=0: no effect %v, applied %v", r.noEffect, r.applied)
	}
	// A Service named "grpc" makes Kubernetes set GRPC_PORT=tcp://...: the
	// error says so.
	_, _, errs = upstreamEnv(envOf(map[string]string{"GRPC_PORT": "tcp://10.0.0.7:8081"}))
	if err := errs["SLUICE_GRPC_ADDR"]; err == nil || !strings.Contains(err.Error(), "enableServiceLinks") {
		t.Errorf("GRPC_PORT=tcp://...: %v", err)
	}
	// A switch that other settings depend on is read as upstream reads it
	// (strconv.ParseBool, which fails on "yes"): not taken for false.
	_, _, errs = upstreamEnv(envOf(map[string]string{"TRACING_ENABLED": "yes", "TRACING_SERVICE_NAME": "rl"}))
	if err := errs["OTEL_SERVICE_NAME"]; err == nil || !strings.Contains(err.Error(), `TRACING_ENABLED="yes"`) {
		t.Errorf("TRACING_ENABLED=yes: %v, want an error naming it", err)
	}
	if all := allErrors(errs).Error(); strings.Count(all, "TRACING_ENABLED") != 1 {
		t.Errorf("TRACING_ENABLED=yes: %q, want it named once", all)
	}
}

// TestUpstreamSwitchThatIsNotABoolean: a switch of a setting Sluice does not
// do, set to something upstream would not start with, is warned of, not
// taken for false; false (or true, where true is what Sluice does) is not.
func TestUpstreamSwitchThatIsNotABoolean(t *testing.T) {
	_, r, _ := upstreamEnv(envOf(map[string]string{
		"REDIS_PERSECOND": "yes", "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT": "no", "USE_PROMETHEUS": "on", "PROMETHEUS_PATH": "/m",
		"MEMCACHE_TLS": "false", "USE_DOG_STATSD": "0",
	}))
	warned := strings.Join(r.unsupported, ";")
	for _, name := range []string{"REDIS_PERSECOND=yes", "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT=no", "USE_PROMETHEUS=on", "PROMETHEUS_PATH=/m"} {
		if !strings.Contains(warned, name) {
			t.Errorf("%s not warned of: %v", name, r.unsupported)
		}
	}
	for _, name := range []string{"MEMCACHE_TLS", "USE_DOG_STATSD"} {
		if strings.Contains(warned, name) {
			t.Errorf("%s set to false warned of: %v", name, r.unsupported)
		}
	}
	_, r, _ = upstreamEnv(envOf(map[string]string{"STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT": "true", "STATSD_HOST": "statsd", "USE_STATSD": "false"}))
	if len(r.unsupported) != 0 {
		t.Errorf("what Sluice does warned of: %v", r.unsupported)
	}
}

// TestUpstreamFlagWinsAndBadVariablesNameThemselves runs serve: a flag wins
// over the variables (and so a bad upstream variable it overrides does not
// matter); a bad one that applies stops serve with its name.
func TestUpstreamFlagWinsAndBadVariablesNameThemselves(t *testing.T) {
	var logs syncbuf.Buffer
	err := run(context.Background(), []string{"serve"}, envOf(map[string]string{"RUNTIME_ROOT": t.TempDir(), "PORT": "http"}), &logs, &logs)
	if err != errUsage || !strings.Contains(logs.String(), `PORT="http": want a port number`) {
		t.Errorf("PORT=http: %v\n%s", err, logs.String())
	}
	httpAddr := freeAddr(t)
	rec := serveUntilLogged(t, []string{"serve", "--http-addr", httpAddr, "--log-format", "json", "--admin-addr", "off", "--grpc-addr", freeAddr(t)},
		envOf(map[string]string{"SLUICE_CONFIG": "../../deploy/examples", "PORT": "http"}), "sluice serving")
	if rec["http"] != httpAddr {
		t.Errorf("http = %v, want the flag's %s", rec["http"], httpAddr)
	}
}

// TestUpstreamReportSaysAFlagWon: upstream's variables that fed a variable
// whose flag was given are reported overridden, not applied, and a bad one
// is no error.
func TestUpstreamReportSaysAFlagWon(t *testing.T) {
	_, r, errs := upstreamEnv(envOf(map[string]string{"HOST": "::", "PORT": "9999", "GRPC_PORT": "9091", "LOG_LEVEL": "loud"}))
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("log-level", "", "")
	fs.String("http-addr", "", "")
	fs.String("grpc-addr", "", "")
	if err := fs.Parse([]string{"--http-addr", ":9090", "--log-level", "info"}); err != nil {
		t.Fatal(err)
	}
	dropGiven(errs, fs)
	r.flagsGiven(fs)
	if len(errs) != 0 || !slices.Equal(r.applied, []string{"GRPC_PORT → SLUICE_GRPC_ADDR"}) || !slices.Equal(r.overridden, []string{"HOST+PORT (--http-addr is given)"}) {
		t.Errorf("--http-addr given: errors %v, applied %q, overridden %q", errs, r.applied, r.overridden)
	}
}

// TestUpstreamUnsupportedSettingsInOneWarning: every setting Sluice does not
// honour is named, in one warning record; the ones it handles its own way
// are not.
func TestUpstreamUnsupportedSettingsInOneWarning(t *testing.T) {
	env := map[string]string{
		"SLUICE_CONFIG": "../../deploy/examples", "SLUICE_ADMIN_ADDR": "off", "SLUICE_HTTP_ADDR": freeAddr(t), "SLUICE_GRPC_ADDR": freeAddr(t),
		"LOG_FORMAT":   "json",
		"BACKEND_TYPE": "memcache", "MEMCACHE_HOST_PORT": "memcached:11211", "USE_STATSD": "true", "STATSD_HOST": "statsd",
		"STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT": "false", "GRPC_MAX_CONNECTION_AGE": "1h", "REDIS_PERSECOND": "true",
		"GRPC_UDS": "/tmp/rl.sock", "USE_DOG_STATSD": "true",
		// handled by Sluice its own way: not warned of
		"REDIS_PIPELINE_WINDOW": "150us", "REDIS_PIPELINE_LIMIT": "8", "RUNTIME_WATCH_ROOT": "false", "USE_PROMETHEUS": "false",
		"EXPIRATION_JITTER_MAX_SECONDS": "300",
	}
	sluice := serveInProcess(t, []string{"serve"}, envOf(env))
	for deadline := time.Now().Add(15 * time.Second); logRecord(sluice.logs.String(), "sluice serving") == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if err := sluice.stop(t); err != nil {
		t.Fatalf("serve: %v\n%s", err, sluice.logs.String())
	}
	var warnings []string
	for _, line := range strings.Split(sluice.logs.String(), "\n") {
		if strings.Contains(line, "envoyproxy/ratelimit settings Sluice does not honour") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("%d warnings about upstream's settings, want 1:\n%s", len(warnings), sluice.logs.String())
	}
	for _, name := range []string{"BACKEND_TYPE=memcache", "MEMCACHE_HOST_PORT", "USE_STATSD=true", "STATSD_HOST", "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT=false",
		"GRPC_MAX_CONNECTION_AGE=1h", "REDIS_PERSECOND=true", "GRPC_UDS", "USE_DOG_STATSD=true"} {
		if !strings.Contains(warnings[0], name) {
			t.Errorf("the warning does not name %s: %s", name, warnings[0])
		}
	}
	for _, name := range []string{"REDIS_PIPELINE_WINDOW", "RUNTIME_WATCH_ROOT", "USE_PROMETHEUS", "EXPIRATION_JITTER"} {
		if strings.Contains(warnings[0], name) {
			t.Errorf("the warning names %s, which Sluice handles: %s", name, warnings[0])
		}
	}
	info := logRecord(sluice.logs.String(), "envoyproxy/ratelimit settings read (docs/deployment.md)")
	if info == nil || !strings.Contains(strings.Join(anyStrings(info["no_effect"]), ","), "REDIS_PIPELINE_WINDOW") {
		t.Errorf("the settings without effect are not listed: %v", info)
	}
}

func anyStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestUpstreamTableIsDocumented: every upstream variable of the two tables
// has its row in docs/deployment.md, and the doc names no variable the
// tables lack.
func TestUpstreamTableIsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, f := range strings.Split(first, ",") {
			if name := strings.Trim(strings.TrimSpace(f), "`"); name != "" {
				documented[name] = true
			}
		}
	}
	known := map[string]bool{}
	for _, m := range upstreamMappings {
		for _, n := range m.from {
			known[n] = true
		}
	}
	for _, o := range upstreamOthers {
		known[o.name] = true
	}
	for n := range known {
		if !documented[n] {
			t.Errorf("%s: no row in docs/deployment.md", n)
		}
	}
	for n := range documented {
		if !known[n] && strings.ToUpper(n) == n {
			t.Errorf("docs/deployment.md documents %s, which upstreamenv.go does not know", n)
		}
	}
}

// TestUpstreamKubernetesDeployment runs `sluice serve` with exactly the
// environment of the Kubernetes Deployment of envoyproxy/ratelimit that
// Istio's samples/ratelimit/rate-limit-service.yaml ships (with its ConfigMap's
// config in RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config, REDIS_URL pointing at
// the test's redis-server), only the ports moved to free ones, as a test
// must — PORT, GRPC_PORT and DEBUG_PORT, which that Deployment leaves at
// upstream's defaults 8080, 8081 and 6070. It answers ShouldRateLimit on
// GRPC_PORT as upstream would and /healthcheck on PORT.
func TestUpstreamKubernetesDeployment(t *testing.T) {
	redis := redistest.New(t)
	root := t.TempDir()
	configDir := filepath.Join(root, "ratelimit", "config")
	if err := os.MkdirAll(configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The ConfigMap of the sample, mounted as Kubernetes does: the file is a
	// symlink into a ..data directory, which a dot hides.
	data := filepath.Join(configDir, "..2026_12_01_00_00_00.000000001")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	config := "domain: echo-ratelimit\ndescriptors:\n  - key: PATH\n    value: \"/\"\n    rate_limit:\n      unit: minute\n      requests_per_unit: 1\n  - key: PATH\n    rate_limit:\n      unit: minute\n      requests_per_unit: 100\n"
	if err := os.WriteFile(filepath.Join(data, "config.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(configDir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(configDir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	port := func() string { _, p, _ := net.SplitHostPort(freeAddr(t)); return p }
	httpPort, grpcPort, debugPort := port(), port(), port()
	env := map[string]string{
		// the Deployment's env, as it is
		"LOG_LEVEL":              "debug",
		"REDIS_SOCKET_TYPE":      "tcp",
		"REDIS_URL":              redis.Addr(),
		"USE_STATSD":             "false",
		"RUNTIME_ROOT":           root,
		"RUNTIME_SUBDIRECTORY":   "ratelimit",
		"RUNTIME_WATCH_ROOT":     "false",
		"RUNTIME_IGNOREDOTFILES": "true",
		"HOST":                   "::",
		"GRPC_HOST":              "::",
		// upstream's default ports, moved
		"PORT": httpPort, "GRPC_PORT": grpcPort, "DEBUG_PORT": debugPort,
		// sluice's own admin port, which upstream has not: off its shared
		// default 127.0.0.1:8082, which another test or a bench may hold
		"SLUICE_ADMIN_ADDR": "off",
	}
	sluice := serveInProcess(t, []string{"serve"}, envOf(env))

	get := func(url string) (int, string) {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get(url)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
					return resp.StatusCode, string(body)
				}
			} else if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\n%s", url, err, sluice.logs.String())
			}
		}
	}
	if code, body := get("http://127.0.0.1:" + httpPort + "/healthcheck"); code != http.StatusOK || body != "OK" {
		t.Errorf("/healthcheck on PORT: %d %q, want 200 OK\n%s", code, body, sluice.logs.String())
	}
	if code, _ := get("http://127.0.0.1:" + debugPort + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz on DEBUG_PORT: %d", code)
	}

	conn, err := grpc.NewClient("127.0.0.1:"+grpcPort, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rls := rlsv3.NewRateLimitServiceClient(conn)
	ask := func(path string) rlsv3.RateLimitResponse_Code {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		resp, err := rls.ShouldRateLimit(cctx, &rlsv3.RateLimitRequest{Domain: "echo-ratelimit", Descriptors: []*ratelimitv3.RateLimitDescriptor{
			{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "PATH", Value: path}}},
		}})
		if err != nil {
			t.Fatalf("ShouldRateLimit %s: %v\n%s", path, err, sluice.logs.String())
		}
		return resp.OverallCode
	}
	for i, want := range []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT} {
		if got := ask("/"); got != want {
			t.Errorf("PATH=/ call %d: %v, want %v (1 per minute)", i+1, got, want)
		}
	}
	if got := ask("/other"); got != rlsv3.RateLimitResponse_OK {
		t.Errorf("PATH=/other: %v, want OK (100 per minute)", got)
	}
	// The counters are in the test's Redis, and nothing warned: every
	// setting of that Deployment is honoured.
	if n := len(counterKeys(t, redistest.Client(t, redis))); n == 0 {
		t.Errorf("no counter in the Redis of REDIS_URL")
	}
	if strings.Contains(sluice.logs.String(), "does not honour") {
		t.Errorf("the Deployment's settings were warned of:\n%s", sluice.logs.String())
	}
}
