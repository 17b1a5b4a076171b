package http

import (
	"strings"
	"testing"
)

// A known path with a method it does not take is a 405 naming the methods it does (Allow),
// with the JSON error body; an unknown path stays a 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	id := st.uploadImage()
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/tasks", "GET, HEAD, POST"},
		{"PUT", "/v1/images", "GET, HEAD, POST"},
		{"POST", "/v1/images/" + id, "GET, HEAD, DELETE"},
		{"GET", "/v1/process", "POST"},
		{"PATCH", "/v1/tenants/default", "GET, HEAD, PUT"},
	} {
		r := st.do(tc.method, tc.path, nil, map[string]string{"X-API-Key": st.key})
		if r.status != 405 || r.header.Get("Allow") != tc.allow || r.errorCode() != "method_not_allowed" {
			t.Errorf("%s %s: %d, Allow %q, code %q; want 405, Allow %q, method_not_allowed",
				tc.method, tc.path, r.status, r.header.Get("Allow"), r.errorCode(), tc.allow)
		}
		if !strings.Contains(string(r.body), tc.method) {
			t.Errorf("%s %s: the message does not name the method: %s", tc.method, tc.path, r.body)
		}
	}
	if r := st.do("GET", "/v1/nothing-here", nil, map[string]string{"X-API-Key": st.key}); r.status != 404 || r.header.Get("Allow") != "" {
		t.Errorf("an unknown path: %d, Allow %q; want 404 and no Allow", r.status, r.header.Get("Allow"))
	}
}
