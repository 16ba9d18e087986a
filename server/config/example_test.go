package config_test

import (
	"fmt"

	"github.com/sluice-rl/sluice/server/config"
)

func ExampleDomain_Match() {
	d, err := config.Parse("apim.yaml", []byte(`
domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limits:
          - {unit: second, requests_per_unit: 100}
          - {window: 1h, requests: 100000}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rule, ok := d.Match([]config.Entry{{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: "production"}})
	fmt.Println(ok)
	for _, l := range rule.Limits {
		fmt.Println(l.ID, l.Requests, l.Window, l.Buckets)
	}
	// Output:
	// true
	// r:1s:10 100 1s 10
	// r:1h:10 100000 1h0m0s 10
}

func ExampleParse_problems() {
	_, err := config.Parse("bad.yaml", []byte(`
domain: apim
descriptors:
  - key: api
    rate_limit:
      unti: second
      requests_per_unit: -5
`))
	fmt.Println(err)
	// Output:
	// bad.yaml:6: descriptors[0].rate_limit.unti: unknown key (did you mean "unit"?)
	// bad.yaml:6: descriptors[0].rate_limit.unit: missing: give unit (second, minute, ...) or window (like 10s)
	// bad.yaml:7: descriptors[0].rate_limit.requests_per_unit: must not be negative
}
