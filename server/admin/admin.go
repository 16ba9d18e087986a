// Package admin serves sluice.v1.AdminService — runtime limits, the API
// manager's backend-throughput view with live usage, the audit trail and the
// config export — as JSON through grpc-gateway, and the web console, on the
// admin port only (never on the data-plane ports).
//
// # How it works
//
// Handler authenticates every call (Auth: bearer tokens from files, a
// read-only kind among them; or nothing, then the client certificate names
// the caller), then hands it to grpc-gateway, which calls the Service over
// an in-process gRPC connection; who called and from where travel as
// metadata that only that gateway sets. Reads first catch this replica up
// with Redis (Options.Refresh: one GET of the revision when nothing changed),
// so an answer never shows less than what was already written. Writes go
// through overlay.Store.Write — checked by the config code, version-checked
// and applied all or none in one script — and then Refresh, so the answer,
// and this replica's decisions, already include them; other replicas apply
// them on the published revision.
package admin

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
	"github.com/sluice-rl/sluice/server/overlay"
	"github.com/sluice-rl/sluice/server/traffic"
)

// Options is what the admin service needs from the server.
type Options struct {
	// Configs is the effective config and what it is made of. (Required)
	Configs *overlay.Effective
	// Store holds the runtime limits. (Required)
	Store *overlay.Store
	// Refresh applies the store's latest runtime limits on this replica
	// now (overlay.Watcher.Refresh). (Required)
	Refresh func(context.Context) error
	// Usage peeks at counters without charging (limiter.Limiter.Usage).
	// (Required)
	Usage func(context.Context, *limiter.Request) ([]limiter.DescriptorUsage, error)
	// Traffic reads every replica's calls per second. (Optional: no
	// series without it)
	Traffic *traffic.Recorder
	// Now is the clock for traffic series. (Optional, default time.Now)
	Now func() time.Time
	// Logger gets a line per change, for audit trails kept longer than the
	// one in Redis. (Optional, default slog.Default())
	Logger *slog.Logger
}

// Service implements sluice.v1.AdminService.
type Service struct {
	sluicev1.UnimplementedAdminServiceServer
	o Options
}

// NewService returns the admin service.
func NewService(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{o: o}
}

// The metadata that carries the caller from Handler to the Service. Handler
// never forwards a client's own headers under these names.
const (
	whoKey    = "x-sluice-admin-who"
	remoteKey = "x-sluice-admin-remote"
)

// actor is who called, for the audit trail.
func actor(ctx context.Context) overlay.Actor {
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	a := overlay.Actor{Who: first(whoKey), Remote: first(remoteKey)}
	if a.Who == "" {
		a.Who = "anonymous"
	}
	return a
}

// ifMatch returns the version of an If-Match header, else the one in the
// body: "W/" and quotes are dropped, "*" means any.
func ifMatch(ctx context.Context, body string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	vs := md.Get("if-match")
	if len(vs) == 0 {
		return body
	}
	v := strings.Trim(strings.TrimPrefix(strings.TrimSpace(vs[0]), "W/"), `"`)
	if v == "*" {
		return ""
	}
	return v
}

// setETag sends the version as the HTTP ETag.
func setETag(ctx context.Context, version string) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("etag", strconv.Quote(version)))
}

// write applies changes and logs them.
func (s *Service) write(ctx context.Context, changes []overlay.Change) (overlay.Written, error) {
	who := actor(ctx)
	w, err := s.o.Store.Write(ctx, who, changes)
	if err != nil || !w.Changed {
		return w, err
	}
	for _, c := range changes {
		if c.CheckOnly {
			continue
		}
		action := "put"
		if c.Limit == nil {
			action = "delete"
		}
		s.o.Logger.Info("runtime limit changed", "action", action, "domain", c.Domain, "path", fmt.Sprint(c.Path),
			"version", w.Revision, "who", who.Who, "remote", who.Remote)
	}
	return w, nil
}

// read catches this replica up with the runtime limits in Redis and returns
// its state. When Redis does not answer, the state applied before is
// still the one this replica enforces, so it is what a read shows.
func (s *Service) read(ctx context.Context) *overlay.State {
	_ = s.o.Refresh(ctx)
	return s.o.Configs.State()
}

func domainOf(st *overlay.State, name string) (*config.Domain, error) {
	if name == "" {
		return nil, badField("domain", "required")
	}
	d, ok := st.Set.Domain(name)
	if !ok {
		return nil, notFound("domain %q: not in the config or the runtime limits", name)
	}
	return d, nil
}

// parsePath reads "key=value" strings, split at the first "=".
func parsePath(in []string) ([]config.Entry, error) {
	if len(in) == 0 {
		return nil, badField("path", "required: give the descriptor path as key=value entries, outermost first")
	}
	out := make([]config.Entry, len(in))
	for i, s := range in {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, badField(fmt.Sprintf("path[%d]", i), "want key=value, not %q", s)
		}
		out[i] = config.Entry{Key: k, Value: v}
	}
	return out, nil
}

func entriesOf(in []*sluicev1.Entry) []config.Entry {
	out := make([]config.Entry, len(in))
	for i, e := range in {
		out[i] = config.Entry{Key: e.GetKey(), Value: e.GetValue()}
	}
	return out
}
