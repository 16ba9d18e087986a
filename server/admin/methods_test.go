package admin

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestAllowedMethodsFollowTheHTTPRules(t *testing.T) {
	raw, err := os.ReadFile("../../proto/sluice/v1/admin_http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var svc struct {
		HTTP struct {
			Rules []map[string]string `yaml:"rules"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(raw, &svc); err != nil {
		t.Fatal(err)
	}
	byPath := map[string][]string{}
	placeholder := regexp.MustCompile(`\{[^}]+\}`)
	for _, rule := range svc.HTTP.Rules {
		for _, m := range []string{"get", "put", "post", "delete", "patch"} {
			if p, ok := rule[m]; ok {
				p = placeholder.ReplaceAllString(p, "x")
				byPath[p] = append(byPath[p], strings.ToUpper(m))
			}
		}
	}
	byPath["/v1/config:export"] = []string{http.MethodGet} // served beside grpc-gateway
	if len(byPath) < 5 {
		t.Fatalf("read only %v from admin_http.yaml", byPath)
	}
	for path, methods := range byPath {
		allow := strings.Split(allowedMethods(path), ", ")
		for _, m := range methods {
			if !slices.Contains(allow, m) {
				t.Errorf("%s takes %s, but Allow says %v", path, m, allow)
			}
		}
		if len(allow) != len(methods) {
			t.Errorf("%s takes %v, but Allow says %v", path, methods, allow)
		}
	}
}
