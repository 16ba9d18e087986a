package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/admin"
	"github.com/sluice-rl/sluice/server/admin/console"
	"github.com/sluice-rl/sluice/server/tlsconf"
)

// adminPort is the admin port: the admin API and the console, on a listener
// of their own, over an in-process gRPC server that only its gateway reaches.
type adminPort struct {
	lis  net.Listener
	auth *admin.Auth
	grpc *grpc.Server
	self *bufconn.Listener
	conn *grpc.ClientConn
	http *http.Server
}

// bindAdmin opens the admin port, over TLS when certs is not nil, and loads
// the admin tokens; nothing when Config.AdminAddr is empty.
func (s *Server) bindAdmin(certs *tlsconf.Reloader) error {
	if s.cfg.AdminAddr == "" {
		return nil
	}
	auth, err := admin.NewAuth(s.cfg.AdminTokenFile, s.cfg.AdminReadTokenFile)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", s.cfg.AdminAddr, err)
	}
	if certs != nil {
		lis = tls.NewListener(lis, certs.ServerConfig("http/1.1"))
	}
	s.admin = &adminPort{lis: lis, auth: auth}
	return nil
}

// buildAdmin sets up the admin API behind the bound admin port.
func (s *Server) buildAdmin() error {
	a := s.admin
	if a == nil {
		return nil
	}
	a.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(s.tel.UnaryServerInterceptor))
	sluicev1.RegisterAdminServiceServer(a.grpc, admin.NewService(admin.Options{
		Configs: s.configs, Store: s.runtime, Refresh: s.watcher.Refresh, Usage: s.limiter.Usage, Traffic: s.traffic,
		Logger: s.cfg.Logger,
	}))
	a.self = bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///sluice-admin",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return a.self.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("admin grpc self connection: %w", err)
	}
	a.conn = conn
	handler, err := admin.Handler(context.Background(), admin.HandlerOptions{Conn: conn, Auth: a.auth, Console: console.Handler()})
	if err != nil {
		return err
	}
	a.http = newHTTPServer(handler, s.cfg.Logger)
	return nil
}

// serveAdmin serves the admin port until it is shut down, and rereads the
// token files until bg is done.
func (s *Server) serveAdmin(bg context.Context, errc chan<- error) {
	a := s.admin
	if a == nil {
		return
	}
	go func() { _ = a.grpc.Serve(a.self) }()
	go func() { errc <- a.http.Serve(a.lis) }()
	go a.auth.Watch(bg, time.Second, func(err error) {
		s.cfg.Logger.Error("admin tokens: keeping the previous ones", "err", err)
	})
	if s.store.Embedded {
		s.cfg.Logger.Warn("runtime limits and their audit trail live in the embedded in-memory store: lost on restart; use --redis to keep them")
	}
	if !a.auth.Enabled() && !isLoopback(a.lis.Addr()) {
		s.cfg.Logger.Warn("the admin port is reachable beyond loopback without admin tokens: anyone who reaches it can change limits; set --admin-token-file", "admin", a.lis.Addr().String())
	}
}

// shutdownAdmin stops taking admin calls and waits for those in flight.
func (s *Server) shutdownAdmin(ctx context.Context) error {
	if s.admin == nil {
		return nil
	}
	err := shutdownHTTP(ctx, s.admin.http, "admin", s.cfg.Logger)
	s.admin.grpc.Stop()
	return err
}

// closeAdmin releases what the admin port holds.
func (s *Server) closeAdmin() error {
	a := s.admin
	if a == nil {
		return nil
	}
	var errs []error
	if a.lis != nil {
		_ = a.lis.Close()
	}
	if a.self != nil {
		_ = a.self.Close()
	}
	if a.conn != nil {
		errs = append(errs, a.conn.Close())
	}
	return errors.Join(errs...)
}

// AdminAddr is the bound admin address, or "" when Config.AdminAddr is not
// set.
func (s *Server) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.lis.Addr().String()
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
