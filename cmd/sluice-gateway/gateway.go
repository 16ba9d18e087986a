package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/sluice-rl/sluice/client"
	"github.com/sluice-rl/sluice/client/llm"
)

// gateway routes calls by context path, checks their API key, asks Sluice
// and proxies what is allowed to the key's environment.
type gateway struct {
	routes    []*route // longest context first
	keys      *keyring
	log       *slog.Logger
	transport *http.Transport
}

// route is one API: its guarded reverse proxy.
type route struct {
	api       API
	upstreams map[string]*url.URL // by environment
	errors    errorWriter
	handler   http.Handler
}

func newGateway(cfg *Config, c *client.Client, log *slog.Logger) (*gateway, error) {
	transport := newTransport()
	g := &gateway{keys: newKeyring(cfg.Keys), log: log, transport: transport}
	for _, api := range cfg.APIs {
		rt := &route{api: api, upstreams: map[string]*url.URL{}, errors: errorWriter{format: api.ErrorFormat, refusalStatus: api.RefusalStatus}}
		for env, raw := range map[string]string{client.Production: api.Production, client.Sandbox: api.Sandbox} {
			if raw == "" {
				continue
			}
			u, err := url.Parse(raw)
			if err != nil {
				return nil, err
			}
			rt.upstreams[env] = u
		}
		mc := client.MiddlewareConfig{Domain: cfg.Domain, Descriptors: rt.descriptors, Logger: log, Refuse: rt.errors.refuse}
		if api.Type == "ai" {
			enc, _ := llm.ParseEncoding(api.Encoding) // validated
			mc.Meter = &llm.Meter{DefaultCompletion: cfg.DefaultMaxTokens, Encoding: enc}
			if enc == llm.ByModel {
				enc = llm.O200kBase // today's models
			}
			llm.Warm(enc) // load the vocabulary now, not in the first call's check
		}
		guard, err := c.Middleware(mc)
		if err != nil {
			return nil, err
		}
		rt.handler = guard(rt.proxy(transport, log))
		g.routes = append(g.routes, rt)
	}
	sort.Slice(g.routes, func(i, j int) bool { return len(g.routes[i].api.Context) > len(g.routes[j].api.Context) })
	return g, nil
}

// ServeHTTP answers one call: 404 without an API, 401 without a valid key
// (before Sluice or the backend see it), else the API's guarded proxy.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := g.route(r.URL.Path)
	if rt == nil {
		writeFault(w, http.StatusNotFound, faultNoResource)
		return
	}
	key := presented(r)
	if key == "" {
		rt.errors.write(w, http.StatusUnauthorized, faultMissingKey, "invalid_request_error")
		return
	}
	k := g.keys.lookup(key)
	if k == nil {
		rt.errors.write(w, http.StatusUnauthorized, faultInvalidKey, "invalid_request_error")
		return
	}
	env := k.Type
	if rt.upstreams[env] == nil {
		rt.errors.write(w, http.StatusForbidden, faultNoEndpoint, "invalid_request_error")
		return
	}
	ctx := context.WithValue(client.WithEnvironment(r.Context(), env), keyContext{}, k)
	rt.handler.ServeHTTP(w, r.WithContext(ctx))
}

// keyContext marks a call's context with the *Key it presented.
type keyContext struct{}

// descriptors are the descriptors of a call: the backend cap [api,
// environment], and with per_consumer [api, environment, consumer=<key name
// or application>].
func (rt *route) descriptors(r *http.Request) []client.Descriptor {
	ds := client.APIDescriptors(rt.api.Name, rt.api.Version, client.EnvironmentFrom(r.Context()))
	k, _ := r.Context().Value(keyContext{}).(*Key)
	if k == nil || rt.api.PerConsumer == "" {
		return ds
	}
	consumer := k.Name
	if rt.api.PerConsumer == perApplication {
		consumer = k.Application
	}
	return append(ds, append(append(client.Descriptor{}, ds[0]...), client.Entry{Key: "consumer", Value: consumer}))
}

func (g *gateway) route(path string) *route {
	for _, rt := range g.routes {
		c := rt.api.Context
		if path == c || strings.HasPrefix(path, c+"/") {
			return rt
		}
	}
	return nil
}

// proxy forwards to the upstream of the call's environment, the context
// path cut off and the caller's credentials removed. Streams are flushed
// after every write.
func (rt *route) proxy(transport http.RoundTripper, log *slog.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := rt.upstreams[client.EnvironmentFrom(pr.In.Context())]
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, rt.api.Context)
			pr.Out.URL.RawPath = ""
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("apikey")
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the caller left
			}
			log.Warn("backend unreachable", "api", rt.api.Name, "path", r.URL.Path, "err", err)
			rt.errors.write(w, http.StatusBadGateway, faultNoBackend, "server_error")
		},
	}
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
