package xds_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"go.uber.org/goleak"

	"github.com/sluice-rl/sluice/internal/syncbuf"
	"github.com/sluice-rl/sluice/internal/testcerts"
	"github.com/sluice-rl/sluice/internal/xdstest"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/xds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastBackoff keeps reconnect tests short.
var fastBackoff = xds.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// running is a Client's Run in a goroutine, with what it applied and reported.
type running struct {
	sets    chan *config.Set
	reports chan error
}

// run runs c until the test ends.
func run(t *testing.T, c *xds.Client) *running {
	t.Helper()
	r := &running{sets: make(chan *config.Set, 16), reports: make(chan error, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		c.Run(ctx, func(s *config.Set) { r.sets <- s }, func(err error) { r.reports <- err })
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

func (r *running) nextSet(t *testing.T) *config.Set {
	t.Helper()
	select {
	case s := <-r.sets:
		return s
	case err := <-r.reports:
		t.Fatalf("reported instead of applied: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no config applied")
	}
	return nil
}

func (r *running) nextReport(t *testing.T) error {
	t.Helper()
	select {
	case s := <-r.sets:
		t.Fatalf("applied %v instead of reporting", s.Domains())
	case err := <-r.reports:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("nothing reported")
	}
	return nil
}

// requestsOf is the first limit's count of key=value in the set's domain, or -1.
func requestsOf(s *config.Set, domain, key, value string) int {
	d, ok := s.Domain(domain)
	if !ok {
		return -1
	}
	r, ok := d.Match([]config.Entry{{Key: key, Value: value}})
	if !ok || len(r.Limits) == 0 {
		return -1
	}
	return int(r.Limits[0].Requests)
}

func newClient(t *testing.T, o xds.Options) *xds.Client {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	if o.Backoff == (xds.Backoff{}) {
		o.Backoff = fastBackoff
	}
	c, err := xds.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientAppliesAndAcksGoodConfigsAndNacksBadOnes follows one stream
// through a good push, a bad one and a good one again.
func TestClientAppliesAndAcksGoodConfigsAndNacksBadOnes(t *testing.T) {
	cp := xdstest.Start(t, "127.0.0.1:0", nil)
	cp.Push(t, "node-a", "1",
		limited("pizza", "apim", "api", "pizza", 3, rlsconfv3.RateLimitUnit_MINUTE),
		limited("chat", "chat", "api", "chat", 7, rlsconfv3.RateLimitUnit_HOUR))
	c := newClient(t, xds.Options{Server: cp.Addr, NodeID: "node-a",
		NodeMetadata: map[string]string{"zone": "z1"}, Headers: map[string]string{"x-xds-token": "s3cret"}})
	r := run(t, c)

	set := r.nextSet(t)
	if got := set.Domains(); len(got) != 2 || requestsOf(set, "apim", "api", "pizza") != 3 || requestsOf(set, "chat", "api", "chat") != 7 {
		t.Fatalf("first config: domains %v, apim %d, chat %d", got, requestsOf(set, "apim", "api", "pizza"), requestsOf(set, "chat", "api", "chat"))
	}
	first, _ := cp.WaitRequest(t, 0, "first request", func(*discoveryv3.DiscoveryRequest) bool { return true })
	if first.GetNode().GetId() != "node-a" || first.GetTypeUrl() != xds.TypeURL || first.GetVersionInfo() != "" || first.GetResponseNonce() != "" {
		t.Errorf("first request: %v", first)
	}
	if md := first.GetNode().GetMetadata().GetFields()["zone"]; md.GetStringValue() != "z1" {
		t.Errorf("node metadata: %v", first.GetNode().GetMetadata())
	}
	if h := cp.StreamHeaders(); len(h) != 1 || strings.Join(h[0].Get("x-xds-token"), ",") != "s3cret" {
		t.Errorf("stream headers: %v", h)
	}
	ack, at := cp.WaitRequest(t, 0, "ACK of 1", xdstest.IsACK("1"))
	if sent := cp.Nonces("1"); len(sent) != 1 || ack.GetResponseNonce() != sent[0] {
		t.Errorf("ACK nonce %q, responses' %q", ack.GetResponseNonce(), sent)
	}

	// A push that does not load: reported, NACKed with the version in force
	// and the rejected response's nonce, nothing applied.
	cp.Push(t, "node-a", "2", &rlsconfv3.RateLimitConfig{Name: "bad", Domain: "apim", Descriptors: []*rlsconfv3.RateLimitDescriptor{
		{Key: "api", Value: "pizza", RateLimit: &rlsconfv3.RateLimitPolicy{RequestsPerUnit: 3}}, // no unit
	}})
	err := r.nextReport(t)
	const why = "xds:bad: descriptors[0].rate_limit.unit: missing"
	if !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), `version "2"`) {
		t.Errorf("report: %v", err)
	}
	nack, at := cp.WaitRequest(t, at+1, "NACK keeping 1", xdstest.IsNACK("1"))
	if !strings.Contains(nack.GetErrorDetail().GetMessage(), why) || nack.GetResponseNonce() != cp.Nonces("2")[0] {
		t.Errorf("NACK: %v (nonces of 2: %q)", nack, cp.Nonces("2"))
	}
	// go-control-plane's cache sends the rejected version again in answer
	// to the NACK: it is NACKed again, not reported again.
	again, at := cp.WaitRequest(t, at+1, "second NACK", xdstest.IsNACK("1"))
	if sent := cp.Nonces("2"); len(sent) < 2 || again.GetResponseNonce() != sent[1] || again.GetErrorDetail().GetMessage() != nack.GetErrorDetail().GetMessage() {
		t.Errorf("second NACK: %v (nonces of 2: %q)", again, sent)
	}
	select {
	case err := <-r.reports:
		t.Errorf("the same rejected config reported twice: %v", err)
	default:
	}

	// The next good push is applied and ACKed.
	cp.Push(t, "node-a", "3", limited("pizza", "apim", "api", "pizza", 5, rlsconfv3.RateLimitUnit_MINUTE))
	set = r.nextSet(t)
	if got := set.Domains(); len(got) != 1 || requestsOf(set, "apim", "api", "pizza") != 5 {
		t.Errorf("third config: %v %d", got, requestsOf(set, "apim", "api", "pizza"))
	}
	cp.WaitRequest(t, at+1, "ACK of 3", xdstest.IsACK("3"))
}

// TestClientReconnectsAfterTheServerRestarts stops the management server and
// starts another on the same address with a newer snapshot: the client
// comes back, asks for the version it applied last, and takes the new one.
func TestClientReconnectsAfterTheServerRestarts(t *testing.T) {
	cp := xdstest.Start(t, "127.0.0.1:0", nil)
	cp.Push(t, "default", "v1", limited("pizza", "apim", "api", "pizza", 3, rlsconfv3.RateLimitUnit_MINUTE))
	r := run(t, newClient(t, xds.Options{Server: cp.Addr}))
	r.nextSet(t)
	cp.WaitRequest(t, 0, "ACK of v1", xdstest.IsACK("v1"))
	cp.Stop()

	cp2 := xdstest.Start(t, cp.Addr, nil)
	cp2.Push(t, "default", "v2", limited("pizza", "apim", "api", "pizza", 9, rlsconfv3.RateLimitUnit_MINUTE))
	if set := r.nextSet(t); requestsOf(set, "apim", "api", "pizza") != 9 {
		t.Errorf("after the restart: %d", requestsOf(set, "apim", "api", "pizza"))
	}
	resume, _ := cp2.WaitRequest(t, 0, "resuming request", func(*discoveryv3.DiscoveryRequest) bool { return true })
	if resume.GetVersionInfo() != "v1" || resume.GetNode().GetId() != xds.DefaultNodeID || resume.GetResponseNonce() != "" {
		t.Errorf("resuming request: %v", resume)
	}
	cp2.WaitRequest(t, 0, "ACK of v2", xdstest.IsACK("v2"))
}

// TestClientBacksOffWhileTheServerIsDown counts the client's connection
// attempts at a port that accepts and hangs up at once: with waits of
// 100, 200, 300, 300, ... ms there are a handful in a second, not a storm.
func TestClientBacksOffWhileTheServerIsDown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			_ = conn.Close()
		}
	}()
	defer func() { _ = lis.Close(); <-done }()
	logs := &syncbuf.Buffer{}
	c := newClient(t, xds.Options{Server: lis.Addr().String(), Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Backoff: xds.Backoff{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond, NoJitter: true}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		c.Run(ctx, func(*config.Set) { t.Error("applied a config") }, func(err error) { t.Errorf("reported %v", err) })
	})
	time.Sleep(1200 * time.Millisecond)
	cancel()
	wg.Wait()
	// Each attempt is a new connection: up to 1 + 5 attempts fit, a few more
	// when gRPC retried the TCP connection inside one.
	if n := accepts.Load(); n < 2 || n > 12 {
		t.Errorf("%d connection attempts in 1.2s", n)
	}
	for _, want := range []string{"in=100ms", "in=200ms", "in=300ms"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// TestClientMutualTLS connects to a management server that requires a
// client certificate, with the CA, certificate, key and server name given
// as upstream's CONFIG_GRPC_XDS_* TLS settings give them; without the
// certificate no stream opens.
func TestClientMutualTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "xds test ca")
	serverCert := ca.ClientCert(t, "control-plane")
	cp := xdstest.Start(t, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
	cp.Push(t, "default", "1", limited("pizza", "apim", "api", "pizza", 3, rlsconfv3.RateLimitUnit_SECOND))
	certs := ca.WriteDir(t, "sluice")
	port := cp.Addr[strings.LastIndex(cp.Addr, ":"):]

	// Without a client certificate the handshake fails and nothing arrives.
	logs := &syncbuf.Buffer{}
	noCert := newClient(t, xds.Options{Server: "localhost" + port, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		TLS: &xds.TLS{CAFile: certs.CA()}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		noCert.Run(ctx, func(*config.Set) { t.Error("applied without a certificate") }, func(error) {})
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "xds stream ended") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if !strings.Contains(logs.String(), "xds stream ended") || cp.Received() != 0 {
		t.Fatalf("without a client certificate: %d requests; logs:\n%s", cp.Received(), logs.String())
	}

	// With it, and the name to check given apart from the address.
	r := run(t, newClient(t, xds.Options{Server: cp.Addr, TLS: &xds.TLS{
		CAFile: certs.CA(), CertFile: certs.Cert("sluice"), KeyFile: certs.Key("sluice"), ServerName: "localhost",
	}}))
	if set := r.nextSet(t); requestsOf(set, "apim", "api", "pizza") != 3 {
		t.Errorf("config over mutual TLS: %v", set.Domains())
	}
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		o    xds.Options
		want string
	}{
		{"no server", xds.Options{}, "xds server: required"},
		{"max below initial", xds.Options{Server: "x:1", Backoff: xds.Backoff{Initial: time.Minute, Max: time.Second}}, "backoff max interval"},
		{"random factor", xds.Options{Server: "x:1", Backoff: xds.Backoff{RandomFactor: 1}}, "backoff random factor"},
		{"cert without key", xds.Options{Server: "x:1", TLS: &xds.TLS{CertFile: "c"}}, "both a client certificate and a key"},
		{"missing ca", xds.Options{Server: "x:1", TLS: &xds.TLS{CAFile: filepath.Join(dir, "nope.crt")}}, "tls ca"},
		{"negative message size", xds.Options{Server: "x:1", MaxRecvMsgBytes: -1}, "max message size"},
	} {
		if _, err := xds.New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
