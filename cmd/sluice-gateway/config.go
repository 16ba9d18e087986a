package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-rl/sluice/client"
	"github.com/sluice-rl/sluice/client/llm"
)

// Config is the gateway's one YAML file.
type Config struct {
	// Listen is the gateway's HTTP address. (Required)
	Listen string `yaml:"listen"`
	// Sluice is the Sluice gRPC address, host:port. (Required)
	Sluice string `yaml:"sluice"`
	// SluiceTLS connects to Sluice over TLS with the system roots.
	// (Optional, default false)
	SluiceTLS bool `yaml:"sluice_tls"`
	// SluiceTokenFile holds the bearer token Sluice requires on
	// ReportUsage when it runs with --auth-token-file. (Optional)
	SluiceTokenFile string `yaml:"sluice_token_file"`
	// Domain is the Sluice config domain of every check. (Required)
	Domain string `yaml:"domain"`
	// FailureMode is "open" or "closed": what happens when Sluice does not
	// answer in time. (Optional, default closed)
	FailureMode string `yaml:"failure_mode"`
	// Timeout bounds one check, retries included. (Optional, default 50ms)
	Timeout time.Duration `yaml:"timeout"`
	// DrainTimeout bounds the wait for calls in flight and queued usage
	// reports at shutdown. (Optional, default 10s)
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// DefaultMaxTokens is the completion reservation of an ai call that sets
	// no max_tokens. (Optional, default 1024)
	DefaultMaxTokens uint64 `yaml:"default_max_tokens"`
	// MetricsListen, when set, serves GET /metrics (Prometheus text format)
	// on its own address. (Optional)
	MetricsListen string `yaml:"metrics_listen"`
	// WarmTimeout bounds the wait at start-up for the connection to Sluice;
	// the gateway listens anyway when it runs out. (Optional, default 5s)
	WarmTimeout time.Duration `yaml:"warm_timeout"`
	// APIs are the APIs the gateway serves. (Required, at least one)
	APIs []API `yaml:"apis"`
	// Keys are the API keys callers present. (Required, at least one)
	Keys []Key `yaml:"keys"`
}

// API is one API behind the gateway.
type API struct {
	// Name and Version make the descriptor api=<name>:<version>. (Required)
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Context is the path prefix of the API; it is cut off before the call
	// goes upstream. (Required)
	Context string `yaml:"context"`
	// Type is "rest" or "ai"; ai calls are priced in tokens. (Optional,
	// default rest)
	Type string `yaml:"type"`
	// Encoding counts an ai API's prompt tokens: o200k_base, cl100k_base or
	// bytes (UTF-8 bytes ÷ 4). (Optional, default: by each request's model
	// field, bytes for a model of no known encoding)
	Encoding string `yaml:"encoding"`
	// ErrorFormat is the shape of the errors the gateway answers for this
	// API: wso2 ({"fault":{code, message, description}}) or openai
	// ({"error":{message, type, param, code}}, what OpenAI's SDKs parse).
	// (Optional, default wso2)
	ErrorFormat string `yaml:"error_format"`
	// RefusalStatus is the HTTP status of a call refused over a limit:
	// 503, or 429 (what SDKs treat as a rate limit), or any 4xx/5xx.
	// (Optional, default 503)
	RefusalStatus int `yaml:"refusal_status"`
	// PerConsumer adds a second descriptor to every check of this API,
	// [api, environment, consumer=<value>], so that Sluice's config can give
	// each consumer its own limits under the backend cap: "key" (the value
	// is the key's name) or "application" (the key's application). Both
	// descriptors are decided together: a call over either is refused and
	// charges neither. (Optional, default none)
	PerConsumer string `yaml:"per_consumer"`
	// Production and Sandbox are the upstream base URLs. (At least one)
	Production string `yaml:"production"`
	Sandbox    string `yaml:"sandbox"`
}

// Key is one API key and the environment it opens.
type Key struct {
	// Key is the secret the caller sends. (Required)
	Key string `yaml:"key"`
	// Type is "production" or "sandbox". (Required)
	Type string `yaml:"type"`
	// Name names the key in per_consumer: key descriptors. (Required when
	// an API has per_consumer: key)
	Name string `yaml:"name"`
	// Application is the application the key belongs to, for per_consumer:
	// application descriptors. (Required when an API has per_consumer:
	// application)
	Application string `yaml:"application"`
}

// The values of API.PerConsumer.
const (
	perKey         = "key"
	perApplication = "application"
)

// loadConfig reads, defaults and validates the file at path.
func loadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &cfg, nil
}

func (c *Config) setDefaults() {
	if c.FailureMode == "" {
		c.FailureMode = "closed"
	}
	if c.Timeout == 0 {
		c.Timeout = 50 * time.Millisecond
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.DefaultMaxTokens == 0 {
		c.DefaultMaxTokens = 1024
	}
	if c.WarmTimeout == 0 {
		c.WarmTimeout = 5 * time.Second
	}
	for i := range c.APIs {
		a := &c.APIs[i]
		if a.Type == "" {
			a.Type = "rest"
		}
		if a.ErrorFormat == "" {
			a.ErrorFormat = formatWSO2
		}
		if a.RefusalStatus == 0 {
			a.RefusalStatus = 503
		}
	}
}

// Validate reports every field that is missing or wrong.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Listen == "" {
		bad("listen: required")
	}
	if c.Sluice == "" {
		bad("sluice: required")
	}
	if c.Domain == "" {
		bad("domain: required")
	}
	if _, err := client.ParseFailureMode(c.FailureMode); err != nil {
		bad("failure_mode: want open or closed, got %q", c.FailureMode)
	}
	if c.Timeout < 0 || c.DrainTimeout < 0 || c.WarmTimeout < 0 {
		bad("timeout, drain_timeout, warm_timeout: must not be negative")
	}
	if len(c.APIs) == 0 {
		bad("apis: at least one required")
	}
	contexts := map[string]bool{}
	for i, a := range c.APIs {
		at := fmt.Sprintf("apis[%d]", i)
		if a.Name == "" || a.Version == "" {
			bad("%s: name and version: required", at)
		}
		if !strings.HasPrefix(a.Context, "/") || a.Context == "/" || strings.HasSuffix(a.Context, "/") {
			bad("%s.context: want a path like /chat/1.0.0, got %q", at, a.Context)
		}
		if contexts[a.Context] {
			bad("%s.context: %q used twice", at, a.Context)
		}
		contexts[a.Context] = true
		if a.Type != "rest" && a.Type != "ai" {
			bad("%s.type: want rest or ai, got %q", at, a.Type)
		}
		if a.ErrorFormat != formatWSO2 && a.ErrorFormat != formatOpenAI {
			bad("%s.error_format: want wso2 or openai, got %q", at, a.ErrorFormat)
		}
		if a.RefusalStatus < 400 || a.RefusalStatus > 599 {
			bad("%s.refusal_status: want an HTTP error status (503, 429, ...), got %d", at, a.RefusalStatus)
		}
		if a.PerConsumer != "" && a.PerConsumer != perKey && a.PerConsumer != perApplication {
			bad("%s.per_consumer: want key or application, got %q", at, a.PerConsumer)
		}
		if _, err := llm.ParseEncoding(a.Encoding); err != nil {
			bad("%s.%v", at, err)
		}
		if a.Production == "" && a.Sandbox == "" {
			bad("%s: production or sandbox: required", at)
		}
		for env, u := range map[string]string{"production": a.Production, "sandbox": a.Sandbox} {
			if u == "" {
				continue
			}
			if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				bad("%s.%s: want an http(s) URL, got %q", at, env, u)
			}
		}
	}
	if len(c.Keys) == 0 {
		bad("keys: at least one required")
	}
	keys := map[string]bool{}
	for i, k := range c.Keys {
		at := fmt.Sprintf("keys[%d]", i)
		if k.Key == "" {
			bad("%s.key: required", at)
		}
		if keys[k.Key] {
			bad("%s.key: used twice", at)
		}
		keys[k.Key] = true
		if k.Type != client.Production && k.Type != client.Sandbox {
			bad("%s.type: want production or sandbox, got %q", at, k.Type)
		}
		for _, a := range c.APIs {
			if (a.PerConsumer == perKey && k.Name == "") || (a.PerConsumer == perApplication && k.Application == "") {
				bad("%s: %s required: API %s has per_consumer: %s", at, map[string]string{perKey: "name", perApplication: "application"}[a.PerConsumer], a.Name, a.PerConsumer)
				break
			}
		}
	}
	return errors.Join(errs...)
}
