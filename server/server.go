// Package server wires the service together: the limits config (reloaded on
// change), the counter store, the limiter, gRPC (sluice.v1, Envoy's API and
// health) and HTTP (JSON, /json, health) — and drains them on shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sluice-rl/sluice/lua"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/grpcapi"
	"github.com/sluice-rl/sluice/server/httpapi"
	"github.com/sluice-rl/sluice/server/limiter"
	"github.com/sluice-rl/sluice/server/overlay"
	"github.com/sluice-rl/sluice/server/store"
	"github.com/sluice-rl/sluice/server/telemetry"
	"github.com/sluice-rl/sluice/server/tlsconf"
	"github.com/sluice-rl/sluice/server/traffic"
)

// Server is a running Sluice: listening from New on, serving once Run starts.
type Server struct {
	cfg       Config
	configs   *overlay.Effective // the files' config with the runtime limits over it
	runtime   *overlay.Store
	watcher   *overlay.Watcher
	store     *store.Store
	limiter   *limiter.Limiter
	grpc      *grpc.Server
	health    *health.Server
	ready     *readiness
	grpcLis   net.Listener
	selfLis   *bufconn.Listener // in-process gRPC for the HTTP side: no TLS, no port
	httpLis   net.Listener
	opsLis    net.Listener // HealthAddr's, or nil
	ops       *http.Server // serves opsLis, or nil
	http      *http.Server
	selfConn  *grpc.ClientConn
	tel       *telemetry.Telemetry
	traffic   *traffic.Recorder // calls per API environment, for the console
	admin     *adminPort        // nil without Config.AdminAddr
	closeOnce sync.Once

	// configArrived is false while a ConfigSource has sent no config yet.
	configArrived atomic.Bool
}

// New loads the config, opens the store and binds both ports. A config that
// does not load is an error; a Redis that does not answer yet is not (the
// service starts unready and turns ready when Redis answers).
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set, err := initialConfig(cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStore(&cfg)
	if err != nil {
		return nil, err
	}
	if st.Info().Embedded { // its Lua has no cmsgpack: the scripts write hashes there
		cfg.CounterLayout = lua.Hash
	}
	cfg.Logger = telemetry.Logger(cfg.Logger) // records carry the trace id
	store.SetLogger(cfg.Logger)               // go-redis' own lines too, throttled
	s := &Server{cfg: cfg, store: st, configs: overlay.NewEffective(set)}
	s.configArrived.Store(cfg.ConfigSource == nil)
	s.openRuntimeLimits()
	s.tel, err = telemetry.New(telemetry.Options{Configs: s.configs.Load, TracerProvider: cfg.TracerProvider, Logger: cfg.Logger})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	s.limiter = limiter.New(s.configs.Load, st.Scripter, cfg.KeyPrefix)
	s.limiter.SetCounterLayout(cfg.CounterLayout)
	s.limiter.SetReservationGrace(cfg.ReservationGrace)
	s.limiter.SetPing(st.Ping) // judges whose a short deadline's failure is (limiter/blame.go)
	s.limiter.SetBounds(cfg.Bounds)
	s.traffic = traffic.NewRecorder(st.Client, cfg.KeyPrefix)
	s.limiter.SetObserver(observers{s.tel, s.traffic})
	s.limiter.SetQuotaMode(cfg.QuotaMode)
	s.limiter.SetShadowMode(cfg.ShadowMode)
	if err := s.listen(); err != nil {
		_ = st.Close()
		_ = s.tel.Shutdown(context.Background())
		return nil, err
	}
	if cfg.Leases == config.LeaseAuto { // last: its sweeper stops in Close
		if err := s.limiter.EnableLeases(limiter.LeaseConfig{}); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// streamWorkers is how many goroutines serve calls. Reused, their stacks have
// already grown to what a decision needs: a goroutine per call (grpc-go's
// default) grew and copied its stack on every call, 19% of a leased
// decision's CPU. A call that finds every worker busy still gets a goroutine
// of its own, so the number bounds nothing.
func streamWorkers() uint32 { return uint32(32 * runtime.GOMAXPROCS(0)) }

func (s *Server) listen() (err error) {
	malformed := grpcapi.NewMalformed() // a request that does not decode is InvalidArgument, not Internal
	interceptors := []grpc.UnaryServerInterceptor{s.tel.UnaryServerInterceptor, malformed.UnaryInterceptor}
	if auth := s.cfg.auth(); auth.Enabled() {
		interceptors = append(interceptors, auth.UnaryInterceptor)
	}
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(interceptors...), grpc.MaxRecvMsgSize(httpapi.MaxBodyBytes),
		grpc.ForceServerCodecV2(malformed.Codec()), grpc.ChainStreamInterceptor(malformed.StreamInterceptor),
		grpc.NumStreamWorkers(streamWorkers())}
	if s.cfg.TLSCertFile != "" { // the listener speaks TLS; calls see the client certificate
		opts = append(opts, grpc.Creds(tlsconf.PeerCredentials()))
	}
	if h := s.tel.StatsHandler(); h != nil { // a span per call, when tracing
		opts = append(opts, grpc.StatsHandler(h))
	}
	s.grpc = grpc.NewServer(opts...)
	defer func() {
		if err != nil {
			s.grpc.Stop() // its stream workers are running already
		}
	}()
	sluicev1.RegisterRateLimitServiceServer(s.grpc, grpcapi.NewSluice(s.limiter))
	rlsv3.RegisterRateLimitServiceServer(s.grpc, grpcapi.NewEnvoy(s.limiter, grpcapi.EnvoyOptions{
		Headers: s.cfg.EnvoyResponseHeaders, HeaderNames: s.cfg.EnvoyHeaderNames, DynamicMetadata: s.cfg.EnvoyDynamicMetadata,
	}))
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.ready = newReadiness(func(ctx context.Context) error {
		err := s.store.Ping(ctx) // every master of a cluster
		if err == nil {
			// A scripted write, as calls make: PING answers while Redis
			// refuses every script (OOM). Its success closes the breaker.
			err = s.limiter.Probe(ctx)
		}
		if err == nil {
			err = s.runtimeLimitsLoaded(ctx)
		}
		return errors.Join(s.configPending(), err)
	}, s.health)

	if err := s.bind(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.closeListeners()
			if s.selfConn != nil {
				_ = s.selfConn.Close()
			}
		}
	}()
	s.selfLis = bufconn.Listen(1 << 20)
	s.selfConn, err = grpc.NewClient("passthrough:///sluice",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.selfLis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("grpc self connection: %w", err)
	}
	handler, err := httpapi.Handler(context.Background(), httpapi.Options{
		Conn: s.selfConn, Ready: s.ready.ready, Metrics: s.tel.MetricsHandler(), Auth: s.cfg.auth(),
	})
	if err != nil {
		return err
	}
	s.http = newHTTPServer(handler, s.cfg.Logger)
	if err := s.buildAdmin(); err != nil {
		return err
	}
	if s.opsLis != nil {
		s.ops = newHTTPServer(httpapi.OpsHandler(s.ready.ready, s.tel.MetricsHandler()), s.cfg.Logger)
	}
	return nil
}

// bind opens the ports: gRPC and HTTP, over TLS when a certificate is
// configured, and the health port, when there is one, always plain. On failure
// it closes what it had opened.
func (s *Server) bind() (err error) {
	var certs *tlsconf.Reloader
	if s.cfg.TLSCertFile != "" {
		certs, err = tlsconf.New(tlsconf.Files{Cert: s.cfg.TLSCertFile, Key: s.cfg.TLSKeyFile, ClientCA: s.cfg.TLSClientCAFile})
		if err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			s.closeListeners()
		}
	}()
	if s.grpcLis, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("grpc listen %s: %w", s.cfg.GRPCAddr, err)
	}
	if s.httpLis, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("http listen %s: %w", s.cfg.HTTPAddr, err)
	}
	if s.cfg.HealthAddr != "" {
		if s.opsLis, err = net.Listen("tcp", s.cfg.HealthAddr); err != nil {
			return fmt.Errorf("health listen %s: %w", s.cfg.HealthAddr, err)
		}
	}
	if certs != nil {
		s.grpcLis = tls.NewListener(s.grpcLis, certs.ServerConfig("h2"))
		s.httpLis = tls.NewListener(s.httpLis, certs.ServerConfig("http/1.1"))
	}
	return s.bindAdmin(certs)
}

// closeListeners closes every listener opened so far.
func (s *Server) closeListeners() {
	for _, l := range []net.Listener{s.grpcLis, s.httpLis, s.opsLis} {
		if l != nil {
			_ = l.Close()
		}
	}
	if s.selfLis != nil {
		_ = s.selfLis.Close()
	}
	_ = s.closeAdmin()
}

// GRPCAddr is the bound gRPC address (useful with port 0).
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address (useful with port 0).
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// HealthAddr is the bound address of the plain-HTTP health port, or "" when
// Config.HealthAddr is not set.
func (s *Server) HealthAddr() string {
	if s.opsLis == nil {
		return ""
	}
	return s.opsLis.Addr().String()
}

// Embedded reports whether the counters live in the in-process store.
func (s *Server) Embedded() bool { return s.store.Embedded }

// Run serves until ctx is done, then stops taking calls, lets the calls in
// flight finish (up to DrainTimeout) and releases everything. It returns nil
// after a clean drain.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.Logger
	if s.store.Embedded {
		log.Warn("no --redis given: counting in the embedded in-memory store (one node, lost on restart); use --redis for production")
	}
	if err := s.limiter.Load(ctx); err != nil {
		log.Warn("redis not reachable at start; serving unready until it answers", "err", err)
	}
	s.loadRuntimeLimits(ctx)
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	s.ready.probe(ctx, s.cfg.ReadinessInterval)
	wg.Go(func() { s.ready.run(bg, s.cfg.ReadinessInterval) })
	wg.Go(func() { s.watcher.Run(bg) })
	wg.Go(func() { s.traffic.Run(bg) })
	wg.Go(func() { s.watchConfig(bg) })

	errc := make(chan error, 4)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() { _ = s.grpc.Serve(s.selfLis) }() // ends with the server's GracefulStop
	go func() { errc <- s.http.Serve(s.httpLis) }()
	if s.ops != nil {
		go func() { errc <- s.ops.Serve(s.opsLis) }()
	}
	s.serveAdmin(bg, errc)
	log.Info("sluice serving", s.startupAttrs()...)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	stopBG()
	wg.Wait()
	drainErr := s.drain()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return serveErr
	}
	return drainErr
}

// drain stops taking calls and waits for those in flight.
func (s *Server) drain() error {
	s.cfg.Logger.Info("draining", "timeout", s.cfg.DrainTimeout)
	s.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	httpErr := errors.Join(shutdownHTTP(ctx, s.http, "http", s.cfg.Logger), s.shutdownAdmin(ctx))
	if s.ops != nil {
		defer func() { _ = s.ops.Close() }() // probes get answers until the drain ends
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		<-stopped
	}
	return errors.Join(httpErr, s.Close())
}

// leaseReturnTimeout bounds giving back this replica's quota leases at Close.
const leaseReturnTimeout = 2 * time.Second

// Close returns this replica's quota leases and releases the store and
// connections; Run calls it when it returns. Call it yourself only for a
// Server whose Run never started.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closeListeners()
		ctx, cancel := context.WithTimeout(context.Background(), leaseReturnTimeout)
		defer cancel()
		s.grpc.Stop() // after Run's GracefulStop a no-op; without Run it ends the stream workers
		err = errors.Join(s.selfConn.Close(), s.limiter.Close(ctx), s.store.Close(), s.tel.Shutdown(context.Background()))
	})
	return err
}
