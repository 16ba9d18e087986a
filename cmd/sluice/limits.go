package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const limitsUsage = `usage:
  sluice limits list   [flags] --domain DOMAIN
  sluice limits get    [flags] --domain DOMAIN KEY=VALUE...
  sluice limits set    [flags] --domain DOMAIN [--version V] --limits YAML KEY=VALUE...
  sluice limits delete [flags] --domain DOMAIN [--version V] KEY=VALUE...

KEY=VALUE... is the descriptor path, outermost first, e.g.
  api=PizzaShackAPI:1.0.0 environment=sandbox
--limits holds the descriptor's fields as a config file writes them, e.g.
  'rate_limit: {window: 1s, requests: 100}' (or --limits-file FILE, - for stdin).
Answers are printed as JSON; a refusal exits 1 with the admin API's message
(412: the version is not current; 400: names the field).

flags:
  --admin ADDR          the admin port: host:port, http:// or https:// (env SLUICE_ADMIN, default 127.0.0.1:8082)
  --token-file FILE     the admin bearer token (env SLUICE_ADMIN_TOKEN_FILE, or the token in SLUICE_ADMIN_TOKEN)
  --ca-file FILE        PEM CAs for an https admin port
  --cert, --key FILE    a client certificate for mutual TLS
`

// limits runs `sluice limits`: the admin API's runtime limits from a
// terminal, for scripts and CI.
func limits(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, limitsUsage)
		return errUsage
	}
	cmd := args[0]
	fs := flag.NewFlagSet("limits "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("admin", cmp.Or(getenv("SLUICE_ADMIN"), "127.0.0.1:8082"), "")
	tokenFile := fs.String("token-file", getenv("SLUICE_ADMIN_TOKEN_FILE"), "")
	caFile := fs.String("ca-file", "", "")
	certFile := fs.String("cert", "", "")
	keyFile := fs.String("key", "", "")
	domain := fs.String("domain", "", "")
	version := fs.String("version", "", "")
	fields := fs.String("limits", "", "")
	fieldsFile := fs.String("limits-file", "", "")
	path, err := parseInterleaved(fs, args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "limits %s: %v\n%s", cmd, err, limitsUsage)
		return errUsage
	}
	if *domain == "" {
		fmt.Fprintf(stderr, "limits %s: --domain is required\n%s", cmd, limitsUsage)
		return errUsage
	}
	c, err := newAdminClient(*addr, *tokenFile, getenv("SLUICE_ADMIN_TOKEN"), *caFile, *certFile, *keyFile)
	if err != nil {
		return err
	}
	base := "/v1/domains/" + url.PathEscape(*domain)
	query := url.Values{}
	for _, p := range path {
		if k, _, ok := strings.Cut(p, "="); !ok || k == "" {
			fmt.Fprintf(stderr, "limits %s: %q: want KEY=VALUE\n", cmd, p)
			return errUsage
		}
		query.Add("path", p)
	}
	needPath := func() error {
		if len(path) == 0 {
			fmt.Fprintf(stderr, "limits %s: give the descriptor path as KEY=VALUE...\n%s", cmd, limitsUsage)
			return errUsage
		}
		return nil
	}

	switch cmd {
	case "list":
		return c.do(ctx, stdout, "GET", base+"/runtime-limits", nil)
	case "get":
		if err := needPath(); err != nil {
			return err
		}
		return c.do(ctx, stdout, "GET", base+"/runtime-limit?"+query.Encode(), nil)
	case "delete":
		if err := needPath(); err != nil {
			return err
		}
		if *version != "" {
			query.Set("version", *version)
		}
		return c.do(ctx, stdout, "DELETE", base+"/runtime-limit?"+query.Encode(), nil)
	case "set":
		if err := needPath(); err != nil {
			return err
		}
		text := []byte(*fields)
		switch {
		case *fields != "" && *fieldsFile != "":
			fmt.Fprintln(stderr, "limits set: give --limits or --limits-file, not both")
			return errUsage
		case *fieldsFile == "-":
			text, err = io.ReadAll(stdin)
		case *fieldsFile != "":
			text, err = os.ReadFile(*fieldsFile)
		case *fields == "":
			fmt.Fprintf(stderr, "limits set: --limits is required\n%s", limitsUsage)
			return errUsage
		}
		if err != nil {
			return fmt.Errorf("--limits-file: %w", err)
		}
		body, err := runtimeLimitBody(text, path, *version)
		if err != nil {
			return err
		}
		return c.do(ctx, stdout, "PUT", base+"/runtime-limit", body)
	default:
		fmt.Fprintf(stderr, "limits: unknown command %q\n%s", cmd, limitsUsage)
		return errUsage
	}
}

// parseInterleaved parses flags that may come after positional arguments
// too, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// runtimeLimitBody is the JSON of a PUT: the YAML fields (the file format's
// names are the API's), the path and the version.
func runtimeLimitBody(text []byte, path []string, version string) ([]byte, error) {
	var fields map[string]any
	if err := yaml.Unmarshal(text, &fields); err != nil {
		return nil, fmt.Errorf("--limits: %w", err)
	}
	if fields == nil {
		fields = map[string]any{}
	}
	entries := make([]map[string]string, len(path))
	for i, p := range path {
		k, v, _ := strings.Cut(p, "=")
		entries[i] = map[string]string{"key": k, "value": v}
	}
	fields["path"] = entries
	if version != "" {
		fields["version"] = version
	}
	return json.Marshal(fields)
}

// adminClient calls the admin port.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func newAdminClient(addr, tokenFile, token, caFile, certFile, keyFile string) (*adminClient, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
		if caFile != "" || certFile != "" {
			addr = "https://" + strings.TrimPrefix(addr, "http://")
		}
	}
	if tokenFile != "" {
		raw, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(raw))
		if _, secret, ok := strings.Cut(token, ":"); ok && !strings.Contains(token, "\n") {
			token = secret // a line of the server's file: name:token
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificates", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return &adminClient{
		base: strings.TrimSuffix(addr, "/"), token: token,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}},
	}, nil
}

// do makes one call and prints its JSON answer; an error answer becomes an
// error with the API's message.
func (c *adminClient) do(ctx context.Context, stdout io.Writer, method, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &st) != nil || st.Message == "" {
			st.Message = strings.TrimSpace(string(raw))
		}
		return fmt.Errorf("%d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), st.Message)
	}
	var out bytes.Buffer
	if json.Indent(&out, raw, "", "  ") != nil {
		out.Reset()
		out.Write(raw)
	}
	out.WriteByte('\n')
	_, err = stdout.Write(out.Bytes())
	return err
}
