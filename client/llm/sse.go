package llm

import (
	"bytes"

	"github.com/sluice-rl/sluice/client"
)

// maxLine bounds one buffered stream line; a longer line is skipped.
const maxLine = 1 << 20

// StreamUsage watches a server-sent-event stream as it is written and keeps
// the usage of the last data event that has one. It never holds more than
// one line. The zero value is ready to use.
type StreamUsage struct {
	line     []byte
	skipping bool // inside a line longer than maxLine
	usage    client.Usage
	found    bool
}

// Write consumes stream bytes; it never fails.
func (s *StreamUsage) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.add(p)
			break
		}
		s.add(p[:i])
		if !s.skipping {
			s.event(s.line)
		}
		s.line, s.skipping = s.line[:0], false
		p = p[i+1:]
	}
	return n, nil
}

func (s *StreamUsage) add(p []byte) {
	if s.skipping {
		return
	}
	if len(s.line)+len(p) > maxLine {
		s.line, s.skipping = s.line[:0], true
		return
	}
	s.line = append(s.line, p...)
}

// event reads one line; only data lines with JSON count.
func (s *StreamUsage) event(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
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
}

// Usage is the last usage seen, and whether there was one.
func (s *StreamUsage) Usage() (client.Usage, bool) {
	if !s.skipping && len(s.line) > 0 {
		s.event(s.line) // a last line without its newline
		s.line = s.line[:0]
	}
	return s.usage, s.found
}
