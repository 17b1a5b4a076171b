package deploy

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The Helm chart deploy/helm/imaged, checked with the helm it is written for: `helm lint` and
// `helm template` on the default values and on each example, every rendered object decoded
// strictly into its API type (the prometheus-operator kinds into that project's own Go types,
// KEDA's ScaledObject into the hand-kept struct of deploy_test.go), then checked for what it is
// for, and the defaults against the kustomize base they mirror.

const (
	chartDir    = "helm/imaged"
	helmVersion = "v4.3.2" // scripts/helm.sh installs it
)

// taskTypes are the task types imaged runs; a pool with no types runs all of them.
var taskTypes = []string{"transform", "ocr", "detect"}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// findHelm looks for helm-<version>/helm under $IMAGED_TOOLS_DIR, the module's .cache/tools and
// ~/.cache/imaged/tools ($IMAGED_HELM names a binary directly).
func findHelm() string {
	if p := os.Getenv("IMAGED_HELM"); p != "" {
		return p
	}
	var dirs []string
	if d := os.Getenv("IMAGED_TOOLS_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, filepath.Join("..", ".cache", "tools"))
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "imaged", "tools"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "helm-"+helmVersion, "helm")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// requireHelm returns the helm binary, installing it with scripts/helm.sh (go install, minutes
// cold) when it is not there yet. Without it the test skips loudly, or fails under
// IMAGED_TEST_REQUIRE_SERVICES=1.
func requireHelm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		if helmPath = findHelm(); helmPath != "" {
			return
		}
		cmd := exec.Command(filepath.Join("..", "scripts", "helm.sh"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			helmErr = fmt.Errorf("scripts/helm.sh: %v\n%s", err, out)
			return
		}
		if helmPath = findHelm(); helmPath == "" {
			helmErr = fmt.Errorf("scripts/helm.sh ran but helm-%s/helm is not in the tools directory:\n%s", helmVersion, out)
		}
	})
	if helmPath == "" {
		msg := fmt.Sprintf("SKIPPING: helm %s is not installed and could not be (%v); run scripts/helm.sh", helmVersion, helmErr)
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return helmPath
}

// runHelm runs helm with its caches and configuration in a temporary directory.
func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(requireHelm(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr.Bytes(), stdout.Bytes())
	}
	return stdout.Bytes(), nil
}

// TestHelmVersion: the helm found is the one the chart is tested with. A `go install` build
// reports only "v4.3" itself, so the module version is read from the binary's build information.
func TestHelmVersion(t *testing.T) {
	bi, err := buildinfo.ReadFile(requireHelm(t))
	if err != nil {
		t.Fatal(err)
	}
	if bi.Main.Path != "helm.sh/helm/v4" || bi.Main.Version != helmVersion {
		t.Errorf("helm is %s %s, want helm.sh/helm/v4 %s", bi.Main.Path, bi.Main.Version, helmVersion)
	}
	if _, err := runHelm(t, "version"); err != nil {
		t.Fatal(err)
	}
}

// render lints the chart with the given values files and renders it as the release imaged in
// the namespace imaged, decoding every object strictly.
func render(t *testing.T, valueFiles ...string) built {
	t.Helper()
	var vf []string
	for _, f := range valueFiles {
		vf = append(vf, "-f", f)
	}
	if out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, vf...)...); err != nil {
		t.Fatal(err)
	} else if !bytes.Contains(out, []byte("0 chart(s) failed")) {
		t.Fatalf("helm lint:\n%s", out)
	}
	out, err := runHelm(t, append([]string{"template", "imaged", chartDir, "--namespace", "imaged"}, vf...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(out, "helm template "+strings.Join(valueFiles, " "))
	if err != nil {
		t.Fatal(err)
	}
	return built(objs)
}

// chartExample is a values file and what its rendering must hold.
type chartExample struct {
	file   string            // under helm/imaged/examples; "" = the chart's defaults
	counts map[string]int    // objects by kind
	pools  map[string]string // worker Deployment → IMAGED_WORKER_TYPES ("" = unset: every type)
}

var chartExamples = []chartExample{
	{"", map[string]int{"ConfigMap": 1, "Deployment": 3, "Service": 4, "PodDisruptionBudget": 3, "NetworkPolicy": 3,
		"HorizontalPodAutoscaler": 2, "Job": 1},
		map[string]string{"imaged-worker-transform": "transform", "imaged-worker-ml": "ocr,detect"}},
	{"minimal.yaml", map[string]int{"ConfigMap": 1, "Deployment": 2, "Service": 3, "PodDisruptionBudget": 2,
		"NetworkPolicy": 2, "Job": 1},
		map[string]string{"imaged-worker-all": ""}},
	{"production-keda.yaml", map[string]int{"ConfigMap": 2, "Deployment": 3, "Service": 4, "PodDisruptionBudget": 3,
		"NetworkPolicy": 3, "ScaledObject": 2, "Ingress": 1, "PrometheusRule": 1, "Job": 1},
		map[string]string{"imaged-worker-transform": "transform", "imaged-worker-ml": "ocr,detect"}},
	{"production-hpa.yaml", map[string]int{"ConfigMap": 2, "Deployment": 3, "Service": 4, "PodDisruptionBudget": 3,
		"NetworkPolicy": 3, "HorizontalPodAutoscaler": 2, "ServiceMonitor": 1, "PrometheusRule": 1, "Job": 1},
		map[string]string{"imaged-worker-transform": "transform", "imaged-worker-ml": "ocr,detect"}},
}

func TestChartExamples(t *testing.T) {
	settings := imagedSettings(t)
	entries, err := os.ReadDir(filepath.Join(chartDir, "examples"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.ContainsFunc(chartExamples, func(ex chartExample) bool { return ex.file == e.Name() }) {
			t.Errorf("examples/%s is not one TestChartExamples checks", e.Name())
		}
	}
	for _, ex := range chartExamples {
		name := strings.TrimSuffix(ex.file, ".yaml")
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			var files []string
			if ex.file != "" {
				files = append(files, filepath.Join(chartDir, "examples", ex.file))
			}
			b := render(t, files...)
			got := map[string]int{}
			for _, o := range b {
				got[o.kind]++
			}
			var summary []string
			for k, n := range got {
				summary = append(summary, fmt.Sprintf("%s %d", k, n))
			}
			sort.Strings(summary)
			t.Logf("%d objects: %s", len(b), strings.Join(summary, ", "))
			if !reflect.DeepEqual(got, ex.counts) {
				t.Errorf("objects by kind %v, want %v", got, ex.counts)
			}
			checkChart(t, b, settings, ex)
		})
	}
}

// checkChart holds what every rendering of the chart must satisfy.
func checkChart(t *testing.T, b built, settings map[string]bool, ex chartExample) {
	t.Helper()
	for _, o := range b {
		if o.ns != "imaged" {
			t.Errorf("%s %s is in namespace %q, want the release's (imaged)", o.kind, o.name, o.ns)
		}
		if o.kind == "Secret" {
			t.Errorf("the chart renders Secret %s: secrets are referenced, never created", o.name)
		}
	}
	// The Secrets the chart's defaults reference, as the kustomize production overlay makes them.
	b = append(b, exampleSecret(t, "k8s/overlays/production/backends-secret.yaml"))

	// Every Deployment: its selector, its settings (each one imaged reads), a migration left to
	// the Job.
	_, hasJob := b.find("Job", "imaged-migrate")
	for _, o := range b.all("Deployment") {
		d := o.value.(*appsv1.Deployment)
		if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("%s: selector %v does not match its pod labels", d.Name, d.Spec.Selector.MatchLabels)
		}
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", d.Name, len(d.Spec.Template.Spec.Containers))
		}
		env := resolveEnv(t, b, d)
		for name := range env {
			if !settings[name] {
				t.Errorf("%s: sets %s, which imaged does not read", d.Name, name)
			}
		}
		if hasJob != (env["IMAGED_NO_MIGRATE"] == "true") {
			t.Errorf("%s: IMAGED_NO_MIGRATE=%q with a migration Job %v", d.Name, env["IMAGED_NO_MIGRATE"], hasJob)
		}
		for _, k := range backendSettings {
			if v, ok := env[k]; ok && v != "<secret>" {
				t.Errorf("%s: %s is a plain value, not from a Secret", d.Name, k)
			}
		}
	}

	// The API: probes, no tasks of its own, the Service in front of it only.
	api := b.deployment(t, "imaged-api")
	checkAPIProbes(t, api)
	if c := api.Spec.Template.Spec.Containers[0]; !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("imaged-api runs %v", c.Args)
	}
	if w := resolveEnv(t, b, api)["IMAGED_WORKERS"]; w != "0" {
		t.Errorf("API IMAGED_WORKERS = %q, want 0 (tasks run on the worker pools)", w)
	}
	so, ok := b.find("Service", "imaged")
	if !ok {
		t.Fatal("no Service imaged")
	}
	svc := so.value.(*corev1.Service)
	for _, o := range b.all("Deployment") {
		d := o.value.(*appsv1.Deployment)
		if got := selects(svc.Spec.Selector, d.Spec.Template.Labels); got != (d.Name == "imaged-api") {
			t.Errorf("Service imaged selects the pods of %s: %v", d.Name, got)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") ||
		containerPort(api, "http") != 8000 {
		t.Errorf("Service ports %+v, want 80 → http (8000)", svc.Spec.Ports)
	}

	checkChartPools(t, b, ex.pools)
	if len(b.all("ServiceMonitor")) == 0 {
		checkScraped(t, b)
	} else {
		checkServiceMonitor(t, b)
	}

	for _, o := range b.all("PodDisruptionBudget") {
		p := o.value.(*policyv1.PodDisruptionBudget)
		if !selectsADeployment(b, p.Spec.Selector) || p.Spec.MaxUnavailable == nil {
			t.Errorf("PodDisruptionBudget %s selects no Deployment's pods or sets no maxUnavailable", p.Name)
		}
	}
	var npPorts []string
	for _, o := range b.all("NetworkPolicy") {
		p := o.value.(*networkingv1.NetworkPolicy)
		if !selectsADeployment(b, &p.Spec.PodSelector) {
			t.Errorf("NetworkPolicy %s selects no Deployment's pods", p.Name)
		}
		if p.Name == "imaged-api" {
			for _, rule := range p.Spec.Ingress {
				for _, port := range rule.Ports {
					npPorts = append(npPorts, port.Port.String())
				}
			}
		}
	}
	if sort.Strings(npPorts); !slices.Equal(npPorts, []string{"8000", "9090"}) {
		t.Errorf("API NetworkPolicy opens ports %v, want 8000 and 9090", npPorts)
	}
	for _, o := range b.all("Ingress") {
		for _, r := range o.value.(*networkingv1.Ingress).Spec.Rules {
			for _, p := range r.HTTP.Paths {
				if s := p.Backend.Service; s == nil || s.Name != "imaged" || s.Port.Name != "http" {
					t.Errorf("Ingress %s routes %s to %+v, want Service imaged port http", o.name, p.Path, s)
				}
			}
		}
	}
	for _, o := range b.all("Job") {
		checkMigrationJob(t, b, o.value.(*batchv1.Job))
	}
	for _, o := range b.all("PrometheusRule") {
		checkPrometheusRule(t, o.value.(*monitoringv1.PrometheusRule))
	}
	for _, o := range b.all("ConfigMap") {
		if cm := o.value.(*corev1.ConfigMap); cm.Name == "imaged-dashboard" {
			checkDashboardConfigMap(t, cm)
		}
	}
}

// checkChartPools: each worker pool runs `imaged worker` on its task types, the pools together
// run every type once, and each pool's autoscaler scales it on its own types' queue.
func checkChartPools(t *testing.T, b built, pools map[string]string) {
	t.Helper()
	seen := map[string]string{}
	for _, o := range b.all("Deployment") {
		d := o.value.(*appsv1.Deployment)
		if d.Name == "imaged-api" {
			continue
		}
		want, ok := pools[d.Name]
		if !ok {
			t.Errorf("Deployment %s is not a worker pool of this example", d.Name)
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if !slices.Equal(c.Args, []string{"worker"}) {
			t.Errorf("%s runs %v, want worker", d.Name, c.Args)
		}
		if p := c.LivenessProbe; p == nil || p.TCPSocket == nil || containerPort(d, p.TCPSocket.Port.StrVal) != 9090 {
			t.Errorf("%s liveness probe %+v, want a TCP check of its metrics port", d.Name, p)
		}
		env := resolveEnv(t, b, d)
		if n, _ := strconv.Atoi(env["IMAGED_WORKERS"]); n < 1 {
			t.Errorf("%s IMAGED_WORKERS = %q", d.Name, env["IMAGED_WORKERS"])
		}
		got, set := env["IMAGED_WORKER_TYPES"]
		if got != want || set != (want != "") {
			t.Errorf("%s IMAGED_WORKER_TYPES = %q (set %v), want %q", d.Name, got, set, want)
		}
		types := taskTypes
		if got != "" {
			types = strings.Split(got, ",")
		}
		for _, typ := range types {
			if other, ok := seen[typ]; ok {
				t.Errorf("task type %s runs on %s and %s", typ, other, d.Name)
			}
			seen[typ] = d.Name
		}
		checkPoolAutoscaler(t, b, d, types)
	}
	for _, typ := range taskTypes {
		if seen[typ] == "" {
			t.Errorf("no worker pool runs %s tasks", typ)
		}
	}
	for name := range pools {
		if _, ok := b.find("Deployment", name); !ok {
			t.Errorf("no worker Deployment %s", name)
		}
	}
}

// checkPoolAutoscaler: the pool's HPA (tasks_queued of its types through prometheus-adapter, CPU
// and memory) or ScaledObject (its types' queues or topics), or a fixed replica count.
func checkPoolAutoscaler(t *testing.T, b built, d *appsv1.Deployment, types []string) {
	t.Helper()
	ho, hpa := b.find("HorizontalPodAutoscaler", d.Name)
	so, keda := b.find("ScaledObject", d.Name)
	switch {
	case hpa && keda:
		t.Errorf("%s has both an HPA and a ScaledObject", d.Name)
	case !hpa && !keda:
		if d.Spec.Replicas == nil {
			t.Errorf("%s: no autoscaler and no replicas", d.Name)
		}
		return
	}
	if d.Spec.Replicas != nil {
		t.Errorf("%s sets replicas %d next to its autoscaler, which owns the count", d.Name, *d.Spec.Replicas)
	}
	if keda {
		s := so.value.(*scaledObject)
		checkScaledObject(t, b, s)
		var queues, want []string
		for _, tr := range s.Spec.Triggers {
			if q := tr.Metadata["queueName"] + tr.Metadata["topic"]; q != "" {
				queues = append(queues, q)
			}
		}
		for _, typ := range types {
			want = append(want, "imaged.tasks."+typ)
		}
		if sort.Strings(queues); !slices.Equal(queues, slices.Sorted(slices.Values(want))) {
			t.Errorf("ScaledObject %s scales on %v, want %v", s.Name, queues, want)
		}
		return
	}
	h := ho.value.(*autoscalingv2.HorizontalPodAutoscaler)
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA %s scales %s %s", h.Name, ref.Kind, ref.Name)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("HPA %s replicas %v..%d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	var cpu, mem, queued bool
	for _, m := range h.Spec.Metrics {
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
			cpu = *m.Resource.Target.AverageUtilization == 70
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceMemory:
			mem = *m.Resource.Target.AverageUtilization == 80
		case m.Type == autoscalingv2.PodsMetricSourceType:
			if !slices.Contains(adapterMetrics(t), m.Pods.Metric.Name) {
				t.Errorf("HPA %s uses metric %s, which no prometheus-adapter rule serves", h.Name, m.Pods.Metric.Name)
			}
			queued = m.Pods.Metric.Name == "tasks_queued" && m.Pods.Target.AverageValue != nil &&
				m.Pods.Target.AverageValue.Cmp(resource.MustParse("5")) == 0
			sel, err := metav1.LabelSelectorAsSelector(m.Pods.Metric.Selector)
			if m.Pods.Metric.Selector == nil || err != nil {
				t.Errorf("HPA %s: tasks_queued without a task_type selector (%v)", h.Name, err)
				continue
			}
			for _, typ := range taskTypes {
				if got, want := sel.Matches(labels.Set{"task_type": typ}), slices.Contains(types, typ); got != want {
					t.Errorf("HPA %s: selector %s matches task_type=%s: %v, want %v", h.Name, sel, typ, got, want)
				}
			}
		}
	}
	if !cpu || !mem || !queued {
		t.Errorf("HPA %s metrics: cpu 70%% %v, memory 80%% %v, tasks_queued average 5 %v", h.Name, cpu, mem, queued)
	}
}

// checkServiceMonitor: the ServiceMonitor reaches /metrics of every Deployment's pods through a
// Service it selects, on a port of that Service whose target is the pods' metrics port.
func checkServiceMonitor(t *testing.T, b built) {
	t.Helper()
	for _, mo := range b.all("ServiceMonitor") {
		sm := mo.value.(*monitoringv1.ServiceMonitor)
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Fatalf("ServiceMonitor %s selector %v (%v)", sm.Name, sm.Spec.Selector, err)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Fatalf("ServiceMonitor %s endpoints %+v, want one on /metrics", sm.Name, sm.Spec.Endpoints)
		}
		ep := sm.Spec.Endpoints[0]
		for _, o := range b.all("Deployment") {
			d := o.value.(*appsv1.Deployment)
			found := false
			for _, so := range b.all("Service") {
				svc := so.value.(*corev1.Service)
				if !sel.Matches(labels.Set(svc.Labels)) || !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
					continue
				}
				for _, p := range svc.Spec.Ports {
					found = found || p.Name == ep.Port && containerPort(d, p.TargetPort.StrVal) == 9090
				}
				if svc.Annotations["prometheus.io/scrape"] == "true" {
					t.Errorf("Service %s keeps scrape annotations next to the ServiceMonitor: scraped twice", svc.Name)
				}
			}
			if !found {
				t.Errorf("ServiceMonitor %s does not reach the metrics port of %s", sm.Name, d.Name)
			}
		}
	}
}

// checkMigrationJob: `imaged migrate up` as a pre-install and pre-upgrade hook, on the database
// the pods use, with the pods' security context.
func checkMigrationJob(t *testing.T, b built, j *batchv1.Job) {
	t.Helper()
	hooks := strings.Split(j.Annotations["helm.sh/hook"], ",")
	if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
		t.Errorf("Job %s hooks %v, want pre-install and pre-upgrade", j.Name, hooks)
	}
	spec := j.Spec.Template.Spec
	if spec.RestartPolicy != corev1.RestartPolicyNever || len(spec.Containers) != 1 {
		t.Fatalf("Job %s: restartPolicy %s, %d containers", j.Name, spec.RestartPolicy, len(spec.Containers))
	}
	c := spec.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate", "up"}) {
		t.Errorf("Job %s runs %v, want migrate up", j.Name, c.Args)
	}
	api := b.deployment(t, "imaged-api")
	if c.Image != api.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("Job %s image %s, the API's %s", j.Name, c.Image, api.Spec.Template.Spec.Containers[0].Image)
	}
	var jobDB, apiDB *corev1.EnvVarSource
	for _, e := range c.Env {
		if e.Name == "IMAGED_DATABASE_URL" {
			jobDB = e.ValueFrom
		}
	}
	for _, e := range api.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "IMAGED_DATABASE_URL" {
			apiDB = e.ValueFrom
		}
	}
	if jobDB == nil || !equality.Semantic.DeepEqual(jobDB, apiDB) {
		t.Errorf("Job %s reads IMAGED_DATABASE_URL from %+v, the API from %+v", j.Name, jobDB, apiDB)
	}
	if len(c.EnvFrom) > 0 {
		t.Errorf("Job %s reads envFrom %+v: a pre-install hook runs before the chart's ConfigMap exists", j.Name, c.EnvFrom)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || spec.SecurityContext == nil ||
		spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Errorf("Job %s security context %+v / %+v", j.Name, spec.SecurityContext, sc)
	}
}

// checkPrometheusRule: the rule groups are those of prometheus/alerts.yml, field for field.
func checkPrometheusRule(t *testing.T, r *monitoringv1.PrometheusRule) {
	t.Helper()
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var want monitoringv1.PrometheusRuleSpec
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshalStrict(js, &want); err != nil {
		t.Fatalf("prometheus/alerts.yml as a PrometheusRule spec: %v", err)
	}
	if len(want.Groups) == 0 || !equality.Semantic.DeepEqual(r.Spec, want) {
		t.Errorf("PrometheusRule %s differs from prometheus/alerts.yml", r.Name)
	}
	n := 0
	for _, g := range r.Spec.Groups {
		n += len(g.Rules)
	}
	if n != len(alertExprs(t)) {
		t.Errorf("PrometheusRule %s holds %d rules, alerts.yml %d", r.Name, n, len(alertExprs(t)))
	}
}

// checkDashboardConfigMap: the dashboard, byte for byte, for Grafana's sidecar.
func checkDashboardConfigMap(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	data, err := os.ReadFile("grafana/imaged.json")
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["imaged.json"] != strings.TrimSuffix(string(data), "\n") {
		t.Errorf("ConfigMap %s: imaged.json differs from grafana/imaged.json", cm.Name)
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap %s labels %v, want grafana_dashboard=1 for the sidecar", cm.Name, cm.Labels)
	}
}

// TestChartFilesMatchSources: the chart carries copies of the alert rules and the dashboard (a
// chart can read only its own files); they must be the files the other tests check.
func TestChartFilesMatchSources(t *testing.T) {
	for copyOf, src := range map[string]string{"files/alerts.yml": "prometheus/alerts.yml", "files/imaged.json": "grafana/imaged.json"} {
		a, err := os.ReadFile(filepath.Join(chartDir, copyOf))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s/%s differs from %s: cp deploy/%s deploy/%s/%s", chartDir, copyOf, src, src, chartDir, copyOf)
		}
	}
}

// TestChartMirrorsKustomize: with its defaults the chart runs the pods the kustomize production
// overlay runs: the same settings, security contexts, probes, ports, volumes, resources and
// autoscaling targets.
func TestChartMirrorsKustomize(t *testing.T) {
	// With the Secret imaged-backends the chart's defaults reference, as the overlay makes it.
	chart := append(render(t), exampleSecret(t, "k8s/overlays/production/backends-secret.yaml"))
	kust := built(build(t, "overlays/production"))

	ccm, _ := chart.find("ConfigMap", "imaged-config")
	kcm, _ := kust.find("ConfigMap", "imaged-config")
	if ccm.value == nil || kcm.value == nil {
		t.Fatal("no ConfigMap imaged-config")
	}
	if c, k := ccm.value.(*corev1.ConfigMap).Data, kcm.value.(*corev1.ConfigMap).Data; !reflect.DeepEqual(c, k) {
		t.Errorf("ConfigMap data:\nchart     %v\nkustomize %v", c, k)
	}

	// Chart pool → the kustomize Deployment it mirrors.
	pairs := map[string]string{"imaged-api": "imaged-api", "imaged-worker-transform": "imaged-worker", "imaged-worker-ml": "imaged-worker-ml"}
	for cn, kn := range pairs {
		cd, kd := chart.deployment(t, cn), kust.deployment(t, kn)
		cs, ks := cd.Spec.Template.Spec, kd.Spec.Template.Spec
		cc, kc := cs.Containers[0], ks.Containers[0]
		same := func(what string, a, b any) {
			if !equality.Semantic.DeepEqual(a, b) {
				t.Errorf("%s %s differs from kustomize's %s:\nchart     %+v\nkustomize %+v", cn, what, kn, a, b)
			}
		}
		same("pod securityContext", cs.SecurityContext, ks.SecurityContext)
		same("terminationGracePeriodSeconds", cs.TerminationGracePeriodSeconds, ks.TerminationGracePeriodSeconds)
		same("automountServiceAccountToken", cs.AutomountServiceAccountToken, ks.AutomountServiceAccountToken)
		same("volumes", cs.Volumes, ks.Volumes)
		same("container securityContext", cc.SecurityContext, kc.SecurityContext)
		same("args", cc.Args, kc.Args)
		same("ports", cc.Ports, kc.Ports)
		same("volumeMounts", cc.VolumeMounts, kc.VolumeMounts)
		same("livenessProbe", cc.LivenessProbe, kc.LivenessProbe)
		same("readinessProbe", cc.ReadinessProbe, kc.ReadinessProbe)
		same("strategy", cd.Spec.Strategy, kd.Spec.Strategy)
		same("resources", cc.Resources, kc.Resources)
		ce, ke := resolveEnv(t, chart, cd), resolveEnv(t, kust, kd)
		delete(ce, "IMAGED_NO_MIGRATE") // the chart migrates in its Job
		same("settings", ce, ke)
	}
	if a := chart.deployment(t, "imaged-api"); *a.Spec.Replicas != *kust.deployment(t, "imaged-api").Spec.Replicas {
		t.Errorf("API replicas %d, kustomize %d", *a.Spec.Replicas, *kust.deployment(t, "imaged-api").Spec.Replicas)
	}
	for cn, kn := range map[string]string{"imaged-worker-transform": "imaged-worker", "imaged-worker-ml": "imaged-worker-ml"} {
		ch, _ := chart.find("HorizontalPodAutoscaler", cn)
		kh, _ := kust.find("HorizontalPodAutoscaler", kn)
		if ch.value == nil || kh.value == nil {
			t.Fatalf("no HPA %s in the chart or %s in kustomize", cn, kn)
		}
		c, k := ch.value.(*autoscalingv2.HorizontalPodAutoscaler).Spec, kh.value.(*autoscalingv2.HorizontalPodAutoscaler).Spec
		if *c.MinReplicas != *k.MinReplicas || c.MaxReplicas != k.MaxReplicas || !equality.Semantic.DeepEqual(c.Behavior, k.Behavior) ||
			!equality.Semantic.DeepEqual(c.Metrics, k.Metrics) {
			t.Errorf("HPA %s %d..%d %+v %+v, kustomize's %s %d..%d %+v %+v", cn, *c.MinReplicas, c.MaxReplicas, c.Behavior, c.Metrics,
				kn, *k.MinReplicas, k.MaxReplicas, k.Behavior, k.Metrics)
		}
	}
}

// TestChartSchemaRejectsBadValues: values.schema.json turns misspelt or impossible values into
// errors before anything is rendered, and the templates refuse what the schema cannot express.
func TestChartSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct{ values, want string }{
		{"api: {replica: 3}", "replica"},
		{"workers: {ml: {types: [ocr, video]}}", "/workers/ml/types/1"},
		{"autoscaling: {mode: kedaa}", "/autoscaling/mode"},
		{"config: {LOG_LEVEL: debug}", "LOG_LEVEL"},
		{"secrets: {databaseURL: {existingSecret: db, key: \"\"}}", "key"},
		{"workers: {gpu: {concurrency: 1}}", "types"},
		{"autoscaling: {mode: keda, keda: {trigger: kafka}}", "bootstrapServers"},
	} {
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(f, []byte(tc.values+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := runHelm(t, "template", "imaged", chartDir, "-f", f)
		if err == nil {
			t.Errorf("helm template with %q: no error", tc.values)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("helm template with %q: error does not name %s:\n%v", tc.values, tc.want, err)
		}
	}
}
