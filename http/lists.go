package http

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/imaged/imaged"
)

// pageLimit reads a list's limit parameter: 20 when absent, 1 to 100 otherwise.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 20, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, imaged.FieldErrorf("limit", "limit must be an integer between 1 and 100")
	}
	return n, nil
}

// list is one page of a list route: its items, newest first, and the cursor of the next page.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// handleImageList lists the caller's tenant's images, paged as GET /v1/tasks.
func (s *Server) handleImageList() http.Handler {
	return s.listHandler(func(r *http.Request, cursor string, limit int) (any, error) {
		images, next, err := s.deps.Store.ListImages(r.Context(),
			imaged.ImageFilter{Tenant: tenantOf(r), Cursor: cursor, Limit: limit})
		return list[*imaged.Image]{Items: nonNil(images), NextCursor: next}, err
	})
}

// handleBatchList lists the caller's tenant's batches with their status and counts (their
// tasks are in GET /v1/batches/{id}), paged as GET /v1/tasks.
func (s *Server) handleBatchList() http.Handler {
	return s.listHandler(func(r *http.Request, cursor string, limit int) (any, error) {
		batches, next, err := s.deps.Store.ListBatches(r.Context(),
			imaged.BatchFilter{Tenant: tenantOf(r), Cursor: cursor, Limit: limit})
		return list[*imaged.Batch]{Items: nonNil(batches), NextCursor: next}, err
	})
}

// listHandler answers a list route with the page read, from the request's cursor and limit.
func (s *Server) listHandler(read func(r *http.Request, cursor string, limit int) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, err := pageLimit(q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		page, err := read(r, q.Get("cursor"), limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, page)
	})
}

// nonNil makes an empty page an empty JSON array rather than null.
func nonNil[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}
