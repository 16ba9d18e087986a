package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters only, each a redis-server started by
// RunCluster on free loopback ports (the data port and the cluster bus port).
type Cluster struct {
	nodes []*Server
}

// RunCluster starts masters redis-servers with cluster mode on, joins them
// with `redis-cli --cluster create` (the 16384 slots split evenly) and
// returns once every node reports cluster_state:ok and knows every other.
// opts apply to every node.
func RunCluster(masters int, opts ...Option) (*Cluster, error) {
	if masters < 1 {
		return nil, fmt.Errorf("redistest: a cluster needs at least 1 master, got %d", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redistest: redis-cli not found on PATH (install redis-tools): %w", err)
	}
	c := &Cluster{}
	for range masters {
		s, err := runClusterNode(opts)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.nodes = append(c.nodes, s)
	}
	var args []string
	if t := c.nodes[0].cfg.tls; t != nil {
		args = t.cliArgs()
	}
	args = append(append(args, "--cluster", "create"), c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %v: %s", err, lastLines(string(out), 5))
	}
	if err := c.WaitOK(20 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// runClusterNode starts one cluster-enabled node; its bus port is picked
// free too, and a start that lost that port to another process is retried.
func runClusterNode(opts []Option) (*Server, error) {
	var lastErr error
	for range 5 {
		bus, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redistest: pick a port: %w", err)
		}
		o := append(append([]Option(nil), opts...), WithArgs(
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // inside the node's own --dir
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "2000",
		))
		s, err := Run(o...)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// WaitOK waits until every node reports cluster_state:ok, all slots
// assigned and every node known.
func (c *Cluster) WaitOK(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.checkOK()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: cluster not ok within %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) checkOK() error {
	for _, n := range c.nodes {
		info, err := command(n.Addr(), n.cfg.tlsClient, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		for _, want := range []string{
			"cluster_state:ok", "cluster_slots_assigned:16384",
			"cluster_known_nodes:" + strconv.Itoa(len(c.nodes)),
		} {
			if !strings.Contains(info, want+"\r\n") {
				return fmt.Errorf("%s: no %s", n.Addr(), want)
			}
		}
	}
	return nil
}

// command runs one command on a fresh connection (over TLS with tc when it is
// not nil) and returns its reply as text.
func command(addr string, tc *tls.Config, args ...any) (string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1, PoolSize: 1, TLSConfig: tc})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := rdb.Do(ctx, args...).Result()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %w", addr, args, err)
	}
	return fmt.Sprint(v), nil
}

// Nodes returns the cluster's nodes (masters), in creation order.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Addrs returns every node's "127.0.0.1:port".
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL returns "redis+cluster://host:port,host:port,..." (rediss+cluster://
// for TLS-only nodes), the form Sluice's --redis takes.
func (c *Cluster) URL() string {
	return c.nodes[0].cfg.scheme() + "+cluster://" + strings.Join(c.Addrs(), ",")
}

// Stop kills every node and removes their directories.
func (c *Cluster) Stop() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Stop())
	}
	return errors.Join(errs...)
}

// NewCluster starts a cluster of masters for the test and stops it when the
// test ends. It fails the test, never skips it, when redis-server or
// redis-cli is missing.
func NewCluster(tb testing.TB, masters int, opts ...Option) *Cluster {
	tb.Helper()
	c, err := RunCluster(masters, opts...)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("redistest: stop cluster: %v", err)
		}
	})
	return c
}

// ClusterClient returns a go-redis cluster client for c that is closed when
// the test ends.
func ClusterClient(tb testing.TB, c *Cluster) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), TLSConfig: c.nodes[0].ClientTLS()})
	tb.Cleanup(func() {
		if err := rdb.Close(); err != nil {
			tb.Errorf("redistest: close cluster client: %v", err)
		}
	})
	return rdb
}
