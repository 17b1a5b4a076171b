package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// tenantTests are the contract's rules on tenants: another tenant's id is absent through every
// method, lists and usage are per tenant, and an empty tenant is refused.
var tenantTests = []struct {
	name string
	fn   func(t *testing.T, s imaged.TaskStore)
}{
	{"TenantIsolation", testTenantIsolation},
	{"TenantEmptyRefused", testTenantEmptyRefused},
	{"TenantLists", testTenantLists},
	{"TenantIdempotencyKeys", testTenantIdempotencyKeys},
	{"TenantUsage", testTenantUsage},
	{"Tenants", testTenants},
}

// owned is one tenant's image, single task and batch (of two tasks).
type owned struct {
	tenant string
	img    *imaged.Image
	task   *imaged.Task
	batch  *imaged.Batch
	items  []*imaged.Task
}

func createOwned(t *testing.T, s imaged.TaskStore, tenant string, at time.Time) *owned {
	t.Helper()
	o := &owned{tenant: tenant}
	o.img = &imaged.Image{ID: uniq("img-" + tenant), Tenant: tenant, Key: "images/" + uniq("k") + ".png",
		Format: "png", ContentType: "image/png", Width: 1, Height: 1, Bytes: 100, CreatedAt: at}
	if err := s.CreateImage(t.Context(), o.img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	o.task = newTask(t, o.img.ID, opsTransform)
	o.task.Tenant, o.task.CreatedAt = tenant, at
	if _, err := s.CreateTasks(t.Context(), []*imaged.Task{o.task}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	o.batch = &imaged.Batch{Tenant: tenant, CreatedAt: at}
	o.items = []*imaged.Task{newTask(t, o.img.ID, opsTransform), newTask(t, o.img.ID, opsTransform)}
	for _, task := range o.items {
		task.CreatedAt = at
	}
	if _, err := s.CreateTasks(t.Context(), o.items, o.batch); err != nil {
		t.Fatalf("CreateTasks(batch): %v", err)
	}
	for _, task := range append([]*imaged.Task{o.task}, o.items...) {
		if task.Tenant != tenant {
			t.Fatalf("task %s has tenant %q, want %q", task.ID, task.Tenant, tenant)
		}
	}
	return o
}

func testTenantIsolation(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	at := time.Now().UTC().Truncate(time.Microsecond)
	a := createOwned(t, s, "tenant-a", at)
	b := createOwned(t, s, "tenant-b", at)

	// B reaches none of A's rows, through any method that takes a tenant.
	_, err := s.Image(ctx, b.tenant, a.img.ID)
	wantCode(t, err, imaged.ENotFound, "Image of another tenant")
	err = s.DeleteImage(ctx, b.tenant, a.img.ID)
	wantCode(t, err, imaged.ENotFound, "DeleteImage of another tenant")
	_, err = s.Task(ctx, b.tenant, a.task.ID)
	wantCode(t, err, imaged.ENotFound, "Task of another tenant")
	_, err = s.CancelTask(ctx, b.tenant, a.task.ID)
	wantCode(t, err, imaged.ENotFound, "CancelTask of another tenant")
	_, _, err = s.Batch(ctx, b.tenant, a.batch.ID)
	wantCode(t, err, imaged.ENotFound, "Batch of another tenant")
	tasks, _, err := s.ListTasks(ctx, imaged.TaskFilter{Tenant: b.tenant, BatchID: a.batch.ID})
	if err != nil || len(tasks) != 0 {
		t.Fatalf("ListTasks(B, A's batch) = %d tasks, %v; want none", len(tasks), err)
	}

	// Nothing changed: A still has its image, its queued task and its batch.
	img, err := s.Image(ctx, a.tenant, a.img.ID)
	if err != nil || img.Tenant != a.tenant {
		t.Fatalf("Image(A) after B's attempts = %+v, %v", img, err)
	}
	if got, err := s.Task(ctx, a.tenant, a.task.ID); err != nil || got.Status != imaged.StatusQueued || got.Tenant != a.tenant {
		t.Fatalf("Task(A) after B's attempts = %+v, %v; want queued", got, err)
	}
	bat, items, err := s.Batch(ctx, a.tenant, a.batch.ID)
	if err != nil || bat.Tenant != a.tenant || len(items) != 2 {
		t.Fatalf("Batch(A) = %+v, %d tasks, %v", bat, len(items), err)
	}

	// System callers reach every tenant's rows.
	if got, err := s.Task(ctx, imaged.AnyTenant, b.task.ID); err != nil || got.Tenant != b.tenant {
		t.Fatalf("Task(AnyTenant, B's) = %+v, %v", got, err)
	}
	if _, _, err := s.Batch(ctx, imaged.AnyTenant, a.batch.ID); err != nil {
		t.Fatalf("Batch(AnyTenant): %v", err)
	}
	if got, err := s.Image(ctx, imaged.AnyTenant, b.img.ID); err != nil || got.Tenant != b.tenant {
		t.Fatalf("Image(AnyTenant, B's) = %+v, %v", got, err)
	}

	// The owner's operations work.
	if got, err := s.CancelTask(ctx, a.tenant, a.task.ID); err != nil || got.Status != imaged.StatusCancelled {
		t.Fatalf("CancelTask(A) = %+v, %v", got, err)
	}
	// Rows the owner has read, or that reached a final state, stay invisible to B (a store
	// that caches them keys them by tenant).
	for range 2 {
		if _, err := s.Task(ctx, a.tenant, a.task.ID); err != nil {
			t.Fatalf("Task(A): %v", err)
		}
		_, err = s.Task(ctx, b.tenant, a.task.ID)
		wantCode(t, err, imaged.ENotFound, "Task of another tenant, once final")
		if _, err := s.Image(ctx, a.tenant, a.img.ID); err != nil {
			t.Fatalf("Image(A): %v", err)
		}
		_, err = s.Image(ctx, b.tenant, a.img.ID)
		wantCode(t, err, imaged.ENotFound, "Image of another tenant, once read by its owner")
	}
	if err := s.DeleteImage(ctx, a.tenant, a.img.ID); err != nil {
		t.Fatalf("DeleteImage(A): %v", err)
	}
	if _, err := s.Image(ctx, b.tenant, b.img.ID); err != nil {
		t.Fatalf("B's image after A deleted its own: %v", err)
	}
}

func testTenantEmptyRefused(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	o := createOwned(t, s, imaged.DefaultTenant, time.Now())
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || imaged.IsCode(err, imaged.ENotFound) {
			t.Fatalf("%s with no tenant = %v; want it refused", what, err)
		}
	}
	_, err := s.Image(ctx, "", o.img.ID)
	refused("Image", err)
	refused("DeleteImage", s.DeleteImage(ctx, "", o.img.ID))
	_, err = s.Task(ctx, "", o.task.ID)
	refused("Task", err)
	_, err = s.CancelTask(ctx, "", o.task.ID)
	refused("CancelTask", err)
	_, _, err = s.Batch(ctx, "", o.batch.ID)
	refused("Batch", err)
	_, _, err = s.ListTasks(ctx, imaged.TaskFilter{})
	refused("ListTasks", err)
	_, _, err = s.ListImages(ctx, imaged.ImageFilter{})
	refused("ListImages", err)
	_, _, err = s.ListBatches(ctx, imaged.BatchFilter{})
	refused("ListBatches", err)
	if got, err := s.Task(ctx, o.tenant, o.task.ID); err != nil || got.Status != imaged.StatusQueued {
		t.Fatalf("task after refused calls = %+v, %v; want queued", got, err)
	}
	if _, err := s.Image(ctx, o.tenant, o.img.ID); err != nil {
		t.Fatalf("image after refused calls: %v", err)
	}
}

// pageAll follows a list's cursors to the end with pages of two, failing on a page over the
// limit or an item seen twice, and returns the ids in order.
func pageAll[T any](t *testing.T, list func(cursor string) ([]T, string, error), id func(T) string) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; pages < 100; pages++ {
		page, next, err := list(cursor)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d over the limit 2", len(page))
		}
		for _, it := range page {
			if seen[id(it)] {
				t.Fatalf("%s listed twice", id(it))
			}
			seen[id(it)] = true
			out = append(out, id(it))
		}
		if next == "" {
			return out
		}
		cursor = next
	}
	t.Fatal("pagination does not end")
	return nil
}

func testTenantLists(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	// Three of each per tenant, interleaved in time, so a page that ignored the tenant would
	// show the other's rows between its own.
	var mine = map[string][]*owned{}
	for i := range 3 {
		for j, tenant := range []string{"tenant-a", "tenant-b"} {
			at := base.Add(time.Duration(2*i+j) * time.Second)
			mine[tenant] = append(mine[tenant], createOwned(t, s, tenant, at))
		}
	}
	for tenant, os := range mine {
		var wantImages, wantBatches, wantTasks []string // newest first
		for i := len(os) - 1; i >= 0; i-- {
			wantImages = append(wantImages, os[i].img.ID)
			wantBatches = append(wantBatches, os[i].batch.ID)
			// Tasks of one creation time tie; the store breaks ties by id, descending.
			same := []string{os[i].task.ID, os[i].items[0].ID, os[i].items[1].ID}
			slices.Sort(same)
			slices.Reverse(same)
			wantTasks = append(wantTasks, same...)
		}
		images := pageAll(t, func(c string) ([]*imaged.Image, string, error) {
			return s.ListImages(ctx, imaged.ImageFilter{Tenant: tenant, Limit: 2, Cursor: c})
		}, func(img *imaged.Image) string { return img.ID })
		if !slices.Equal(images, wantImages) {
			t.Errorf("ListImages(%s) = %v, want %v", tenant, images, wantImages)
		}
		batches := pageAll(t, func(c string) ([]*imaged.Batch, string, error) {
			bs, next, err := s.ListBatches(ctx, imaged.BatchFilter{Tenant: tenant, Limit: 2, Cursor: c})
			for _, b := range bs {
				if b.Tenant != tenant || b.Total != 2 || b.Counts[imaged.StatusQueued] != 2 || b.Status != imaged.StatusQueued {
					t.Errorf("listed batch %+v; want %s's, queued with 2 tasks", b, tenant)
				}
			}
			return bs, next, err
		}, func(b *imaged.Batch) string { return b.ID })
		if !slices.Equal(batches, wantBatches) {
			t.Errorf("ListBatches(%s) = %v, want %v", tenant, batches, wantBatches)
		}
		tasks := pageAll(t, func(c string) ([]*imaged.Task, string, error) {
			return s.ListTasks(ctx, imaged.TaskFilter{Tenant: tenant, Limit: 2, Cursor: c})
		}, func(task *imaged.Task) string { return task.ID })
		if !slices.Equal(tasks, wantTasks) {
			t.Errorf("ListTasks(%s) = %v, want %v", tenant, tasks, wantTasks)
		}
	}
	all, _, err := s.ListImages(ctx, imaged.ImageFilter{Tenant: imaged.AnyTenant, Limit: 100})
	if err != nil || len(all) != 6 {
		t.Fatalf("ListImages(AnyTenant) = %d images, %v; want 6", len(all), err)
	}
	_, _, err = s.ListImages(ctx, imaged.ImageFilter{Tenant: "tenant-a", Cursor: "not-a-cursor"})
	wantCode(t, err, imaged.EInvalid, "ListImages with a bad cursor")
	_, _, err = s.ListBatches(ctx, imaged.BatchFilter{Tenant: "tenant-a", Cursor: "not-a-cursor"})
	wantCode(t, err, imaged.EInvalid, "ListBatches with a bad cursor")
}

func testTenantIdempotencyKeys(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	key := uniq("idem")
	first := newTask(t, img.ID, opsTransform)
	first.Tenant, first.IdempotencyKey = "tenant-a", key
	if _, err := s.CreateTasks(ctx, []*imaged.Task{first}, nil); err != nil {
		t.Fatalf("CreateTasks(A): %v", err)
	}
	// The same key in another tenant is another task: B never gets A's task back.
	second := newTask(t, img.ID, opsTransform)
	second.Tenant, second.IdempotencyKey = "tenant-b", key
	existed, err := s.CreateTasks(ctx, []*imaged.Task{second}, nil)
	if err != nil || existed || second.ID == first.ID || second.Tenant != "tenant-b" {
		t.Fatalf("CreateTasks(B, A's key) = %+v, existed %v, %v; want a new task of B", second, existed, err)
	}
	bkey := uniq("idem-batch")
	ba := &imaged.Batch{Tenant: "tenant-a", IdempotencyKey: bkey}
	if _, err := s.CreateTasks(ctx, []*imaged.Task{newTask(t, img.ID, opsTransform)}, ba); err != nil {
		t.Fatalf("CreateTasks(batch A): %v", err)
	}
	bb := &imaged.Batch{Tenant: "tenant-b", IdempotencyKey: bkey}
	existed, err = s.CreateTasks(ctx, []*imaged.Task{newTask(t, img.ID, opsTransform)}, bb)
	if err != nil || existed || bb.ID == ba.ID {
		t.Fatalf("CreateTasks(batch B, A's key) = existed %v, %v; want a new batch", existed, err)
	}
	// Within a tenant the key still replays.
	again := newTask(t, img.ID, opsTransform)
	again.Tenant, again.IdempotencyKey = "tenant-a", key
	existed, err = s.CreateTasks(ctx, []*imaged.Task{again}, nil)
	if err != nil || !existed || again.ID != first.ID {
		t.Fatalf("replay within A = %+v, existed %v, %v", again, existed, err)
	}
}

func testTenantUsage(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	ts := s
	for _, n := range []int64{100, 250} {
		img := &imaged.Image{Tenant: "tenant-a", Key: uniq("k"), Format: "png", ContentType: "image/png", Bytes: n}
		if err := s.CreateImage(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	other := &imaged.Image{Tenant: "tenant-b", Key: uniq("k"), Format: "png", ContentType: "image/png", Bytes: 7}
	if err := s.CreateImage(ctx, other); err != nil {
		t.Fatal(err)
	}
	want := map[string]imaged.Usage{"tenant-a": {Bytes: 350, Images: 2}, "tenant-b": {Bytes: 7, Images: 1}, "tenant-c": {}}
	for tenant, w := range want {
		if u, err := ts.Usage(ctx, tenant); err != nil || u != w {
			t.Errorf("Usage(%s) = %+v, %v; want %+v", tenant, u, err, w)
		}
	}
	if err := s.DeleteImage(ctx, "tenant-b", other.ID); err != nil {
		t.Fatal(err)
	}
	if u, err := ts.Usage(ctx, "tenant-b"); err != nil || u != (imaged.Usage{}) {
		t.Errorf("Usage after delete = %+v, %v; want zero", u, err)
	}
	if _, err := ts.Usage(ctx, ""); err == nil {
		t.Error("Usage with no tenant: no error")
	}
}

func testTenants(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	ts := s
	def, err := ts.Tenant(ctx, imaged.DefaultTenant)
	if err != nil || def.QuotaBytes != 0 || def.RateLimit != 0 {
		t.Fatalf("Tenant(default) = %+v, %v; want it present and unlimited", def, err)
	}
	_, err = ts.Tenant(ctx, "no-such-tenant")
	wantCode(t, err, imaged.ENotFound, "Tenant(unknown)")
	put := &imaged.Tenant{ID: "tenant-a", QuotaBytes: 1 << 30, QuotaImages: 100, RateLimit: 60, Burst: 10, Concurrency: 4}
	if err := ts.PutTenant(ctx, put); err != nil {
		t.Fatalf("PutTenant: %v", err)
	}
	if put.CreatedAt.IsZero() || put.UpdatedAt.IsZero() {
		t.Fatalf("PutTenant left its times zero: %+v", put)
	}
	got, err := ts.Tenant(ctx, "tenant-a")
	if err != nil || got.QuotaBytes != 1<<30 || got.QuotaImages != 100 || got.RateLimit != 60 || got.Burst != 10 || got.Concurrency != 4 {
		t.Fatalf("Tenant(tenant-a) = %+v, %v", got, err)
	}
	// Putting again sets the limits, 0 back to unlimited.
	if err := ts.PutTenant(ctx, &imaged.Tenant{ID: "tenant-a", QuotaImages: 5}); err != nil {
		t.Fatal(err)
	}
	got, err = ts.Tenant(ctx, "tenant-a")
	if err != nil || got.QuotaBytes != 0 || got.QuotaImages != 5 || got.RateLimit != 0 {
		t.Fatalf("Tenant after update = %+v, %v", got, err)
	}
	list, err := ts.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range list {
		ids = append(ids, tn.ID)
	}
	if !slices.Equal(ids, []string{imaged.DefaultTenant, "tenant-a"}) {
		t.Fatalf("ListTenants = %v", ids)
	}
	if err := ts.PutTenant(ctx, &imaged.Tenant{ID: imaged.AnyTenant}); err == nil {
		t.Fatal("PutTenant(AnyTenant): no error")
	}
}

// LegacyStore is a store with its keys, as migration tests read it.
type LegacyStore interface {
	imaged.TaskStore
	imaged.APIKeyStore
}

// CheckLegacyRows checks that the rows a store's migration test wrote before tenants existed
// (image img-old of 10 bytes, batch batch-old holding task task-old, the key of prefix
// oldprefix) belong to the default tenant once migrated, and that the default tenant exists.
func CheckLegacyRows(t *testing.T, s LegacyStore) {
	t.Helper()
	ctx := t.Context()
	if img, err := s.Image(ctx, imaged.DefaultTenant, "img-old"); err != nil || img.Tenant != imaged.DefaultTenant {
		t.Fatalf("old image = %+v, %v", img, err)
	}
	if task, err := s.Task(ctx, imaged.DefaultTenant, "task-old"); err != nil || task.Tenant != imaged.DefaultTenant {
		t.Fatalf("old task = %+v, %v", task, err)
	}
	if b, _, err := s.Batch(ctx, imaged.DefaultTenant, "batch-old"); err != nil || b.Tenant != imaged.DefaultTenant {
		t.Fatalf("old batch = %+v, %v", b, err)
	}
	if k, err := s.APIKeyByPrefix(ctx, "oldprefix"); err != nil || k.Tenant != imaged.DefaultTenant {
		t.Fatalf("old key = %+v, %v", k, err)
	}
	if _, err := s.Tenant(ctx, imaged.DefaultTenant); err != nil {
		t.Fatalf("the default tenant: %v", err)
	}
	if u, err := s.Usage(ctx, imaged.DefaultTenant); err != nil || u != (imaged.Usage{Bytes: 10, Images: 1}) {
		t.Fatalf("usage of the default tenant = %+v, %v", u, err)
	}
}
