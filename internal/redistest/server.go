// Package redistest starts a private redis-server on a free loopback port for
// tests and benchmarks. Run does not depend on package testing, so the
// benchmark harness can use it too; New and Client are the testing helpers.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// Server is a redis-server process started by Run. Its methods are safe for
// concurrent use.
type Server struct {
	cfg  config
	port int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one running redis-server.
type process struct {
	cmd  *exec.Cmd
	dir  string
	out  *syncbuf.Buffer
	done chan struct{} // closed when the process has exited
	err  error         // result of Wait, readable after done
}

// Option configures Run.
type Option func(*config)

type config struct {
	binary       string
	args         []string
	startTimeout time.Duration
	attempts     int
	tls          *TLS        // WithTLS: a TLS-only server
	tlsClient    *tls.Config // what the helpers dial it with, from tls
}

// WithBinary runs the given redis-server executable instead of the one on PATH.
func WithBinary(path string) Option { return func(c *config) { c.binary = path } }

// WithArgs appends extra command-line arguments, e.g. "--maxmemory", "64mb".
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithStartTimeout sets how long Run waits for PING to answer (default 5s).
func WithStartTimeout(d time.Duration) Option { return func(c *config) { c.startTimeout = d } }

// ErrNotFound is returned by Run when redis-server is not on PATH.
var ErrNotFound = errors.New("redistest: redis-server not found on PATH")

// errPortInUse marks a start that failed because another process took the port.
var errPortInUse = errors.New("address already in use")

// Run starts redis-server on a free loopback port with no persistence and a
// private temporary directory, and returns once it answers PING.
func Run(opts ...Option) (*Server, error) {
	cfg := config{binary: "redis-server", startTimeout: 5 * time.Second, attempts: 5}
	for _, o := range opts {
		o(&cfg)
	}
	bin, err := exec.LookPath(cfg.binary)
	if err != nil {
		if cfg.binary == "redis-server" {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("redistest: %w", err)
	}
	cfg.binary = bin
	if cfg.tls != nil {
		if cfg.tlsClient, err = cfg.tls.clientConfig(); err != nil {
			return nil, err
		}
	}

	var lastErr error
	for range cfg.attempts {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redistest: pick a port: %w", err)
		}
		s := &Server{cfg: cfg, port: port}
		p, err := s.start()
		if err == nil {
			s.proc = p
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	return nil, lastErr
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// URL returns "redis://127.0.0.1:port" ("rediss://..." for a TLS-only server).
func (s *Server) URL() string { return s.cfg.scheme() + "://" + s.Addr() }

// Stop kills the server, waits for it to exit and removes its directory.
// Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	if p == nil {
		return nil
	}
	return p.stop()
}

// Restart stops the server and starts a fresh one on the same port; no data
// survives. If the port was taken in between, Restart keeps trying until the
// start timeout.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		p := s.proc
		s.proc = nil
		if err := p.stop(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(s.cfg.startTimeout)
	for {
		p, err := s.start()
		if err == nil {
			s.proc = p
			return nil
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			return fmt.Errorf("redistest: restart: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start launches redis-server on s.port and waits until it answers PING.
func (s *Server) start() (*process, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	args := []string{"--port", strconv.Itoa(s.port)}
	if s.cfg.tls != nil {
		args = s.cfg.tls.serverArgs(s.port)
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
	)
	args = append(args, s.cfg.args...)
	p := &process{
		cmd:  exec.Command(s.cfg.binary, args...),
		dir:  dir,
		out:  &syncbuf.Buffer{},
		done: make(chan struct{}),
	}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("redistest: start %s: %w", s.cfg.binary, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()

	if err := p.waitReady(s.Addr(), s.cfg.startTimeout, s.cfg.tlsClient); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls PING until it answers PONG, the process exits or timeout;
// over TLS with tc when it is not nil.
func (p *process) waitReady(addr string, timeout time.Duration, tc *tls.Config) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			out := p.out.String()
			if strings.Contains(out, "Address already in use") {
				return fmt.Errorf("redistest: %s: %w", addr, errPortInUse)
			}
			return fmt.Errorf("redistest: redis-server exited before answering PING (%v): %s", p.err, lastLines(out, 5))
		default:
		}
		err := ping(addr, p.cmd.Process.Pid, tc)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPortInUse) {
			return fmt.Errorf("redistest: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: redis-server on %s did not answer PING within %v: %s", addr, timeout, lastLines(p.out.String(), 5))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the process, waits for it and removes its directory.
func (p *process) stop() error {
	select {
	case <-p.done:
	default:
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("redistest: kill: %w", err)
		}
		<-p.done
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("redistest: remove %s: %w", filepath.Base(p.dir), err)
	}
	return nil
}

// ping sends an inline PING, expects +PONG, then checks with INFO that the
// answering server is the process pid (and not another one that won the port).
func ping(addr string, pid int, tc *tls.Config) error {
	var conn net.Conn
	var err error
	if tc != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 500 * time.Millisecond}, "tcp", addr, tc)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 200*time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("unexpected reply to ping: %q", line)
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "$"))
	if err != nil || n < 0 {
		return fmt.Errorf("unexpected reply to info: %q", line)
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(r, info); err != nil {
		return err
	}
	if !bytes.Contains(info, []byte("process_id:"+strconv.Itoa(pid)+"\r\n")) {
		return fmt.Errorf("%w: %s answered by another process", errPortInUse, addr)
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before redis-server binds; Run retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

// lastLines returns the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
