// Package lua holds Sluice's Redis scripts, embedded from the .lua files beside
// this one: window.lua (check and charge sliding-window counters, reserve
// tokens), report.lua (reconcile a reservation) and runtime.lua (write runtime
// limits, versioned and audited), each behind one typed Go wrapper that validates its input and the shape of the script's reply.
// counters.lua, what both share, is put in front of each (scripts.go). Both
// scripts run a batch of calls in one script call; Merger folds calls sent
// together into such a batch.
package lua
