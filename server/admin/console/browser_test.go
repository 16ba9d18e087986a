package console_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

// chromiumPath is Debian's chromium, which .ci/run installs when missing.
const chromiumPath = "/usr/bin/chromium"

var consoleScreenshot = flag.String("console-screenshot", "",
	"also write the console's 1280 px screenshot to this file (make it docs/img/console.png to refresh the README's)")

// browserConfig has a plain API and an AI API, each with production and
// sandbox caps.
const browserConfig = `
domain: apim
descriptors:
  - key: api
    value: ChatAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {window: 1m, requests: 600}
        token_limit: {window: 1m, total_tokens: 20000, completion_tokens: 8000}
      - key: environment
        value: sandbox
        rate_limit: {window: 1m, requests: 60}
        token_limit: {window: 1m, total_tokens: 2000}
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {window: 1m, requests: 100}
      - key: environment
        value: sandbox
        rate_limit: {window: 1m, requests: 10}
`

// Admin tokens of the browser test: the publisher at the console, and a
// script that changes a cap underneath.
const (
	publisherToken = "publisher-secret-1"
	scriptToken    = "script-secret-1"
)

// startBrowser starts headless Chromium for the test, 1280 px wide. It fails
// the test, never skips it, when Chromium is missing, unless
// SLUICE_SKIP_BROWSER=1.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv("SLUICE_SKIP_BROWSER") == "1" {
		t.Skip("SLUICE_SKIP_BROWSER=1")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("this test needs Chromium at %s (apt-get install chromium; .ci/run does), or SLUICE_SKIP_BROWSER=1: %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 4*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	return browserCtx
}

// page drives the console in one tab.
type page struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots
}

// do runs steps; on a failure it saves a screenshot and fails the test.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.fail(what, err)
	}
}

func (p *page) fail(what string, err error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
		path := filepath.Join(p.dir, "failure.png")
		if os.WriteFile(path, png, 0o644) == nil {
			p.t.Logf("screenshot of the failure: %s", path)
		}
	}
	if text, terr := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); terr == nil {
		p.t.Logf("the page says:\n%s", text)
	}
	p.t.Fatalf("%s: %v", what, err)
}

// until waits (20 s at most) for a JavaScript expression to be true.
func (p *page) until(what, expr string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		p.fail("waiting until "+what, err)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail("evaluating "+expr, err)
	}
	return v
}

// screenshot saves the whole page as a PNG and returns its path.
func (p *page) screenshot(name string) string {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.fail("screenshot", err)
	}
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s (%d KB)", path, len(png)/1024)
	return path
}

// js quotes a string for JavaScript.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// textOf is a JavaScript expression: the text of the first match of sel.
func textOf(sel string) string {
	return `((document.querySelector(` + js(sel) + `) || {}).textContent || "")`
}

// script is a step that runs JavaScript, which must give true.
func script(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		ok, err := chromedp.Evaluate[bool](expr)(ctx, t)
		if err == nil && !ok {
			err = fmt.Errorf("%s: false", expr)
		}
		return chromedp.Void{}, err
	}
}

// sideways is a JavaScript expression: the tables of the page that do not
// fit their box and scroll sideways ("PizzaShackAPI:1.0.0 production",
// "audit"), comma-separated; empty when all fit. The browser hides scroll
// bars, so a screenshot shows such a table cut off, not scrolling.
const sideways = `Array.from(document.querySelectorAll(".scroll")).filter((s) => s.scrollWidth > s.clientWidth).map((s) => {
  const api = s.closest("[data-api]"), env = s.closest("[data-env]");
  return api ? api.dataset.api + " " + env.dataset.env : "audit";
}).join(", ")`

// tablesFit checks that no table scrolls sideways at the page's width.
func (p *page) tablesFit(width int) {
	p.t.Helper()
	if got := eval[string](p, sideways); got != "" {
		p.t.Errorf("at %d px these tables do not fit and scroll sideways: %s", width, got)
	}
}

// card is the CSS selector of an API's card.
func card(api string) string { return `article[data-api="` + api + `"]` }

// specify picks Specify for one part of an API's form ("production",
// "sandbox_tokens") and types the values of its fields.
func specify(api, part string, fields ...string) []chromedp.Action[chromedp.Void] {
	in := card(api) + ` .part[data-part="` + part + `"]`
	steps := []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(in + ` .mode[value=specify]`))}
	for i := 0; i+1 < len(fields); i += 2 {
		input := in + ` input[name="` + part + "." + fields[i] + `"]`
		steps = append(steps, script(`(document.querySelector(`+js(input)+`).value = "") === ""`))
		if fields[i+1] != "" {
			steps = append(steps, chromedp.SendKeys(chromedp.CSS(input), fields[i+1]))
		}
	}
	return steps
}

// TestConsoleInBrowser is the publisher at the console in headless
// Chromium, against a real Sluice on a real Redis: gives the admin token,
// finds an API, specifies production and sandbox caps and saves them (and an
// AI API's token caps), sees them enforced and the live usage and traffic
// move while a load runs, sees a conflict when a script changed the caps
// after the form was loaded, and a bad value named inline, with nothing
// applied either time; the audit trail is newest first; at 1280 px, tablet
// and phone width no table is cut off. Screenshots at 1280 px and phone size
// go to the test's artifact directory (go test -artifacts keeps them).
func TestConsoleInBrowser(t *testing.T) {
	ctx := startBrowser(t)
	rs := redistest.New(t)
	dir := t.TempDir()
	configPath := filepath.Join(dir, "limits.yaml")
	tokens := filepath.Join(dir, "admin-tokens")
	if err := os.WriteFile(configPath, []byte(browserConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte("publisher:"+publisherToken+"\nscript:"+scriptToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sluicetest.Start(t, server.Config{
		ConfigPath: configPath, RedisURL: rs.URL(), AdminAddr: "127.0.0.1:0", AdminTokenFile: tokens,
		ReloadInterval: 50 * time.Millisecond, ReadinessInterval: 50 * time.Millisecond,
	})
	sluicetest.WaitReady(t, http.DefaultClient, "http://"+s.HTTPAddr()+"/readyz", true)
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	decide := sluicev1.NewRateLimitServiceClient(conn)
	adminURL := "http://" + s.AdminAddr()

	p := &page{t: t, ctx: ctx, dir: t.ArtifactDir()}
	t.Logf("screenshots go to %s", p.dir)
	const pizza = "PizzaShackAPI:1.0.0"
	pz := card(pizza)

	// The port needs a token: the console asks for it.
	p.do("open the console", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(adminURL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token-form")))
	p.do("give the token", chromedp.SendKeys(chromedp.CSS("#token"), publisherToken), chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)))
	p.until("the API shows with its file caps",
		textOf(pz+` [data-env=sandbox] .source`)+`.startsWith("file") && `+textOf(pz+` [data-env=sandbox] td.cap`)+` === "10 requests / 1m"`)
	if got := eval[string](p, `sessionStorage.getItem("sluice.admin.token")`); got != publisherToken {
		t.Errorf("token in session storage: %q", got)
	}

	// Specify production and sandbox, and save.
	p.do("open the form", chromedp.Click(chromedp.CSS(pz+` button.edit`)))
	p.until("the form is loaded", textOf(pz+` .editing`)+` === "editing version 0.0"`)
	steps := append(specify(pizza, "production", "requests", "50", "window", "1m"), specify(pizza, "sandbox", "requests", "5", "window", "1m")...)
	p.do("specify the caps", steps...)
	p.do("save", chromedp.Click(chromedp.CSS(pz+` button.save`)))
	p.until("saved", textOf(pz+` .form-message.ok`)+`.startsWith("Saved")`)
	p.until("both environments show the runtime caps",
		textOf(pz+` [data-env=sandbox] .source`)+`.startsWith("runtime · by publisher") && `+textOf(pz+` [data-env=sandbox] td.cap`)+` === "5 requests / 1m" && `+
			textOf(pz+` [data-env=production] td.cap`)+` === "50 requests / 1m"`)
	if got := eval[string](p, `document.querySelector(`+js(pz+` [data-env=sandbox] .source`)+`).title`); got != "" {
		t.Errorf("the runtime source still has the file's tooltip %q", got)
	}

	// Enforced: the sixth sandbox call in a minute is refused.
	for i := range 6 {
		resp, err := decide.ShouldRateLimit(context.Background(), envRequest(pizza, "sandbox"))
		if want := i < 5; err != nil || (resp.GetOverallCode() == sluicev1.Code_OK) != want {
			t.Fatalf("sandbox call %d: %v %v, want admitted=%v", i+1, resp.GetOverallCode(), err, want)
		}
	}
	if lim := firstLimit(t, decide, pizza, "production"); lim != 50 {
		t.Errorf("production decides with %d, want the console's 50", lim)
	}

	// An AI API: token caps in the same form.
	const chat = "ChatAPI:1.0.0"
	p.do("open the AI API's form", chromedp.Click(chromedp.CSS(card(chat)+` button.edit`)))
	p.until("the AI API's form is loaded", textOf(card(chat)+` .editing`)+` === "editing version 0.0" && document.querySelector(`+js(card(chat)+` .cap-tokens`)+`).checked`)
	p.do("specify production tokens", specify(chat, "production_tokens", "total_tokens", "50000", "prompt_tokens", "30000", "completion_tokens", "", "window", "1m")...)
	p.do("save the tokens", chromedp.Click(chromedp.CSS(card(chat)+` button.save`)))
	p.until("the token caps are saved", textOf(card(chat)+` .form-message.ok`)+`.startsWith("Saved") && `+
		textOf(card(chat)+` [data-env=production] tr[data-kind=TOTAL_TOKENS] td.cap`)+` === "50,000 total tokens / 1m"`)
	if got := throughput(t, adminURL, chat); get(got, "production_tokens", "prompt_tokens") != "30000" || get(got, "production_tokens", "completion_tokens") != nil ||
		get(got, "production", "requests") != "600" || get(got, "sandbox", "source") != "file" || get(got, "sandbox_tokens", "source") != "file" {
		t.Errorf("the AI API after the save: %v", got)
	}
	p.do("close the AI API's form", chromedp.Click(chromedp.CSS(card(chat)+` button.cancel`)))

	// Live usage moves while a load runs.
	used := func() int {
		return eval[int](p, `Number(`+textOf(pz+` [data-env=production] td.used`)+`.replace(/,/g, ""))`)
	}
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() { // 10 calls a second, at most 45 (under the cap of 50)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 45 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := decide.ShouldRateLimit(context.Background(), envRequest(pizza, "production")); err != nil {
				t.Errorf("load: %v", err)
				return
			}
		}
	})
	p.until("usage shows the load", textOf(pz+` [data-env=production] td.used`)+` !== "0"`)
	first := used()
	p.until("usage moves", fmt.Sprintf(`Number(%s.replace(/,/g, "")) > %d`, textOf(pz+` [data-env=production] td.used`), first))
	p.until("the chart shows admitted calls", `Number(document.querySelector(`+js(pz+` [data-env=production]`)+`).dataset.admitted) > 0`)
	p.until("the chart shows the refused sandbox call", `Number(document.querySelector(`+js(pz+` [data-env=sandbox]`)+`).dataset.refused) >= 1`)
	if n := eval[int](p, `document.querySelectorAll(`+js(pz+` [data-env=production] svg.chart rect.admitted`)+`).length`); n == 0 {
		t.Error("the production chart has no bars")
	}
	p.tablesFit(1280)
	p.screenshot("console-1280-live.png")
	close(stop)
	load.Wait()
	if got := used(); got < first {
		t.Errorf("production used went from %d to %d", first, got)
	}

	// A conflict: the script changes the sandbox cap after the form loaded.
	// The caps load slowly this time, as on a busy network: the form must
	// not look loaded, nor take typing, before they arrive.
	p.do("slow down loading the caps", script(`(() => {
		const fetch = window.fetch;
		window.fetch = (url, init) => (init || {}).method === "GET" && String(url).endsWith("/backend-throughput")
			? new Promise((done) => setTimeout(done, 1500)).then(() => fetch(url, init))
			: fetch(url, init);
		return true;
	})()`))
	p.do("close and reopen the form", chromedp.Click(chromedp.CSS(pz+` button.cancel`)), chromedp.Click(chromedp.CSS(pz+` button.edit`)))
	if !eval[bool](p, `document.querySelector(`+js(pz+` form.throughput`)+`).inert && `+textOf(pz+` .editing`)+` === ""`) {
		t.Error("while its caps load, the form takes typing or shows a version")
	}
	p.screenshot("console-1280-loading.png")
	p.until("the form has the saved values", textOf(pz+` .editing`)+` !== "editing version 0.0" && `+textOf(pz+` .editing`)+`.startsWith("editing version") && `+
		`document.querySelector(`+js(pz+` input[name="sandbox.requests"]`)+`).value === "5"`)
	loaded := strings.TrimPrefix(eval[string](p, textOf(pz+` .editing`)), "editing version ")
	p.do("type a new sandbox cap", specify(pizza, "sandbox", "requests", "7")...)
	p.do("let the live view refresh", chromedp.Sleep(2500*time.Millisecond))
	if got := eval[string](p, `document.activeElement.name || ""`); got != "sandbox.requests" {
		t.Errorf("after the refreshes the focus is on %q, not on the input being typed in", got)
	}
	if got := eval[string](p, `document.querySelector(`+js(pz+` input[name="sandbox.requests"]`)+`).value`); got != "7" {
		t.Errorf("the refreshes changed the typed value to %q", got)
	}
	if code, body := adminCall(t, "PUT", adminURL+throughputPath(pizza), scriptToken, `{"sandbox": {"requests": 8, "window": "1m"}}`); code != 200 {
		t.Fatalf("the script's PUT: %d %s", code, body)
	}
	p.do("save over it, with Enter in the input", chromedp.SendKeys(chromedp.CSS(pz+` input[name="sandbox.requests"]`), kb.Enter))
	p.until("the conflict shows", textOf(pz+` .form-message.conflict`)+`.startsWith("Conflict")`)
	if !eval[bool](p, `!document.querySelector(`+js(pz+` button.reload`)+`).hidden`) {
		t.Error("no way to load the current values after a conflict")
	}
	now := throughput(t, adminURL, pizza)
	if get(now, "sandbox", "requests") != "8" || get(now, "production", "requests") != "50" {
		t.Errorf("after the conflict the caps are %v, want the script's 8 and the console's 50", now)
	}
	if lim := firstLimit(t, decide, pizza, "sandbox"); lim != 8 {
		t.Errorf("after the conflict sandbox decides with %d, want the script's 8", lim)
	}
	p.until("the audit trail has the script's change first", textOf(`#audit-rows tr:first-child td.who`)+` === "script" && `+
		textOf(`#audit-rows tr:first-child td.new`)+` === "8 requests / 1m" && `+textOf(`#audit-rows tr:nth-child(2) td.who`)+` === "publisher"`)
	form := p.screenshot("console-1280-conflict.png")

	// A bad value: named inline, nothing applied.
	p.do("load the current values", chromedp.Click(chromedp.CSS(pz+` button.reload`)))
	p.until("the form has the script's value", `document.querySelector(`+js(pz+` input[name="sandbox.requests"]`)+`).value === "8" && `+
		textOf(pz+` .editing`)+` !== "editing version `+loaded+`"`)
	version := get(throughput(t, adminURL, pizza), "version")
	p.do("type a bad cap", append(specify(pizza, "production", "requests", "60"), specify(pizza, "sandbox", "requests", "-1")...)...)
	p.do("save it", chromedp.Click(chromedp.CSS(pz+` button.save`)))
	p.until("the bad field is named", textOf(pz+` .form-message.invalid`)+`.includes("sandbox.requests: must not be negative")`)
	if got := eval[string](p, `document.querySelector(`+js(pz+` input[name="sandbox.requests"]`)+`).getAttribute("aria-invalid") || ""`); got != "true" {
		t.Errorf("the sandbox requests input is not marked invalid (%q)", got)
	}
	if now := throughput(t, adminURL, pizza); get(now, "version") != version || get(now, "production", "requests") != "50" {
		t.Errorf("a refused save changed the caps: %v, was version %v", now, version)
	}

	// A tablet: the two environments side by side or one above the other,
	// their tables fit.
	p.do("tablet size", chromedp.EmulateViewport(820, 1180))
	p.tablesFit(820)

	// A phone.
	p.do("phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	p.until("one column", `document.querySelector(`+js(pz+` .envs`)+`).getBoundingClientRect().width < 390 && `+
		`document.querySelector(`+js(pz+` [data-env=sandbox]`)+`).getBoundingClientRect().top > document.querySelector(`+js(pz+` [data-env=production]`)+`).getBoundingClientRect().bottom`)
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the phone page is %d px wide: it scrolls sideways", w)
	}
	p.tablesFit(390)
	p.screenshot("console-phone.png")

	if *consoleScreenshot != "" {
		png, err := os.ReadFile(form)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*consoleScreenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", *consoleScreenshot)
	}
}

func envRequest(api, env string) *sluicev1.ShouldRateLimitRequest {
	return &sluicev1.ShouldRateLimitRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{
		{Key: "api", Value: api}, {Key: "environment", Value: env},
	}}}}
}

// firstLimit is the first limit an environment is decided with.
func firstLimit(t *testing.T, c sluicev1.RateLimitServiceClient, api, env string) uint64 {
	t.Helper()
	resp, err := c.GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: envRequest(api, env).Descriptors})
	if err != nil || len(resp.Descriptors[0].Limits) == 0 {
		t.Fatalf("GetUsage %s %s: %v %v", api, env, resp, err)
	}
	return resp.Descriptors[0].Limits[0].Limit.RequestsPerUnit
}

func throughputPath(api string) string { return "/v1/domains/apim/apis/" + api + "/backend-throughput" }

// throughput is an API's backend throughput, read with the script's token.
func throughput(t *testing.T, adminURL, api string) map[string]any {
	t.Helper()
	code, body := adminCall(t, "GET", adminURL+throughputPath(api), scriptToken, "")
	var out map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("GET %s: %d %s", api, code, body)
	}
	return out
}

// adminCall calls the admin API with a token, as a script would.
func adminCall(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get walks a decoded JSON object.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}
