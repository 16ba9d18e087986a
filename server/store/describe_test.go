package store

import (
	"strings"
	"testing"
)

// TestInfoNamesTopologyHostsAndTLSNeverThePassword opens each URL form (Open
// does not dial) and checks what the start-up log will say about it.
func TestInfoNamesTopologyHostsAndTLSNeverThePassword(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"", "embedded 127.0.0.1:"},
		{"redis://:hunter2@10.0.0.1:6380/2", "single 10.0.0.1:6380"},
		{"rediss://user:hunter2@redis.example:6379", "single redis.example:6379 tls"},
		{"redis+sentinel://user:hunter2@h1,h2:26380/mymaster?sentinel_password=hunter2", "sentinel mymaster@h1:26379,h2:26380"},
		{"rediss+cluster://:hunter2@n1:7000,n2:7001", "cluster n1:7000,n2:7001 tls"},
	} {
		s, err := Open(tc.url)
		if err != nil {
			t.Fatalf("%q: %v", tc.url, err)
		}
		got := s.Info().String()
		_ = s.Close()
		if !strings.HasPrefix(got, tc.want) || (tc.url != "" && got != tc.want) {
			t.Errorf("%q: Info %q, want %q", tc.url, got, tc.want)
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("%q: Info %q shows the password", tc.url, got)
		}
	}
}
