package lua

import (
	_ "embed"
)

// The scripts as Redis runs them: counters.lua, what they share, in front of
// each.
var (
	//go:embed counters.lua
	countersSource string
	//go:embed window.lua
	windowBody string
	//go:embed report.lua
	reportBody string

	windowSource = countersSource + "\n" + windowBody
	reportSource = countersSource + "\n" + reportBody
)
