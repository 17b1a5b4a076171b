package deploy

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/imaged/imaged/internal/imagedtest"
)

// These tests run the real tools: promtool on the rule files, the dashboard's queries and
// imaged's /metrics output, and a real Prometheus scraping a real imaged process. They skip
// loudly when Prometheus is not installed (apt-get install prometheus), unless
// IMAGED_TEST_REQUIRE_SERVICES=1 makes that a failure.

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is not installed (apt-get install prometheus); IMAGED_TEST_REQUIRE_SERVICES=1", name)
	}
	msg := fmt.Sprintf("SKIPPED: %s is not installed (apt-get install prometheus); set IMAGED_TEST_REQUIRE_SERVICES=1 to make this a failure", name)
	fmt.Fprintln(os.Stderr, t.Name()+": "+msg)
	t.Skip(msg)
	return ""
}

func promtool(t *testing.T, stdin []byte, args ...string) {
	t.Helper()
	cmd := exec.Command(requireTool(t, "promtool"), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestAlertRulesPromtool(t *testing.T) {
	promtool(t, nil, "check", "rules", "prometheus/alerts.yml")
	// Each alert fires on the series meant to fire it, and only then.
	promtool(t, nil, "test", "rules", "prometheus/alerts_test.yml")
}

// TestPrometheusConfigPromtool checks prometheus/prometheus.yml. Debian's Prometheus is built
// without Kubernetes service discovery, so the discovery block is swapped for a static target
// there; everything else, the relabelling and the rule file included, is checked as written.
func TestPrometheusConfigPromtool(t *testing.T) {
	data, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatal(err)
	}
	jobs, _ := cfg["scrape_configs"].([]any)
	if len(jobs) == 0 {
		t.Fatal("no scrape_configs")
	}
	for _, j := range jobs {
		job := j.(map[string]any)
		if _, ok := job["kubernetes_sd_configs"]; ok {
			delete(job, "kubernetes_sd_configs")
			job["static_configs"] = []any{map[string]any{"targets": []any{"127.0.0.1:8000"}}}
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"prometheus.yml": out, "alerts.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	promtool(t, nil, "check", "config", filepath.Join(dir, "prometheus.yml"))
}

// TestQueriesParse puts every dashboard query and the adapter's rendered metricsQuery into a
// rule file as recording rules, so that promtool parses each one.
func TestQueriesParse(t *testing.T) {
	var b strings.Builder
	b.WriteString("groups:\n  - name: queries\n    rules:\n")
	n := 0
	add := func(expr string) {
		n++
		js, _ := json.Marshal(expr)
		fmt.Fprintf(&b, "      - record: query:%d\n        expr: %s\n", n, js)
	}
	titles := dashboardExprs(t)
	keys := make([]string, 0, len(titles))
	for k := range titles {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, e := range titles[k] {
			add(grafanaToPromQL(e))
		}
	}
	for _, r := range adapterRules(t) {
		add(renderAdapterQuery(r, "service", map[string]string{"namespace": "imaged", "service": "imaged"}))
	}
	f := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, nil, "check", "rules", f)
}

// TestAdapterQueryPromtool evaluates the adapter's query as prometheus-adapter sends it for two
// worker pods, with promtool's rule unit tests: each pod gets half of the queue, so the HPA
// (average over the pods / 5) asks for ceil(queued / 5) workers whatever their number.
func TestAdapterQueryPromtool(t *testing.T) {
	dir := t.TempDir()
	var rules, tests strings.Builder
	rules.WriteString("groups:\n  - name: adapter\n    rules:\n")
	for i, r := range adapterRules(t) {
		q := renderAdapterQuery(r, "pod", map[string]string{"namespace": "imaged", "pod": "~imaged-worker-a|imaged-worker-b"})
		js, _ := json.Marshal(q)
		fmt.Fprintf(&rules, "      - record: adapter:%d\n        expr: %s\n", i, js)
		fmt.Fprintf(&tests, `      - expr: adapter:%d
        eval_time: 1m
        exp_samples:
          - labels: 'adapter:%d{pod="imaged-worker-a"}'
            value: 11
          - labels: 'adapter:%d{pod="imaged-worker-b"}'
            value: 11
`, i, i, i)
	}
	// 22 tasks queued (transform 15, ocr 5, detect 2), reported by both workers and an API pod.
	var series strings.Builder
	for _, pod := range []string{"imaged-worker-a", "imaged-worker-b", "imaged-api-x"} {
		for typ, n := range map[string]int{"transform": 15, "ocr": 5, "detect": 2} {
			fmt.Fprintf(&series, "      - series: 'tasks_queued{namespace=\"imaged\",service=\"s\",pod=\"%s\",task_type=\"%s\"}'\n        values: '%dx5'\n", pod, typ, n)
		}
	}
	test := "rule_files: [adapter.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n" +
		series.String() + "    promql_expr_test:\n" + tests.String()
	for name, body := range map[string]string{"adapter.yml": rules.String(), "adapter_test.yml": test} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	promtool(t, nil, "test", "rules", filepath.Join(dir, "adapter_test.yml"))
}

// --- a running imaged ------------------------------------------------------------------------

func imagedBinary(t *testing.T) string {
	t.Helper()
	return imagedtest.Binary(t)
}

type logBuffer = imagedtest.Log

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs a command until the test ends, its output kept for failure reports.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *logBuffer {
	t.Helper()
	logs, _ := imagedtest.StartProcess(t, name, cmd)
	return logs
}

// waitFor polls cond every 200 ms until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiKey is the admin key the test's imaged is started with (IMAGED_BOOTSTRAP_API_KEY) and
// every request sends.
var apiKey = func() string {
	b := make([]byte, 37)
	_, _ = rand.Read(b)
	enc := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	return "imk_" + enc.EncodeToString(b[:5]) + "_" + enc.EncodeToString(b[5:])
}()

func httpDo(t *testing.T, method, u, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", apiKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func jsonField(t *testing.T, body []byte, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	s, _ := m[field].(string)
	return s
}

// sample is one series of an instant query.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) float() float64 {
	v, _ := s.Value[1].(string)
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

type prometheus struct {
	t    *testing.T
	base string
}

// query runs an instant query; a query Prometheus rejects fails the test.
func (p prometheus) query(q string) []sample {
	p.t.Helper()
	res, err := p.tryQuery(q)
	if err != nil {
		p.t.Fatalf("query %s: %v", q, err)
	}
	return res
}

func (p prometheus) tryQuery(q string) ([]sample, error) {
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.Status, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, nil
	}
	var out []sample
	err = json.Unmarshal(r.Data.Result, &out)
	return out, err
}

// TestPrometheusScrapesImaged runs imaged as the Kubernetes manifests do, an API process
// (IMAGED_WORKERS=0) and a worker process, each serving /metrics on a port of its own
// (IMAGED_METRICS_ADDR), and a Prometheus scraping both every second. It sends uploads,
// pipelines and tasks, and checks through Prometheus' query API that the metrics of DESIGN §7
// arrive with their labels, that the alert rules evaluate, and that every dashboard query runs.
func TestPrometheusScrapesImaged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts imaged and Prometheus")
	}
	promBin := requireTool(t, "prometheus")
	requireTool(t, "promtool")
	bin := imagedBinary(t)
	settings := imagedSettings(t)

	// The settings the manifests are checked against are the ones the binary reads.
	help, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	for s := range settings {
		if !strings.Contains(string(help), "["+s+"]") {
			t.Errorf("imaged serve -h does not list %s", s)
		}
	}

	dataDir := t.TempDir()
	port, apiMetrics, workerMetrics := freePort(t), freePort(t), freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := func(extra ...string) []string {
		return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"IMAGED_DATA_DIR=" + dataDir, "IMAGED_POLL_INTERVAL=100ms", "IMAGED_LOG_LEVEL=warn"}, extra...)
	}
	api := exec.Command(bin, "serve")
	api.Env = env(fmt.Sprintf("IMAGED_ADDR=127.0.0.1:%d", port), fmt.Sprintf("IMAGED_METRICS_ADDR=127.0.0.1:%d", apiMetrics),
		"IMAGED_WORKERS=0", "IMAGED_BOOTSTRAP_API_KEY="+apiKey)
	startProcess(t, "imaged serve", api)
	waitFor(t, "imaged serve to be ready", 30*time.Second, func() bool {
		resp, err := http.Get(base + "/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	worker := exec.Command(bin, "worker")
	worker.Env = env(fmt.Sprintf("IMAGED_METRICS_ADDR=127.0.0.1:%d", workerMetrics), "IMAGED_WORKERS=1")
	startProcess(t, "imaged worker", worker)
	waitFor(t, "imaged worker to serve /metrics", 30*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", workerMetrics))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// The API's Service port does not expose /metrics once it has a port of its own.
	if code, _ := httpDo(t, "GET", base+"/metrics", "", nil); code == 200 {
		t.Error("the API port serves /metrics although IMAGED_METRICS_ADDR is set")
	}

	// Traffic: an upload, a synchronous pipeline, a task run by the worker process, a 404.
	photo, err := os.ReadFile("../testdata/astronaut.jpg")
	if err != nil {
		t.Fatal(err)
	}
	code, body := httpDo(t, "POST", base+"/v1/images", "image/jpeg", bytes.NewReader(photo))
	if code != 201 {
		t.Fatalf("upload: %d %s", code, body)
	}
	imageID := jsonField(t, body, "id")
	ops := `[{"op":"resize","width":64},{"op":"convert","format":"png"}]`
	code, body = httpDo(t, "POST", base+"/v1/process", "application/json",
		strings.NewReader(`{"image_id":"`+imageID+`","ops":`+ops+`}`))
	if code != 200 || !bytes.HasPrefix(body, []byte("\x89PNG")) {
		t.Fatalf("process: %d %.200s", code, body)
	}
	code, body = httpDo(t, "POST", base+"/v1/tasks", "application/json",
		strings.NewReader(`{"image_id":"`+imageID+`","ops":`+ops+`}`))
	if code != 202 {
		t.Fatalf("task: %d %s", code, body)
	}
	taskID := jsonField(t, body, "id")
	waitFor(t, "the worker to complete the task", 30*time.Second, func() bool {
		code, body := httpDo(t, "GET", base+"/v1/tasks/"+taskID, "", nil)
		st := jsonField(t, body, "status")
		if st == "failed" || st == "cancelled" {
			t.Fatalf("task ended %s: %s", st, body)
		}
		return code == 200 && st == "completed"
	})
	if code, _ := httpDo(t, "GET", base+"/v1/images/no-such-image", "", nil); code != 404 {
		t.Fatalf("unknown image: %d", code)
	}

	// promtool lints the exposition both processes serve.
	for _, mp := range []int{apiMetrics, workerMetrics} {
		_, metrics := httpDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/metrics", mp), "", nil)
		promtool(t, metrics, "check", "metrics")
	}

	// A real Prometheus, scraping and evaluating the alert rules every second.
	dir := t.TempDir()
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: imaged
    static_configs:
      - {targets: ["127.0.0.1:%d"], labels: {component: api}}
      - {targets: ["127.0.0.1:%d"], labels: {component: worker}}
`, apiMetrics, workerMetrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, nil, "check", "config", filepath.Join(dir, "prometheus.yml"))
	pport := freePort(t)
	started := time.Now()
	startProcess(t, "prometheus", exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", pport)))
	p := prometheus{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", pport)}
	waitFor(t, `Prometheus to scrape both processes (up{job="imaged"} == 1)`, 60*time.Second, func() bool {
		res, err := p.tryQuery(`up{job="imaged"} == 1`)
		return err == nil && len(res) == 2
	})
	t.Logf("both targets up %s after Prometheus started", time.Since(started).Round(100*time.Millisecond))
	// Rates need two scrapes after the traffic.
	waitFor(t, "two scrapes of the traffic", 30*time.Second, func() bool {
		res, err := p.tryQuery(`count_over_time(http_requests_total{endpoint="/v1/images",method="POST",status_code="201"}[1m]) >= 2`)
		return err == nil && len(res) == 1
	})
	// The label every other series carries besides job and instance: the scrape's own.
	extra := []string{"component"}

	// http_requests_total{method, endpoint, status_code, tenant}: the endpoint is the route
	// pattern; the tenant is the caller's (requests without a key have none).
	want := [][3]string{{"POST", "/v1/images", "201"}, {"POST", "/v1/process", "200"}, {"POST", "/v1/tasks", "202"},
		{"GET", "/v1/tasks/{id}", "200"}, {"GET", "/v1/images/{id}", "404"}, {"GET", "/health/ready", "200"}}
	reqs := p.query(`http_requests_total{job="imaged"}`)
	for _, w := range want {
		found := false
		for _, s := range reqs {
			if s.Metric["method"] == w[0] && s.Metric["endpoint"] == w[1] && s.Metric["status_code"] == w[2] && s.float() >= 1 {
				found = true
			}
		}
		if !found {
			t.Errorf("no http_requests_total{method=%q,endpoint=%q,status_code=%q}", w[0], w[1], w[2])
		}
	}
	for _, s := range reqs {
		labels := append(slices.Clone(extra), "method", "endpoint", "status_code")
		if _, ok := s.Metric["tenant"]; ok { // Prometheus drops the empty label of keyless requests
			labels = append(labels, "tenant")
		}
		checkLabels(t, s, labels...)
		if s.Metric["endpoint"] == "/v1/tasks/{id}" && s.Metric["tenant"] == "" {
			t.Errorf("a keyed request counted without its tenant: %v", s.Metric)
		}
		if strings.Contains(s.Metric["endpoint"], imageID) || strings.Contains(s.Metric["endpoint"], taskID) ||
			strings.Contains(s.Metric["endpoint"], "no-such-image") {
			t.Errorf("endpoint label holds a raw path: %v", s.Metric)
		}
	}

	// http_request_duration_seconds{method, endpoint}: a histogram with imaged's buckets.
	hist := p.query(`http_request_duration_seconds_bucket{job="imaged",method="POST",endpoint="/v1/process"}`)
	checkBuckets(t, "http_request_duration_seconds", hist,
		"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf")
	for _, s := range hist {
		checkLabels(t, s, append(extra, "method", "endpoint", "le")...)
	}

	// image_processing_duration_seconds{operation_type}: the seed's buckets; the API counts the
	// synchronous pipeline, the worker the task.
	for _, component := range []string{"api", "worker"} {
		proc := p.query(`image_processing_duration_seconds_bucket{job="imaged",component="` + component + `",operation_type="transform"}`)
		checkBuckets(t, "image_processing_duration_seconds of the "+component, proc,
			"0.1", "0.5", "1", "2", "5", "10", "30", "60", "120", "+Inf")
		for _, s := range proc {
			checkLabels(t, s, append(extra, "operation_type", "le")...)
		}
		// images_processed_total{operation_type, status}
		c := p.query(`images_processed_total{job="imaged",component="` + component + `",operation_type="transform",status="success"}`)
		if len(c) != 1 || c[0].float() != 1 {
			t.Errorf("images_processed_total{operation_type=transform,status=success} of the %s = %v, want 1", component, c)
		}
	}
	for _, s := range p.query(`images_processed_total{job="imaged"}`) {
		checkLabels(t, s, append(extra, "operation_type", "status")...)
	}

	// tasks_queued{task_type}: a gauge for every task type, from both processes.
	for _, component := range []string{"api", "worker"} {
		var types []string
		for _, s := range p.query(`tasks_queued{job="imaged",component="` + component + `"}`) {
			checkLabels(t, s, append(extra, "task_type")...)
			types = append(types, s.Metric["task_type"])
		}
		sort.Strings(types)
		if !slices.Equal(types, []string{"detect", "ocr", "transform"}) {
			t.Errorf("tasks_queued task types of the %s: %v, want detect, ocr, transform", component, types)
		}
	}

	// What the dashboard and alerts read besides.
	if len(p.query(`workers_busy{job="imaged"}`)) != 2 {
		t.Error("workers_busy is not reported by both processes")
	}
	for _, s := range p.query(`circuit_breaker_state{job="imaged"}`) {
		checkLabels(t, s, append(extra, "name")...)
		if v := s.float(); v != 0 {
			t.Errorf("breaker %s in state %v on a healthy imaged", s.Metric["name"], v)
		}
	}

	// Every dashboard query runs; the ones about the traffic above have data.
	nonEmpty := []string{"Request rate by endpoint", "Latency (all endpoints)", "Processing time per operation type (p50, p95)",
		"Images processed per second", "Tasks queued", "Workers busy", "Requests by status code"}
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			res, err := p.tryQuery(grafanaToPromQL(e))
			if err != nil {
				t.Errorf("panel %q: %v\n%s", title, err, e)
				continue
			}
			if slices.Contains(nonEmpty, title) && len(res) == 0 {
				t.Errorf("panel %q shows nothing after the traffic: %s", title, e)
			}
		}
	}

	// The adapter's query, as for the worker pods: one value per process, the queue's depth
	// shared between them.
	for _, r := range adapterRules(t) {
		q := renderAdapterQuery(r, "instance", map[string]string{"job": "imaged"})
		res := p.query(q)
		depth := p.query(`sum(max by (task_type) (tasks_queued{job="imaged"}))`)
		if len(res) != 2 || len(depth) != 1 || res[0].float() != depth[0].float()/2 {
			t.Errorf("adapter query %s answered %v, want the depth %v halved for each of 2 processes", q, res, depth)
		}
	}

	// The alert rules load and evaluate against real series without error; none fires.
	waitFor(t, "the alert rules to be evaluated", 20*time.Second, func() bool {
		resp, err := http.Get(p.base + "/api/v1/rules")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					Rules []struct {
						Name           string `json:"name"`
						Health         string `json:"health"`
						LastError      string `json:"lastError"`
						State          string `json:"state"`
						LastEvaluation string `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Groups) != 1 {
			return false
		}
		rules := r.Data.Groups[0].Rules
		if len(rules) < 5 {
			t.Fatalf("Prometheus loaded %d alert rules", len(rules))
		}
		for _, rule := range rules {
			if rule.Health == "unknown" || strings.HasPrefix(rule.LastEvaluation, "0001") {
				return false
			}
			if rule.Health != "ok" {
				t.Fatalf("rule %s: health %s: %s", rule.Name, rule.Health, rule.LastError)
			}
			if rule.State != "inactive" {
				t.Errorf("alert %s is %s on a healthy imaged", rule.Name, rule.State)
			}
		}
		return true
	})
}

// checkLabels asserts a series carries exactly the given labels besides __name__, job and
// instance.
func checkLabels(t *testing.T, s sample, labels ...string) {
	t.Helper()
	var got []string
	for k := range s.Metric {
		if k != "__name__" && k != "job" && k != "instance" {
			got = append(got, k)
		}
	}
	sort.Strings(got)
	want := slices.Clone(labels)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s has labels %v, want %v", s.Metric["__name__"], got, want)
	}
}

func checkBuckets(t *testing.T, name string, series []sample, want ...string) {
	t.Helper()
	var got []string
	for _, s := range series {
		got = append(got, s.Metric["le"])
	}
	num := func(s string) float64 {
		if s == "+Inf" {
			return 1e308
		}
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	sort.Slice(got, func(i, j int) bool { return num(got[i]) < num(got[j]) })
	if !slices.Equal(got, want) {
		t.Errorf("%s buckets %v, want %v", name, got, want)
	}
}
