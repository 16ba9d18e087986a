package llm

import (
	"bytes"
	"encoding/json"

	"github.com/sluice-rl/sluice/client"
)

// maxLine bounds one buffered stream line; a longer line is not read (and,
// when filtering, ends the filtering: the rest of the stream passes as is).
const maxLine = 1 << 20

// sseStream watches a server-sent-event stream as it is written: it keeps
// the usage of the last data event that has one and the text generated. With
// filter set it also takes out what stream_options.include_usage added — the
// "usage" member of every chunk and the final chunk of no choices that
// carries the usage — holding back at most one event until it is complete.
// It never holds more than one line (one event when filtering).
type sseStream struct {
	filter   bool
	line     []byte // the line being received
	skipping bool   // inside a line longer than maxLine
	event    []byte // filter: the lines of the event being received
	usage    client.Usage
	found    bool
	text     produced
}

// write consumes stream bytes and returns what to pass on now: p itself
// when not filtering, else the events completed by p, edited.
func (s *sseStream) write(p []byte) []byte {
	if !s.filter {
		s.scan(p)
		return p
	}
	var out []byte
	for len(p) > 0 {
		chunk := nextLine(p)
		p = p[len(chunk):]
		s.event = append(s.event, chunk...)
		ended := s.feed(chunk)
		if s.skipping || len(s.event) > maxLine { // cannot hold it: pass the rest as it is
			out = append(out, s.event...)
			s.event, s.filter = nil, false
			s.scan(p)
			return append(out, p...)
		}
		if ended {
			out = append(out, s.edit(s.event)...)
			s.event = s.event[:0]
		}
	}
	return out
}

func (s *sseStream) scan(p []byte) {
	for len(p) > 0 {
		chunk := nextLine(p)
		p = p[len(chunk):]
		s.feed(chunk)
	}
}

// nextLine is p up to and with its first newline, or all of p.
func nextLine(p []byte) []byte {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return p[:i+1]
	}
	return p
}

// feed adds a piece of at most one line, reads the line when the piece ends
// it, and reports whether that line was blank (the end of an event).
func (s *sseStream) feed(chunk []byte) bool {
	if !s.skipping {
		if len(s.line)+len(chunk) > maxLine {
			s.line, s.skipping = s.line[:0], true
		} else {
			s.line = append(s.line, chunk...)
		}
	}
	if chunk[len(chunk)-1] != '\n' {
		return false
	}
	skipped, line := s.skipping, bytes.TrimRight(s.line, "\r\n")
	if !skipped {
		s.data(line)
	}
	s.line, s.skipping = s.line[:0], false
	return !skipped && len(line) == 0
}

// data reads one line; only data lines with JSON count.
func (s *sseStream) data(line []byte) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return // "[DONE]" and friends
	}
	if u, ok := UsageFromJSON(data); ok {
		s.usage, s.found = u, true
	}
	s.text.addGenerated(data)
}

// edit returns one complete event without what include_usage added: nothing
// for the usage chunk, the chunk without its usage member otherwise.
func (s *sseStream) edit(event []byte) []byte {
	var out []byte
	for rest := event; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		body, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			out = append(out, line...)
			continue
		}
		start := len(line) - len(body) + (len(body) - len(bytes.TrimLeft(body, " ")))
		end := len(bytes.TrimRight(line, "\r\n"))
		data := line[start:end]
		if usageChunk(data) {
			return nil
		}
		edited, _ := dropMember(data, "usage")
		out = append(append(append(out, line[:start]...), edited...), line[end:]...)
	}
	return out
}

// usageChunk reports whether data is the chunk include_usage adds at the
// end of a stream: no choices, a usage.
func usageChunk(data []byte) bool {
	var c struct {
		Choices *[]json.RawMessage `json:"choices"`
		Usage   json.RawMessage    `json:"usage"`
	}
	if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &c) != nil {
		return false
	}
	return c.Choices != nil && len(*c.Choices) == 0 && len(c.Usage) > 0 && string(c.Usage) != "null"
}

// close returns what is still held (a last event without its blank line),
// edited, and reads a last line without its newline.
func (s *sseStream) close() []byte {
	if !s.skipping && len(s.line) > 0 {
		s.data(bytes.TrimRight(s.line, "\r\n"))
		s.line = s.line[:0]
	}
	if !s.filter || len(s.event) == 0 {
		return nil
	}
	out := s.edit(s.event)
	s.event = nil
	return out
}
