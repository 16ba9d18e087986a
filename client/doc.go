// Package client is the Go client of Sluice for API gateways.
//
// A gateway asks Sluice before it forwards a request to a backend and, for AI
// backends, tells Sluice afterwards how many tokens the call really used:
//
//	c, err := client.New("127.0.0.1:8081", client.WithFailureMode(client.FailClosed))
//	dec, err := c.Check(ctx, client.Request{Domain: "apim", Descriptors: ...})
//	if !dec.Allowed { /* answer 503 with dec.Body and dec.Headers */ }
//	...
//	dec.Report(client.Usage{PromptTokens: 12, CompletionTokens: 30})
//	...
//	c.Close(ctx) // flushes the reports still queued
//
// # How it works
//
// Check makes one ShouldRateLimit call, bounded by the client's timeout
// (default 50 ms) including any retries; only Unavailable is retried. When
// Sluice cannot answer in time, the failure mode decides: FailOpen admits the
// request (Decision.FailedOpen is set), FailClosed refuses it with the 900801
// fault, exactly as if the cap were reached. Check never blocks past the
// timeout.
//
// Decision.Report puts the actual usage on a bounded queue and returns at
// once. One background goroutine sends the queue with ReportUsage, retrying
// Unavailable, DeadlineExceeded and ResourceExhausted with backoff. A report
// that finds the queue full is dropped and a report that runs out of retries is
// lost; both are counted in Stats, neither ever blocks a request. Close stops
// accepting reports and waits, as long as its context allows, until the queue
// is sent.
//
// Middleware wraps a net/http handler with Check (and, given a Meter, with
// token estimation and reporting); package llm is the Meter for OpenAI-style
// backends.
package client
