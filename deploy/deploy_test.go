package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/sluice-rl/sluice/server/config"
)

// The folders whose YAML files are Kubernetes manifests.
var manifestDirs = []string{"kubernetes", "redis-cluster"}

// kinds maps apiVersion/kind to a new object of the matching k8s.io/api type. A manifest
// of any other kind fails the test: add its type here when adding one.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kustomization{} },
	"monitoring.coreos.com/v1/ServiceMonitor":       func() any { return &serviceMonitor{} },
}

// kustomization is the part of kustomize's Kustomization these folders use; any other
// field is an unknown field and fails the strict decode.
type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Namespace       string   `json:"namespace,omitempty"`
	Resources       []string `json:"resources"`
	Labels          []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// object is one decoded manifest document.
type object struct {
	file string // relative to deploy/
	doc  int    // 1-based document number in the file
	kind string // apiVersion/kind
	obj  any
}

func (o object) String() string { return fmt.Sprintf("%s#%d (%s)", o.file, o.doc, o.kind) }

// manifests holds every decoded document of one folder.
type manifests struct {
	dir     string
	objects []object
	kustom  *kustomization
}

// one returns the single object of type T named name (any name when name is "").
func one[T any](t *testing.T, m *manifests, name string) T {
	t.Helper()
	var found []T
	for _, o := range m.objects {
		v, ok := o.obj.(T)
		if !ok {
			continue
		}
		if name == "" || metaOf(o.obj).GetName() == name {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%s: want exactly one %T named %q, found %d", m.dir, zero, name, len(found))
	}
	return found[0]
}

// all returns every object of type T.
func all[T any](m *manifests) []T {
	var out []T
	for _, o := range m.objects {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func metaOf(obj any) metav1.Object {
	if mo, ok := obj.(metav1.Object); ok {
		return mo
	}
	return &metav1.ObjectMeta{}
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitDocs splits a multi-document YAML file, dropping documents with no content.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(string(data), -1) {
		empty := true
		for line := range strings.SplitSeq(d, "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeStrict decodes one YAML document into out: duplicate keys and fields the type
// does not have are errors.
func decodeStrict(doc []byte, out any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the document")
	}
	return nil
}

// load decodes every YAML document of deploy/<dir> strictly into its API type.
func load(t *testing.T, dir string) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("%s: no manifests", dir)
	}
	m := &manifests{dir: dir}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocs(data)
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", file)
		}
		for i, doc := range docs {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Errorf("%s#%d: %v", file, i+1, err)
				continue
			}
			kind := tm.APIVersion + "/" + tm.Kind
			newObj, ok := kinds[kind]
			if !ok {
				t.Errorf("%s#%d: unknown apiVersion/kind %q: add its type to kinds", file, i+1, kind)
				continue
			}
			obj := newObj()
			if err := decodeStrict(doc, obj); err != nil {
				t.Errorf("%s#%d (%s): strict decode: %v", file, i+1, kind, err)
				continue
			}
			if k, ok := obj.(*kustomization); ok {
				if filepath.Base(file) != "kustomization.yaml" {
					t.Errorf("%s: a Kustomization must be in kustomization.yaml", file)
				}
				m.kustom = k
				continue
			}
			if metaOf(obj).GetName() == "" {
				t.Errorf("%s#%d (%s): no metadata.name", file, i+1, kind)
			}
			m.objects = append(m.objects, object{file: file, doc: i + 1, kind: kind, obj: obj})
		}
	}
	if m.kustom == nil {
		t.Fatalf("%s: no kustomization.yaml", dir)
	}
	return m
}

// TestManifestsDecodeStrictly decodes every document under kubernetes/ and
// redis-cluster/ into its k8s.io/api type with unknown and duplicate fields as errors,
// and checks that each kustomization.yaml lists exactly the manifest files beside it.
func TestManifestsDecodeStrictly(t *testing.T) {
	for _, dir := range manifestDirs {
		t.Run(dir, func(t *testing.T) {
			m := load(t, dir)
			files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
			var want []string
			for _, f := range files {
				if b := filepath.Base(f); b != "kustomization.yaml" {
					want = append(want, b)
				}
			}
			got := slices.Clone(m.kustom.Resources)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s/kustomization.yaml resources = %v, want every manifest file: %v", dir, got, want)
			}
			if m.kustom.Namespace == "" {
				t.Errorf("%s/kustomization.yaml: no namespace", dir)
			}
			nss := all[*corev1.Namespace](m)
			if len(nss) != 1 || nss[0].Name != m.kustom.Namespace {
				t.Errorf("%s: want one Namespace named %q (the kustomization's)", dir, m.kustom.Namespace)
			}
			seen := map[string]object{}
			for _, o := range m.objects {
				key := o.kind + "/" + metaOf(o.obj).GetName()
				if prev, dup := seen[key]; dup {
					t.Errorf("%v and %v: both %s", prev, o, key)
				}
				seen[key] = o
				if ns := metaOf(o.obj).GetNamespace(); ns != "" && ns != m.kustom.Namespace {
					t.Errorf("%v: namespace %q, want none (the kustomization sets %q)", o, ns, m.kustom.Namespace)
				}
			}
		})
	}
}

// containerPort resolves a probe's or Service's port against the container's ports.
func containerPort(c corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) ||
			(p.Type == intstr.String && p.StrVal != "" && cp.Name == p.StrVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// probePort returns the port a probe checks.
func probePort(p *corev1.Probe) (intstr.IntOrString, string) {
	switch {
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, "httpGet " + p.HTTPGet.Path
	case p.GRPC != nil:
		svc := ""
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		return intstr.FromInt32(p.GRPC.Port), fmt.Sprintf("grpc service %q", svc)
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, "tcpSocket"
	case p.Exec != nil:
		return intstr.IntOrString{}, "exec"
	}
	return intstr.IntOrString{}, ""
}

// checkPod checks what every pod of these folders must have: probes at declared ports,
// a non-root, read-only, capability-free container, and resource requests.
func checkPod(t *testing.T, where string, spec corev1.PodSpec, needProbes bool) {
	t.Helper()
	psc := spec.SecurityContext
	for _, c := range spec.Containers {
		at := where + " container " + c.Name
		if c.Image == "" {
			t.Errorf("%s: no image", at)
		}
		if needProbes {
			for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil {
					t.Errorf("%s: no %s probe", at, name)
				}
			}
		}
		for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil {
				continue
			}
			port, what := probePort(p)
			if what == "" {
				t.Errorf("%s: %s probe has no handler", at, name)
				continue
			}
			if what == "exec" {
				continue
			}
			if _, ok := containerPort(c, port); !ok {
				t.Errorf("%s: %s probe (%s) checks port %s, which the container does not declare", at, name, what, port.String())
			}
		}
		sc := c.SecurityContext
		nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
			(psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("%s: runAsNonRoot is not set", at)
		}
		uid := (*int64)(nil)
		if psc != nil && psc.RunAsUser != nil {
			uid = psc.RunAsUser
		}
		if sc != nil && sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			t.Errorf("%s: runAsUser 0", at)
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", at)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", at)
		}
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", at)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s: no cpu and memory requests", at)
		}
		for _, vm := range c.VolumeMounts {
			if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }) && vm.Name != "data" {
				t.Errorf("%s: mounts volume %q, which the pod does not have", at, vm.Name)
			}
		}
	}
}

// selects reports whether sel selects pods with these labels.
func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// TestSluiceDeployment checks that the Sluice manifests fit together and with the
// service: probes, config, Redis URL, security, drain, spread, Service, PDB and HPA.
func TestSluiceDeployment(t *testing.T) {
	m := load(t, "kubernetes")
	dep := one[*appsv1.Deployment](t, m, "sluice")
	pod := dep.Spec.Template
	podLabels := pod.Labels

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("Deployment: replicas %d, want 3", ptrVal(dep.Spec.Replicas))
	}
	if !selects(t, dep.Spec.Selector, podLabels) {
		t.Errorf("Deployment: selector %v does not select its pod template %v", dep.Spec.Selector, podLabels)
	}
	checkPod(t, "Deployment sluice", pod.Spec, true)
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("Deployment: want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// Ports and probes.
	grpcPort, ok := containerPort(c, intstr.FromInt32(8081))
	if !ok || grpcPort.Name != "grpc" {
		t.Errorf("container: want port 8081 named grpc, got %+v", c.Ports)
	}
	httpPort, ok := containerPort(c, intstr.FromInt32(8080))
	if !ok || httpPort.Name != "http" {
		t.Errorf("container: want port 8080 named http, got %+v", c.Ports)
	}
	if lp := c.LivenessProbe; lp != nil {
		// The gRPC health status and /readyz turn bad when Redis is unreachable: a liveness
		// probe on them would restart every pod during a Redis outage.
		if lp.GRPC != nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" {
			t.Errorf("liveness probe must be GET /healthz (not the gRPC health service, not /readyz): %+v", lp.ProbeHandler)
		}
		if p, _ := containerPort(c, lp.HTTPGet.Port); p.ContainerPort != 8080 {
			t.Errorf("liveness probe on port %s, want the HTTP port 8080", lp.HTTPGet.Port.String())
		}
	}
	if rp := c.ReadinessProbe; rp != nil {
		switch {
		case rp.GRPC != nil:
			if rp.GRPC.Port != 8081 || (rp.GRPC.Service != nil && *rp.GRPC.Service != "") {
				t.Errorf("readiness gRPC probe: want port 8081 service \"\", got %+v", rp.GRPC)
			}
		case rp.HTTPGet != nil:
			if rp.HTTPGet.Path != "/readyz" {
				t.Errorf("readiness HTTP probe: want /readyz, got %s", rp.HTTPGet.Path)
			}
		default:
			t.Errorf("readiness probe: want grpc on 8081 or GET /readyz, got %+v", rp.ProbeHandler)
		}
	}

	// Config: SLUICE_CONFIG is the ConfigMap volume's mount, as a directory.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	cfgDir := env["SLUICE_CONFIG"].Value
	if cfgDir == "" {
		t.Fatal("container: SLUICE_CONFIG is not set")
	}
	var cm *corev1.ConfigMap
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) != filepath.Clean(cfgDir) {
			continue
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			t.Errorf("the config is mounted with subPath: Kubernetes never updates subPath mounts, so edits would not reload")
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm = one[*corev1.ConfigMap](t, m, v.ConfigMap.Name)
				if len(v.ConfigMap.Items) > 0 {
					t.Errorf("volume %s: items would hide config files added to the ConfigMap later", v.Name)
				}
			}
		}
	}
	if cm == nil {
		t.Fatalf("SLUICE_CONFIG=%s is not the mount path of a ConfigMap volume", cfgDir)
	}
	checkLimits(t, cm)

	// SLUICE_REDIS from a Secret of these manifests.
	redisEnv := env["SLUICE_REDIS"]
	if redisEnv.Value != "" || redisEnv.ValueFrom == nil || redisEnv.ValueFrom.SecretKeyRef == nil {
		t.Errorf("SLUICE_REDIS must come from a Secret (secretKeyRef), got %+v", redisEnv)
	} else {
		ref := redisEnv.ValueFrom.SecretKeyRef
		sec := one[*corev1.Secret](t, m, ref.Name)
		u, ok := sec.StringData[ref.Key]
		if !ok {
			if b, ok2 := sec.Data[ref.Key]; ok2 {
				u, ok = string(b), true
			}
		}
		if !ok {
			t.Errorf("Secret %s has no key %q", ref.Name, ref.Key)
		}
		if !regexp.MustCompile(`^(redis|rediss|redis\+cluster|rediss\+cluster|redis\+sentinel|rediss\+sentinel)://`).MatchString(u) {
			t.Errorf("Secret %s/%s: %q is not a Redis URL Sluice takes", ref.Name, ref.Key, u)
		}
	}

	// Drain: SIGTERM comes after preStop; Sluice then drains for up to 10 s.
	preStop := int64(0)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = c.Lifecycle.PreStop.Sleep.Seconds
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
		t.Errorf("preStop exec: the distroless image has no shell or sleep binary; use lifecycle.preStop.sleep")
	}
	const drain = 10
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g <= preStop+drain {
		t.Errorf("terminationGracePeriodSeconds %v must exceed preStop (%d s) + Sluice's %d s drain", g, preStop, drain)
	}

	// Spread over nodes and zones.
	keys := map[string]bool{}
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		if !selects(t, tsc.LabelSelector, podLabels) {
			t.Errorf("topology spread on %s: selector does not select Sluice's pods", tsc.TopologyKey)
		}
		keys[tsc.TopologyKey] = true
	}
	if !keys["kubernetes.io/hostname"] || !keys["topology.kubernetes.io/zone"] {
		t.Errorf("want topology spread over kubernetes.io/hostname and topology.kubernetes.io/zone, got %v", keys)
	}
	if pod.Spec.ServiceAccountName != "" {
		one[*corev1.ServiceAccount](t, m, pod.Spec.ServiceAccountName)
	}

	// Services: gRPC 8081 and HTTP 8080, with appProtocol, at the pods' ports.
	svcs := all[*corev1.Service](m)
	if len(svcs) == 0 {
		t.Fatal("no Service")
	}
	for _, svc := range svcs {
		if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, podLabels) {
			t.Errorf("Service %s: selector %v does not select Sluice's pods", svc.Name, svc.Spec.Selector)
		}
		got := map[string]int32{}
		for _, p := range svc.Spec.Ports {
			got[p.Name] = p.Port
			if p.AppProtocol == nil || *p.AppProtocol == "" {
				t.Errorf("Service %s port %s: no appProtocol", svc.Name, p.Name)
			}
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if cp, ok := containerPort(c, target); !ok || cp.ContainerPort != p.Port {
				t.Errorf("Service %s port %s: targetPort %s is not container port %d", svc.Name, p.Name, target.String(), p.Port)
			}
		}
		if got["grpc"] != 8081 || got["http"] != 8080 {
			t.Errorf("Service %s: ports %v, want grpc 8081 and http 8080", svc.Name, got)
		}
	}

	// PDB selects the Deployment's pods and leaves room to drain a node.
	pdb := one[*policyv1.PodDisruptionBudget](t, m, "")
	if !selects(t, pdb.Spec.Selector, podLabels) {
		t.Errorf("PodDisruptionBudget %s: selector %v does not select the Deployment's pods %v", pdb.Name, pdb.Spec.Selector, podLabels)
	}
	if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
		t.Errorf("PodDisruptionBudget: set exactly one of minAvailable, maxUnavailable")
	}
	if mu := pdb.Spec.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal < 1 {
		t.Errorf("PodDisruptionBudget: maxUnavailable %d blocks every node drain", mu.IntVal)
	}
	if ma := pdb.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int && dep.Spec.Replicas != nil && ma.IntVal >= *dep.Spec.Replicas {
		t.Errorf("PodDisruptionBudget: minAvailable %d >= replicas blocks every node drain", ma.IntVal)
	}

	// HPA scales the Deployment on CPU.
	hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, m, "")
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != dep.Name {
		t.Errorf("HorizontalPodAutoscaler targets %s %s %s, want apps/v1 Deployment %s", ref.APIVersion, ref.Kind, ref.Name, dep.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || *hpa.Spec.MinReplicas > hpa.Spec.MaxReplicas {
		t.Errorf("HorizontalPodAutoscaler: minReplicas %v, maxReplicas %d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if dep.Spec.Replicas != nil && hpa.Spec.MinReplicas != nil && *dep.Spec.Replicas < *hpa.Spec.MinReplicas {
		t.Errorf("Deployment replicas %d below the HPA's minReplicas %d", *dep.Spec.Replicas, *hpa.Spec.MinReplicas)
	}
	cpu := false
	for _, mt := range hpa.Spec.Metrics {
		if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU {
			cpu = true
			if mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType && c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("HPA on CPU utilization needs a CPU request on the container")
			}
		}
	}
	if !cpu {
		t.Errorf("HorizontalPodAutoscaler: no CPU resource metric")
	}
	if c.Resources.Limits.Memory().Cmp(*c.Resources.Requests.Memory()) < 0 || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("container: memory limit %v must be set and >= request %v", c.Resources.Limits.Memory(), c.Resources.Requests.Memory())
	}
}

// limitsSet writes the ConfigMap's files to a temp dir and loads them with Sluice's loader.
func limitsSet(t *testing.T, cm *corev1.ConfigMap) *config.Set {
	t.Helper()
	dir := t.TempDir()
	for name, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := config.Load(dir)
	if err != nil {
		t.Fatalf("ConfigMap %s does not load: %v", cm.Name, err)
	}
	if ws := set.Warnings(); len(ws) > 0 {
		t.Errorf("ConfigMap %s: warnings: %v", cm.Name, ws)
	}
	return set
}

func entries(kv ...string) []config.Entry {
	var es []config.Entry
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, config.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return es
}

// checkLimits loads the ConfigMap with Sluice's own loader and checks the example caps.
func checkLimits(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	for name := range cm.Data {
		if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			t.Errorf("ConfigMap %s: key %q is not a *.yaml file, so Sluice would skip it", cm.Name, name)
		}
	}
	set := limitsSet(t, cm)
	apim, ok := set.Domain("apim")
	if !ok {
		t.Fatalf("ConfigMap %s: no domain apim (have %v)", cm.Name, set.Domains())
	}
	if !strings.Contains(apim.OverLimitBody, "900801") {
		t.Errorf("domain apim: over-limit body %q is not the 900801 fault", apim.OverLimitBody)
	}
	requests := func(es []config.Entry) (uint64, time.Duration) {
		r, ok := apim.Match(es)
		if !ok || len(r.Limits) == 0 {
			t.Errorf("%v matches no limit", es)
			return 0, 0
		}
		for _, l := range r.Limits {
			if l.Kind != config.KindRequests {
				t.Errorf("%v: %s limit on a request descriptor; Envoy's token calls would count as requests", es, l.Kind)
			}
		}
		return r.Limits[0].Requests, r.Limits[0].Window
	}
	for _, c := range []struct {
		api, env string
		n        uint64
	}{
		{"PizzaShackAPI:1.0.0", "production", 100},
		{"PizzaShackAPI:1.0.0", "sandbox", 10},
	} {
		if n, w := requests(entries("api", c.api, "environment", c.env)); n != c.n || w != time.Second {
			t.Errorf("%s %s: %d per %v, want %d per second", c.api, c.env, n, w, c.n)
		}
	}
	for _, env := range []string{"production", "sandbox"} {
		requests(entries("api", "ChatAPI:1.0.0", "environment", env))
		r, ok := apim.Match(entries("api", "ChatAPI:1.0.0", "environment", env, "usage", "tokens"))
		if !ok || len(r.Limits) == 0 {
			t.Errorf("ChatAPI %s: the tokens descriptor matches no limit", env)
			continue
		}
		for _, l := range r.Limits {
			if !l.Kind.IsTokens() {
				t.Errorf("ChatAPI %s tokens: %s limit on the token descriptor; hits there are tokens", env, l.Kind)
			}
		}
	}
}

// TestRedisCluster checks the example Redis Cluster: six nodes with cluster mode on, a
// headless Service, a create Job, and Sluice's Secret pointing at its nodes.
func TestRedisCluster(t *testing.T) {
	m := load(t, "redis-cluster")
	sts := one[*appsv1.StatefulSet](t, m, "")
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 6 {
		t.Errorf("StatefulSet: replicas %d, want 6 (3 masters, 3 replicas)", ptrVal(sts.Spec.Replicas))
	}
	if !selects(t, sts.Spec.Selector, sts.Spec.Template.Labels) {
		t.Errorf("StatefulSet: selector does not select its pods")
	}
	checkPod(t, "StatefulSet "+sts.Name, sts.Spec.Template.Spec, true)
	svc := one[*corev1.Service](t, m, sts.Spec.ServiceName)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s: clusterIP %q, want None (headless, one DNS name per pod)", svc.Name, svc.Spec.ClusterIP)
	}
	if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, sts.Spec.Template.Labels) {
		t.Errorf("Service %s does not select the StatefulSet's pods", svc.Name)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	for _, p := range []int32{6379, 16379} {
		if _, ok := containerPort(c, intstr.FromInt32(p)); !ok {
			t.Errorf("redis container: port %d (client, cluster bus) not declared", p)
		}
	}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm := one[*corev1.ConfigMap](t, m, v.ConfigMap.Name)
		conf := cm.Data["redis.conf"]
		for _, want := range []string{"cluster-enabled yes", "cluster-config-file /data/", "port 6379"} {
			if !strings.Contains(conf, want) {
				t.Errorf("ConfigMap %s redis.conf: no %q", cm.Name, want)
			}
		}
		if !slices.Contains(c.Args, "/etc/redis/redis.conf") {
			t.Errorf("redis container args %v do not load /etc/redis/redis.conf", c.Args)
		}
	}
	if !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == "data" }) {
		t.Errorf("StatefulSet: no data volumeClaimTemplate: a restarted node would forget its nodes.conf")
	}
	pdb := one[*policyv1.PodDisruptionBudget](t, m, "")
	if !selects(t, pdb.Spec.Selector, sts.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget does not select the Redis pods")
	}

	job := one[*batchv1.Job](t, m, "")
	checkPod(t, "Job "+job.Name, job.Spec.Template.Spec, false)
	script := strings.Join(append(job.Spec.Template.Spec.Containers[0].Command, job.Spec.Template.Spec.Containers[0].Args...), " ")
	for _, want := range []string{"redis-cli --cluster create", "--cluster-replicas 1", "--cluster-yes", "redis-cluster-$i." + sts.Spec.ServiceName + "."} {
		if !strings.Contains(script, want) {
			t.Errorf("Job %s: script has no %q", job.Name, want)
		}
	}
	if selects(t, sts.Spec.Selector, job.Spec.Template.Labels) {
		t.Errorf("Job %s's pod carries the StatefulSet's labels: the Services would route to it", job.Name)
	}

	// The Redis URL in Sluice's Secret names this cluster's pods.
	k := load(t, "kubernetes")
	sec := one[*corev1.Secret](t, k, "sluice-redis")
	raw := sec.StringData["url"]
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis+cluster" {
		t.Fatalf("Secret sluice-redis url %q: want a redis+cluster:// URL (%v)", raw, err)
	}
	hosts := strings.Split(u.Host, ",")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(sts.Name) + `-(\d+)\.` + regexp.QuoteMeta(svc.Name) + `\.` +
		regexp.QuoteMeta(m.kustom.Namespace) + `\.svc\.cluster\.local:6379$`)
	for _, h := range hosts {
		mm := re.FindStringSubmatch(h)
		if mm == nil {
			t.Errorf("Redis URL host %q is not a pod of StatefulSet %s in namespace %s", h, sts.Name, m.kustom.Namespace)
			continue
		}
		if n, _ := strconv.Atoi(mm[1]); n >= int(*sts.Spec.Replicas) {
			t.Errorf("Redis URL host %q: the StatefulSet has %d pods", h, *sts.Spec.Replicas)
		}
	}
	if len(hosts) < 2 {
		t.Errorf("Redis URL %q: give several seed nodes", raw)
	}
}

// dockerfile is a Dockerfile's instructions, continuation lines joined.
type instruction struct {
	cmd, args string
	stage     int
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out   []instruction
		cur   strings.Builder
		stage = -1
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		if full == "" {
			continue
		}
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{cmd: cmd, args: strings.TrimSpace(args), stage: stage})
	}
	return out
}

// TestDockerfile checks the image build: multi-stage, a static trimmed build of
// ./cmd/sluice, a distroless or scratch final stage, a numeric non-root USER, the
// ENTRYPOINT `sluice serve` and both ports.
func TestDockerfile(t *testing.T) {
	path := "Dockerfile"
	if _, err := os.Stat(path); err != nil {
		path = "Containerfile"
	}
	ins := parseDockerfile(t, path)
	last := -1
	var froms []string
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
		}
		last = max(last, in.stage)
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	final := strings.Fields(froms[len(froms)-1])
	base := ""
	for _, f := range final {
		if !strings.HasPrefix(f, "--") {
			base = f
			break
		}
	}
	scratch := base == "scratch"
	if !scratch && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s: want gcr.io/distroless/static* or scratch", base)
	}

	built := false
	var user, entry string
	var exposed []string
	certs := false
	for _, in := range ins {
		switch {
		case in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`, "./cmd/sluice"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("go build without %s: %s", want, in.args)
				}
			}
			built = in.stage < last
		case in.stage != last:
		case in.cmd == "USER":
			user = in.args
		case in.cmd == "ENTRYPOINT":
			entry = in.args
		case in.cmd == "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case in.cmd == "COPY" && strings.Contains(in.args, "ca-certificates"):
			certs = true
		}
	}
	if !built {
		t.Errorf("no `go build` in a build stage")
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("final stage USER %q: want a numeric non-root uid (runAsNonRoot can only verify a number)", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entry), &ep); err != nil {
		t.Errorf("ENTRYPOINT %s: want the exec (JSON) form so that SIGTERM reaches sluice: %v", entry, err)
	} else if len(ep) != 2 || filepath.Base(ep[0]) != "sluice" || ep[1] != "serve" {
		t.Errorf("ENTRYPOINT %v: want [.../sluice serve]", ep)
	}
	for _, p := range []string{"8080", "8081"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v: no %s", exposed, p)
		}
	}
	if scratch && !certs {
		t.Errorf("FROM scratch without CA certificates: rediss:// and OTLP over TLS would fail")
	}

	// The image's UID is the one the Deployment runs as.
	m := load(t, "kubernetes")
	dep := one[*appsv1.Deployment](t, m, "sluice")
	if sc := dep.Spec.Template.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil && strconv.FormatInt(*sc.RunAsUser, 10) != uid {
		t.Errorf("Deployment runAsUser %d, image USER %s", *sc.RunAsUser, uid)
	}
}

// TestEnvoyBootstrap decodes envoy/envoy.yaml strictly into Envoy's Bootstrap proto
// (typed configs included), runs Envoy's proto validation on it, and checks that the
// rate-limit filter points at the Sluice cluster and that every descriptor the routes
// produce matches a limit of the ConfigMap's config.
func TestEnvoyBootstrap(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	var bs bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, &bs); err != nil {
		t.Fatalf("envoy.yaml is not a valid Bootstrap: %v", err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	unpack := func(a *anypb.Any, m proto.Message, what string) {
		t.Helper()
		if err := a.UnmarshalTo(m); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}
	}

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}

	// The domain's config, to match Envoy's descriptors against.
	m := load(t, "kubernetes")
	set := limitsSet(t, one[*corev1.ConfigMap](t, m, "sluice-limits"))

	var hcms int
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetTypedConfig() == nil || !strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), "HttpConnectionManager") {
					continue
				}
				hcms++
				var hcm hcmv3.HttpConnectionManager
				unpack(f.GetTypedConfig(), &hcm, "listener "+l.GetName()+" http_connection_manager")
				checkHCM(t, &hcm, clusters, set, unpack)
			}
		}
	}
	if hcms == 0 {
		t.Fatal("envoy.yaml: no http_connection_manager")
	}
}

func checkHCM(t *testing.T, hcm *hcmv3.HttpConnectionManager, clusters map[string]*clusterv3.Cluster, set *config.Set,
	unpack func(*anypb.Any, proto.Message, string)) {
	t.Helper()
	filters := hcm.GetHttpFilters()
	var rl *ratelimitv3.RateLimit
	for i, f := range filters {
		switch f.GetName() {
		case "envoy.filters.http.ratelimit":
			rl = &ratelimitv3.RateLimit{}
			unpack(f.GetTypedConfig(), rl, "envoy.filters.http.ratelimit")
		case "envoy.filters.http.router":
			unpack(f.GetTypedConfig(), &routerv3.Router{}, "envoy.filters.http.router")
			if i != len(filters)-1 {
				t.Errorf("the router is not the last HTTP filter")
			}
		}
	}
	if rl == nil {
		t.Fatal("no envoy.filters.http.ratelimit filter")
	}
	domain, ok := set.Domain(rl.GetDomain())
	if !ok {
		t.Fatalf("rate-limit filter domain %q is not in the ConfigMap's config (%v)", rl.GetDomain(), set.Domains())
	}
	if !rl.GetFailureModeDeny() {
		t.Errorf("rate-limit filter: failure_mode_deny is false (fail open)")
	}
	if rl.GetRateLimitedStatus().GetCode() != typev3.StatusCode_ServiceUnavailable {
		t.Errorf("rate-limit filter: rate_limited_status %v, want 503 for the 900801 fault", rl.GetRateLimitedStatus().GetCode())
	}
	if rl.GetEnableXRatelimitHeaders() != ratelimitv3.RateLimit_OFF {
		t.Errorf("rate-limit filter: enable_x_ratelimit_headers is set; Sluice sends RateLimit-* headers itself")
	}
	svc := rl.GetRateLimitService()
	bearer := false
	for _, h := range svc.GetGrpcService().GetInitialMetadata() {
		bearer = bearer || (strings.EqualFold(h.GetKey(), "authorization") && strings.HasPrefix(h.GetValue(), "Bearer "))
	}
	if !bearer {
		t.Errorf("rate-limit service: grpc_service.initial_metadata sends no authorization: Bearer <token>; Sluice with --auth-token-file refuses every call without it")
	}
	name := svc.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	c, ok := clusters[name]
	if !ok {
		t.Fatalf("rate-limit service cluster %q is not defined", name)
	}
	//lint:ignore SA1019 the deprecated form still configures HTTP/2 and counts too
	h2 := c.GetHttp2ProtocolOptions() != nil
	if opt, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
		var po upstreamhttpv3.HttpProtocolOptions
		unpack(opt, &po, "cluster "+name+" HttpProtocolOptions")
		h2 = h2 || po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
	}
	if !h2 {
		t.Errorf("cluster %s: no HTTP/2 (gRPC needs http2_protocol_options)", name)
	}
	port := uint32(0)
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, ep := range le.GetLbEndpoints() {
			port = ep.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
		}
	}
	if port != 8081 {
		t.Errorf("cluster %s: port %d, want Sluice's gRPC port 8081", name, port)
	}

	routes := 0
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			ra := r.GetRoute()
			if ra == nil {
				continue
			}
			if _, ok := clusters[ra.GetCluster()]; !ok {
				t.Errorf("route %v: cluster %q is not defined", r.GetMatch(), ra.GetCluster())
			}
			if len(ra.GetRateLimits()) == 0 {
				t.Errorf("route %v: no rate_limits", r.GetMatch())
			}
			routes++
			checkRateLimits(t, r.GetMatch().String(), ra.GetRateLimits(), domain)
		}
	}
	if routes == 0 {
		t.Error("no routes")
	}
}

// checkRateLimits checks the descriptors one route's rate_limits produce: every one
// matches a limit in the domain, [api, environment] ones match request limits, and the
// token flow (hits 0 on the request, hits from metadata on stream done) matches token
// limits only.
func checkRateLimits(t *testing.T, route string, rls []*routev3.RateLimit, domain *config.Domain) {
	t.Helper()
	streamDone := false
	for i, rl := range rls {
		var es []config.Entry
		for _, a := range rl.GetActions() {
			gk := a.GetGenericKey()
			if gk == nil {
				t.Errorf("route %s rate_limits[%d]: only generic_key actions can be checked offline", route, i)
				continue
			}
			key := gk.GetDescriptorKey()
			if key == "" {
				key = "generic_key"
			}
			es = append(es, config.Entry{Key: key, Value: gk.GetDescriptorValue()})
		}
		if len(es) < 2 || es[0].Key != "api" || es[1].Key != "environment" ||
			!regexp.MustCompile(`^[^:]+:[^:]+$`).MatchString(es[0].Value) ||
			(es[1].Value != "production" && es[1].Value != "sandbox") {
			t.Errorf("route %s rate_limits[%d]: descriptor %v, want [api=<name>:<version>, environment=production|sandbox, ...]", route, i, es)
		}
		rule, ok := domain.Match(es)
		if !ok || (len(rule.Limits) == 0 && !rule.Unlimited) {
			t.Errorf("route %s rate_limits[%d]: descriptor %v matches no limit in domain %s", route, i, es, domain.Name)
			continue
		}
		tokens := rl.GetHitsAddend() != nil
		if rl.GetApplyOnStreamDone() {
			streamDone = true
			if !strings.Contains(rl.GetHitsAddend().GetFormat(), "%DYNAMIC_METADATA(") {
				t.Errorf("route %s rate_limits[%d]: apply_on_stream_done without hits_addend from dynamic metadata", route, i)
			}
		} else if tokens && rl.GetHitsAddend().GetNumber().GetValue() != 0 {
			t.Errorf("route %s rate_limits[%d]: a request-path token check must send hits_addend 0", route, i)
		}
		for _, l := range rule.Limits {
			if l.Kind.IsTokens() != tokens {
				t.Errorf("route %s rate_limits[%d]: descriptor %v has a %s limit but hits_addend is %v", route, i, es, l.Kind, rl.GetHitsAddend())
			}
		}
	}
	if streamDone {
		// A stream-done report needs its request-path check on the same descriptor.
		var check, report []string
		for _, rl := range rls {
			if rl.GetHitsAddend() == nil {
				continue
			}
			s := fmt.Sprint(rl.GetActions())
			if rl.GetApplyOnStreamDone() {
				report = append(report, s)
			} else {
				check = append(check, s)
			}
		}
		for _, r := range report {
			if !slices.Contains(check, r) {
				t.Errorf("route %s: token report %s has no request-path check (hits_addend 0) on the same descriptor", route, r)
			}
		}
	}
}

// TestLocalScriptsParse runs `bash -n` on every script of local/, and shellcheck when it
// is installed.
func TestLocalScriptsParse(t *testing.T) {
	scripts, _ := filepath.Glob(filepath.Join("local", "*.sh"))
	if len(scripts) < 3 {
		t.Fatalf("local/: want the cluster, sentinel and stop scripts, got %v", scripts)
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		data, _ := os.ReadFile(s)
		if regexp.MustCompile(`\b6379\b`).Match(data) && !strings.Contains(string(data), "port != 6379") {
			t.Errorf("%s mentions port 6379: local scripts must stay off the default Redis port", s)
		}
		st, _ := os.Stat(s)
		if filepath.Base(s) != "lib.sh" && st.Mode()&0o100 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		cmd := exec.Command(sc, append([]string{"-x"}, relNames(scripts)...)...)
		cmd.Dir = "local"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	} else {
		t.Log("shellcheck not installed: only bash -n ran")
	}
}

func relNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// freePorts returns n loopback ports that are free now, each with port+busOffset free too
// (busOffset 0: no second port).
func freePorts(t *testing.T, n, busOffset int) []int {
	t.Helper()
	free := func(p int) bool {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		// Below Linux's ephemeral range (32768 and up), so no outgoing
		// connection of a test running alongside takes the port meanwhile;
		// cluster ports lower still, so their bus ports (+offset) are too.
		p := 20000 + rand.IntN(12000)
		if busOffset > 0 {
			p = 12000 + rand.IntN(8000)
		}
		if slices.Contains(ports, p) || !free(p) || (busOffset > 0 && !free(p+busOffset)) {
			continue
		}
		ports = append(ports, p)
	}
	if len(ports) < n {
		t.Fatal("no free loopback ports")
	}
	return ports
}

func joinInts(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, " ")
}

// runScript runs a local/ script with env added, failing the test on error.
func runScript(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join("local", name)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func redisCLI(t *testing.T, port int, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli -p %d %v: %v\n%s", port, args, err, out)
	}
	return string(out)
}

// TestLocalScriptsRun starts the local cluster and Sentinel setups on free ports in a
// temp dir, checks they work, and stops them with stop.sh.
func TestLocalScriptsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	dir := filepath.Join(t.TempDir(), "local")
	cports := freePorts(t, 3, 10000)
	sports := freePorts(t, 5, 0)
	env := []string{
		"SLUICE_LOCAL_DIR=" + dir,
		"SLUICE_CLUSTER_PORTS=" + joinInts(cports),
		"SLUICE_SENTINEL_MASTER_PORT=" + strconv.Itoa(sports[0]),
		"SLUICE_SENTINEL_REPLICA_PORT=" + strconv.Itoa(sports[1]),
		"SLUICE_SENTINEL_PORTS=" + joinInts(sports[2:]),
	}
	t.Cleanup(func() {
		cmd := exec.Command("bash", filepath.Join("local", "stop.sh"))
		cmd.Env = append(os.Environ(), env...)
		_ = cmd.Run()
	})

	t.Run("cluster", func(t *testing.T) {
		out := runScript(t, env, "cluster-start.sh")
		want := fmt.Sprintf("redis+cluster://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", cports[0], cports[1], cports[2])
		if !strings.Contains(out, want) {
			t.Errorf("cluster-start.sh output does not name %s:\n%s", want, out)
		}
		if got := strings.TrimSpace(runScript(t, env, "cluster-start.sh", "--url")); got != want {
			t.Errorf("cluster-start.sh --url = %q, want %q", got, want)
		}
		for _, p := range cports {
			info := redisCLI(t, p, "cluster", "info")
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_size:3") {
				t.Errorf("node %d: %s", p, info)
			}
		}
		// Keys of different slots land on different masters.
		if got := redisCLI(t, cports[0], "-c", "set", "{a}k", "1"); !strings.Contains(got, "OK") {
			t.Errorf("set through the cluster: %s", got)
		}
		// A second start refuses instead of clobbering the running one.
		cmd := exec.Command("bash", filepath.Join("local", "cluster-start.sh"))
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("a second cluster-start.sh succeeded:\n%s", out)
		}
	})

	t.Run("sentinel", func(t *testing.T) {
		out := runScript(t, env, "sentinel-start.sh")
		want := fmt.Sprintf("redis+sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/sluice", sports[2], sports[3], sports[4])
		if !strings.Contains(out, want) {
			t.Errorf("sentinel-start.sh output does not name %s:\n%s", want, out)
		}
		addr := redisCLI(t, sports[2], "sentinel", "get-master-addr-by-name", "sluice")
		if !strings.Contains(addr, strconv.Itoa(sports[0])) {
			t.Errorf("sentinel reports master %q, want port %d", addr, sports[0])
		}
		if role := redisCLI(t, sports[1], "role"); !strings.HasPrefix(role, "slave") {
			t.Errorf("replica role: %s", role)
		}
	})

	runScript(t, env, "stop.sh")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stop.sh left %s behind", dir)
	}
	for _, p := range append(slices.Clone(cports), sports...) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), 200*time.Millisecond)
		if err == nil {
			c.Close()
			t.Errorf("port %d still answers after stop.sh", p)
		}
	}
}

// ptrVal is *p, or the zero value for nil.
func ptrVal[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
