package chartrender

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeChart lays out a chart in a temp dir: Chart.yaml, values.yaml and templates.
func writeChart(t *testing.T, values string, templates map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: \"2.0\"\n",
		"values.yaml": values,
	}
	for name, text := range templates {
		files[filepath.Join("templates", name)] = text
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRenderValuesAndBuiltins(t *testing.T) {
	dir := writeChart(t, "a: {b: 1, c: keep, d: {e: x}}\nbig: 1000000\nlist: [1, 2]\n", map[string]string{
		"_helpers.tpl": `{{- define "demo.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end -}}`,
		"out.yaml": `name: {{ include "demo.name" . }}
version: {{ .Chart.AppVersion }}
ns: {{ .Release.Namespace }} {{ .Release.Service }} {{ .Release.IsInstall }}
b: {{ .Values.a.b }}
c: {{ .Values.a.c | default "dropped" }}
d: {{ .Values.a.d | toYaml | nindent 2 }}
big: {{ .Values.big }}
missing: [{{ .Values.nope }}]
list: {{ toJson .Values.list }}
tmpl: {{ .Template.Name }} {{ .Template.BasePath }}
`,
	})
	out, err := Render(dir, Release{Name: "rel", Namespace: "ns"}, map[string]any{"a": map[string]any{"b": 2, "c": nil}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out["demo/templates/_helpers.tpl"]; ok {
		t.Errorf("a partial was rendered")
	}
	// Helm's own quirks: values numbers are float64 (1000000 prints as 1e+06), missing
	// keys render empty, a null in the given values removes the default.
	want := `name: demo-rel
version: 2.0
ns: ns Helm true
b: 2
c: dropped
d: 
  e: x
big: 1e+06
missing: []
list: [1,2]
tmpl: demo/templates/out.yaml demo/templates
`
	if got := out["demo/templates/out.yaml"]; got != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderLaterValuesWin(t *testing.T) {
	dir := writeChart(t, "x: {y: default, z: default}\n", map[string]string{"o.txt": "{{ .Values.x.y }} {{ .Values.x.z }}"})
	out, err := Render(dir, Release{Name: "r"}, map[string]any{"x": map[string]any{"y": "first", "z": "first"}}, map[string]any{"x": map[string]any{"y": "second"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := out["demo/templates/o.txt"]; got != "second first" {
		t.Errorf("got %q, want %q", got, "second first")
	}
}

func TestRenderErrors(t *testing.T) {
	for name, c := range map[string]struct{ tpl, want string }{
		"required":        {`{{ required "x.y is required" .Values.x }}`, "x.y is required"},
		"required empty":  {`{{ required "s is required" .Values.s }}`, "s is required"},
		"fail":            {`{{ fail "no good" }}`, "no good"},
		"parse":           {`{{ if }}`, "parse error in demo/templates/t.yaml"},
		"no env":          {`{{ env "HOME" }}`, `function "env" not defined`},
		"no capabilities": {`{{ .Capabilities.KubeVersion }}`, "KubeVersion"},
		"include loop":    {`{{ define "l" }}{{ include "l" . }}{{ end }}{{ include "l" . }}`, "nested reference"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeChart(t, "s: \"\"\n", map[string]string{"t.yaml": c.tpl})
			_, err := Render(dir, Release{Name: "r"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
