package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/sluice-rl/sluice/internal/chartrender"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/store"
)

const chartDir = "helm/sluice"

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart uses; any other field fails the strict decode.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames,omitempty"`
			Any        bool     `json:"any,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is a chart rendered with one set of values: its manifests, decoded strictly,
// and NOTES.txt.
type rendered struct {
	*manifests
	notes string
}

// renderChart renders the chart with the values files of ci/ named (later ones win) and
// then the override values, and decodes every document strictly into its k8s.io/api type.
func renderChart(t *testing.T, files []string, overrides ...map[string]any) rendered {
	t.Helper()
	out, err := renderChartErr(files, overrides...)
	if err != nil {
		t.Fatalf("render %v: %v", files, err)
	}
	r := rendered{manifests: &manifests{dir: chartDir}}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if path.Base(name) == "NOTES.txt" {
			r.notes = out[name]
			continue
		}
		for i, doc := range splitDocs([]byte(out[name])) {
			where := fmt.Sprintf("%s#%d", name, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Errorf("%s: %v\n%s", where, err, doc)
				continue
			}
			kind := tm.APIVersion + "/" + tm.Kind
			newObj, ok := kinds[kind]
			if !ok {
				t.Errorf("%s: unknown apiVersion/kind %q: add its type to kinds", where, kind)
				continue
			}
			obj := newObj()
			if err := decodeStrict(doc, obj); err != nil {
				t.Errorf("%s (%s): strict decode: %v\n%s", where, kind, err, doc)
				continue
			}
			if metaOf(obj).GetName() == "" {
				t.Errorf("%s (%s): no metadata.name", where, kind)
			}
			r.objects = append(r.objects, object{file: name, doc: i + 1, kind: kind, obj: obj})
		}
	}
	return r
}

func renderChartErr(files []string, overrides ...map[string]any) (map[string]string, error) {
	var values []map[string]any
	for _, f := range files {
		v, err := chartrender.Values(filepath.Join(chartDir, "ci", f))
		if err != nil {
			return nil, err
		}
		values = append(values, v)
	}
	values = append(values, overrides...)
	return chartrender.Render(chartDir, chartrender.Release{Name: "sluice", Namespace: "rl", Revision: 1}, values...)
}

// envOf maps a container's variables by name, failing on duplicates.
func envOf(t *testing.T, c corev1.Container) map[string]corev1.EnvVar {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("container %s: %s set twice", c.Name, e.Name)
		}
		env[e.Name] = e
	}
	return env
}

// servedVariables are the SLUICE_* variables cmd/sluice reads, from its source:
// the ones it names, and one per flag defined through its envFlags
// (`e.string(&x, "a-b", ...)` reads SLUICE_A_B: cmd/sluice/envflags.go's envKey).
func servedVariables(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "cmd", "sluice", "*.go"))
	vars := map[string]bool{}
	re := regexp.MustCompile(`"(SLUICE_[A-Z_]+)"`)
	flagRe := regexp.MustCompile(`\be\.(?:string|bool|int|bytes|duration|float)\(&[^,]+, "([a-z][a-z0-9-]*)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			vars[m[1]] = true
		}
		for _, m := range flagRe.FindAllStringSubmatch(string(data), -1) {
			vars["SLUICE_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
		}
	}
	if !vars["SLUICE_CONFIG"] || !vars["SLUICE_REDIS"] {
		t.Fatalf("found no SLUICE_CONFIG/SLUICE_REDIS in cmd/sluice: %v", vars)
	}
	return vars
}

// mountedFile resolves a file path the container reads to the Secret key behind it: the
// volume mounted at its directory (as a directory, never subPath) and the item of that
// volume that names the file.
func mountedFile(t *testing.T, spec corev1.PodSpec, c corev1.Container, file string) (secret, key string) {
	t.Helper()
	dir, base := path.Split(file)
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) != path.Clean(dir) {
			continue
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			t.Errorf("%s is mounted with subPath: Kubernetes never updates subPath mounts", vm.MountPath)
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == base {
					return v.Secret.SecretName, it.Key
				}
			}
			if len(v.Secret.Items) == 0 {
				return v.Secret.SecretName, base
			}
		}
	}
	t.Errorf("%s is not a file of a Secret volume mounted in container %s", file, c.Name)
	return "", ""
}

// secretValue is key of a Secret the chart rendered.
func secretValue(t *testing.T, m *manifests, name, key string) string {
	t.Helper()
	sec := one[*corev1.Secret](t, m, name)
	if v, ok := sec.StringData[key]; ok {
		return v
	}
	v, ok := sec.Data[key]
	if !ok {
		t.Errorf("Secret %s has no key %q", name, key)
	}
	return string(v)
}

// checkRedisURL opens the store at url with Sluice's own store package (which parses it
// and does not dial) and checks its topology.
func checkRedisURL(t *testing.T, url string, want store.Topology) {
	t.Helper()
	s, err := store.Open(url)
	if err != nil {
		t.Fatalf("SLUICE_REDIS %q: sluice would not start: %v", url, err)
	}
	defer s.Close()
	if s.Topology != want || s.Embedded {
		t.Errorf("SLUICE_REDIS %q: topology %v (embedded %v), want %v", url, s.Topology, s.Embedded, want)
	}
}

// chartPod holds what most checks need of the chart's Deployment.
type chartPod struct {
	dep  *appsv1.Deployment
	spec corev1.PodSpec
	c    corev1.Container
	env  map[string]corev1.EnvVar
}

// checkSecretFiles checks that each variable names a file that is a Secret's key mounted
// into the container: want maps the variable to {Secret, key}.
func (p chartPod) checkSecretFiles(t *testing.T, want map[string][2]string) {
	t.Helper()
	for v, w := range want {
		if sec, key := mountedFile(t, p.spec, p.c, p.env[v].Value); sec != w[0] || key != w[1] {
			t.Errorf("%s=%s is Secret %s key %s, want %s key %s", v, p.env[v].Value, sec, key, w[0], w[1])
		}
	}
}

// checkChart checks what must hold for any values: strict objects with the chart's labels,
// a Deployment whose probes, variables, mounts and config fit, Services at its ports, PDB
// and HPA at its pods, and a config that `sluice check-config` accepts.
func checkChart(t *testing.T, r rendered) chartPod {
	t.Helper()
	m := r.manifests
	dep := one[*appsv1.Deployment](t, m, "sluice")
	pod := dep.Spec.Template
	if !selects(t, dep.Spec.Selector, pod.Labels) {
		t.Errorf("Deployment: selector %v does not select its pod template %v", dep.Spec.Selector, pod.Labels)
	}
	for _, o := range m.objects {
		mo := metaOf(o.obj)
		if !selects(t, dep.Spec.Selector, mo.GetLabels()) || mo.GetLabels()["helm.sh/chart"] == "" {
			t.Errorf("%v: labels %v lack the chart's labels", o, mo.GetLabels())
		}
		if mo.GetNamespace() != "" {
			t.Errorf("%v: namespace %q, want none (helm sets the release's)", o, mo.GetNamespace())
		}
	}
	checkPod(t, "Deployment sluice", pod.Spec, true)
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("Deployment: want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	env := envOf(t, c)
	served := servedVariables(t)
	for name := range env {
		if strings.HasPrefix(name, "SLUICE_") && !served[name] {
			t.Errorf("container sets %s, which sluice serve does not read", name)
		}
	}
	if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pod securityContext %+v: want runAsUser 65532, the image's user", psc)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Errorf("pod: automountServiceAccountToken must be false (Sluice calls no Kubernetes API)")
	}
	if sa := pod.Spec.ServiceAccountName; sa != "" && sa != "default" {
		one[*corev1.ServiceAccount](t, m, sa)
	}
	if g, s := pod.Spec.TerminationGracePeriodSeconds, c.Lifecycle.PreStop.Sleep.Seconds; g == nil || *g <= s+10 {
		t.Errorf("terminationGracePeriodSeconds %v must exceed preStop (%d s) + Sluice's 10 s drain", g, s)
	}

	// Every port a variable names is declared under the same number.
	for v, name := range map[string]string{"SLUICE_GRPC_ADDR": "grpc", "SLUICE_HTTP_ADDR": "http", "SLUICE_HEALTH_ADDR": "health", "SLUICE_ADMIN_ADDR": "admin"} {
		addr := env[v].Value
		if addr == "" || addr == "off" || strings.HasPrefix(addr, "127.0.0.1:") {
			if _, declared := containerPort(c, intstr.FromString(name)); declared && addr != "" {
				t.Errorf("%s=%q but port %s is declared: nothing outside the pod can reach it", v, addr, name)
			}
			continue
		}
		cp, ok := containerPort(c, intstr.FromString(name))
		if !ok || fmt.Sprintf(":%d", cp.ContainerPort) != addr {
			t.Errorf("%s=%q, but the container's port %s is %+v", v, addr, name, cp)
		}
	}

	// No two listeners on one port: Linux refuses :P while 127.0.0.1:P is taken (the admin
	// port's default), so Sluice would exit at start.
	ports := map[string]string{}
	for _, v := range []string{"SLUICE_GRPC_ADDR", "SLUICE_HTTP_ADDR", "SLUICE_HEALTH_ADDR", "SLUICE_ADMIN_ADDR"} {
		addr := env[v].Value
		if addr == "" || addr == "off" {
			continue
		}
		port := addr[strings.LastIndexByte(addr, ':')+1:]
		if prev, dup := ports[port]; dup {
			t.Errorf("%s and %s both listen on port %s", prev, v, port)
		}
		ports[port] = v
	}

	// The probes: liveness /healthz (never Redis), readiness /readyz or gRPC health, on the
	// health port when there is one.
	want := "http"
	if env["SLUICE_HEALTH_ADDR"].Value != "" {
		want = "health"
	}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != want {
			t.Errorf("%s probe: want GET /healthz on port %s, got %+v", name, want, p)
		}
	}
	if rp := c.ReadinessProbe; want == "health" {
		if rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.String() != "health" {
			t.Errorf("readiness probe: want GET /readyz on the health port, got %+v", rp.ProbeHandler)
		}
	} else if rp.GRPC == nil || fmt.Sprintf(":%d", rp.GRPC.Port) != env["SLUICE_GRPC_ADDR"].Value {
		t.Errorf("readiness probe: want the gRPC health service on %s, got %+v", env["SLUICE_GRPC_ADDR"].Value, rp.ProbeHandler)
	}

	// The config: a ConfigMap volume at SLUICE_CONFIG, as a directory, that sluice
	// check-config accepts (config.LoadWith, as check-config runs it).
	cfgDir := env["SLUICE_CONFIG"].Value
	var cm *corev1.ConfigMap
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) != path.Clean(cfgDir) {
			continue
		}
		if vm.SubPath != "" {
			t.Errorf("the config is mounted with subPath: edits would never reload")
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				if len(v.ConfigMap.Items) > 0 {
					t.Errorf("volume %s: items would hide config files added later", v.Name)
				}
				if len(all[*corev1.ConfigMap](m)) > 0 {
					cm = one[*corev1.ConfigMap](t, m, v.ConfigMap.Name)
				}
			}
		}
	}
	if cfgDir == "" || !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return path.Clean(vm.MountPath) == path.Clean(cfgDir) }) {
		t.Fatalf("SLUICE_CONFIG=%q is not a mount of the container", cfgDir)
	}
	if cm != nil {
		checkConfigMap(t, cm, env["SLUICE_MERGE_DOMAIN_CONFIG"].Value == "true")
	}

	// Services select the pods and target declared ports; the ServiceMonitor (if any)
	// selects the main one only.
	svcs := all[*corev1.Service](m)
	if len(svcs) == 0 {
		t.Fatal("no Service")
	}
	for _, svc := range svcs {
		if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pod.Labels) {
			t.Errorf("Service %s: selector %v does not select the pods", svc.Name, svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			if cp, ok := containerPort(c, p.TargetPort); !ok || cp.ContainerPort != p.Port {
				t.Errorf("Service %s port %s: targetPort %s is not container port %d", svc.Name, p.Name, p.TargetPort.String(), p.Port)
			}
			if p.AppProtocol == nil || *p.AppProtocol == "" {
				t.Errorf("Service %s port %s: no appProtocol", svc.Name, p.Name)
			}
		}
	}
	for _, pdb := range all[*policyv1.PodDisruptionBudget](m) {
		if !selects(t, pdb.Spec.Selector, pod.Labels) {
			t.Errorf("PodDisruptionBudget %s does not select the pods", pdb.Name)
		}
		if mu := pdb.Spec.MaxUnavailable; mu == nil || (mu.Type == intstr.Int && mu.IntVal < 1) {
			t.Errorf("PodDisruptionBudget %s: maxUnavailable %v would block every node drain", pdb.Name, mu)
		}
	}
	for _, hpa := range all[*autoscalingv2.HorizontalPodAutoscaler](m) {
		ref := hpa.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != dep.Name {
			t.Errorf("HorizontalPodAutoscaler targets %+v, want Deployment %s", ref, dep.Name)
		}
		if dep.Spec.Replicas != nil {
			t.Errorf("Deployment sets replicas %d alongside an HPA: every upgrade would reset the HPA's count", *dep.Spec.Replicas)
		}
		if c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("HPA on CPU utilization needs a CPU request")
		}
	}
	for _, sm := range all[*serviceMonitor](m) {
		var picked []*corev1.Service
		for _, svc := range svcs {
			if selects(t, &sm.Spec.Selector, svc.Labels) {
				picked = append(picked, svc)
			}
		}
		if len(picked) != 1 || picked[0].Name != dep.Name {
			t.Fatalf("ServiceMonitor selects %d Services, want exactly the main one (else each pod is scraped twice)", len(picked))
		}
		if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{"rl"}) {
			t.Errorf("ServiceMonitor: namespaceSelector %v, want the release's namespace", sm.Spec.NamespaceSelector.MatchNames)
		}
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(picked[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				t.Errorf("ServiceMonitor endpoint port %q is not a port of Service %s", ep.Port, picked[0].Name)
			}
			if ep.Path != "/metrics" || ep.Port != want {
				t.Errorf("ServiceMonitor endpoint %+v: want /metrics on port %s (plain HTTP)", ep, want)
			}
		}
	}
	if !strings.Contains(r.notes, dep.Name) {
		t.Errorf("NOTES.txt does not name the Deployment:\n%s", r.notes)
	}
	return chartPod{dep: dep, spec: pod.Spec, c: c, env: env}
}

// checkConfigMap loads the ConfigMap's files as `sluice check-config` does.
func checkConfigMap(t *testing.T, cm *corev1.ConfigMap, merge bool) *config.Set {
	t.Helper()
	dir := t.TempDir()
	for name, data := range cm.Data {
		if !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml") {
			t.Errorf("ConfigMap %s: key %q is not a *.yaml file, so Sluice would skip it", cm.Name, name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := config.LoadWith(dir, config.LoadOptions{MergeDomains: merge})
	if err != nil {
		t.Fatalf("sluice check-config rejects ConfigMap %s: %v", cm.Name, err)
	}
	if ws := set.Warnings(); len(ws) > 0 {
		t.Errorf("ConfigMap %s: warnings: %v", cm.Name, ws)
	}
	return set
}

// TestHelmChartDefaults renders the chart with its default values: a single Redis from
// the values, the health port behind the probes, the admin port on loopback, a PDB, no
// HPA, no ServiceMonitor, no Secret, and the default config loads.
func TestHelmChartDefaults(t *testing.T) {
	r := renderChart(t, nil)
	p := checkChart(t, r)
	if got := p.env["SLUICE_REDIS"]; got.Value != "redis://redis:6379/0" || got.ValueFrom != nil {
		t.Errorf("SLUICE_REDIS = %+v, want redis://redis:6379/0 from values", got)
	}
	checkRedisURL(t, p.env["SLUICE_REDIS"].Value, store.Single)
	if p.env["SLUICE_HEALTH_ADDR"].Value != ":8083" {
		t.Errorf("SLUICE_HEALTH_ADDR = %q, want :8083", p.env["SLUICE_HEALTH_ADDR"].Value)
	}
	if got := p.env["SLUICE_ADMIN_ADDR"].Value; got != "127.0.0.1:8082" {
		t.Errorf("SLUICE_ADMIN_ADDR = %q, want the loopback default 127.0.0.1:8082", got)
	}
	for _, v := range []string{"SLUICE_AUTH_TOKEN_FILE", "SLUICE_TLS_CERT", "SLUICE_ADMIN_TOKEN_FILE", "SLUICE_MERGE_DOMAIN_CONFIG"} {
		if _, ok := p.env[v]; ok {
			t.Errorf("%s is set by default", v)
		}
	}
	if p.dep.Spec.Replicas == nil || *p.dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", p.dep.Spec.Replicas)
	}
	if a := p.dep.Spec.Template.Annotations; a["prometheus.io/port"] != "8083" || a["prometheus.io/scrape"] != "true" {
		t.Errorf("pod annotations %v: want prometheus.io/scrape on port 8083", a)
	}
	if _, ok := p.dep.Spec.Template.Annotations["checksum/secret"]; ok {
		t.Errorf("checksum/secret annotation without a chart Secret")
	}
	if n := len(all[*corev1.Secret](r.manifests)); n != 0 {
		t.Errorf("%d Secrets rendered by default, want none", n)
	}
	if len(all[*autoscalingv2.HorizontalPodAutoscaler](r.manifests)) != 0 || len(all[*serviceMonitor](r.manifests)) != 0 {
		t.Errorf("HPA or ServiceMonitor rendered by default")
	}
	one[*policyv1.PodDisruptionBudget](t, r.manifests, "sluice")
	one[*corev1.Service](t, r.manifests, "sluice-headless")
	cm := one[*corev1.ConfigMap](t, r.manifests, "sluice")
	if _, ok := checkConfigMap(t, cm, false).Domain("apim"); !ok {
		t.Errorf("the default config has no domain apim")
	}
	if got := p.c.Image; got != "sluice:0.1.0" {
		t.Errorf("image %q, want sluice:<appVersion>", got)
	}
}

// TestHelmChartEverythingOn renders ci/full-values.yaml: Sentinel over TLS with the
// password from a Secret, mutual TLS, both tokens, an exposed admin port with tokens,
// HPA, PDB, ServiceMonitor, and a config of two files merged into one domain.
func TestHelmChartEverythingOn(t *testing.T) {
	r := renderChart(t, []string{"full-values.yaml"})
	p := checkChart(t, r)
	m := r.manifests

	// Redis: the password variable comes first (Kubernetes expands only earlier ones).
	pw := slices.IndexFunc(p.c.Env, func(e corev1.EnvVar) bool { return e.Name == "REDIS_PASSWORD" })
	ru := slices.IndexFunc(p.c.Env, func(e corev1.EnvVar) bool { return e.Name == "SLUICE_REDIS" })
	if pw < 0 || ru < pw {
		t.Fatalf("REDIS_PASSWORD (at %d) must come before SLUICE_REDIS (at %d)", pw, ru)
	}
	if ref := p.c.Env[pw].ValueFrom.SecretKeyRef; ref == nil || ref.Name != "redis-auth" || ref.Key != "redis-password" {
		t.Errorf("REDIS_PASSWORD from %+v, want Secret redis-auth key redis-password", p.c.Env[pw].ValueFrom)
	}
	const wantURL = "rediss+sentinel://:$(REDIS_PASSWORD)@sentinel-0.redis:26379,sentinel-1.redis:26379,sentinel-2.redis:26379/sluice?db=2"
	if got := p.env["SLUICE_REDIS"].Value; got != wantURL {
		t.Errorf("SLUICE_REDIS = %q, want %q", got, wantURL)
	}
	checkRedisURL(t, strings.ReplaceAll(p.env["SLUICE_REDIS"].Value, "$(REDIS_PASSWORD)", "s3cret"), store.Sentinel)

	// TLS: the files are the Secrets' keys, mounted as directories.
	p.checkSecretFiles(t, map[string][2]string{
		"SLUICE_TLS_CERT":              {"sluice-tls", "tls.crt"},
		"SLUICE_TLS_KEY":               {"sluice-tls", "tls.key"},
		"SLUICE_TLS_CLIENT_CA":         {"sluice-client-ca", "ca.crt"},
		"SLUICE_ADMIN_TOKEN_FILE":      {"sluice-admin-tokens", "tokens"},
		"SLUICE_ADMIN_READ_TOKEN_FILE": {"sluice-admin-tokens", "read-tokens"},
	})

	// The tokens: the files are the chart Secret's keys, which hold the values' tokens.
	for v, want := range map[string]string{"SLUICE_AUTH_TOKEN_FILE": "full-token-from-values", "SLUICE_DECIDE_TOKEN_FILE": "decide-token-from-values"} {
		sec, key := mountedFile(t, p.spec, p.c, p.env[v].Value)
		if sec != "sluice" {
			t.Errorf("%s: Secret %q, want the chart's", v, sec)
			continue
		}
		if got := secretValue(t, m, sec, key); got != want {
			t.Errorf("%s: Secret %s key %s holds %q, want %q", v, sec, key, got, want)
		}
	}
	// The tokens are read at start: a change of the chart's Secret rolls the pods.
	sum := p.dep.Spec.Template.Annotations["checksum/secret"]
	if sum == "" {
		t.Fatal("no checksum/secret annotation on the pods")
	}
	out, err := renderChartErr([]string{"full-values.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256([]byte(out["sluice/templates/secret.yaml"])); hex.EncodeToString(h[:]) != sum {
		t.Errorf("checksum/secret %s is not the rendered Secret's sha256", sum)
	}
	other := renderChart(t, []string{"full-values.yaml"}, map[string]any{"auth": map[string]any{"token": "another-token"}})
	if one[*appsv1.Deployment](t, other.manifests, "sluice").Spec.Template.Annotations["checksum/secret"] == sum {
		t.Errorf("checksum/secret did not change with auth.token")
	}
	if a := p.dep.Spec.Template.Annotations; a["example.com/team"] != "platform" {
		t.Errorf("podAnnotations lost: %v", a)
	}

	// The admin port: on every interface, declared, in the main Service only.
	if got := p.env["SLUICE_ADMIN_ADDR"].Value; got != ":8082" {
		t.Errorf("SLUICE_ADMIN_ADDR = %q, want :8082", got)
	}
	svc := one[*corev1.Service](t, m, "sluice")
	if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == "admin" && sp.Port == 8082 }) {
		t.Errorf("Service sluice: no admin port 8082: %+v", svc.Spec.Ports)
	}
	if slices.ContainsFunc(one[*corev1.Service](t, m, "sluice-headless").Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == "admin" }) {
		t.Errorf("the headless Service (Envoy's) carries the admin port")
	}

	// Everything else on.
	hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, m, "sluice")
	if ptrVal(hpa.Spec.MinReplicas) != 3 || hpa.Spec.MaxReplicas != 9 {
		t.Errorf("HPA %d..%d, want 3..9", ptrVal(hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas)
	}
	one[*policyv1.PodDisruptionBudget](t, m, "sluice")
	sm := one[*serviceMonitor](t, m, "sluice")
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v lack serviceMonitor.labels", sm.Labels)
	}
	for v, want := range map[string]string{
		"SLUICE_ENVOY_RESPONSE_HEADERS": "true", "SLUICE_LOG_LEVEL": "debug", "SLUICE_MERGE_DOMAIN_CONFIG": "true",
		"SLUICE_REDIS_TLS_SKIP_HOSTNAME_VERIFICATION": "true",
		"OTEL_EXPORTER_OTLP_ENDPOINT":                 "http://otel-collector.monitoring:4317",
	} {
		if p.env[v].Value != want {
			t.Errorf("%s = %q, want %q", v, p.env[v].Value, want)
		}
	}
	if p.c.Image != "registry.example.com/platform/sluice:1.2.3" {
		t.Errorf("image %q", p.c.Image)
	}
	set := checkConfigMap(t, one[*corev1.ConfigMap](t, m, "sluice"), true)
	apim, _ := set.Domain("apim")
	for _, api := range []string{"PizzaShackAPI:1.0.0", "ChatAPI:1.0.0"} {
		if rule, ok := apim.Match(entries("api", api, "environment", "production")); !ok || len(rule.Limits) == 0 {
			t.Errorf("domain apim: no limit for %s (both files must be in the ConfigMap)", api)
		}
	}
}

// TestHelmChartCluster renders ci/cluster-values.yaml: Redis Cluster over mutual TLS with
// an ACL user, tokens from a Secret of the user's, no health port and no admin port.
func TestHelmChartCluster(t *testing.T) {
	r := renderChart(t, []string{"cluster-values.yaml"})
	p := checkChart(t, r)
	const wantURL = "rediss+cluster://sluice:$(REDIS_PASSWORD)@redis-cluster-0.redis-cluster.redis.svc.cluster.local:6379,redis-cluster-1.redis-cluster.redis.svc.cluster.local:6379,redis-cluster-2.redis-cluster.redis.svc.cluster.local:6379"
	if got := p.env["SLUICE_REDIS"].Value; got != wantURL {
		t.Errorf("SLUICE_REDIS = %q, want %q", got, wantURL)
	}
	if ref := p.env["REDIS_PASSWORD"].ValueFrom.SecretKeyRef; ref.Name != "redis-cluster-auth" || ref.Key != "password" {
		t.Errorf("REDIS_PASSWORD from %+v, want redis-cluster-auth/password", ref)
	}
	checkRedisURL(t, strings.ReplaceAll(wantURL, "$(REDIS_PASSWORD)", "pw"), store.Cluster)
	p.checkSecretFiles(t, map[string][2]string{
		"SLUICE_AUTH_TOKEN_FILE":   {"sluice-tokens", "token"},
		"SLUICE_DECIDE_TOKEN_FILE": {"sluice-tokens", "decide-token"},
		"SLUICE_REDIS_TLS_CA":      {"redis-ca", "ca.crt"},
		"SLUICE_REDIS_TLS_CERT":    {"sluice-redis-client", "tls.crt"},
		"SLUICE_REDIS_TLS_KEY":     {"sluice-redis-client", "tls.key"},
	})
	if got := p.env["SLUICE_ADMIN_ADDR"].Value; got != "off" {
		t.Errorf("SLUICE_ADMIN_ADDR = %q, want off", got)
	}
	if _, ok := p.env["SLUICE_HEALTH_ADDR"]; ok {
		t.Errorf("SLUICE_HEALTH_ADDR set with health.enabled false")
	}
	if len(all[*corev1.Secret](r.manifests)) != 0 {
		t.Errorf("a chart Secret although every secret is the user's")
	}
}

// TestHelmChartSources renders the other ways to name Redis and the config.
func TestHelmChartSources(t *testing.T) {
	t.Run("redis URL from the user's Secret", func(t *testing.T) {
		p := checkChart(t, renderChart(t, nil, map[string]any{"redis": map[string]any{"existingSecret": "my-redis", "existingSecretKey": "uri"}}))
		if ref := p.env["SLUICE_REDIS"].ValueFrom; ref == nil || ref.SecretKeyRef.Name != "my-redis" || ref.SecretKeyRef.Key != "uri" {
			t.Errorf("SLUICE_REDIS = %+v, want my-redis/uri", p.env["SLUICE_REDIS"])
		}
	})
	t.Run("redis URL in values", func(t *testing.T) {
		const url = "redis+sentinel://:p%40ss@s1:26379,s2:26379/mymaster?sentinel_password=x"
		r := renderChart(t, nil, map[string]any{"redis": map[string]any{"url": url}})
		p := checkChart(t, r)
		ref := p.env["SLUICE_REDIS"].ValueFrom
		if ref == nil || ref.SecretKeyRef.Name != "sluice" {
			t.Fatalf("SLUICE_REDIS = %+v, want the chart's Secret", p.env["SLUICE_REDIS"])
		}
		if got := secretValue(t, r.manifests, "sluice", ref.SecretKeyRef.Key); got != url {
			t.Errorf("the chart's Secret holds %q, want %q", got, url)
		}
		checkRedisURL(t, url, store.Sentinel)
		if p.dep.Spec.Template.Annotations["checksum/secret"] == "" {
			t.Errorf("no checksum/secret: a new URL would not reach running pods")
		}
	})
	t.Run("embedded store", func(t *testing.T) {
		p := checkChart(t, renderChart(t, nil, map[string]any{"redis": map[string]any{"topology": "embedded"}, "replicaCount": 1}))
		if _, ok := p.env["SLUICE_REDIS"]; ok {
			t.Errorf("SLUICE_REDIS set for the embedded store: %+v", p.env["SLUICE_REDIS"])
		}
	})
	t.Run("config from the user's ConfigMap", func(t *testing.T) {
		r := renderChart(t, nil, map[string]any{"config": map[string]any{"existingConfigMap": "my-limits"}})
		p := checkChart(t, r)
		if n := len(all[*corev1.ConfigMap](r.manifests)); n != 0 {
			t.Errorf("%d ConfigMaps rendered beside config.existingConfigMap", n)
		}
		if !slices.ContainsFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == "my-limits" }) {
			t.Errorf("no volume of ConfigMap my-limits: %+v", p.spec.Volumes)
		}
	})
	t.Run("fullnameOverride", func(t *testing.T) {
		r := renderChart(t, nil, map[string]any{"fullnameOverride": "rl"})
		for _, o := range r.objects {
			if n := metaOf(o.obj).GetName(); n != "rl" && n != "rl-headless" {
				t.Errorf("%v: name %q, want rl", o, n)
			}
		}
	})
}

// TestHelmChartRefuses checks that values which cannot work fail the render with a
// message naming the value, instead of rendering pods that never turn ready.
func TestHelmChartRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"unknown topology", map[string]any{"redis": map[string]any{"topology": "ring"}}, "redis.topology"},
		{"single with two nodes", map[string]any{"redis": map[string]any{"addresses": []any{"a:6379", "b:6379"}}}, "redis.addresses"},
		{"no addresses", map[string]any{"redis": map[string]any{"addresses": []any{}}}, "redis.addresses"},
		{"embedded with 3 replicas", map[string]any{"redis": map[string]any{"topology": "embedded"}}, "embedded"},
		{"TLS without a Secret", map[string]any{"tls": map[string]any{"enabled": true}}, "tls.secretName"},
		{"TLS without the health port", map[string]any{"tls": map[string]any{"enabled": true, "secretName": "x"}, "health": map[string]any{"enabled": false}}, "health.enabled"},
		{"client CA without TLS", map[string]any{"tls": map[string]any{"clientCA": map[string]any{"enabled": true}}}, "tls.enabled"},
		{"exposed admin without tokens", map[string]any{"admin": map[string]any{"expose": true}}, "admin.tokenSecret"},
		{"auth without a token", map[string]any{"auth": map[string]any{"enabled": true}}, "auth.token"},
		{"decide token = full token", map[string]any{"auth": map[string]any{"enabled": true, "token": "a", "decideToken": "a"}}, "auth.decideToken"},
		{"config file not yaml", map[string]any{"config": map[string]any{"files": map[string]any{"limits.txt": "domain: x"}}}, "limits.txt"},
		{"no config", map[string]any{"config": map[string]any{"limits": ""}}, "config.files"},
		{"a domain in two files", map[string]any{"config": map[string]any{"files": map[string]any{"more.yaml": "domain: apim\ndescriptors: []\n"}}}, `domain "apim" is in both limits.yaml and more.yaml`},
		{"a file named as config.limits's", map[string]any{"config": map[string]any{"files": map[string]any{"limits.yaml": "domain: x"}}}, "config.limits"},
		{"Redis client certificate without TLS", map[string]any{"redis": map[string]any{"tlsClientCert": map[string]any{"secretName": "c"}}}, "redis.tls"},
		{"health port on the admin port", map[string]any{"health": map[string]any{"port": 8082}}, "admin.port"},
		{"HPA min above max", map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 5, "maxReplicas": 2}}, "minReplicas"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := renderChartErr(nil, c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("render error %v, want one naming %q", err, c.want)
			}
		})
	}
}
