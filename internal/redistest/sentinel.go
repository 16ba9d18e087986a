package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// SentinelSet is one master, one replica and some Sentinels watching them,
// all on free loopback ports, started by RunSentinel.
type SentinelSet struct {
	name      string
	cfg       config  // the options, TLS included
	master    *Server // the master at start
	replica   *Server // the replica at start
	sentinels []*sentinelProc
}

type sentinelProc struct {
	port int
	proc *process
}

func (s *sentinelProc) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Sentinel timings: short, so that tests of a failover stay short.
const (
	sentinelDownAfter       = 1000 * time.Millisecond
	sentinelFailoverTimeout = 5 * time.Second
)

// RunSentinel starts a master, a replica of it and n Sentinels (quorum
// n/2+1) monitoring it under name, and returns once the replica is in sync
// and every Sentinel knows the replica and the other Sentinels, so that a
// failover can start at once.
func RunSentinel(name string, n int, opts ...Option) (*SentinelSet, error) {
	if n < 1 {
		return nil, fmt.Errorf("redistest: need at least 1 Sentinel, got %d", n)
	}
	set := &SentinelSet{name: name}
	var err error
	if set.master, err = Run(opts...); err != nil {
		return nil, err
	}
	ropts := append(append([]Option(nil), opts...), WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(set.master.Port())))
	if set.replica, err = Run(ropts...); err != nil {
		set.Stop()
		return nil, err
	}
	set.cfg = set.master.cfg
	if err := waitFor(10*time.Second, func() error { return replicaInSync(set.replica.Addr(), set.cfg.tlsClient) }); err != nil {
		set.Stop()
		return nil, err
	}
	quorum := n/2 + 1
	for range n {
		sp, err := startSentinel(set.cfg, name, set.master.Port(), quorum)
		if err != nil {
			set.Stop()
			return nil, err
		}
		set.sentinels = append(set.sentinels, sp)
	}
	if err := waitFor(60*time.Second, set.discovered); err != nil {
		set.Stop()
		return nil, err
	}
	return set, nil
}

// startSentinel starts one Sentinel on a free port with its own writable
// config file, retrying when another process took the port.
func startSentinel(cfg config, name string, masterPort, quorum int) (*sentinelProc, error) {
	bin, err := exec.LookPath(cfg.binary)
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redistest: pick a port: %w", err)
		}
		dir, err := os.MkdirTemp("", "redistest-sentinel-")
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		conf := filepath.Join(dir, "sentinel.conf")
		listen := fmt.Sprintf("port %d\n", port)
		if cfg.tls != nil {
			listen = cfg.tls.sentinelConf(port)
		}
		body := listen + fmt.Sprintf(`bind 127.0.0.1
daemonize no
dir %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, dir, name, masterPort, quorum, name, sentinelDownAfter.Milliseconds(), name, sentinelFailoverTimeout.Milliseconds(), name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redistest: %w", err)
		}
		p := &process{cmd: exec.Command(bin, conf, "--sentinel"), dir: dir, out: &syncbuf.Buffer{}, done: make(chan struct{})}
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redistest: start sentinel: %w", err)
		}
		go func() {
			p.err = p.cmd.Wait()
			close(p.done)
		}()
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if err := p.waitReady(addr, cfg.startTimeout, cfg.tlsClient); err != nil {
			_ = p.stop()
			lastErr = err
			if errors.Is(err, errPortInUse) {
				continue
			}
			return nil, err
		}
		return &sentinelProc{port: port, proc: p}, nil
	}
	return nil, lastErr
}

// replicaInSync checks that the replica at addr has its link to the master up.
func replicaInSync(addr string, tc *tls.Config) error {
	info, err := command(addr, tc, "INFO", "replication")
	if err != nil {
		return err
	}
	if !strings.Contains(info, "master_link_status:up") {
		return fmt.Errorf("%s: replica not in sync yet", addr)
	}
	return nil
}

// discovered checks that every Sentinel sees a master with at least one
// replica and all the other Sentinels.
func (s *SentinelSet) discovered() error {
	for _, sp := range s.sentinels {
		rdb := redis.NewSentinelClient(&redis.Options{Addr: sp.addr(), DialTimeout: time.Second, MaxRetries: -1, TLSConfig: s.cfg.tlsClient})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := rdb.Master(ctx, s.name).Result()
		cancel()
		_ = rdb.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", sp.addr(), err)
		}
		if m["num-slaves"] == "0" || m["num-other-sentinels"] != strconv.Itoa(len(s.sentinels)-1) {
			return fmt.Errorf("sentinel %s: %s replicas, %s other sentinels", sp.addr(), m["num-slaves"], m["num-other-sentinels"])
		}
	}
	return nil
}

// waitFor polls check until it succeeds or timeout passes.
func waitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: not ready within %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Name is the master name the Sentinels monitor.
func (s *SentinelSet) Name() string { return s.name }

// Master and Replica are the servers as they were started; after a
// failover their roles are swapped.
func (s *SentinelSet) Master() *Server  { return s.master }
func (s *SentinelSet) Replica() *Server { return s.replica }

// SentinelAddrs returns every Sentinel's "127.0.0.1:port".
func (s *SentinelSet) SentinelAddrs() []string {
	out := make([]string, len(s.sentinels))
	for i, sp := range s.sentinels {
		out[i] = sp.addr()
	}
	return out
}

// URL returns "redis+sentinel://host:port,.../<name>" (rediss+sentinel://
// for a TLS-only set), the form Sluice's --redis takes.
func (s *SentinelSet) URL() string {
	return s.cfg.scheme() + "+sentinel://" + strings.Join(s.SentinelAddrs(), ",") + "/" + s.name
}

// MasterAddr asks the first Sentinel where the master is now.
func (s *SentinelSet) MasterAddr() (string, error) {
	v, err := command(s.sentinels[0].addr(), s.cfg.tlsClient, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.name)
	if err != nil {
		return "", err
	}
	parts := strings.Fields(strings.Trim(v, "[]"))
	if len(parts) != 2 {
		return "", fmt.Errorf("redistest: sentinel answered %q for the master address", v)
	}
	return parts[0] + ":" + parts[1], nil
}

// Failover makes the first Sentinel promote the replica now (SENTINEL
// FAILOVER, no agreement needed) and waits until the Sentinel names the new
// master and that master accepts writes.
func (s *SentinelSet) Failover(timeout time.Duration) (newMaster string, err error) {
	old, err := s.MasterAddr()
	if err != nil {
		return "", err
	}
	if _, err := command(s.sentinels[0].addr(), s.cfg.tlsClient, "SENTINEL", "FAILOVER", s.name); err != nil {
		return "", err
	}
	return s.waitNewMaster(old, timeout)
}

// KillMaster kills the current master's process (it stays down) and waits
// until the Sentinels have agreed on, and promoted, the replica.
func (s *SentinelSet) KillMaster(timeout time.Duration) (newMaster string, err error) {
	old, err := s.MasterAddr()
	if err != nil {
		return "", err
	}
	for _, srv := range []*Server{s.master, s.replica} {
		if srv.Addr() == old {
			if err := srv.Stop(); err != nil {
				return "", err
			}
		}
	}
	return s.waitNewMaster(old, timeout)
}

// waitNewMaster waits until the first Sentinel names a master other than
// old and that master says it is one.
func (s *SentinelSet) waitNewMaster(old string, timeout time.Duration) (newMaster string, err error) {
	err = waitFor(timeout, func() error {
		addr, err := s.MasterAddr()
		if err != nil {
			return err
		}
		if addr == old {
			return fmt.Errorf("master still %s", old)
		}
		role, err := command(addr, s.cfg.tlsClient, "ROLE")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(strings.TrimPrefix(role, "["), "master") {
			return fmt.Errorf("%s is %s, not master yet", addr, role)
		}
		newMaster = addr
		return nil
	})
	return newMaster, err
}

// Stop kills the Sentinels, then the servers, and removes their directories.
func (s *SentinelSet) Stop() error {
	var errs []error
	for _, sp := range s.sentinels {
		errs = append(errs, sp.proc.stop())
	}
	s.sentinels = nil
	for _, srv := range []*Server{s.replica, s.master} {
		if srv != nil {
			errs = append(errs, srv.Stop())
		}
	}
	return errors.Join(errs...)
}

// NewSentinel starts a Sentinel set for the test and stops it when the test
// ends.
func NewSentinel(tb testing.TB, name string, n int, opts ...Option) *SentinelSet {
	tb.Helper()
	s, err := RunSentinel(name, n, opts...)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("redistest: stop sentinel set: %v", err)
		}
	})
	return s
}
