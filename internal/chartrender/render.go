// Package chartrender renders a Helm chart's templates offline, the way Helm's own engine
// (helm.sh/helm/v3/pkg/engine) does, so that tests can check a chart without Helm, a
// cluster or the network.
//
// How it works: the chart's values.yaml is read with sigs.k8s.io/yaml (numbers become
// float64, as in Helm), the given values are laid over it (maps merge, a null removes a
// default), and every file under templates/ is parsed into one text/template set named
// "<chart>/templates/<file>" with Helm's functions: sprig's (less env and expandenv, as
// in Helm) and Helm's own include, tpl, required, fail, toYaml, fromYaml, toJson and
// fromJson. Each template but the partials (_*.tpl) is executed with .Values, .Release,
// .Chart and .Template, missing keys render empty, as in Helm.
//
// What it leaves out: subcharts, .Files, .Capabilities, lookup, schema validation and
// hooks. A chart that uses them fails to render here rather than rendering differently.
package chartrender

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

// Release is what templates see as .Release.
type Release struct {
	Name      string
	Namespace string
	Revision  int
	IsUpgrade bool
}

// Chart is what templates see as .Chart: the fields of Chart.yaml, named as in Helm's
// chart.Metadata.
type Chart struct {
	Name         string              `json:"name"`
	Home         string              `json:"home,omitempty"`
	Sources      []string            `json:"sources,omitempty"`
	Version      string              `json:"version"`
	Description  string              `json:"description,omitempty"`
	Keywords     []string            `json:"keywords,omitempty"`
	APIVersion   string              `json:"apiVersion"`
	AppVersion   string              `json:"appVersion,omitempty"`
	KubeVersion  string              `json:"kubeVersion,omitempty"`
	Type         string              `json:"type,omitempty"`
	Deprecated   bool                `json:"deprecated,omitempty"`
	Icon         string              `json:"icon,omitempty"`
	Condition    string              `json:"condition,omitempty"`
	Tags         string              `json:"tags,omitempty"`
	Annotations  map[string]string   `json:"annotations,omitempty"`
	Maintainers  []map[string]string `json:"maintainers,omitempty"`
	Dependencies []map[string]any    `json:"dependencies,omitempty"`
}

// Values reads a values file (YAML) as Helm does.
func Values(file string) (map[string]any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseValues(file, data)
}

func parseValues(name string, data []byte) (map[string]any, error) {
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if v == nil {
		v = map[string]any{}
	}
	return v, nil
}

// Render renders the chart in dir with values laid over its values.yaml, in order (later
// ones win), and returns each template's output by its name, "<chart>/templates/<file>".
// Partials are not in the result; NOTES.txt is.
func Render(dir string, rel Release, values ...map[string]any) (map[string]string, error) {
	var chart Chart
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(raw, &chart); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	if chart.APIVersion != "v2" || chart.Name == "" || chart.Version == "" {
		return nil, errors.New("Chart.yaml: want apiVersion v2, a name and a version")
	}
	vals := map[string]any{}
	if raw, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if vals, err = parseValues("values.yaml", raw); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, v := range values {
		vals = coalesce(deepCopy(v), vals)
	}

	tpls := map[string]string{}
	root := filepath.Join(dir, "templates")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		tpls[path.Join(chart.Name, filepath.ToSlash(rel))] = string(data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	top := map[string]any{
		"Values": vals,
		"Chart":  chart,
		"Release": map[string]any{
			"Name": rel.Name, "Namespace": rel.Namespace, "Revision": rel.Revision,
			"IsUpgrade": rel.IsUpgrade, "IsInstall": !rel.IsUpgrade, "Service": "Helm",
		},
	}
	return render(tpls, top, path.Join(chart.Name, "templates"))
}

// render is Helm's engine.render: one template set, partials parsed but not executed,
// "<no value>" removed from the output.
func render(tpls map[string]string, top map[string]any, basePath string) (map[string]string, error) {
	t := template.New("gotpl").Option("missingkey=zero")
	t.Funcs(funcMap(t))
	names := sortTemplates(tpls)
	for _, name := range names {
		if _, err := t.New(name).Parse(tpls[name]); err != nil {
			return nil, fmt.Errorf("parse error in %s: %w", name, err)
		}
	}
	out := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		vals := map[string]any{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]any{"Name": name, "BasePath": basePath}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

// sortTemplates orders templates as Helm does: deepest paths first, then by name,
// descending (so a later define of the same name wins the same way).
func sortTemplates(tpls map[string]string) []string {
	names := make([]string, 0, len(tpls))
	for n := range tpls {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		da, db := strings.Count(a, "/"), strings.Count(b, "/")
		if da != db {
			return db - da
		}
		return strings.Compare(b, a)
	})
	return names
}

const maxIncludeDepth = 1000

// funcMap is Helm's: sprig's text functions without env and expandenv, and Helm's own.
func funcMap(t *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	depth := map[string]int{}
	f["include"] = func(name string, data any) (string, error) {
		if depth[name] > maxIncludeDepth {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data any) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		c.Funcs(funcMap(c))
		if _, err := c.New("tpl").Parse(text); err != nil {
			return "", err
		}
		var buf strings.Builder
		if err := c.ExecuteTemplate(&buf, "tpl", data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(msg string, v any) (any, error) {
		if s, ok := v.(string); v == nil || (ok && s == "") {
			return v, errors.New(msg)
		}
		return v, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	f["toYaml"] = func(v any) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	f["fromYaml"] = func(s string) map[string]any {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["toJson"] = func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]any {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	return f
}

// coalesce lays over on top of defaults: maps merge key by key, a null in over removes
// the default, anything else in over wins. It changes and returns over.
func coalesce(over, defaults map[string]any) map[string]any {
	for k, dv := range defaults {
		ov, ok := over[k]
		switch {
		case !ok:
			over[k] = dv
		case ov == nil:
			delete(over, k)
		default:
			om, oIsMap := ov.(map[string]any)
			dm, dIsMap := dv.(map[string]any)
			if oIsMap && dIsMap {
				over[k] = coalesce(om, dm)
			}
		}
	}
	for k, v := range over {
		if v == nil {
			delete(over, k)
		}
	}
	return over
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			out[k] = deepCopy(v)
		case []any:
			out[k] = slices.Clone(v)
		default:
			out[k] = v
		}
	}
	return out
}
