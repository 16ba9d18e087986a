package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/server/admin/console"
)

// TestConsoleServesItsOwnFilesOnly loads the console's page and every file
// it names, and checks that nothing comes from anywhere else: no URL of
// another host in any file, and a policy that forbids it.
func TestConsoleServesItsOwnFilesOnly(t *testing.T) {
	srv := httptest.NewServer(console.Handler())
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, page := get("/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	files := map[string]string{"/": page}
	for _, ref := range refs {
		name := ref[1]
		if strings.HasPrefix(name, "data:") {
			continue
		}
		if strings.Contains(name, "//") {
			t.Errorf("the page loads %s from elsewhere", name)
			continue
		}
		resp, body := get("/" + strings.TrimPrefix(name, "/"))
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", name, resp.StatusCode, len(body))
		}
		files[name] = body
	}
	for _, want := range []string{"console.js", "console.css"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the page does not load %s", want)
		}
	}
	url := regexp.MustCompile(`https?://[^\s"')]+`)
	for name, body := range files {
		for _, u := range url.FindAllString(body, -1) {
			if u != "http://www.w3.org/2000/svg" { // a namespace name, never fetched
				t.Errorf("%s names %s", name, u)
			}
		}
	}
}
