package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchDomain is the domain of the generated config.
const benchDomain = "bench"

// Descriptor keys of the generated config.
const (
	keyOpen   = "api"    // a limit no run reaches: every call is OK and charged
	keyDirect = "direct" // the same with lease: off: every call goes to Redis
	keyCapped = "capped" // -cap per second: most calls are OVER_LIMIT
	keyTokens = "tokens" // token limits no run reaches: every reservation is admitted
	// keyUnmatched is named by no rule: a call on it matches no limit and
	// is answered OK without a counter. As long as keyOpen, so that both
	// requests have one size.
	keyUnmatched = "nil"
)

// writeConfig writes the limits config of the runs into dir.
func writeConfig(dir string, capPerSecond uint64) (string, error) {
	cfg := fmt.Sprintf(`domain: %s
descriptors:
  - key: %s
    rate_limit: {unit: second, requests_per_unit: 1000000000}
  - key: %s
    rate_limit: {unit: second, requests_per_unit: 1000000000, lease: off}
  - key: %s
    rate_limit: {unit: second, requests_per_unit: %d}
  - key: %s
    token_limit: {unit: minute, total_tokens: 1000000000000, prompt_tokens: 1000000000000, completion_tokens: 1000000000000}
`, benchDomain, keyOpen, keyDirect, keyCapped, capPerSecond, keyTokens)
	path := filepath.Join(dir, "limits.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("write config: %w", err)
	}
	return path, nil
}

// moduleRoot returns the directory of the go.mod that encloses the working
// directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the sluice module: run from its checkout")
	}
	return filepath.Dir(mod), nil
}

// buildSluice compiles pkg (e.g. "./cmd/sluice") of the module into dir.
func buildSluice(ctx context.Context, dir, pkg string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sluice")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// sluiceProc is a running server process: sluice serve, or
// envoyproxy/ratelimit (ratelimit.go).
type sluiceProc struct {
	name      string // for messages: "sluice", "ratelimit"
	cmd       *exec.Cmd
	grpcAddr  string
	httpAddr  string
	readyPath string // GET it until it answers 200
	log       *tailBuffer
	done      chan struct{} // closed when the process has exited
	waitErr   error         // readable after done
	stopOnce  sync.Once
}

// startSluice starts bin serving the config against redisURL on two free
// loopback ports and waits until /readyz answers 200.
func startSluice(ctx context.Context, bin, configPath, redisURL string, extra []string, logTo io.Writer) (*sluiceProc, error) {
	grpcAddr, httpAddr, err := twoPorts()
	if err != nil {
		return nil, err
	}
	args := []string{"serve",
		"--config", configPath,
		"--redis", redisURL,
		"--grpc-addr", grpcAddr,
		"--http-addr", httpAddr,
		// no admin port: its default, 127.0.0.1:8082, is shared by every
		// sluice on the machine, and the bench needs none
		"--admin-addr", "off",
	}
	args = append(args, extra...)
	// Not CommandContext: stop sends SIGTERM first so sluice can drain and
	// write its profile.
	return startProc(ctx, "sluice", exec.Command(bin, args...), grpcAddr, httpAddr, "/readyz", logTo)
}

// twoPorts returns two loopback addresses that were free a moment ago.
func twoPorts() (grpcAddr, httpAddr string, err error) {
	grpcPort, err := freePort()
	if err != nil {
		return "", "", err
	}
	httpPort, err := freePort()
	if err != nil {
		return "", "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)), net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)), nil
}

// startProc starts cmd, a server answering gRPC on grpcAddr and HTTP on
// httpAddr, and waits until GET readyPath answers 200.
func startProc(ctx context.Context, name string, cmd *exec.Cmd, grpcAddr, httpAddr, readyPath string, logTo io.Writer) (*sluiceProc, error) {
	p := &sluiceProc{
		name:      name,
		cmd:       cmd,
		grpcAddr:  grpcAddr,
		httpAddr:  httpAddr,
		readyPath: readyPath,
		log:       &tailBuffer{max: 64 << 10},
		done:      make(chan struct{}),
	}
	var out io.Writer = p.log
	if logTo != nil {
		out = io.MultiWriter(p.log, logTo)
	}
	p.cmd.Stdout = out
	p.cmd.Stderr = out
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 30*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w\n%s log:\n%s", err, name, p.log.String())
	}
	return p, nil
}

// waitReady polls GET readyPath until it answers 200, the process exits, ctx
// ends or timeout passes.
func (p *sluiceProc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	url := "http://" + p.httpAddr + p.readyPath
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v (last %s: %s)", p.name, timeout, p.readyPath, last)
		case <-tick.C:
		}
	}
}

// pid returns the process id.
func (p *sluiceProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, waits up to 15s for the exit, then kills. It returns an
// error when sluice had exited on its own before being stopped.
func (p *sluiceProc) stop() error {
	var err error
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			err = fmt.Errorf("%s exited early: %v\n%s log:\n%s", p.name, p.waitErr, p.name, p.log.String())
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("%s did not stop within 15s of SIGTERM; killed", p.name)
		}
	})
	return err
}

// alive reports whether the process is still running.
func (p *sluiceProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
