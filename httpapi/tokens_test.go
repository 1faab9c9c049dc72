package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/httpapi"
)

func (f *fixture) mustCreateToken(token, body string) api.TokenResponse {
	f.t.Helper()
	r := f.createToken(f.url, token, body)
	if r.status != http.StatusCreated {
		f.t.Fatalf("POST /v1/tokens %s: %d %s", body, r.status, r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		f.t.Errorf("token response Cache-Control = %q; want no-store", got)
	}
	var tr api.TokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		f.t.Fatal(err)
	}
	return tr
}

// TestCreateToken: a created token works, for its human, until its
// expiry; its secret is in no event and nowhere in the database files.
func TestCreateToken(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	pos := f.lastPos()

	mine := f.mustCreateToken(alice, `{"ttl": "1h"}`)
	if diff := cmp.Diff(api.TokenResponse{Token: mine.Token, ID: mine.ID, Human: "alice", ExpiresAt: t0.Add(time.Hour)}, mine); diff != "" {
		t.Errorf("token (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(mine.Token, "writ_"+mine.ID+"_") {
		t.Errorf("the token does not carry its id %q", mine.ID)
	}
	// It works, as alice: it may create a token for bob (an admin act).
	forBob := f.mustCreateToken(mine.Token, `{"human": "bob"}`)
	if forBob.Human != "bob" || !forBob.ExpiresAt.Equal(t0.Add(httpapi.DefaultTokenTTL)) {
		t.Errorf("bob's token: human %q expires %v; want bob, %v", forBob.Human, forBob.ExpiresAt, t0.Add(httpapi.DefaultTokenTTL))
	}
	// bob's token is bob's: not an admin.
	run := f.mustStart(f.signed("alice", nil))
	wantError(t, f.transition(forBob.Token, run.ID, "kill", ""), http.StatusForbidden, "admin_required")
	f.mustTransition(forBob.Token, run.ID, "suspend", "")
	events := f.eventsAfter(pos)
	if got := events[len(events)-1]; got.Type != writ.EventRunSuspended || got.Actor != "human:bob" {
		t.Errorf("last event %s by %s; want run.suspended by human:bob", got.Type, got.Actor)
	}

	// Expiry follows the clock: valid 1ns before, refused at expiresAt.
	f.clock.Set(mine.ExpiresAt.Add(-time.Nanosecond))
	if r := f.do("GET", "/v1/runs", mine.Token, nil); r.status != http.StatusOK {
		t.Errorf("before expiry: %d %s", r.status, r.body)
	}
	f.clock.Set(mine.ExpiresAt)
	wantError(t, f.do("GET", "/v1/runs", mine.Token, nil), http.StatusUnauthorized, "invalid_token")

	// token.issued events name the token by id and never hold its secret.
	var issued []event
	for _, e := range events {
		if e.Type == writ.EventTokenIssued && e.Details["kind"] == "human" {
			issued = append(issued, e.event)
		}
	}
	if len(issued) != 2 {
		t.Fatalf("token.issued events: %d; want 2", len(issued))
	}
	for i, tr := range []api.TokenResponse{mine, forBob} {
		e := issued[i]
		if e.Actor != "human:alice" || e.Subject != "human:"+tr.Human || e.Details["tokenId"] != tr.ID || e.Details["kind"] != "human" {
			t.Errorf("token.issued %d: actor %q subject %q details %v", i, e.Actor, e.Subject, e.Details)
		}
	}
	secrets := [][]byte{}
	for _, tok := range []string{mine.Token, forBob.Token, alice} {
		_, sec, _ := strings.Cut(strings.TrimPrefix(tok, "writ_"), "_")
		secrets = append(secrets, []byte(tok), []byte(sec))
	}
	for _, e := range f.eventsAfter(0) {
		for _, s := range secrets {
			if bytes.Contains(e.raw, s) {
				t.Errorf("event %s holds a token secret: %s", e.Type, e.raw)
			}
		}
	}
	// Nor does the database itself (the store keeps SHA-256 only).
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(f.dbPath + suffix)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("%s holds a token secret", f.dbPath+suffix)
			}
		}
	}
}

func TestTokenTTLAndHuman(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	for _, c := range []struct {
		body string
		ttl  time.Duration // 0: refused
		code string
	}{
		{`{}`, httpapi.DefaultTokenTTL, ""},
		{`{"ttl": "0s"}`, httpapi.DefaultTokenTTL, ""},
		{`{"ttl": "1m"}`, time.Minute, ""},
		{`{"ttl": "8784h"}`, httpapi.MaxTokenTTL, ""},
		{`{"ttl": "59s"}`, 0, "invalid_ttl"},
		{`{"ttl": "-1h"}`, 0, "invalid_ttl"},
		{`{"ttl": "8784h0m1s"}`, 0, "invalid_ttl"},
		{`{"ttl": "876000h"}`, 0, "invalid_ttl"},
		{`{"human": "zed"}`, 0, "unknown_human"},
		{`{"human": "tickets"}`, 0, "unknown_human"},
		{`{"human": "ghost"}`, 0, "unknown_human"},
	} {
		t.Run(c.body, func(t *testing.T) {
			pos := f.lastPos()
			if c.code != "" {
				wantError(t, f.createToken(f.url, alice, c.body), http.StatusBadRequest, c.code)
				if evs := f.eventsAfter(pos); len(evs) != 0 {
					t.Errorf("refused token left events %v", types(evs))
				}
				return
			}
			tr := f.mustCreateToken(alice, c.body)
			if !tr.ExpiresAt.Equal(t0.Add(c.ttl)) {
				t.Errorf("expiresAt %v; want %v", tr.ExpiresAt, t0.Add(c.ttl))
			}
		})
	}
}
