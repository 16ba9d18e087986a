// Package llm prices OpenAI-style calls in tokens for Sluice: it estimates a
// request's usage before the call, finds the actual usage in the response
// (JSON or a server-sent-event stream) and is the client.Meter the gateway
// uses for APIs of type ai.
//
// # Estimates
//
// The prompt estimate is the UTF-8 byte length of the request's text divided
// by 4, rounded up, plus 4 tokens per message for the chat template. The text
// is every string in messages[].content (plain or parts with text), prompt,
// input (plain, parts or items with content) and instructions; the JSON around
// it does not count, and a body that is not JSON counts whole. The method
// follows OpenAI's rule of thumb of about 4 characters of English per token;
// it was not measured against a tokenizer here (none ships with the tree).
// Expect it near the real count for English prose, lower for text that
// tokenizes densely (Chinese, Japanese and Korean run about 1 token per
// 3-byte character, so this undercounts them by up to about a quarter), and
// blind to image and audio parts. The error only lasts until the call is
// reported: Sluice then charges the backend's own count.
//
// The completion reservation is max_completion_tokens, max_output_tokens or
// max_tokens (the first one present), times n when n > 1, or a configured
// default when the request sets none.
//
// # Actual usage
//
// A JSON answer's usage object: prompt_tokens, completion_tokens and
// total_tokens (Chat Completions) or input_tokens, output_tokens and
// total_tokens (Responses API, also inside a response object). In a stream
// the last event that carries such a usage wins: the final chunk of Chat
// Completions when stream_options.include_usage is true — the Meter turns it
// on for every streaming chat request — or the response.completed event of the
// Responses API. When no usage is found the middleware reports the estimate
// as used and counts it (client.Stats.UsageMissing): a missing usage never
// refunds the reservation.
package llm
