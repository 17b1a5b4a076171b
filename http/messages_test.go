package http

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/imaged/imaged/outbound"
)

// errorMessage is the message of an error body.
func (r resp) errorMessage() string {
	var b errorBody
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Message
}

// Errors speak JSON, never Go: a body field of the wrong type is named with the type it must
// have.
func TestJSONErrorsNameNoGoTypes(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	for _, tc := range []struct{ body, want string }{
		{`{"image_id":5,"ops":[{"op":"resize"}]}`, "image_id must be a string, not a number"},
		{`{"image_id":"x","ops":[{"op":"resize"}],"max_attempts":"three"}`, "max_attempts must be an integer, not a string"},
		{`{"image_id":"x","ops":[{"op":"resize"}],"max_attempts":1.5}`, "max_attempts must be an integer, not 1.5"},
		{`{"image_id":"x","ops":{"op":"resize"}}`, "must be a JSON list of operations"},
		{`{"image_id":"x","ops":[{"op":"resize"}],"colour":1}`, `no field "colour"`},
		{`{"image_id":"x",`, "is not valid JSON"},
		{`["image_id"]`, "must be an object, not a list"},
	} {
		r := st.withKey("POST", "/v1/tasks", []byte(tc.body), map[string]string{"Content-Type": "application/json"})
		msg := r.errorMessage()
		if r.status != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want 400 with %q", tc.body, r.status, msg, tc.want)
		}
		for _, leak := range []string{"Go ", "unmarshal", "struct", "json:", "int64", "float64", "http."} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: %q names %q", tc.body, msg, leak)
			}
		}
	}
}

// An id echoed in an error is cut at 64 characters.
func TestLongIDsAreCutInErrors(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	long := strings.Repeat("a", 5000)
	for _, path := range []string{"/v1/images/" + long, "/v1/tasks/" + long, "/v1/batches/" + long, "/v1/nothing/" + long} {
		r := st.withKey("GET", path, nil, nil)
		msg := r.errorMessage()
		if r.status != 404 || strings.Contains(msg, strings.Repeat("a", 65)) || !strings.Contains(msg, "a…") || len(msg) > 200 {
			t.Errorf("GET %s…: %d %q", path[:20], r.status, msg)
		}
	}
}

// callback_url meets the outbound policy's static checks when the task is submitted.
func TestCallbackURLCheckedAtSubmit(t *testing.T) {
	st := newStack(t, Config{}, Deps{URLs: outbound.New(outbound.Config{})}, false)
	id := st.uploadImage()
	for url, want := range map[string]string{
		"http://127.0.0.1/hook":             "loopback",
		"http://169.254.169.254/latest":     "link-local",
		"http://2130706433/hook":            "non-standard notation",
		"https://user:pw@hooks.example.com": "credentials",
		"http://10.1.2.3/hook":              "private",
		"http://[::1]:8080/hook":            "loopback",
	} {
		for _, path := range []string{"/v1/tasks", "/v1/batches"} {
			body := `{"image_id":"` + id + `","ops":[{"op":"resize"}],"callback_url":"` + url + `"}`
			if path == "/v1/batches" {
				body = `{"image_ids":["` + id + `"],"ops":[{"op":"resize"}],"callback_url":"` + url + `"}`
			}
			r := st.withKey("POST", path, []byte(body), map[string]string{"Content-Type": "application/json"})
			if r.status != 400 || !strings.Contains(r.errorMessage(), "callback_url is refused") || !strings.Contains(r.errorMessage(), want) {
				t.Errorf("%s %s: %d %s, want 400 naming %q", path, url, r.status, r.body, want)
			}
		}
	}
	r := st.withKey("POST", "/v1/tasks", []byte(`{"image_id":"`+id+`","ops":[{"op":"resize"}],"callback_url":"https://hooks.example.com/done"}`),
		map[string]string{"Content-Type": "application/json"})
	if r.status != 202 {
		t.Fatalf("an allowed callback: %d %s", r.status, r.body)
	}
}

// A signed image URL takes no query: one would only multiply the URLs caches keep.
func TestSignedImageRefusesQueries(t *testing.T) {
	signer := testSigner(t)
	st := newStack(t, Config{}, Deps{Signer: signer}, false)
	id := st.uploadImage()
	u := signer.URL("resize:w=100/" + id)
	calls := st.proc.calls.Load()
	for _, q := range []string{"?w=5000", "?cachebuster=1&x=2", "?" + strings.Repeat("q", 500) + "=1"} {
		r := st.do("GET", u+q, nil, nil)
		if r.status != 400 || !strings.Contains(r.errorMessage(), "take no query parameters") || len(r.errorMessage()) > 200 {
			t.Errorf("GET …%s: %d %s", q[:min(len(q), 20)], r.status, r.body)
		}
	}
	if st.proc.calls.Load() != calls {
		t.Fatal("a refused query ran the pipeline")
	}
	if r := st.do("GET", u, nil, nil); r.status != 200 {
		t.Fatalf("without a query: %d", r.status)
	}
}
