package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// overlays are the kustomizations an operator deploys; the base is built too.
var overlays = []string{"base", "overlays/embedded", "overlays/production", "overlays/keda", "overlays/keda-kafka"}

// --- imaged's settings --------------------------------------------------------------------

// imagedSettings returns the IMAGED_* names imaged reads: the env field of every entry of the
// []setting lists in package config (and any in cmd/imaged), from which every flag and variable
// is bound.
func imagedSettings(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range []string{filepath.Join("..", "config"), filepath.Join("..", "cmd", "imaged")} {
		settingsIn(t, dir, names)
	}
	if len(names) < 20 {
		t.Fatalf("found only %d IMAGED_* settings in config and cmd/imaged: have the settings.New lists moved?", len(names))
	}
	return names
}

// settingsIn adds the IMAGED_* names of the settings.New calls in dir's non-test files.
func settingsIn(t *testing.T, dir string, names map[string]bool) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Every setting is a call settings.New("flag", "IMAGED_…", help, binder).
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "New" {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "settings" {
				return true
			}
			if s, ok := call.Args[1].(*ast.BasicLit); ok && s.Kind == token.STRING {
				if v, err := strconv.Unquote(s.Value); err == nil && strings.HasPrefix(v, "IMAGED_") {
					names[v] = true
				}
			}
			return true
		})
	}
}

func TestImagedSettingsAreFound(t *testing.T) {
	s := imagedSettings(t)
	for _, want := range []string{"IMAGED_ADDR", "IMAGED_DATA_DIR", "IMAGED_DATABASE_URL", "IMAGED_QUEUE_URL",
		"IMAGED_STORAGE_URL", "IMAGED_REDIS_URL", "IMAGED_WORKERS"} {
		if !s[want] {
			t.Errorf("setting %s not found in package config's settings", want)
		}
	}
}

// --- strict decoding ------------------------------------------------------------------------

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) the manifests use. KEDA is a
// custom resource with no Go types here; an unknown field is an error as for built-in kinds.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion             string `json:"apiVersion,omitempty"`
			Kind                   string `json:"kind,omitempty"`
			Name                   string `json:"name"`
			EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval  *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod   *int32 `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount *int32 `json:"idleReplicaCount,omitempty"`
		MinReplicaCount  *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount  *int32 `json:"maxReplicaCount,omitempty"`
		Triggers         []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			MetricType        string            `json:"metricType,omitempty"`
			UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// object is one decoded manifest.
type object struct {
	source string // file, or overlay, it came from
	kind   string
	name   string
	ns     string
	value  any // *appsv1.Deployment, *corev1.Service, …, *scaledObject
}

func newTyped(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, true
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "keda.sh/v1alpha1/ScaledObject":
		return &scaledObject{}, true
	// Kinds the Helm chart renders too (helm_test.go).
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, true
	case "batch/v1/Job":
		return &batchv1.Job{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	}
	return nil, false
}

// decodeStrict decodes one YAML document into its API type: duplicate keys and fields the type
// does not have are errors. A strategic-merge directive ($patch: delete) is dropped first, so
// patch files are checked as well.
func decodeStrict(doc []byte, source string) (object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("%s: %v", source, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(js, &raw); err != nil {
		return object{}, fmt.Errorf("%s: %v", source, err)
	}
	delete(raw, "$patch")
	js, _ = json.Marshal(raw)
	var tm metav1.TypeMeta
	_ = json.Unmarshal(js, &tm)
	v, ok := newTyped(tm.APIVersion, tm.Kind)
	if !ok {
		return object{}, fmt.Errorf("%s: kind %s %q is not one these tests know: add its type to newTyped", source, tm.APIVersion, tm.Kind)
	}
	if err := unmarshalStrict(js, v); err != nil {
		return object{}, fmt.Errorf("%s: %s %v", source, tm.Kind, err)
	}
	meta := struct {
		Metadata struct{ Name, Namespace string } `json:"metadata"`
	}{}
	_ = json.Unmarshal(js, &meta)
	return object{source: source, kind: tm.Kind, name: meta.Metadata.Name, ns: meta.Metadata.Namespace, value: v}, nil
}

// unmarshalStrict decodes JSON as the Kubernetes API server does: field names match case
// sensitively, and unknown or duplicate fields are errors.
func unmarshalStrict(js []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeAll decodes every document of a multi-document YAML stream.
func decodeAll(data []byte, source string) ([]object, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", source, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		o, err := decodeStrict(doc, source)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	bad := []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetport: 8000}]}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {A: b}\ndata: {C: d}\n",
		"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: y}, trigers: []}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
	}
	for _, doc := range bad {
		if _, err := decodeStrict([]byte(doc), "test"); err == nil {
			t.Errorf("decoded without error:\n%s", doc)
		}
	}
}

// TestManifestsDecodeStrictly decodes every YAML file under k8s/ (resources, patches and
// examples alike) other than the kustomization files themselves.
func TestManifestsDecodeStrictly(t *testing.T) {
	var files []string
	err := filepath.WalkDir("k8s", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) &&
			d.Name() != "kustomization.yaml" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d manifests under k8s/", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(data, f)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", f)
		}
	}
}

// --- kustomize -------------------------------------------------------------------------------

// build runs kustomize on k8s/<dir> and decodes its output strictly.
func build(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("k8s", dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	objs, err := decodeAll(out, "kustomize build "+dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

type built []object

func (b built) find(kind, name string) (object, bool) {
	for _, o := range b {
		if o.kind == kind && o.name == name {
			return o, true
		}
	}
	return object{}, false
}

func (b built) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	o, ok := b.find("Deployment", name)
	if !ok {
		t.Fatalf("no Deployment %s", name)
	}
	return o.value.(*appsv1.Deployment)
}

func (b built) all(kind string) []object {
	var out []object
	for _, o := range b {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func TestOverlaysBuild(t *testing.T) {
	settings := imagedSettings(t)
	for _, dir := range overlays {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			b := built(build(t, dir))
			checkCommon(t, b, settings)
		})
	}
}

// checkCommon holds what every build must satisfy.
func checkCommon(t *testing.T, b built, settings map[string]bool) {
	t.Helper()
	for _, o := range b {
		if o.kind != "Namespace" && o.ns != "imaged" {
			t.Errorf("%s %s is in namespace %q, want imaged", o.kind, o.name, o.ns)
		}
	}
	deps := b.all("Deployment")
	if len(deps) == 0 {
		t.Fatal("no Deployment")
	}
	for _, o := range deps {
		d := o.value.(*appsv1.Deployment)
		checkPodSpec(t, b, d, settings)
	}
	api := b.deployment(t, "imaged-api")
	checkAPIProbes(t, api)

	// The Service selects the API pods, on the port the container names.
	so, ok := b.find("Service", "imaged")
	if !ok {
		t.Fatal("no Service imaged")
	}
	svc := so.value.(*corev1.Service)
	if !selects(svc.Spec.Selector, api.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the API pods %v", svc.Spec.Selector, api.Spec.Template.Labels)
	}
	for _, o := range deps {
		d := o.value.(*appsv1.Deployment)
		if d.Name != "imaged-api" && selects(svc.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("Service selects the pods of %s too", d.Name)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("Service ports %+v, want 80 → http", svc.Spec.Ports)
	}
	if p := containerPort(api, "http"); p != 8000 {
		t.Errorf("API container port http = %d, want 8000", p)
	}
	checkScraped(t, b)

	// Every PodDisruptionBudget and NetworkPolicy selects the pods of one Deployment.
	for _, o := range b.all("PodDisruptionBudget") {
		p := o.value.(*policyv1.PodDisruptionBudget)
		if !selectsADeployment(b, p.Spec.Selector) {
			t.Errorf("PodDisruptionBudget %s selects no Deployment's pods", p.Name)
		}
		if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
			t.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", p.Name)
		}
	}
	if len(b.all("PodDisruptionBudget")) == 0 {
		t.Error("no PodDisruptionBudget")
	}
	for _, o := range b.all("NetworkPolicy") {
		p := o.value.(*networkingv1.NetworkPolicy)
		sel := p.Spec.PodSelector
		if !selectsADeployment(b, &sel) {
			t.Errorf("NetworkPolicy %s selects no Deployment's pods", p.Name)
		}
	}
	if _, ok := b.find("NetworkPolicy", "imaged-api"); !ok {
		t.Error("no NetworkPolicy for the API")
	} else {
		np, _ := b.find("NetworkPolicy", "imaged-api")
		var ports []string
		for _, rule := range np.value.(*networkingv1.NetworkPolicy).Spec.Ingress {
			for _, p := range rule.Ports {
				ports = append(ports, p.Port.String())
			}
		}
		sort.Strings(ports)
		if !slices.Equal(ports, []string{"8000", "9090"}) {
			t.Errorf("API NetworkPolicy opens ports %v, want 8000 (API) and 9090 (metrics)", ports)
		}
	}

	// Autoscalers scale a Deployment of the build.
	for _, o := range b.all("HorizontalPodAutoscaler") {
		h := o.value.(*autoscalingv2.HorizontalPodAutoscaler)
		if h.Spec.ScaleTargetRef.Kind != "Deployment" {
			t.Errorf("HPA %s scales a %s", h.Name, h.Spec.ScaleTargetRef.Kind)
		} else if _, ok := b.find("Deployment", h.Spec.ScaleTargetRef.Name); !ok {
			t.Errorf("HPA %s scales Deployment %s, which the build lacks", h.Name, h.Spec.ScaleTargetRef.Name)
		}
	}
	for _, o := range b.all("ScaledObject") {
		checkScaledObject(t, b, o.value.(*scaledObject))
	}
}

// checkScraped: every Deployment's pods are found by Prometheus through a Service with scrape
// annotations, whose port is the one imaged serves /metrics on (IMAGED_METRICS_ADDR, else the
// API's address) and one the container declares; a Service exposing the API does not expose
// /metrics.
func checkScraped(t *testing.T, b built) {
	t.Helper()
	for _, o := range b.all("Deployment") {
		d := o.value.(*appsv1.Deployment)
		env := resolveEnv(t, b, d)
		addr := env["IMAGED_METRICS_ADDR"]
		if addr == "" {
			addr = env["IMAGED_ADDR"]
		}
		metricsPort := addr[strings.LastIndex(addr, ":")+1:]
		scraped := false
		for _, so := range b.all("Service") {
			svc := so.value.(*corev1.Service)
			if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
				continue
			}
			ann := svc.Annotations
			if ann["prometheus.io/scrape"] != "true" {
				continue
			}
			scraped = true
			if ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != metricsPort {
				t.Errorf("Service %s scrapes %s on port %s; %s serves /metrics on %s", svc.Name,
					ann["prometheus.io/path"], ann["prometheus.io/port"], d.Name, addr)
			}
			declared := false
			for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
				declared = declared || strconv.Itoa(int(p.ContainerPort)) == metricsPort
			}
			if !declared {
				t.Errorf("%s does not declare its metrics port %s", d.Name, metricsPort)
			}
			if env["IMAGED_METRICS_ADDR"] != "" {
				for _, p := range svc.Spec.Ports {
					if p.TargetPort.String() == "http" || p.TargetPort.IntValue() == 8000 {
						continue
					}
					if p.Port == 80 {
						t.Errorf("Service %s exposes the metrics port as 80", svc.Name)
					}
				}
			}
		}
		if !scraped {
			t.Errorf("no Service with scrape annotations selects the pods of %s", d.Name)
		}
		// The metrics port is open to Prometheus in the pods' NetworkPolicy.
		for _, no := range b.all("NetworkPolicy") {
			np := no.value.(*networkingv1.NetworkPolicy)
			if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
				continue
			}
			open := false
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					open = open || p.Port != nil && p.Port.String() == metricsPort
				}
			}
			if !open {
				t.Errorf("NetworkPolicy %s closes the metrics port %s of %s", np.Name, metricsPort, d.Name)
			}
		}
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func selectsADeployment(b built, sel *metav1.LabelSelector) bool {
	if sel == nil || len(sel.MatchExpressions) > 0 {
		return false
	}
	for _, o := range b.all("Deployment") {
		if selects(sel.MatchLabels, o.value.(*appsv1.Deployment).Spec.Template.Labels) {
			return true
		}
	}
	return false
}

func containerPort(d *appsv1.Deployment, name string) int32 {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// checkPodSpec asserts the security context, resources, writable volumes and settings of one
// Deployment's pods.
func checkPodSpec(t *testing.T, b built, d *appsv1.Deployment, settings map[string]bool) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("%s: selector %v does not match its pod labels %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 1000 ||
		psc.FSGroup == nil || *psc.FSGroup != 1000 {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot, runAsUser 1000, fsGroup 1000", d.Name, psc)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", d.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: container securityContext %+v, want readOnlyRootFilesystem, no privilege escalation, drop ALL", d.Name, sc)
	}
	want := map[corev1.ResourceName][2]string{
		corev1.ResourceMemory: {"512Mi", "2Gi"},
		corev1.ResourceCPU:    {"250m", "1000m"},
	}
	if d.Name == "imaged-worker-ml" { // models and heavier pipelines: the chart's ml pool's
		want = map[corev1.ResourceName][2]string{
			corev1.ResourceMemory: {"1Gi", "3Gi"},
			corev1.ResourceCPU:    {"500m", "2000m"},
		}
	}
	for name, rl := range want {
		if q := c.Resources.Requests[name]; q.Cmp(resource.MustParse(rl[0])) != 0 {
			t.Errorf("%s: request %s = %s, want %s", d.Name, name, q.String(), rl[0])
		}
		if q := c.Resources.Limits[name]; q.Cmp(resource.MustParse(rl[1])) != 0 {
			t.Errorf("%s: limit %s = %s, want %s", d.Name, name, q.String(), rl[1])
		}
	}
	if c.Image == "" || len(c.Args) != 1 || (c.Args[0] != "serve" && c.Args[0] != "worker") {
		t.Errorf("%s: image %q args %v, want imaged serve or worker", d.Name, c.Image, c.Args)
	}
	if strings.HasPrefix(d.Name, "imaged-worker") && c.Args[0] != "worker" {
		t.Errorf("%s runs %v, want worker", d.Name, c.Args)
	}

	// A read-only root filesystem: /tmp and the data directory are volumes.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	env := resolveEnv(t, b, d)
	dataDir := env["IMAGED_DATA_DIR"]
	if dataDir == "" {
		dataDir = "./data"
	}
	for _, p := range []string{"/tmp", dataDir} {
		name, ok := mounts[p]
		if !ok {
			t.Errorf("%s: nothing mounted on %s, which imaged writes", d.Name, p)
			continue
		}
		v := volumes[name]
		if v.EmptyDir == nil && v.PersistentVolumeClaim == nil {
			t.Errorf("%s: volume %s on %s is neither emptyDir nor a claim", d.Name, name, p)
		}
		if v.PersistentVolumeClaim != nil {
			if _, ok := b.find("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName); !ok {
				t.Errorf("%s: claim %s is not in the build", d.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}

	// Every variable the container gets is a setting imaged reads.
	for name := range env {
		if !settings[name] {
			t.Errorf("%s: sets %s, which imaged does not read (package config)", d.Name, name)
		}
	}
}

// externalSecrets are Secrets operators create themselves, from the example file named.
var externalSecrets = map[string]string{"imaged-secrets": "k8s/base/secret.example.yaml"}

func exampleSecret(t *testing.T, file string) object {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(data, file)
	if err != nil || len(objs) != 1 || objs[0].kind != "Secret" {
		t.Fatalf("%s: want one Secret (%v)", file, err)
	}
	return objs[0]
}

func TestSecretExamples(t *testing.T) {
	settings := imagedSettings(t)
	for name, file := range externalSecrets {
		o := exampleSecret(t, file)
		if o.name != name {
			t.Errorf("%s holds Secret %s, want %s", file, o.name, name)
		}
		s := o.value.(*corev1.Secret)
		if len(s.StringData) == 0 {
			t.Errorf("%s: no keys", file)
		}
		for k := range s.StringData {
			if !settings[k] {
				t.Errorf("%s: %s is not a setting imaged reads", file, k)
			}
		}
	}
}

// resolveEnv returns the variables a Deployment's container gets, from env and envFrom, each
// reference checked against the ConfigMaps and Secrets of the build (optional ones may be
// missing). Values from Secrets read as "<secret>".
func resolveEnv(t *testing.T, b built, d *appsv1.Deployment) map[string]string {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	out := map[string]string{}
	optional := func(p *bool) bool { return p != nil && *p }
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			o, ok := b.find("ConfigMap", from.ConfigMapRef.Name)
			if !ok {
				if !optional(from.ConfigMapRef.Optional) {
					t.Errorf("%s: envFrom ConfigMap %s is not in the build", d.Name, from.ConfigMapRef.Name)
				}
				continue
			}
			for k, v := range o.value.(*corev1.ConfigMap).Data {
				out[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			o, ok := b.find("Secret", from.SecretRef.Name)
			if !ok {
				if ex, ok := externalSecrets[from.SecretRef.Name]; ok {
					o = exampleSecret(t, ex)
				} else {
					if !optional(from.SecretRef.Optional) {
						t.Errorf("%s: envFrom Secret %s is not in the build", d.Name, from.SecretRef.Name)
					}
					continue
				}
			}
			s := o.value.(*corev1.Secret)
			for k := range s.StringData {
				out[from.Prefix+k] = "<secret>"
			}
			for k := range s.Data {
				out[from.Prefix+k] = "<secret>"
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			o, ok := b.find("Secret", ref.Name)
			if !ok {
				if !optional(ref.Optional) {
					t.Errorf("%s: %s reads Secret %s, which the build lacks", d.Name, e.Name, ref.Name)
				}
			} else if s := o.value.(*corev1.Secret); s.StringData[ref.Key] == "" && len(s.Data[ref.Key]) == 0 {
				t.Errorf("%s: %s reads key %s of Secret %s, which has no such key", d.Name, e.Name, ref.Key, ref.Name)
			}
			out[e.Name] = "<secret>"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			o, ok := b.find("ConfigMap", ref.Name)
			if !ok || o.value.(*corev1.ConfigMap).Data[ref.Key] == "" {
				t.Errorf("%s: %s reads %s/%s, which the build lacks", d.Name, e.Name, ref.Name, ref.Key)
			} else {
				out[e.Name] = o.value.(*corev1.ConfigMap).Data[ref.Key]
			}
		default:
			out[e.Name] = ""
		}
	}
	return out
}

func checkAPIProbes(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	probe := func(name string, p *corev1.Probe, path string, delay, period int32) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", d.Name, name)
			return
		}
		port := p.HTTPGet.Port
		if port.Type == intstr.String && containerPort(d, port.StrVal) == 0 || port.Type == intstr.Int && port.IntVal != 8000 {
			t.Errorf("%s: %s probe port %s is not the API port", d.Name, name, port.String())
		}
		if p.HTTPGet.Path != path || p.InitialDelaySeconds != delay || p.PeriodSeconds != period {
			t.Errorf("%s: %s probe %s after %ds every %ds, want %s after %ds every %ds", d.Name, name,
				p.HTTPGet.Path, p.InitialDelaySeconds, p.PeriodSeconds, path, delay, period)
		}
	}
	probe("liveness", c.LivenessProbe, "/health/live", 30, 30)
	probe("readiness", c.ReadinessProbe, "/health/ready", 10, 10)
}

// --- what each overlay is for -----------------------------------------------------------------

func TestBase(t *testing.T) {
	b := built(build(t, "base"))
	api := b.deployment(t, "imaged-api")
	if api.Spec.Replicas == nil || *api.Spec.Replicas != 3 {
		t.Errorf("API replicas %v, want 3", api.Spec.Replicas)
	}
	s := api.Spec.Strategy
	if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
		s.RollingUpdate.MaxSurge.String() != "1" || s.RollingUpdate.MaxUnavailable.String() != "0" {
		t.Errorf("API strategy %+v, want RollingUpdate maxSurge 1 maxUnavailable 0", s)
	}
	if w := resolveEnv(t, b, api)["IMAGED_WORKERS"]; w != "0" {
		t.Errorf("API IMAGED_WORKERS = %q, want 0 (tasks run on the workers)", w)
	}
	worker := b.deployment(t, "imaged-worker")
	if n, _ := strconv.Atoi(resolveEnv(t, b, worker)["IMAGED_WORKERS"]); n < 1 {
		t.Errorf("worker IMAGED_WORKERS = %d, want at least 1", n)
	}
	// The worker serves only its metrics port; liveness checks that it answers.
	if p := worker.Spec.Template.Spec.Containers[0].LivenessProbe; p == nil || p.TCPSocket == nil ||
		containerPort(worker, p.TCPSocket.Port.StrVal) == 0 {
		t.Errorf("worker liveness probe %+v, want a TCP check of its metrics port", p)
	}
	checkWorkerHPA(t, b)
	checkWorkerPools(t, b)
}

// workerPools are the kustomize worker Deployments and the task types each runs.
var workerPools = map[string]string{"imaged-worker": "transform", "imaged-worker-ml": "ocr,detect"}

// checkWorkerPools: each worker Deployment runs `imaged worker` on its task types
// (IMAGED_WORKER_TYPES), together they run every type once, and each is scaled by its own
// autoscaler on its own types' queue (checkPoolAutoscaler, shared with the chart's pools).
func checkWorkerPools(t *testing.T, b built) {
	t.Helper()
	seen := map[string]string{}
	for name, want := range workerPools {
		d := b.deployment(t, name)
		env := resolveEnv(t, b, d)
		if got := env["IMAGED_WORKER_TYPES"]; got != want {
			t.Errorf("%s IMAGED_WORKER_TYPES = %q, want %q", name, got, want)
		}
		types := strings.Split(want, ",")
		for _, typ := range types {
			if other, ok := seen[typ]; ok {
				t.Errorf("task type %s runs on %s and %s", typ, other, name)
			}
			seen[typ] = name
		}
		checkPoolAutoscaler(t, b, d, types)
	}
	for _, typ := range taskTypes {
		if seen[typ] == "" {
			t.Errorf("no worker Deployment runs %s tasks", typ)
		}
	}
}

func checkWorkerHPA(t *testing.T, b built) {
	t.Helper()
	o, ok := b.find("HorizontalPodAutoscaler", "imaged-worker")
	if !ok {
		t.Fatal("no HorizontalPodAutoscaler imaged-worker")
	}
	h := o.value.(*autoscalingv2.HorizontalPodAutoscaler)
	if h.Spec.ScaleTargetRef.Name != "imaged-worker" || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 20 {
		t.Errorf("HPA %+v, want imaged-worker from 2 to 20", h.Spec)
	}
	var cpu, mem, queued bool
	for _, m := range h.Spec.Metrics {
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
			cpu = m.Resource.Target.AverageUtilization != nil && *m.Resource.Target.AverageUtilization == 70
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceMemory:
			mem = m.Resource.Target.AverageUtilization != nil && *m.Resource.Target.AverageUtilization == 80
		case m.Type == autoscalingv2.ObjectMetricSourceType:
			obj := m.Object
			// The Service must exist and the metric must be one the adapter serves.
			_, svc := b.find(obj.DescribedObject.Kind, obj.DescribedObject.Name)
			queued = obj.Metric.Name == "tasks_queued" && svc &&
				obj.Target.Type == autoscalingv2.AverageValueMetricType && obj.Target.AverageValue != nil &&
				obj.Target.AverageValue.Cmp(resource.MustParse("5")) == 0
			if !slices.Contains(adapterMetrics(t), obj.Metric.Name) {
				t.Errorf("HPA uses metric %s, which no prometheus-adapter rule serves", obj.Metric.Name)
			}
		case m.Type == autoscalingv2.PodsMetricSourceType:
			queued = m.Pods.Metric.Name == "tasks_queued" && m.Pods.Target.Type == autoscalingv2.AverageValueMetricType &&
				m.Pods.Target.AverageValue != nil && m.Pods.Target.AverageValue.Cmp(resource.MustParse("5")) == 0
			if !slices.Contains(adapterMetrics(t), m.Pods.Metric.Name) {
				t.Errorf("HPA uses metric %s, which no prometheus-adapter rule serves", m.Pods.Metric.Name)
			}
		}
	}
	if !cpu || !mem || !queued {
		t.Errorf("HPA metrics: cpu 70%% %v, memory 80%% %v, tasks_queued average 5 %v", cpu, mem, queued)
	}
}

func TestEmbedded(t *testing.T) {
	b := built(build(t, "overlays/embedded"))
	for name := range workerPools {
		if _, ok := b.find("Deployment", name); ok {
			t.Errorf("embedded has the worker Deployment %s", name)
		}
	}
	if len(b.all("HorizontalPodAutoscaler")) > 0 || len(b.all("ScaledObject")) > 0 {
		t.Error("embedded has an autoscaler")
	}
	for _, name := range []string{"imaged-worker-metrics", "imaged-worker-ml-metrics"} {
		if _, ok := b.find("Service", name); ok {
			t.Errorf("embedded keeps the workers' metrics Service %s", name)
		}
	}
	if secretsRequired(b.deployment(t, "imaged-api")) {
		t.Error("embedded requires imaged-secrets; one pod can generate its own keys")
	}
	api := b.deployment(t, "imaged-api")
	if api.Spec.Replicas == nil || *api.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", api.Spec.Replicas)
	}
	if api.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || api.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("strategy %+v, want Recreate (a ReadWriteOnce claim)", api.Spec.Strategy)
	}
	env := resolveEnv(t, b, api)
	if n, _ := strconv.Atoi(env["IMAGED_WORKERS"]); n < 1 {
		t.Errorf("IMAGED_WORKERS = %q, want workers in the pod", env["IMAGED_WORKERS"])
	}
	for _, k := range []string{"IMAGED_DATABASE_URL", "IMAGED_QUEUE_URL", "IMAGED_STORAGE_URL"} {
		if _, ok := env[k]; ok {
			t.Errorf("embedded sets %s; it runs on the embedded defaults", k)
		}
	}
	var claim string
	for _, v := range api.Spec.Template.Spec.Volumes {
		if v.Name == "data" && v.PersistentVolumeClaim != nil && v.EmptyDir == nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	o, ok := b.find("PersistentVolumeClaim", claim)
	if !ok {
		t.Fatalf("the data volume is not a claim of the build (claim %q)", claim)
	}
	pvc := o.value.(*corev1.PersistentVolumeClaim)
	if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteOnce) {
		t.Errorf("claim access modes %v", pvc.Spec.AccessModes)
	}
}

var backendSettings = []string{"IMAGED_DATABASE_URL", "IMAGED_QUEUE_URL", "IMAGED_STORAGE_URL", "IMAGED_REDIS_URL"}

func checkBackendsFromSecret(t *testing.T, b built) {
	t.Helper()
	for _, name := range []string{"imaged-api", "imaged-worker", "imaged-worker-ml"} {
		d := b.deployment(t, name)
		got := map[string]bool{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				got[e.Name] = true
			}
		}
		for _, k := range backendSettings {
			if !got[k] {
				t.Errorf("%s: %s does not come from a Secret", name, k)
			}
		}
	}
}

// secretsRequired reports whether a Deployment's pods wait for the Secret imaged-secrets.
func secretsRequired(d *appsv1.Deployment) bool {
	for _, f := range d.Spec.Template.Spec.Containers[0].EnvFrom {
		if f.SecretRef != nil && f.SecretRef.Name == "imaged-secrets" {
			return f.SecretRef.Optional == nil || !*f.SecretRef.Optional
		}
	}
	return false
}

func TestProduction(t *testing.T) {
	b := built(build(t, "overlays/production"))
	checkBackendsFromSecret(t, b)
	for _, name := range []string{"imaged-api", "imaged-worker", "imaged-worker-ml"} {
		if !secretsRequired(b.deployment(t, name)) {
			t.Errorf("%s does not require imaged-secrets: several pods must share their keys", name)
		}
		if _, ok := b.find("ConfigMap", "imaged-config"); !ok || !slices.ContainsFunc(b.deployment(t, name).Spec.Template.Spec.Containers[0].EnvFrom,
			func(f corev1.EnvFromSource) bool {
				return f.ConfigMapRef != nil && f.ConfigMapRef.Name == "imaged-config"
			}) {
			t.Errorf("%s lost the ConfigMap imaged-config", name)
		}
	}
	checkWorkerHPA(t, b)
	checkWorkerPools(t, b)
	if api := b.deployment(t, "imaged-api"); *api.Spec.Replicas != 3 {
		t.Errorf("API replicas %d, want 3", *api.Spec.Replicas)
	}
}

func TestKEDA(t *testing.T) {
	for _, tc := range []struct {
		dir, trigger, queueScheme string
	}{
		{"overlays/keda", "rabbitmq", "amqp://"},
		{"overlays/keda-kafka", "kafka", "kafka://"},
	} {
		t.Run(tc.trigger, func(t *testing.T) {
			b := built(build(t, tc.dir))
			checkBackendsFromSecret(t, b)
			if len(b.all("HorizontalPodAutoscaler")) > 0 {
				t.Error("an HPA next to the ScaledObject: KEDA owns the workers' HPA")
			}
			o, ok := b.find("ScaledObject", "imaged-worker")
			if !ok {
				t.Fatal("no ScaledObject imaged-worker")
			}
			so := o.value.(*scaledObject)
			var types []string
			for _, tr := range so.Spec.Triggers {
				types = append(types, tr.Type)
			}
			if !slices.Contains(types, tc.trigger) || !slices.Contains(types, "cpu") || !slices.Contains(types, "memory") {
				t.Errorf("triggers %v, want %s, cpu and memory", types, tc.trigger)
			}
			if *so.Spec.MinReplicaCount != 2 || *so.Spec.MaxReplicaCount != 20 {
				t.Errorf("replicas %d..%d, want 2..20", *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount)
			}
			checkWorkerPools(t, b)
			sec, _ := b.find("Secret", "imaged-backends")
			if q := sec.value.(*corev1.Secret).StringData["queue-url"]; !strings.HasPrefix(q, tc.queueScheme) {
				t.Errorf("queue-url %q, want a %s URL", q, tc.queueScheme)
			}
		})
	}
}

// checkScaledObject checks the fields KEDA requires of a ScaledObject and of each trigger.
func checkScaledObject(t *testing.T, b built, so *scaledObject) {
	t.Helper()
	if so.APIVersion != "keda.sh/v1alpha1" || so.Name == "" {
		t.Errorf("ScaledObject %q: apiVersion %s", so.Name, so.APIVersion)
	}
	ref := so.Spec.ScaleTargetRef
	if ref.Name == "" {
		t.Fatalf("ScaledObject %s: scaleTargetRef.name is required", so.Name)
	}
	if ref.Kind != "" && ref.Kind != "Deployment" {
		t.Errorf("ScaledObject %s scales a %s", so.Name, ref.Kind)
	}
	o, ok := b.find("Deployment", ref.Name)
	if !ok {
		t.Fatalf("ScaledObject %s scales Deployment %s, which the build lacks", so.Name, ref.Name)
	}
	env := resolveEnv(t, b, o.value.(*appsv1.Deployment))
	if so.Spec.MinReplicaCount != nil && so.Spec.MaxReplicaCount != nil && *so.Spec.MinReplicaCount > *so.Spec.MaxReplicaCount {
		t.Errorf("ScaledObject %s: minReplicaCount above maxReplicaCount", so.Name)
	}
	if len(so.Spec.Triggers) == 0 {
		t.Errorf("ScaledObject %s: triggers are required", so.Name)
	}
	number := func(tr string, key, v string) {
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			t.Errorf("ScaledObject %s: %s trigger %s %q is not a number", so.Name, tr, key, v)
		}
	}
	for _, tr := range so.Spec.Triggers {
		md := tr.Metadata
		require := func(keys ...string) {
			for _, k := range keys {
				if md[k] == "" {
					t.Errorf("ScaledObject %s: %s trigger needs metadata.%s", so.Name, tr.Type, k)
				}
			}
		}
		switch tr.Type {
		case "rabbitmq":
			require("queueName", "mode", "value")
			number(tr.Type, "value", md["value"])
			if md["mode"] != "QueueLength" && md["mode"] != "MessageRate" {
				t.Errorf("ScaledObject %s: rabbitmq mode %q", so.Name, md["mode"])
			}
			switch {
			case md["hostFromEnv"] != "":
				if _, ok := env[md["hostFromEnv"]]; !ok {
					t.Errorf("ScaledObject %s: hostFromEnv %s is not a variable of %s", so.Name, md["hostFromEnv"], ref.Name)
				}
			case md["host"] == "" && tr.AuthenticationRef == nil:
				t.Errorf("ScaledObject %s: rabbitmq trigger needs host, hostFromEnv or authenticationRef", so.Name)
			}
		case "kafka":
			require("bootstrapServers", "consumerGroup", "topic", "lagThreshold")
			number(tr.Type, "lagThreshold", md["lagThreshold"])
		case "cpu", "memory":
			require("value")
			number(tr.Type, "value", md["value"])
			if tr.MetricType != "Utilization" && tr.MetricType != "AverageValue" {
				t.Errorf("ScaledObject %s: %s trigger metricType %q", so.Name, tr.Type, tr.MetricType)
			}
		default:
			t.Errorf("ScaledObject %s: trigger type %q is not one these tests check", so.Name, tr.Type)
		}
	}
}

// --- prometheus-adapter -------------------------------------------------------------------------

type adapterRule struct {
	SeriesQuery string `json:"seriesQuery"`
	Resources   struct {
		Overrides map[string]struct {
			Group    string `json:"group,omitempty"`
			Resource string `json:"resource"`
		} `json:"overrides"`
		Template string `json:"template,omitempty"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

func adapterRules(t *testing.T) []adapterRule {
	t.Helper()
	data, err := os.ReadFile("prometheus-adapter/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Rules []adapterRule `json:"rules"`
	}
	if err := unmarshalStrict(js, &cfg); err != nil {
		t.Fatalf("prometheus-adapter/config.yaml: %v", err)
	}
	return cfg.Rules
}

// adapterMetrics returns the names the adapter rules serve.
func adapterMetrics(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range adapterRules(t) {
		out = append(out, r.Name.As)
	}
	return out
}

func TestAdapterRules(t *testing.T) {
	rules := adapterRules(t)
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	declared := declaredMetrics(t)
	for _, r := range rules {
		series := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`).FindString(r.SeriesQuery)
		if !declared[series] {
			t.Errorf("rule reads %s, which imaged does not export", series)
		}
		if !regexp.MustCompile(r.Name.Matches).MatchString(series) {
			t.Errorf("rule name.matches %q does not match its series %s", r.Name.Matches, series)
		}
		for _, label := range []string{"namespace", "pod"} {
			if r.Resources.Overrides[label].Resource == "" {
				t.Errorf("rule for %s does not map the %s label to a resource", series, label)
			}
		}
		for _, tmpl := range []string{"<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"} {
			if !strings.Contains(r.MetricsQuery, tmpl) {
				t.Errorf("metricsQuery of %s lacks %s", series, tmpl)
			}
		}
	}
}

// renderAdapterQuery fills a rule's metricsQuery as prometheus-adapter does for the objects of
// the given labels (a value starting with ~ is a regular expression, as for a list of pods).
func renderAdapterQuery(r adapterRule, groupBy string, matchers map[string]string) string {
	var ms []string
	for k, v := range matchers {
		if re, ok := strings.CutPrefix(v, "~"); ok {
			ms = append(ms, fmt.Sprintf("%s=~%q", k, re))
		} else {
			ms = append(ms, fmt.Sprintf("%s=%q", k, v))
		}
	}
	sort.Strings(ms)
	series := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`).FindString(r.SeriesQuery)
	q := strings.ReplaceAll(r.MetricsQuery, "<<.Series>>", series)
	q = strings.ReplaceAll(q, "<<.LabelMatchers>>", strings.Join(ms, ","))
	return strings.ReplaceAll(q, "<<.GroupBy>>", groupBy)
}

// --- metric names -----------------------------------------------------------------------------

// declaredMetrics returns the metric names imaged's sources declare (Name: "…" in collector
// options, prometheus.NewDesc("…")), with the series a histogram adds, and the Go and process
// collectors' families that matter here.
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{"up": true, "process_resident_memory_bytes": true, "process_cpu_seconds_total": true,
		"go_goroutines": true}
	nameRe := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"([a-z_:][a-z0-9_:]*)"`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte("prometheus")) {
			return nil
		}
		for _, m := range nameRe.FindAllSubmatch(data, -1) {
			n := string(m[1])
			if strings.Contains(n, "_") {
				out[n] = true
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					out[n+suffix] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	quotedRe   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	groupingRe = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	bracesRe   = regexp.MustCompile(`\{[^}]*\}`)
	rangeRe    = regexp.MustCompile(`\[[^\]]*\]`)
	identRe    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "Inf": true,
		"NaN": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression selects (a lexical reading that is
// enough for the expressions of this directory: selectors, functions and aggregations).
func metricNames(expr string) []string {
	s := quotedRe.ReplaceAllString(expr, `""`)
	s = groupingRe.ReplaceAllString(s, " ")
	s = bracesRe.ReplaceAllString(s, "{}")
	s = rangeRe.ReplaceAllString(s, "[]")
	var out []string
	for _, loc := range identRe.FindAllStringIndex(s, -1) {
		word := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if keywords[word] || strings.HasPrefix(rest, "(") {
			continue
		}
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // a unit of a number such as 5m or 1e3
		}
		out = append(out, word)
	}
	return out
}

func TestMetricNamesOfExpressions(t *testing.T) {
	got := metricNames(`sum by (namespace, job) (rate(http_requests_total{status_code=~"5..", endpoint!~"/health.*"}[5m])) / max by (name) (circuit_breaker_state) > 0.05 and deriv(tasks_queued[15m:1m]) > 0`)
	want := []string{"http_requests_total", "circuit_breaker_state", "tasks_queued"}
	if !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// dashboardExprs returns every query of the Grafana dashboard, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("grafana/imaged.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/imaged.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard has no uid or title")
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range regexp.MustCompile(`\$\{?([a-zA-Z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q uses $%s, which the dashboard does not define", p.Title, m[1])
				}
			}
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// grafanaToPromQL replaces the dashboard's variables with values Prometheus accepts.
func grafanaToPromQL(expr string) string {
	r := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h",
		"$namespace", ".*", "$job", ".*", "${namespace}", ".*", "${job}", ".*")
	return r.Replace(expr)
}

// alertExprs returns the expression of every alert rule by name.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// TestDashboardAndAlertsUseImagedMetrics: every metric a panel or an alert reads is one
// imaged declares, and the dashboard covers what operators watch.
func TestDashboardAndAlertsUseImagedMetrics(t *testing.T) {
	declared := declaredMetrics(t)
	used := map[string]bool{}
	check := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !declared[n] {
				t.Errorf("%s reads %s, which imaged does not export", where, n)
			}
		}
	}
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			check("panel "+strconv.Quote(title), e)
		}
	}
	for _, want := range []string{"http_requests_total", "http_request_duration_seconds_bucket",
		"image_processing_duration_seconds_bucket", "images_processed_total", "tasks_queued", "workers_busy",
		"circuit_breaker_state", "ocr_duration_seconds_count", "detection_inference_duration_seconds_count"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	alerts := alertExprs(t)
	for name, e := range alerts {
		check("alert "+name, e)
	}
	for _, want := range []string{"ImagedHighErrorRate", "ImagedHighLatencyP99", "ImagedQueueGrowing",
		"ImagedCircuitBreakerOpen", "ImagedNotReady"} {
		if _, ok := alerts[want]; !ok {
			t.Errorf("no alert %s", want)
		}
	}
}

// --- Dockerfile ---------------------------------------------------------------------------------

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{"USER 1000:1000", "HEALTHCHECK", "/health/live", "MALLOC_ARENA_MAX=2",
		"OMP_THREAD_LIMIT=1", "IMAGED_DATA_DIR=/data", "libvips42", "libtesseract5", "tesseract-ocr-eng",
		"FROM ${RUNTIME_IMAGE}", "libvips-dev", "libtesseract-dev"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The runtime stage installs no compiler or headers.
	final := df[strings.LastIndex(df, "\nFROM "):]
	for _, bad := range []string{"-dev", "gcc", "golang", "npm"} {
		if strings.Contains(final, bad) {
			t.Errorf("the runtime stage mentions %q", bad)
		}
	}
	settings := imagedSettings(t)
	for _, m := range regexp.MustCompile(`\b(IMAGED_[A-Z0-9_]+)=`).FindAllStringSubmatch(df, -1) {
		if !settings[m[1]] {
			t.Errorf("Dockerfile sets %s, which imaged does not read", m[1])
		}
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "data", "bin"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}
