package tracing

import (
	"context"
	"io"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/imaged/imaged"
)

// Store gives every call of a TaskStore a client span named "db <Method>", with the database
// system (sqlite, postgresql) as db.system.name. Tasks created under a traced context record
// its traceparent, so a worker claiming them from the database continues the trace.
func Store(next imaged.TaskStore, system string) imaged.TaskStore {
	return &store{next: next, system: attribute.String("db.system.name", system)}
}

type store struct {
	next   imaged.TaskStore
	system attribute.KeyValue
}

// Unwrap returns the decorated store.
func (s *store) Unwrap() imaged.TaskStore { return s.next }

func (s *store) start(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return startClient(ctx, "db "+op, append(attrs, s.system, attribute.String("db.operation.name", op))...)
}

// startClient starts the span of a call to another system.
func startClient(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

func taskAttr(id string) attribute.KeyValue { return attribute.String("imaged.task_id", id) }

func tenantAttr(tenant string) attribute.KeyValue { return attribute.String("imaged.tenant", tenant) }

func (s *store) CreateImage(ctx context.Context, img *imaged.Image) (err error) {
	ctx, span := s.start(ctx, "CreateImage", attribute.String("imaged.image_id", img.ID))
	defer func() { End(span, err) }()
	return s.next.CreateImage(ctx, img)
}

func (s *store) Image(ctx context.Context, tenant, id string) (_ *imaged.Image, err error) {
	ctx, span := s.start(ctx, "Image", attribute.String("imaged.image_id", id), tenantAttr(tenant))
	defer func() { End(span, err) }()
	return s.next.Image(ctx, tenant, id)
}

func (s *store) DeleteImage(ctx context.Context, tenant, id string) (err error) {
	ctx, span := s.start(ctx, "DeleteImage", attribute.String("imaged.image_id", id), tenantAttr(tenant))
	defer func() { End(span, err) }()
	return s.next.DeleteImage(ctx, tenant, id)
}

func (s *store) ListImages(ctx context.Context, f imaged.ImageFilter) (_ []*imaged.Image, _ string, err error) {
	ctx, span := s.start(ctx, "ListImages", tenantAttr(f.Tenant))
	defer func() { End(span, err) }()
	return s.next.ListImages(ctx, f)
}

func (s *store) CreateTasks(ctx context.Context, tasks []*imaged.Task, batch *imaged.Batch) (existed bool, err error) {
	if tp := TraceParent(ctx); tp != "" {
		for _, t := range tasks {
			if t.TraceParent == "" {
				t.TraceParent = tp
			}
		}
	}
	ctx, span := s.start(ctx, "CreateTasks", attribute.Int("imaged.tasks", len(tasks)))
	defer func() { End(span, err) }()
	return s.next.CreateTasks(ctx, tasks, batch)
}

func (s *store) Task(ctx context.Context, tenant, id string) (_ *imaged.Task, err error) {
	ctx, span := s.start(ctx, "Task", taskAttr(id), tenantAttr(tenant))
	defer func() { End(span, err) }()
	return s.next.Task(ctx, tenant, id)
}

func (s *store) ListTasks(ctx context.Context, f imaged.TaskFilter) (_ []*imaged.Task, _ string, err error) {
	ctx, span := s.start(ctx, "ListTasks", tenantAttr(f.Tenant))
	defer func() { End(span, err) }()
	return s.next.ListTasks(ctx, f)
}

func (s *store) CancelTask(ctx context.Context, tenant, id string) (_ *imaged.Task, err error) {
	ctx, span := s.start(ctx, "CancelTask", taskAttr(id), tenantAttr(tenant))
	defer func() { End(span, err) }()
	return s.next.CancelTask(ctx, tenant, id)
}

func (s *store) Batch(ctx context.Context, tenant, id string) (_ *imaged.Batch, _ []*imaged.Task, err error) {
	ctx, span := s.start(ctx, "Batch", attribute.String("imaged.batch_id", id), tenantAttr(tenant))
	defer func() { End(span, err) }()
	return s.next.Batch(ctx, tenant, id)
}

func (s *store) ListBatches(ctx context.Context, f imaged.BatchFilter) (_ []*imaged.Batch, _ string, err error) {
	ctx, span := s.start(ctx, "ListBatches", tenantAttr(f.Tenant))
	defer func() { End(span, err) }()
	return s.next.ListBatches(ctx, f)
}

func (s *store) ClaimTask(ctx context.Context, id string, types []string, workerID string, lease time.Duration) (_ *imaged.Task, err error) {
	ctx, span := s.start(ctx, "ClaimTask", taskAttr(id))
	defer func() { End(span, err) }()
	t, err := s.next.ClaimTask(ctx, id, types, workerID, lease)
	span.SetAttributes(attribute.Bool("imaged.claimed", t != nil))
	return t, err
}

func (s *store) CompleteTask(ctx context.Context, id string, attempt int, res *imaged.TaskResult) (_ *imaged.Task, err error) {
	ctx, span := s.start(ctx, "CompleteTask", taskAttr(id), attribute.Int("imaged.attempt", attempt))
	defer func() { End(span, err) }()
	return s.next.CompleteTask(ctx, id, attempt, res)
}

func (s *store) FailTask(ctx context.Context, id string, attempt int, f *imaged.TaskFailure) (_ *imaged.Task, err error) {
	ctx, span := s.start(ctx, "FailTask", taskAttr(id), attribute.Int("imaged.attempt", attempt))
	defer func() { End(span, err) }()
	return s.next.FailTask(ctx, id, attempt, f)
}

func (s *store) RetryTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (_ *imaged.Task, err error) {
	ctx, span := s.start(ctx, "RetryTask", taskAttr(id), attribute.Int("imaged.attempt", attempt))
	defer func() { End(span, err) }()
	return s.next.RetryTask(ctx, id, attempt, runAfter, f)
}

func (s *store) DeferTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (_ *imaged.Task, err error) {
	ctx, span := s.start(ctx, "DeferTask", taskAttr(id), attribute.Int("imaged.attempt", attempt))
	defer func() { End(span, err) }()
	return s.next.DeferTask(ctx, id, attempt, runAfter, f)
}

func (s *store) ExtendLease(ctx context.Context, id string, attempt int, until time.Time) (err error) {
	ctx, span := s.start(ctx, "ExtendLease", taskAttr(id), attribute.Int("imaged.attempt", attempt))
	defer func() { End(span, err) }()
	return s.next.ExtendLease(ctx, id, attempt, until)
}

func (s *store) RequeueExpired(ctx context.Context, now time.Time, all bool) (_ []string, err error) {
	ctx, span := s.start(ctx, "RequeueExpired")
	defer func() { End(span, err) }()
	return s.next.RequeueExpired(ctx, now, all)
}

func (s *store) CountQueued(ctx context.Context) (_ map[string]int, err error) {
	ctx, span := s.start(ctx, "CountQueued")
	defer func() { End(span, err) }()
	return s.next.CountQueued(ctx)
}

// Ping is not traced: health checks run every few seconds and would bury the real spans.
func (s *store) Ping(ctx context.Context) error { return s.next.Ping(ctx) }

func (s *store) Close() error { return s.next.Close() }

// Blobs gives every call of a BlobStore a client span named "blob <Method>" with the key and,
// for Put, the size. scheme (file, s3) names the store.
func Blobs(next imaged.BlobStore, scheme string) imaged.BlobStore {
	return &blobs{next: next, system: attribute.String("imaged.storage", scheme)}
}

type blobs struct {
	next   imaged.BlobStore
	system attribute.KeyValue
}

// Unwrap returns the decorated store.
func (b *blobs) Unwrap() imaged.BlobStore { return b.next }

func (b *blobs) start(ctx context.Context, op, key string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return startClient(ctx, "blob "+op, append(attrs, b.system, attribute.String("imaged.blob_key", key))...)
}

func (b *blobs) Put(ctx context.Context, key string, data []byte, contentType string) (err error) {
	ctx, span := b.start(ctx, "Put", key, attribute.Int("imaged.bytes", len(data)))
	defer func() { End(span, err) }()
	return b.next.Put(ctx, key, data, contentType)
}

// Get's span covers opening the object, not reading it: the caller reads at its own pace.
func (b *blobs) Get(ctx context.Context, key string) (_ io.ReadCloser, _ *imaged.BlobInfo, err error) {
	ctx, span := b.start(ctx, "Get", key)
	defer func() { End(span, err) }()
	return b.next.Get(ctx, key)
}

func (b *blobs) Head(ctx context.Context, key string) (_ *imaged.BlobInfo, err error) {
	ctx, span := b.start(ctx, "Head", key)
	defer func() { End(span, err) }()
	return b.next.Head(ctx, key)
}

func (b *blobs) Delete(ctx context.Context, key string) (err error) {
	ctx, span := b.start(ctx, "Delete", key)
	defer func() { End(span, err) }()
	return b.next.Delete(ctx, key)
}

func (b *blobs) URL(ctx context.Context, key string, expiry time.Duration) (_ string, err error) {
	ctx, span := b.start(ctx, "URL", key)
	defer func() { End(span, err) }()
	return b.next.URL(ctx, key, expiry)
}

func (b *blobs) List(ctx context.Context, prefix, after string, limit int) (_ []imaged.BlobInfo, err error) {
	ctx, span := b.start(ctx, "List", prefix)
	defer func() { End(span, err) }()
	return b.next.List(ctx, prefix, after, limit)
}

// Ping is not traced (see store.Ping).
func (b *blobs) Ping(ctx context.Context) error { return b.next.Ping(ctx) }

func (s *store) Tenant(ctx context.Context, id string) (_ *imaged.Tenant, err error) {
	ctx, span := s.start(ctx, "Tenant", tenantAttr(id))
	defer func() { End(span, err) }()
	return s.next.Tenant(ctx, id)
}

func (s *store) PutTenant(ctx context.Context, t *imaged.Tenant) (err error) {
	ctx, span := s.start(ctx, "PutTenant", tenantAttr(t.ID))
	defer func() { End(span, err) }()
	return s.next.PutTenant(ctx, t)
}

func (s *store) ListTenants(ctx context.Context) (_ []*imaged.Tenant, err error) {
	ctx, span := s.start(ctx, "ListTenants")
	defer func() { End(span, err) }()
	return s.next.ListTenants(ctx)
}

func (s *store) Usage(ctx context.Context, tenant string) (_ imaged.Usage, err error) {
	ctx, span := s.start(ctx, "Usage", tenantAttr(tenant))
	defer func() { End(span, err) }()
	return s.next.Usage(ctx, tenant)
}

func (s *store) CachedOutput(ctx context.Context, tenant, key string) (_ *imaged.CachedOutput, err error) {
	ctx, span := s.start(ctx, "CachedOutput", attribute.String("imaged.output_key", key), tenantAttr(tenant))
	defer func() { End(span, err) }()
	return s.next.CachedOutput(ctx, tenant, key)
}

func (s *store) PutCachedOutput(ctx context.Context, e *imaged.CachedOutput) (err error) {
	ctx, span := s.start(ctx, "PutCachedOutput", attribute.String("imaged.output_key", e.Key), tenantAttr(e.Tenant))
	defer func() { End(span, err) }()
	return s.next.PutCachedOutput(ctx, e)
}
