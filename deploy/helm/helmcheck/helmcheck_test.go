// Package helmcheck checks that internal/chartrender, which go test ./deploy renders the
// chart with, renders deploy/helm/sluice exactly as Helm's own engine does. It is a module
// of its own so that Helm (client-go and the Kubernetes API server's packages with it)
// stays out of the main module's build and CI: run it after changing the chart or the
// renderer,
//
//	cd deploy/helm/helmcheck && go test .
package helmcheck

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"

	"github.com/sluice-rl/sluice/internal/chartrender"
)

const chartDir = "../sluice"

func TestChartRendersAsHelm(t *testing.T) {
	ci, _ := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if len(ci) == 0 {
		t.Fatal("no values files in ci/")
	}
	cases := [][]string{nil}
	for _, f := range ci {
		cases = append(cases, []string{f})
	}
	for _, files := range cases {
		t.Run(filepath.Base(filepath.Join(append([]string{"defaults"}, files...)...)), func(t *testing.T) {
			want := helmRender(t, files)
			var values []map[string]any
			for _, f := range files {
				v, err := chartrender.Values(f)
				if err != nil {
					t.Fatal(err)
				}
				values = append(values, v)
			}
			got, err := chartrender.Render(chartDir, chartrender.Release{Name: "sluice", Namespace: "sluice", Revision: 1}, values...)
			if err != nil {
				t.Fatal(err)
			}
			for name, w := range want {
				if g, ok := got[name]; !ok {
					t.Errorf("%s: rendered by Helm only", name)
				} else if g != w {
					t.Errorf("%s differs.\nchartrender:\n%s\nhelm:\n%s", name, g, w)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("%s: rendered by chartrender only", name)
				}
			}
		})
	}
}

// helmRender renders the chart as `helm template` does, with values files layered in order.
func helmRender(t *testing.T, files []string) map[string]string {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	for _, f := range files {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vals = chartutil.MergeTables(v.AsMap(), vals)
	}
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{Name: "sluice", Namespace: "sluice", Revision: 1, IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(c, rv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
