// Package prom declares imaged's Prometheus metrics in one place. The names are the seed's, with
// the queue-depth gauge named tasks_queued (a gauge must not end in _total).
package prom

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// ProcessingBuckets are the seed's buckets for image processing durations, in seconds.
var ProcessingBuckets = []float64{0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0}

// RequestBuckets cover fast HTTP answers (health, metadata) as well as slow pipelines.
var RequestBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Metrics holds every collector imaged exports.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests        *prometheus.CounterVec   // method, endpoint, status_code, tenant
	HTTPDuration        *prometheus.HistogramVec // method, endpoint
	ProcessingDuration  *prometheus.HistogramVec // operation_type
	ImagesProcessed     *prometheus.CounterVec   // operation_type, status
	TasksQueued         *prometheus.GaugeVec     // task_type
	TasksFinished       *prometheus.CounterVec   // task_type, status, tenant
	TaskRetries         *prometheus.CounterVec   // task_type, tenant
	OutageDeferrals     *prometheus.CounterVec   // task_type
	WorkersBusy         prometheus.Gauge
	ImagesUploaded      prometheus.Counter
	InflightSyncRequest prometheus.Gauge
	OutputCache         *prometheus.CounterVec // result: hit, miss, bypass, error

	RetentionRowsDeleted    *prometheus.CounterVec // kind: task, batch, image, cached_output
	RetentionResultsExpired *prometheus.CounterVec // reason: age, image_deleted
	RetentionBlobsDeleted   *prometheus.CounterVec // kind: image, result, cache, orphan
	RetentionErrors         prometheus.Counter

	// The outbox (outbox.go).
	OutboxAttempts      *prometheus.CounterVec // kind, outcome
	OutboxOldestPending *prometheus.GaugeVec   // kind
	dropped             droppedEvents

	tenants *tenantLabels
}

// New creates the collectors on a fresh registry, with the Go and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests by method, route pattern, status code and tenant.",
		}, []string{"method", "endpoint", "status_code", "tenant"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request duration by method and route pattern.",
			Buckets: RequestBuckets,
		}, []string{"method", "endpoint"}),
		ProcessingDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "image_processing_duration_seconds", Help: "Pipeline run time by operation type (task type).",
			Buckets: ProcessingBuckets,
		}, []string{"operation_type"}),
		ImagesProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "images_processed_total", Help: "Pipelines run, by operation type and outcome.",
		}, []string{"operation_type", "status"}),
		TasksQueued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tasks_queued", Help: "Tasks waiting in the queue, by task type.",
		}, []string{"task_type"}),
		TasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tasks_finished_total", Help: "Tasks that reached a terminal state, by task type, status and tenant.",
		}, []string{"task_type", "status", "tenant"}),
		TaskRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "task_retries_total", Help: "Task attempts that failed transiently and were queued again, by task type and tenant.",
		}, []string{"task_type", "tenant"}),
		OutageDeferrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "task_outage_deferrals_total",
			Help: "Task attempts cut short by an unavailable dependency (database, storage, broker) and queued again without spending an attempt, by task type.",
		}, []string{"task_type"}),
		WorkersBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workers_busy", Help: "Worker slots running a task now.",
		}),
		ImagesUploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "images_uploaded_total", Help: "Images accepted by POST /v1/images.",
		}),
		InflightSyncRequest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sync_pipelines_in_flight", Help: "Synchronous pipelines running now.",
		}),
		OutputCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "processed_output_cache_requests_total",
			Help: "Synchronous pipelines the processed-output cache could answer, by result: hit (answered from storage), miss (run, then stored), bypass (Cache-Control no-cache or no-store), error (the cache failed; the pipeline ran).",
		}, []string{"result"}),
		RetentionRowsDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retention_rows_deleted_total", Help: "Rows the retention sweep deleted, by kind (task, batch, image, cached_output).",
		}, []string{"kind"}),
		RetentionResultsExpired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retention_results_expired_total", Help: "Task results whose image the retention sweep expired, by reason (age; image_deleted counts only images the sweep deleted).",
		}, []string{"reason"}),
		RetentionBlobsDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retention_blobs_deleted_total", Help: "Blobs the retention sweep deleted, by kind (image, result, cache, orphan).",
		}, []string{"kind"}),
		RetentionErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "retention_errors_total", Help: "Retention sweep steps that failed (they are tried again at the next sweep).",
		}),
		tenants: &tenantLabels{max: DefaultMaxTenants, seen: map[string]bool{}},
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.ProcessingDuration, m.ImagesProcessed,
		m.TasksQueued, m.TasksFinished, m.TaskRetries, m.OutageDeferrals, m.WorkersBusy, m.ImagesUploaded, m.InflightSyncRequest,
		m.OutputCache, m.RetentionRowsDeleted, m.RetentionResultsExpired, m.RetentionBlobsDeleted, m.RetentionErrors)
	m.registerOutbox()
	return m
}

// DefaultMaxTenants is how many tenants get a label value of their own unless
// SetMaxTenants says otherwise.
const DefaultMaxTenants = 50

// OtherTenant is the label value of every tenant past the first MaxTenants seen.
const OtherTenant = "other"

// tenantLabels bounds the tenant label: each distinct value is a time series of its own, so a
// service with thousands of tenants would swamp Prometheus. The first tenants seen keep their
// own value; the rest share OtherTenant.
type tenantLabels struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

// SetMaxTenants sets how many distinct tenant label values are kept (n <= 0: the default).
func (m *Metrics) SetMaxTenants(n int) {
	if n <= 0 {
		n = DefaultMaxTenants
	}
	m.tenants.mu.Lock()
	m.tenants.max = n
	m.tenants.mu.Unlock()
}

// Tenant returns the label value to count tenant under: its id, or OtherTenant once the
// limit of distinct values is reached ("" when the work has no tenant, e.g. unmatched routes).
func (m *Metrics) Tenant(tenant string) string {
	if tenant == "" {
		return ""
	}
	t := m.tenants
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[tenant] {
		return tenant
	}
	if len(t.seen) >= t.max {
		return OtherTenant
	}
	t.seen[tenant] = true
	return tenant
}
