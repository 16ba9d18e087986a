package limiter

import (
	"strings"

	"github.com/sluice-rl/sluice/server/config"
)

// counterKey names the Redis hash of one limit of one descriptor:
//
//	<prefix>{<domain>|<key>=<value>|...}:<limit id>
//
// Everything between the braces is the Redis Cluster hash tag, so all limits
// of a descriptor live in one slot. The separators | = { } and the escape \
// are escaped inside names and values, so two different descriptors never
// share a key.
func counterKey(b *strings.Builder, prefix, domain string, path []config.Entry, limitID string) string {
	b.Reset()
	b.Grow(len(prefix) + len(domain) + len(limitID) + 8 + 24*len(path))
	b.WriteString(prefix)
	b.WriteByte('{')
	writeEscaped(b, domain)
	for _, e := range path {
		b.WriteByte('|')
		writeEscaped(b, e.Key)
		b.WriteByte('=')
		writeEscaped(b, e.Value)
	}
	b.WriteString("}:")
	b.WriteString(limitID)
	return b.String()
}

func writeEscaped(b *strings.Builder, s string) {
	if !strings.ContainsAny(s, `\|={}`) {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '|', '=', '{', '}':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
}
