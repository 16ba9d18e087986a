package main

import (
	"fmt"
	"net/http"

	"github.com/sluice-rl/sluice/client"
)

// metricsHandler serves the client's counters in the Prometheus text
// format. A call refused because Sluice did not answer (fail closed) is
// counted apart from one over a limit, and a call let through unchecked
// (fail open) apart from one Sluice admitted.
func metricsHandler(stats func() client.Stats) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		s := stats()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		for _, m := range []struct {
			name, help string
			v          uint64
		}{
			{"sluice_gateway_checks_total", "Calls checked with Sluice.", s.Checks},
			{"sluice_gateway_over_limit_total", "Calls Sluice refused over a limit.", s.OverLimit},
			{"sluice_gateway_check_errors_total", "Checks Sluice did not answer in time (after retries).", s.Errors},
			{"sluice_gateway_unavailable_total", "Calls refused because Sluice did not answer (failure_mode closed): the limits were not checked.", s.FailedClosed},
			{"sluice_gateway_failed_open_total", "Calls let through unchecked because Sluice did not answer (failure_mode open).", s.FailedOpen},
			{"sluice_gateway_check_retries_total", "Check retries after Unavailable.", s.Retries},
			{"sluice_gateway_reports_queued_total", "Usage reports queued.", s.ReportsQueued},
			{"sluice_gateway_reports_sent_total", "Usage reports Sluice accepted.", s.ReportsSent},
			{"sluice_gateway_reports_dropped_total", "Usage reports dropped: the queue was full or the client closed.", s.ReportsDropped},
			{"sluice_gateway_reports_lost_total", "Usage reports given up after their retries.", s.ReportsLost},
			{"sluice_gateway_usage_unstated_total", "Metered calls whose backend stated no usage (what the gateway counted was reported).", s.UsageMissing},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
		}
	})
}
