// Package llm prices OpenAI-style calls in tokens for Sluice: it estimates a
// request's usage before the call, finds the actual usage in the response
// (JSON or a server-sent-event stream) and is the client.Meter the gateway
// uses for APIs of type ai.
//
// # Estimates
//
// The prompt is counted with a BPE tokenizer (github.com/tiktoken-go/tokenizer,
// vocabularies compiled in, works offline) in the encoding of the request's
// model (EncodingForModel: o200k_base for gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1,
// o3, o4 and gpt-oss; cl100k_base for gpt-4 and gpt-3.5-turbo), or the one the
// Meter is configured with. The chat format costs what OpenAI's cookbook
// counts: 3 tokens per message besides its role and content, 1 more for a
// name, 3 to prime the reply; tool definitions by the cookbook's rule (see
// tools.go); images by GPT-4o's tile rule (see image.go). Responses API
// instructions count as a system message, a string input as a user message,
// input items as messages; a Completions prompt and an embeddings input count
// their text alone. Audio and file parts are not priced. A model of no known
// encoding falls back to the byte heuristic: UTF-8 bytes ÷ 4, rounded up,
// plus 4 tokens per message (and tool definitions' JSON bytes ÷ 4).
// README.md beside this file has the measurements: the estimate against
// OpenAI's tiktoken on a corpus the tests ship, and its cost.
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
// Completions when stream_options.include_usage is true, or the
// response.completed event of the Responses API. The Meter turns
// include_usage on for every streaming chat request; when the client did not
// ask for it, the Meter takes out again what it added (the "usage" member of
// every chunk and the final chunk of no choices), so the client receives the
// bytes the backend would have sent it without include_usage. Events pass on
// as soon as they are complete, each flushed.
//
// When the backend states no usage, the Meter counts what it produced: the
// prompt estimate plus the tokens of the text generated (streamed deltas,
// the answer's message); nothing for an error status or no answer at all, so
// that a call the backend rejected releases its reservation.
package llm
