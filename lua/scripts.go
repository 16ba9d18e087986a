package lua

import (
	_ "embed"
)

// The scripts as Redis runs them: the layout they write counters in
// (Layout.prelude), then counters.lua, what they share, then their own body.
var (
	//go:embed counters.lua
	countersSource string
	//go:embed window.lua
	windowBody string
	//go:embed report.lua
	reportBody string
)

func windowSource(l Layout) string { return l.prelude() + countersSource + "\n" + windowBody }
func reportSource(l Layout) string { return l.prelude() + countersSource + "\n" + reportBody }
