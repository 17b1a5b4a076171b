package http

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes holds the whole API on one screen. Every route needs an API key except those
// routeAccess (auth.go) lists. Every route that takes an id reads it within the caller's tenant
// (tenantOf), so another tenant's id is not found; the tenancy test holds a row for each route
// here and fails on one without.
func (s *Server) routes(mux *http.ServeMux) {
	mux.Handle("POST /v1/images", s.handleImageUpload())
	mux.Handle("GET /v1/images", s.handleImageList())
	mux.Handle("GET /v1/images/{id}", s.handleImageGet())
	mux.Handle("GET /v1/images/{id}/content", s.handleImageContent())
	mux.Handle("DELETE /v1/images/{id}", s.handleImageDelete())

	mux.Handle("POST /v1/process", s.handleProcess())
	mux.Handle("POST /v1/ocr", s.handleAnalysis("ocr"))
	mux.Handle("POST /v1/detect", s.handleAnalysis("detect"))

	mux.Handle("POST /v1/tasks", s.handleTaskCreate())
	mux.Handle("GET /v1/tasks", s.handleTaskList())
	mux.Handle("GET /v1/tasks/{id}", s.handleTaskGet())
	mux.Handle("DELETE /v1/tasks/{id}", s.handleTaskCancel())
	mux.Handle("GET /v1/tasks/{id}/result", s.handleTaskResult())
	mux.Handle("GET /v1/tasks/{id}/events", s.handleTaskEvents())
	mux.Handle("GET /v1/tasks/{id}/deliveries", s.handleTaskDeliveries())
	mux.Handle("POST /v1/deliveries/{id}/redeliver", s.handleRedeliver())

	mux.Handle("POST /v1/batches", s.handleBatchCreate())
	mux.Handle("GET /v1/batches", s.handleBatchList())
	mux.Handle("GET /v1/batches/{id}", s.handleBatchGet())
	mux.Handle("DELETE /v1/batches/{id}", s.handleBatchCancel())
	mux.Handle("GET /v1/batches/{id}/events", s.handleBatchEvents())

	// Admin routes: keys and tenants are the service's, so an admin key acts across tenants.
	mux.Handle("POST /v1/keys", s.handleKeyCreate())
	mux.Handle("GET /v1/keys", s.handleKeyList())
	mux.Handle("DELETE /v1/keys/{id}", s.handleKeyRevoke())
	mux.Handle("GET /v1/tenants", s.handleTenantList())
	mux.Handle("GET /v1/tenants/{id}", s.handleTenantGet())
	mux.Handle("PUT /v1/tenants/{id}", s.handleTenantPut())

	mux.Handle("GET /v1/ops", s.handleOps())

	mux.Handle("GET /v1/blobs/{key...}", s.handleSignedBlob())
	mux.Handle("GET /i/{signature}/{path...}", s.handleSignedImage())

	mux.Handle("GET /health", s.handleHealth())
	mux.Handle("GET /health/live", s.handleLive())
	mux.Handle("GET /health/ready", s.handleReady())
	if !s.cfg.MetricsApart {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.deps.Metrics.Registry, promhttp.HandlerOpts{}))
	}

	// The contract: every route here, each op's schema (openapi.go).
	mux.Handle("GET /openapi.json", s.handleOpenAPI())

	mux.Handle("/", s.handleNotFound(mux))
}
