// Package console is the admin web console: plain HTML, CSS and JavaScript
// embedded in the binary, served on the admin port.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the console's files.
func Handler() http.Handler {
	static, _ := fs.Sub(files, "static") // static is embedded: it exists
	return http.FileServerFS(static)
}
