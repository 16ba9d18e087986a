package server_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	"github.com/sluice-rl/sluice/internal/syncbuf"
	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server"
)

// servingRecord starts a server with cfg (on the embedded store) and returns
// its "sluice serving" record.
func servingRecord(t *testing.T, cfg server.Config) map[string]any {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.ConfigPath = writeConfig(t, apimConfig)
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	sluicetest.Start(t, cfg)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "sluice serving" {
				return rec
			}
		}
	}
	t.Fatalf("no \"sluice serving\" record:\n%s", logs.String())
	return nil
}

// TestServingRecordNamesTheGlobalModes: a server in shadow mode refuses
// nothing, one in quota mode refuses only when every descriptor is over;
// the start record says so, and says nothing of them when they are off.
func TestServingRecordNamesTheGlobalModes(t *testing.T) {
	on := servingRecord(t, server.Config{ShadowMode: true, QuotaMode: true})
	if on["shadow_mode"] != true || on["quota_mode"] != true {
		t.Errorf("shadow and quota mode on: shadow_mode=%v quota_mode=%v, want both true", on["shadow_mode"], on["quota_mode"])
	}
	off := servingRecord(t, server.Config{})
	if _, ok := off["shadow_mode"]; ok {
		t.Errorf("shadow mode off, yet the record has shadow_mode=%v", off["shadow_mode"])
	}
	if _, ok := off["quota_mode"]; ok {
		t.Errorf("quota mode off, yet the record has quota_mode=%v", off["quota_mode"])
	}
}

// TestServingRecordNamesTheCounterLayoutWritten: the record names the
// layout the scripts really write counters in — on the embedded store, whose
// Lua has no cmsgpack, hashes whatever was asked (lua/counters.lua).
func TestServingRecordNamesTheCounterLayoutWritten(t *testing.T) {
	redisURL := redistest.New(t).URL()
	for _, tc := range []struct {
		name     string
		redisURL string
		asked    lua.Layout
		want     string
	}{
		{"embedded store, packed asked", "", lua.Packed, "hash"},
		{"embedded store, hash asked", "", lua.Hash, "hash"},
		{"redis-server, packed asked", redisURL, lua.Packed, "packed"},
		{"redis-server, hash asked", redisURL, lua.Hash, "hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := servingRecord(t, server.Config{RedisURL: tc.redisURL, CounterLayout: tc.asked})["counter_layout"]
			if got != tc.want {
				t.Errorf("counter_layout = %v, want %q", got, tc.want)
			}
		})
	}
}
