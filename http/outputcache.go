package http

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// The processed-output cache (README: "Processed-output cache") answers a synchronous pipeline
// over a stored image from the output the same content made through the same pipeline before.
// It serves POST /v1/process with an image_id or a source_url, and GET /i/…. What it keeps:
//
//   - Pipelines that answer with an image and run on libvips alone (task type transform).
//     Analysis pipelines answer JSON that names a stored result with an expiring URL, and
//     pipelines that run a model (annotate, gravity object:<class>) depend on model files that
//     can change under the same version: both always run.
//   - Outputs of stored images only: a file sent with the request is the caller's, nothing stored
//     names its content, and hashing every upload would cost each request what a hit saves.
//
// A request with Cache-Control: no-cache runs its pipeline and stores the output again;
// no-store runs it and stores nothing. Hits take no pipeline slot.

// outputRevision changes when an op gives other output for the same parameters, so that the
// keys of outputs (and the ETags, the signed URLs' among them) change with it, and caches,
// this one too, make the new output. 2: a bare flip mirrors top to bottom (it mirrored left to
// right).
const outputRevision = "2"

// cacheMode is what a request's Cache-Control lets the cache do.
type cacheMode int

const (
	cacheUse     cacheMode = iota // answer from the cache, store a miss
	cacheRefresh                  // no-cache: run the pipeline, store its output
	cacheSkip                     // no-store: run the pipeline, store nothing
)

func requestCacheMode(h http.Header) cacheMode {
	mode := cacheUse
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store":
				return cacheSkip
			case "no-cache":
				mode = cacheRefresh
			}
		}
	}
	return mode
}

// outputCache is one request's view of the cache: the key of its output (also its ETag) and
// whether the output may be cached.
type outputCache struct {
	s      *Server
	tenant string
	img    *imaged.Image
	key    string
	// cacheable: the answer is an image the cache may keep (and has a strong ETag); use: the
	// cache is on, too.
	cacheable, use bool
	mode           cacheMode
	entry          *imaged.CachedOutput // the entry served or stored
}

// outputOf is the cache's view of ops over the stored image img of tenant, as r asks for it.
func (s *Server) outputOf(r *http.Request, tenant string, img *imaged.Image, ops []imaged.Op) (*outputCache, error) {
	negotiated := ""
	if negotiates(ops) {
		negotiated = r.Header.Get("Accept")
	}
	content := img.SHA256
	if content == "" {
		content = "image:" + img.ID // a row without a hash: an ETag of its own, never cached
	}
	key, err := imaged.OutputCacheKey(tenant, content, ops, negotiated, s.outputEngine())
	if err != nil {
		return nil, err
	}
	c := &outputCache{s: s, tenant: tenant, img: img, key: key, mode: requestCacheMode(r.Header),
		cacheable: img.SHA256 != "" && !imaged.HasAnalysis(ops) && imaged.TaskTypeOf(ops) == imaged.TaskTypeTransform}
	c.use = c.cacheable && s.cfg.OutputCache
	return c, nil
}

// outputEngine is the engine part of every output's key: the processor's version and the
// output revision.
func (s *Server) outputEngine() string { return s.cfg.Engine + " output revision " + outputRevision }

// etag is the strong ETag of the output: the same for a hit and a fresh run, since the key
// names the content, the pipeline, what was negotiated and the engine's version.
func (c *outputCache) etag() string { return `"` + c.key[:32] + `"` }

// lookup returns the stored output, or nil when the pipeline must run. It sets X-Cache (hit,
// miss or bypass) and counts the outcome. A failing store or blob store is a miss: the cache
// never fails a request.
func (c *outputCache) lookup(ctx context.Context, h http.Header) []byte {
	if !c.use {
		return nil
	}
	if c.mode != cacheUse {
		c.count(h, "bypass")
		return nil
	}
	e, data, err := imaged.ReadCachedOutput(ctx, c.s.deps.Store, c.s.deps.Blobs, c.tenant, c.key)
	switch {
	case err == nil:
		c.entry = e
		c.count(h, "hit")
		return data
	case !imaged.IsCode(err, imaged.ENotFound):
		c.s.log.WarnContext(ctx, "reading the processed-output cache failed; running the pipeline", "key", c.key, "error", err.Error())
		c.s.deps.Metrics.OutputCache.WithLabelValues("error").Inc()
	}
	c.count(h, "miss")
	return nil
}

func (c *outputCache) count(h http.Header, result string) {
	h.Set("X-Cache", result)
	c.s.deps.Metrics.OutputCache.WithLabelValues(result).Inc()
}

// store keeps a fresh output unless the request said no-store. A failure is logged and
// counted; the answer goes out all the same.
func (c *outputCache) store(ctx context.Context, res *imaged.Result) {
	if !c.use || c.mode == cacheSkip || !res.Changed || len(res.Analyses) > 0 {
		return
	}
	e, err := imaged.SaveCachedOutput(context.WithoutCancel(ctx), c.s.deps.Store, c.s.deps.Blobs, c.tenant, c.key, c.img.SHA256, res)
	if err != nil {
		c.s.log.WarnContext(ctx, "storing a processed output failed", "key", c.key, "error", err.Error())
		c.s.deps.Metrics.OutputCache.WithLabelValues("error").Inc()
		return
	}
	c.entry = e
}

// cacheControl is the Cache-Control of an answer the cache holds: private (the key's tenant's),
// fresh for as long as the stored output is kept. "" when it holds none.
func (c *outputCache) cacheControl() string {
	if c.entry == nil {
		return ""
	}
	age := 365 * 24 * time.Hour // kept forever: the longest a cache is told
	if r := c.s.cfg.OutputRetention; r > 0 {
		age = max(0, min(r-time.Since(c.entry.CreatedAt), r))
	}
	return "private, max-age=" + strconv.Itoa(int(age.Seconds()))
}
