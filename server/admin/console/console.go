// Package console is the admin web console: plain HTML, CSS and JavaScript
// embedded in the binary, served on the admin port. It loads nothing from
// anywhere else and calls only the admin API of the port that served it.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// contentSecurityPolicy lets the console load its own files and call its own
// port, and nothing else; no framing, no inline script.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console's files.
func Handler() http.Handler {
	static, _ := fs.Sub(files, "static") // static is embedded: it exists
	fileServer := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache") // a new binary's console at the next load
		fileServer.ServeHTTP(w, r)
	})
}
