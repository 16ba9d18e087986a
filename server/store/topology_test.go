package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // fmt of the relevant options
	}{
		{"redis+sentinel://127.0.0.1:26379/mymaster", "sentinel mymaster [127.0.0.1:26379] db=0 user= pass= suser= spass= tls=false"},
		{"redis+sentinel://u:p%40ss@h1:1,h2,[::1]:3/m%2Ex?db=3&sentinel_password=sp&sentinel_username=su",
			"sentinel m.x [h1:1 h2:26379 [::1]:3] db=3 user=u pass=p@ss suser=su spass=sp tls=false"},
		{"rediss+sentinel://h:1/m", "sentinel m [h:1] db=0 user= pass= suser= spass= tls=true"},
		{"redis+cluster://h1:7000,h2:7001,h3", "cluster [h1:7000 h2:7001 h3:6379] user= pass= tls=false"},
		{"rediss+cluster://:secret@h1:7000/", "cluster [h1:7000] user= pass=secret tls=true"},
		{"REDIS+CLUSTER://h:1", "cluster [h:1] user= pass= tls=false"},
		{"redis://h:1/2", "single h:1 db=2"},
	} {
		tg, err := parseURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		var got string
		switch tg.topology {
		case Sentinel:
			o := tg.failover
			got = fmt.Sprintf("sentinel %s %v db=%d user=%s pass=%s suser=%s spass=%s tls=%v", o.MasterName, o.SentinelAddrs, o.DB,
				o.Username, o.Password, o.SentinelUsername, o.SentinelPassword, o.TLSConfig != nil)
			if o.TLSConfig != nil && (o.TLSConfig.MinVersion != tls.VersionTLS12 || o.TLSConfig.ServerName != "") {
				t.Errorf("%s: TLS config %+v", tc.url, o.TLSConfig)
			}
		case Cluster:
			o := tg.cluster
			got = fmt.Sprintf("cluster %v user=%s pass=%s tls=%v", o.Addrs, o.Username, o.Password, o.TLSConfig != nil)
		default:
			got = fmt.Sprintf("single %s db=%d", tg.single.Addr, tg.single.DB)
		}
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.url, got, tc.want)
		}
	}
	for url, want := range map[string]string{
		"127.0.0.1:6379":                         "want redis://",
		"http://h:1":                             `unknown scheme "http"`,
		"redis+sentinal://h:1/m":                 `unknown scheme "redis+sentinal"`,
		"redis+sentinel://h:1":                   "needs the master name",
		"redis+sentinel://h:1/":                  "needs the master name",
		"redis+sentinel://h:1/m/2":               "just the master name",
		"redis+sentinel:///m":                    "hosts: none given",
		"redis+sentinel://h:1,,h:2/m":            "empty entry",
		"redis+sentinel://h:99999/m":             `port "99999"`,
		"redis+sentinel://h:x/m":                 `port "x"`,
		"redis+sentinel://:1/m":                  "empty host",
		"redis+sentinel://h:1/m?db=-1":           "db=",
		"redis+sentinel://h:1/m?db=x":            "db=",
		"redis+sentinel://h:1/m?pool=3":          `unknown query parameter "pool"`,
		"redis+sentinel://h:1/m?db=1&db=2":       "given 2 times",
		"redis+sentinel://u:p%zz@h:1/m":          "bad %-escape in the password",
		"redis+cluster://h:1/0":                  "takes no path",
		"redis+cluster://h:1?db=1":               "takes no query parameter",
		"redis+cluster://h:1#x":                  "no #fragment",
		"redis+cluster://":                       "none given",
		"rediss+cluster://user:hunter2@h:1/zz/x": "takes no path",
	} {
		_, err := Open(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", url, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q): the error shows the password: %v", url, err)
		}
	}
	// Sentinel and cluster URLs open without dialling, with deadlines obeyed.
	for _, url := range []string{"redis+sentinel://127.0.0.1:1/m", "rediss+cluster://127.0.0.1:1"} {
		s, err := Open(url)
		if err != nil {
			t.Fatal(err)
		}
		if b, ok := s.Scripter.(*Batcher); !ok || b.Cluster() != (s.Topology == Cluster) {
			t.Errorf("%s: Scripter %T", url, s.Scripter)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClusterBatchesSplitByNode sends concurrent calls on keys in many slots
// through the Batcher and a plain cluster client: every caller gets its own
// reply, each counter counts exactly its calls, and after SCRIPT FLUSH on
// every node each call falls back to EVAL on its own.
func TestClusterBatchesSplitByNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	c := redistest.NewCluster(t, 3)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			s := openStore(t, c.URL(), v.cfg)
			if s.Topology != Cluster {
				t.Fatalf("topology %v", s.Topology)
			}
			if _, ok := s.Scripter.(*redis.ClusterClient); !ok {
				if b, ok := s.Scripter.(*Batcher); !ok || !b.Cluster() {
					t.Fatalf("Scripter %T does not say it is on a cluster", s.Scripter)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			if err := echoIncr.Load(ctx, s.Scripter).Err(); err != nil {
				t.Fatal(err)
			}
			run := func(round string, callers, calls int) {
				var wg sync.WaitGroup
				errs := make(chan error, callers)
				for g := range callers {
					key := fmt.Sprintf("{%s:%s:%d}:n", t.Name(), round, g) // a slot of its own, mostly
					wg.Go(func() {
						for i := range calls {
							n, err := runEcho(ctx, s.Scripter, key, fmt.Sprint(g, "-", i))
							if err == nil && n != int64(i+1) {
								err = fmt.Errorf("caller %d call %d: counter %d", g, i, n)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
			}
			run("a", 48, 30)
			if err := s.Client.ScriptFlush(ctx).Err(); err != nil { // every master: ours
				t.Fatal(err)
			}
			run("b", 48, 5)
		})
	}
}
