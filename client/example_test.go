package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sluice-rl/sluice/client"
)

// Example puts Sluice in front of a backend: the third call in the window
// is over the cap of 2, so it gets the 900801 fault and never reaches the
// backend. (A stand-in Sluice runs here; point client.New at a real one.)
func Example() {
	addr, stop, err := serveFake(&fakeSluice{limit: 2})
	if err != nil {
		panic(err)
	}
	defer stop()

	c, err := client.New(addr, client.WithFailureMode(client.FailClosed), client.WithTimeout(time.Second))
	if err != nil {
		panic(err)
	}
	defer c.Close(context.Background())

	guard, err := c.Middleware(client.MiddlewareConfig{Domain: "apim", API: "PizzaShackAPI", Version: "1.0.0"})
	if err != nil {
		panic(err)
	}
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pizza")
	})
	gateway := httptest.NewServer(guard(backend))
	defer gateway.Close()

	for range 3 {
		resp, err := http.Get(gateway.URL + "/menu")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("RateLimit-Remaining"), resp.Header.Get("Retry-After"), string(body))
	}
	// Output:
	// 200 1  pizza
	// 200 0  pizza
	// 503 0 42 {"fault":{"code":900801,"message":"API Limit Reached","description":"API not accepting requests"}}
}
