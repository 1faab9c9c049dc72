package httpapi_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
)

// authRoute is a route that needs a human credential, with a body that
// would change something if the credential check let it through.
type authRoute struct {
	method, path string
	body         string
}

func authRoutes(id writ.RunID) []authRoute {
	run := "/v1/runs/" + string(id)
	return []authRoute{
		{"GET", "/v1/runs", ""},
		{"GET", run, ""},
		{"POST", run + "/end", `{"reason": "attack"}`},
		{"POST", run + "/suspend", `{"reason": "attack"}`},
		{"POST", run + "/kill", `{"reason": "attack"}`},
		{"POST", run + "/resume", `{"reason": "attack"}`},
		{"POST", "/v1/tokens", `{"human": "alice", "ttl": "8760h"}`},
	}
}

func (f *fixture) createToken(base, token, body string) response {
	f.t.Helper()
	return doURL(f.t, base, "POST", "/v1/tokens", token, []byte(body))
}

// TestAuthRefusals: every authenticated route refuses a missing credential
// (missing_credential) and every kind of bad token (invalid_token) with
// 401, WWW-Authenticate and, for bad tokens, byte-identical bodies, and
// changes nothing. Each bad token has a positive control that works.
func TestAuthRefusals(t *testing.T) {
	f := newFixture(t)
	run := f.mustStart(f.signed("alice", nil))
	alice := f.tokens["alice"]

	// carol is configured when her token is made, and works...
	r := f.createToken(f.url, alice, `{"human": "carol"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create carol's token: %d %s", r.status, r.body)
	}
	var carolTok struct{ Token string }
	if err := json.Unmarshal(r.body, &carolTok); err != nil {
		t.Fatal(err)
	}
	if r := f.do("GET", "/v1/runs", carolTok.Token, nil); r.status != http.StatusOK {
		t.Fatalf("carol's token while she is configured: %d %s", r.status, r.body)
	}
	// ...and then she is removed from the configuration: a server with
	// the new configuration serves the same store.
	humans := maps.Clone(f.humans)
	delete(humans, "carol")
	_, srv2 := f.newAPI(humans)
	base := srv2.URL

	expired := f.storeToken("alice", t0.Add(-2*time.Hour), time.Hour)
	expiresNow := f.storeToken("alice", t0.Add(-time.Hour), time.Hour)
	expiresSoon := f.storeToken("alice", t0.Add(-time.Hour), time.Hour+time.Nanosecond)
	id, _, _ := strings.Cut(strings.TrimPrefix(alice, "writ_"), "_")
	last := alice[len(alice)-1]
	flip := byte('A')
	if last == 'A' {
		flip = 'B'
	}
	wrongSecret := alice[:len(alice)-1] + string(flip)
	unknownID := strings.Replace(alice, id, "0000000000000000", 1)

	// Positive controls: the same kinds of credential, valid, work.
	for _, tok := range []string{alice, expiresSoon, f.tokens["bob"]} {
		if r := doURL(t, base, "GET", "/v1/runs", tok, nil); r.status != http.StatusOK {
			t.Fatalf("control token: GET /v1/runs = %d %s", r.status, r.body)
		}
	}
	if r := doURL(t, base, "GET", "/v1/runs", "", nil, "Authorization", "bearer "+alice); r.status != http.StatusOK {
		t.Fatalf("lower-case scheme: GET /v1/runs = %d %s", r.status, r.body)
	}

	pos := f.lastPos()
	cases := []struct {
		name, auth, code, cause string
	}{
		{"no credential", "", "missing_credential", ""},
		{"basic scheme", "Basic YWxpY2U6c2VjcmV0", "missing_credential", ""},
		{"scheme only", "Bearer", "missing_credential", ""},
		{"malformed token", "Bearer not-a-token", "invalid_token", "malformed"},
		{"token with a byte more", "Bearer " + alice + "x", "invalid_token", "malformed"},
		{"unknown token id", "Bearer " + unknownID, "invalid_token", "unknown"},
		{"right id wrong secret", "Bearer " + wrongSecret, "invalid_token", "mismatch"},
		{"expired token", "Bearer " + expired, "invalid_token", "expired"},
		{"token expiring this instant", "Bearer " + expiresNow, "invalid_token", "expired"},
		{"token of a removed human", "Bearer " + carolTok.Token, "invalid_token", "unconfigured"},
	}
	routes := authRoutes(run.ID)
	invalidBodies := map[string][]string{}
	causes := map[string]float64{}
	for _, c := range cases {
		if c.cause != "" {
			causes[c.cause] += float64(len(routes))
		}
		for _, rt := range routes {
			t.Run(c.name+"/"+rt.method+" "+rt.path, func(t *testing.T) {
				var body []byte
				if rt.body != "" {
					body = []byte(rt.body)
				}
				r := doURL(t, base, rt.method, rt.path, "", body, "Authorization", c.auth)
				wantError(t, r, http.StatusUnauthorized, c.code)
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="writ"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if c.code == "invalid_token" {
					invalidBodies[string(r.body)] = append(invalidBodies[string(r.body)], c.name)
				}
			})
		}
	}
	if len(invalidBodies) != 1 {
		t.Errorf("invalid_token answers differ (%d distinct bodies); a caller could tell the causes apart:\n%v", len(invalidBodies), invalidBodies)
	}
	for cause, want := range causes {
		if got := metric(t, base, "writ_auth_failures_total", fmt.Sprintf("cause=%q", cause)); got != want {
			t.Errorf("writ_auth_failures_total{cause=%q} = %v; want %v", cause, got, want)
		}
	}
	if evs := f.eventsAfter(pos); len(evs) != 0 {
		t.Errorf("refused requests left events %v", types(evs))
	}
	if got := f.getRun(run.ID); got.State != writ.RunActive {
		t.Errorf("run is %s after refused requests; want active", got.State)
	}
}

// TestPublicRoutes: health, readiness and metrics need no credential.
func TestPublicRoutes(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := f.do("GET", p, "", nil); r.status != http.StatusOK {
			t.Errorf("GET %s = %d %s; want 200", p, r.status, r.body)
		}
	}
}

// TestAdminRequired: kill, resume and tokens for others need an admin;
// any configured human may end and suspend. A refusal changes nothing.
func TestAdminRequired(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.tokens["alice"], f.tokens["bob"]
	run := f.mustStart(f.signed("alice", nil))
	path := "/v1/runs/" + string(run.ID)
	post := func(tok, verb string) response {
		return f.do("POST", path+"/"+verb, tok, []byte(`{"reason": "because"}`))
	}

	pos := f.lastPos()
	wantError(t, post(bob, "kill"), http.StatusForbidden, "admin_required")
	wantError(t, f.createToken(f.url, bob, `{"human": "alice"}`), http.StatusForbidden, "admin_required")
	wantError(t, f.createToken(f.url, bob, `{"human": "carol", "ttl": "1h"}`), http.StatusForbidden, "admin_required")
	if evs := f.eventsAfter(pos); len(evs) != 0 {
		t.Errorf("refused admin acts left events %v", types(evs))
	}
	if got := f.getRun(run.ID); got.State != writ.RunActive {
		t.Fatalf("run is %s after a refused kill", got.State)
	}

	if r := post(bob, "suspend"); r.status != http.StatusOK {
		t.Fatalf("bob suspends: %d %s", r.status, r.body)
	}
	pos = f.lastPos()
	wantError(t, post(bob, "resume"), http.StatusForbidden, "admin_required")
	if got := f.getRun(run.ID); got.State != writ.RunSuspended {
		t.Fatalf("run is %s after bob's refused resume; want suspended", got.State)
	}
	if evs := f.eventsAfter(pos); len(evs) != 0 {
		t.Errorf("refused resume left events %v", types(evs))
	}
	if r := post(alice, "resume"); r.status != http.StatusOK {
		t.Fatalf("alice resumes: %d %s", r.status, r.body)
	}
	if r := post(bob, "end"); r.status != http.StatusOK {
		t.Fatalf("bob ends: %d %s", r.status, r.body)
	}

	run2 := f.mustStart(f.signed("alice", nil))
	if r := f.do("POST", "/v1/runs/"+string(run2.ID)+"/kill", alice, nil); r.status != http.StatusOK {
		t.Fatalf("alice kills: %d %s", r.status, r.body)
	}

	// Own tokens for anyone; others' tokens for admins.
	for _, c := range []struct {
		caller, body, human string
	}{
		{bob, `{}`, "bob"},
		{bob, `{"human": "bob"}`, "bob"},
		{alice, `{"human": "bob"}`, "bob"},
		{alice, `{"human": "carol"}`, "carol"},
	} {
		r := f.createToken(f.url, c.caller, c.body)
		if r.status != http.StatusCreated {
			t.Fatalf("create token %s: %d %s", c.body, r.status, r.body)
		}
		var tok struct{ Human string }
		if err := json.Unmarshal(r.body, &tok); err != nil {
			t.Fatal(err)
		}
		if tok.Human != c.human {
			t.Errorf("token for %q; want %q", tok.Human, c.human)
		}
	}

	evs := f.eventsAfter(0)
	var actors []string
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "run.") && e.Type != writ.EventRunStarted {
			actors = append(actors, e.Type+" "+e.Actor)
		}
	}
	want := []string{"run.suspended human:bob", "run.resumed human:alice", "run.ended human:bob", "run.killed human:alice"}
	if diff := cmp.Diff(want, actors); diff != "" {
		t.Errorf("transition events (-want +got):\n%s", diff)
	}
}

// TestAdminDemotion: admin rights come from the configuration at request
// time, not from the token: an admin removed from the group loses them on
// the next request, with the same token.
func TestAdminDemotion(t *testing.T) {
	f := newFixture(t)
	run := f.mustStart(f.signed("alice", nil))
	humans := maps.Clone(f.humans)
	demoted := *humans["alice"]
	demoted.Groups = []string{"maintainers"}
	humans["alice"] = &demoted
	_, srv := f.newAPI(humans)
	r := doURL(t, srv.URL, "POST", "/v1/runs/"+string(run.ID)+"/kill", f.tokens["alice"], nil)
	wantError(t, r, http.StatusForbidden, "admin_required")
	if got := f.getRun(run.ID); got.State != writ.RunActive {
		t.Errorf("run is %s after a demoted admin's kill", got.State)
	}
	// Control: the original configuration still lets her.
	f.mustTransition(f.tokens["alice"], run.ID, "kill", "")
}
