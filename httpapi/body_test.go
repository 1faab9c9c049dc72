package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/writ-dev/writ"
)

// TestFormBodiesRefused: a form-encoded POST is refused before anything
// reads it, even when its bytes would be a valid JSON request. The control
// at the end sends the same bytes as JSON and succeeds.
func TestFormBodiesRefused(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	run := f.mustStart(f.signed("alice", nil))
	trig := f.signed("alice", nil)
	end := "/v1/runs/" + string(run.ID) + "/end"
	pos := f.lastPos()
	for _, ct := range []string{
		"application/x-www-form-urlencoded",
		"application/x-www-form-urlencoded; charset=utf-8",
		"Application/X-WWW-Form-Urlencoded",
		"multipart/form-data; boundary=xyz",
	} {
		for _, c := range []struct {
			path, token string
			body        []byte
		}{
			{end, alice, []byte(`{"reason": "csrf"}`)},
			{"/v1/tokens", alice, []byte(`{"human": "bob"}`)},
			{"/v1/runs", "", trig},
		} {
			r := f.do("POST", c.path, c.token, c.body, "Content-Type", ct)
			wantError(t, r, http.StatusBadRequest, "unsupported_media_type")
		}
	}
	if evs := f.eventsAfter(pos); len(evs) != 0 {
		t.Errorf("form posts left events %v", types(evs))
	}
	if got := f.getRun(run.ID); got.State != writ.RunActive {
		t.Errorf("run is %s after form posts", got.State)
	}
	// Controls: the same bytes as JSON.
	if r := f.do("POST", end, alice, []byte(`{"reason": "csrf"}`)); r.status != http.StatusOK {
		t.Errorf("JSON end: %d %s", r.status, r.body)
	}
	f.mustStart(trig)
}

// TestBodyLimit: bodies over 1 MiB are refused with 413 on every route
// other than POST /v1/runs, even when they are valid JSON (padded with
// whitespace); exactly 1 MiB is accepted.
func TestBodyLimit(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	padded := func(s string, n int) []byte {
		return append([]byte(s), bytes.Repeat([]byte(" "), n-len(s))...)
	}
	if r := f.do("POST", "/v1/tokens", alice, padded(`{"ttl": "1h"}`, 1<<20)); r.status != http.StatusCreated {
		t.Fatalf("1 MiB token request: %d %s; want 201", r.status, r.body)
	}
	run := f.mustStart(f.signed("alice", nil))
	pos := f.lastPos()
	d := wantError(t, f.do("POST", "/v1/tokens", alice, padded(`{"ttl": "1h"}`, 1<<20+1)), http.StatusRequestEntityTooLarge, "too_large")
	if !strings.Contains(d.Message, "1048576") {
		t.Errorf("message %q does not state the limit", d.Message)
	}
	wantError(t, f.do("POST", "/v1/runs/"+string(run.ID)+"/end", alice, padded(`{"reason": "x"}`, 1<<20+1)), http.StatusRequestEntityTooLarge, "too_large")
	if evs := f.eventsAfter(pos); len(evs) != 0 {
		t.Errorf("oversized requests left events %v", types(evs))
	}
	if got := f.getRun(run.ID); got.State != writ.RunActive {
		t.Errorf("run is %s after an oversized end", got.State)
	}
}

// TestStrictBodies: transition and token bodies are decoded strictly; a
// refused body changes nothing.
func TestStrictBodies(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	run := f.mustStart(f.signed("alice", nil))
	kill := "/v1/runs/" + string(run.ID) + "/kill"
	pos := f.lastPos()
	for _, c := range []struct {
		name, path, body, code string
	}{
		{"unknown field", kill, `{"reason": "x", "force": true}`, "unknown_field"},
		{"case-variant field", kill, `{"Reason": "x"}`, "unknown_field"},
		{"duplicate field", kill, `{"reason": "a", "reason": "b"}`, "duplicate_key"},
		{"case-variant duplicate", kill, `{"reason": "a", "REASON": "b"}`, "case_variant_key"},
		{"trailing data", kill, `{"reason": "a"} {"reason": "b"}`, "trailing_data"},
		{"not an object", kill, `["reason"]`, "not_object"},
		{"wrong type", kill, `{"reason": 5}`, "type"},
		{"byte order mark", kill, "\xef\xbb\xbf{}", "bom"},
		{"invalid UTF-8", kill, "{\"reason\": \"\xff\"}", "invalid_utf8"},
		{"syntax", kill, `{"reason": `, "syntax"},
		{"reason over 1024 bytes", kill, `{"reason": "` + strings.Repeat("x", 1025) + `"}`, "invalid_reason"},
		{"token: smuggled field", "/v1/tokens", `{"human": "alice", "groups": ["admins"]}`, "unknown_field"},
		{"token: ttl not a duration", "/v1/tokens", `{"ttl": 3600}`, "type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, f.do("POST", c.path, alice, []byte(c.body)), http.StatusBadRequest, c.code)
		})
	}
	if evs := f.eventsAfter(pos); len(evs) != 0 {
		t.Errorf("refused bodies left events %v", types(evs))
	}
	if got := f.getRun(run.ID); got.State != writ.RunActive {
		t.Errorf("run is %s after refused bodies", got.State)
	}
	// Control: a valid body of the same route works.
	if r := f.do("POST", kill, alice, []byte(`{"reason": "`+strings.Repeat("x", 1024)+`"}`)); r.status != http.StatusOK {
		t.Errorf("valid kill: %d %s", r.status, r.body)
	}
}

// TestUnknownRoute: anything outside the route table is a JSON 404.
func TestUnknownRoute(t *testing.T) {
	f := newFixture(t)
	id := writ.NewULID(t0, nil)
	for _, c := range []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/v1/nope"},
		{"GET", "/v1/runs/" + id + "/end"}, // wrong method
		{"DELETE", "/v1/runs/" + id},
		{"PUT", "/v1/tokens"},
		{"POST", "/healthz"},
		{"GET", "/v2/runs"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			for _, tok := range []string{"", f.tokens["alice"]} {
				r := f.do(c.method, c.path, tok, nil)
				d := wantError(t, r, http.StatusNotFound, "no_route")
				if !strings.Contains(d.Message, c.path) {
					t.Errorf("message %q does not name the path", d.Message)
				}
			}
		})
	}
}

// TestStoreClosed: once the store is closed (shutdown), readiness fails
// and requests get 503, not a 500 or a success.
func TestStoreClosed(t *testing.T) {
	f := newFixture(t)
	body := f.signed("alice", nil)
	if r := f.do("GET", "/readyz", "", nil); r.status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	wantError(t, f.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable, "store_unavailable")
	wantError(t, f.do("GET", "/v1/runs", f.tokens["alice"], nil), http.StatusServiceUnavailable, "store_closed")
	wantError(t, f.startRun(body), http.StatusServiceUnavailable, "store_closed")
	if r := f.do("GET", "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
}
