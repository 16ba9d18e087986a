package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// countingService answers every call OK and counts the calls that reached
// it: what the HTTP side passed on.
type countingService struct {
	sluicev1.UnimplementedRateLimitServiceServer
	calls atomic.Int64
}

func (s *countingService) ShouldRateLimit(context.Context, *sluicev1.ShouldRateLimitRequest) (*sluicev1.ShouldRateLimitResponse, error) {
	s.calls.Add(1)
	return &sluicev1.ShouldRateLimitResponse{OverallCode: sluicev1.Code_OK}, nil
}

type envoyCounting struct {
	rlsv3.UnimplementedRateLimitServiceServer
	calls *atomic.Int64
}

func (s envoyCounting) ShouldRateLimit(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	s.calls.Add(1)
	return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}, nil
}

// fuzzHandler is Handler in front of countingService, over an in-process
// gRPC connection.
func fuzzHandler(f *testing.F) (http.Handler, *countingService) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	svc := &countingService{}
	sluicev1.RegisterRateLimitServiceServer(srv, svc)
	rlsv3.RegisterRateLimitServiceServer(srv, envoyCounting{calls: &svc.calls})
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///fuzz",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = conn.Close(); srv.Stop() })
	h, err := Handler(context.Background(), Options{Conn: conn, Ready: func(context.Context) error { return nil }})
	if err != nil {
		f.Fatal(err)
	}
	return h, svc
}

// oneJSONValue reports whether body is exactly one JSON value with nothing
// but white space around it.
func oneJSONValue(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return false
	}
	rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")
	return len(rest) == 0
}

// FuzzJSONHandlers posts any body to /v1/ratelimit:check and to /json. A
// body that is not exactly one JSON value (or empty: grpc-gateway's empty
// request, whose missing fields the limiter names) must be answered 4xx
// without a call reaching the service; nothing is ever answered 5xx (the service
// behind always answers), and a 200 is one call.
func FuzzJSONHandlers(f *testing.F) {
	h, svc := fuzzHandler(f)
	for _, seed := range []string{
		`{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"x"}]}]}`,
		`{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"x"}]}]} this is not json`,
		`{"domain":"d","hits_addend":"5"}{}`,
		`{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"limit":{"requests_per_unit":5,"unit":"SECOND"}}]}`,
		`{"domain":"d","hitsAddend":1,"descriptors":[{"entries":[{"key":"k","value":"v"}]}]}`,
		` {} `, `[]`, `null`, `"x"`, `{"domain":`, "{\"domain\":\"\xff\"}", ``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/ratelimit:check", "/json"} {
			before := svc.calls.Load()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(body)))
			calls := svc.calls.Load() - before
			switch {
			case rec.Code >= 500:
				t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body)
			case rec.Code == http.StatusOK && calls != 1:
				t.Fatalf("%s %q: 200 after %d calls", path, body, calls)
			case rec.Code != http.StatusOK && calls != 0:
				t.Fatalf("%s %q: %d, but %d calls reached the service", path, body, rec.Code, calls)
			case calls > 0 && !oneJSONValue([]byte(body)) && strings.TrimSpace(body) != "":
				t.Fatalf("%s %q is not one JSON value, yet it made a call", path, body)
			}
		}
	})
}
