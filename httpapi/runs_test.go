package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/trigger"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func mustReplace(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	out := bytes.Replace(b, []byte(old), []byte(new), 1)
	if bytes.Equal(out, b) {
		t.Fatalf("%q not found in %s", old, b)
	}
	return out
}

func TestStartRunAccepted(t *testing.T) {
	f := newFixture(t)
	pos := f.lastPos()
	tr := f.trig("alice", nil)
	payload := f.payload(tr)
	r := f.startRun(f.signDSSE("alice", payload))
	if r.status != http.StatusCreated {
		t.Fatalf("POST /v1/runs = %d %s; want 201", r.status, r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store", got)
	}
	got := decodeRun(t, r.body)
	if _, err := writ.ParseRunID(string(got.ID)); err != nil {
		t.Fatalf("run id: %v", err)
	}
	fp, err := trigger.Fingerprint(f.keys["alice"].Public())
	if err != nil {
		t.Fatal(err)
	}
	want := runView{
		Run: writ.Run{
			ID: got.ID, Agent: "refactor-bot", Profile: "refactor", Ticket: tr.Ticket, Task: tr.Task, Scope: tr.Scope,
			ScopeDigest: got.ScopeDigest, TriggerID: tr.ID, TriggerDigest: digestOf(payload),
			Issuer: "alice", SignerKey: fp, State: writ.RunActive,
			CreatedAt: t0, Deadline: t0.Add(30 * time.Minute),
		},
		SPIFFEID: "spiffe://writ.test/agent/refactor-bot/run/" + string(got.ID),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("run (-want +got):\n%s", diff)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(got.ScopeDigest) {
		t.Errorf("scopeDigest = %q; want sha256:<64 hex>", got.ScopeDigest)
	}

	// The run reads back the same through GET /v1/runs/{id}.
	shown := f.do("GET", "/v1/runs/"+string(got.ID), f.tokens["bob"], nil)
	if shown.status != http.StatusOK {
		t.Fatalf("GET run = %d %s", shown.status, shown.body)
	}
	if diff := cmp.Diff(want, decodeRun(t, shown.body)); diff != "" {
		t.Errorf("GET run (-want +got):\n%s", diff)
	}

	// Exactly trigger.accepted then run.started, by the signer, for the run,
	// stamped with the commit time.
	evs := f.eventsAfter(pos)
	if diff := cmp.Diff([]string{writ.EventTriggerAccepted, writ.EventRunStarted, writ.EventTokenIssued}, types(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	for _, e := range evs {
		if e.Run != got.ID || e.Actor != "signer:alice" || !e.Time.Equal(t0) || e.ID == "" {
			t.Errorf("event %s: run %q actor %q time %v id %q; want run %q actor signer:alice time %v", e.Type, e.Run, e.Actor, e.Time, e.ID, got.ID, t0)
		}
	}
	acc, started := evs[0], evs[1]
	if acc.Subject != "trigger:"+tr.ID {
		t.Errorf("trigger.accepted subject = %q; want trigger:%s", acc.Subject, tr.ID)
	}
	wantAcc := map[string]any{"digest": digestOf(payload), "keyId": fp, "format": "dsse", "agent": "refactor-bot", "profile": "refactor", "ticket": "jira:ENG-123"}
	if diff := cmp.Diff(wantAcc, acc.Details); diff != "" {
		t.Errorf("trigger.accepted details (-want +got):\n%s", diff)
	}
	if started.Subject != want.SPIFFEID {
		t.Errorf("run.started subject = %q; want %q", started.Subject, want.SPIFFEID)
	}
	wantStarted := map[string]any{"agent": "refactor-bot", "profile": "refactor", "deadline": "2026-11-25T20:30:00Z",
		"scopeDigest": got.ScopeDigest, "triggerDigest": digestOf(payload)}
	if diff := cmp.Diff(wantStarted, started.Details); diff != "" {
		t.Errorf("run.started details (-want +got):\n%s", diff)
	}

	f.createdMu.Lock()
	created := append([]writ.RunID(nil), f.created...)
	f.createdMu.Unlock()
	if diff := cmp.Diff([]writ.RunID{got.ID}, created); diff != "" {
		t.Errorf("OnRunCreated calls (-want +got):\n%s", diff)
	}
	if n := metric(t, f.url, "writ_runs_started_total", ""); n != 1 {
		t.Errorf("writ_runs_started_total = %v; want 1", n)
	}
	if n := metric(t, f.url, "writ_runs", `state="active"`); n != 1 {
		t.Errorf(`writ_runs{state="active"} = %v; want 1`, n)
	}
}

func TestScopeDigestFollowsScope(t *testing.T) {
	f := newFixture(t)
	a := f.mustStart(f.signed("alice", nil))
	b := f.mustStart(f.signed("alice", func(t *writ.Trigger) { t.Ticket.ID = "ENG-999"; t.Task = "another task" }))
	c := f.mustStart(f.signed("alice", func(t *writ.Trigger) { t.Scope.Tools = []string{"read"} }))
	if a.ScopeDigest != b.ScopeDigest {
		t.Errorf("same scope, different digests: %s and %s", a.ScopeDigest, b.ScopeDigest)
	}
	if a.ScopeDigest == c.ScopeDigest {
		t.Errorf("different scopes, same digest %s", a.ScopeDigest)
	}
	if a.TriggerDigest == b.TriggerDigest {
		t.Errorf("different triggers, same trigger digest %s", a.TriggerDigest)
	}
}

// TestStartRunWireForms: the SSH signature form, an ECDSA key and a system
// signer start runs too, and the event says which form was used.
func TestStartRunWireForms(t *testing.T) {
	for _, c := range []struct {
		name, signer, format string
		sign                 func(f *fixture, signer string, p []byte) []byte
	}{
		{"sshsig ed25519", "alice", "sshsig", (*fixture).signSSH},
		{"sshsig ecdsa", "bob", "sshsig", (*fixture).signSSH},
		{"dsse ecdsa", "bob", "dsse", (*fixture).signDSSE},
		{"dsse system signer", "tickets", "dsse", (*fixture).signDSSE},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			pos := f.lastPos()
			payload := f.payload(f.trig(c.signer, nil))
			run := f.mustStart(c.sign(f, c.signer, payload))
			if run.Issuer != c.signer || run.TriggerDigest != digestOf(payload) {
				t.Errorf("run issuer %q digest %q; want %q %q", run.Issuer, run.TriggerDigest, c.signer, digestOf(payload))
			}
			evs := f.eventsAfter(pos)
			if len(evs) != 3 || evs[0].Details["format"] != c.format || evs[0].Actor != "signer:"+c.signer {
				t.Errorf("events %v: want trigger.accepted by signer:%s in format %s", evs, c.signer, c.format)
			}
		})
	}
}

// refusalCase is one way a trigger is refused. body returns the bytes to
// post and, for a known signer, the payload its signature covers.
type refusalCase struct {
	name   string
	setup  func(f *fixture, body []byte)
	body   func(f *fixture) (body, payload []byte)
	status int
	code   string
	// signer is the signer whose refusal is audited; "" means
	// unauthenticated junk, which must leave no event.
	signer string
	// partial: the payload did not decode into a valid trigger, so the
	// event names the trigger by digest.
	partial bool
	items   []string
	// msg must be in the message, notMsg must not.
	msg, notMsg string
}

func signedBody(signer string, mod func(*writ.Trigger)) func(f *fixture) ([]byte, []byte) {
	return func(f *fixture) ([]byte, []byte) {
		p := f.payload(f.trig(signer, mod))
		return f.signDSSE(signer, p), p
	}
}

// rawBody signs the template payload of signer after edit changes its
// bytes: a payload a strict decoder must refuse, validly signed.
func rawBody(signer string, edit func(t *testing.T, p []byte) []byte) func(f *fixture) ([]byte, []byte) {
	return func(f *fixture) ([]byte, []byte) {
		p := edit(f.t, f.payload(f.trig(signer, nil)))
		return f.signDSSE(signer, p), p
	}
}

func junk(b string) func(f *fixture) ([]byte, []byte) {
	return func(*fixture) ([]byte, []byte) { return []byte(b), nil }
}

// pad appends spaces to a valid envelope up to n bytes: still a valid
// envelope to a JSON decoder, so only a size limit refuses it.
func pad(n int) func(f *fixture) ([]byte, []byte) {
	return func(f *fixture) ([]byte, []byte) {
		b := f.signed("alice", nil)
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...), nil
	}
}

var refusalCases = []refusalCase{
	// Unauthenticated junk: no event, only the metric.
	{name: "malformed envelope", body: junk(`{"hello": "world"}`), status: 400, code: "malformed_envelope"},
	{name: "not JSON", body: junk(`not json`), status: 400, code: "malformed_envelope"},
	{name: "envelope with a duplicate payload", body: func(f *fixture) ([]byte, []byte) {
		good := f.signed("alice", nil)
		evil := base64.StdEncoding.EncodeToString(f.payload(f.trig("alice", func(t *writ.Trigger) { t.Scope.Tools = []string{"shell:net"} })))
		return append(good[:len(good)-1], []byte(`,"payload":"`+evil+`"}`)...), nil
	}, status: 400, code: "malformed_envelope"},
	{name: "bad signature", body: func(f *fixture) ([]byte, []byte) {
		var env map[string]any
		if err := json.Unmarshal(f.signed("alice", nil), &env); err != nil {
			f.t.Fatal(err)
		}
		p, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
		env["payload"] = base64.StdEncoding.EncodeToString(mustReplace(f.t, p, `"shell:test"`, `"shell:net"`))
		b, _ := json.Marshal(env)
		return b, nil
	}, status: 401, code: "bad_signature", notMsg: "alice"}, // an unauthenticated caller does not learn whose key it is
	{name: "unknown key", body: func(f *fixture) ([]byte, []byte) {
		return f.signDSSE("mallory", f.payload(f.trig("alice", nil))), nil
	}, status: 401, code: "unknown_signer"},
	{name: "unknown key sshsig", body: func(f *fixture) ([]byte, []byte) {
		return f.signSSH("mallory", f.payload(f.trig("alice", nil))), nil
	}, status: 401, code: "unknown_signer"},
	{name: "body over 64 KiB", body: pad(64<<10 + 1), status: 413, code: "too_large", msg: "65536"},
	{name: "envelope over the trigger limit", body: pad(61 << 10), status: 413, code: "too_large"},

	// A known key signed it: one trigger.refused event per trigger and reason.
	{name: "key without signer configuration", body: signedBody("ghost", nil), status: 401, code: "unknown_signer", signer: "ghost"},
	{name: "invalid trigger", body: signedBody("alice", func(t *writ.Trigger) { t.APIVersion = "writ.dev/v0" }),
		status: 400, code: "invalid_trigger", signer: "alice", partial: true},
	{name: "duplicate key in payload", body: rawBody("alice", func(t *testing.T, p []byte) []byte {
		return mustReplace(t, p, `"agent":"refactor-bot"`, `"agent":"refactor-bot","agent":"release-bot"`)
	}), status: 400, code: "duplicate_key", signer: "alice", partial: true},
	{name: "case-variant key in payload", body: rawBody("alice", func(t *testing.T, p []byte) []byte {
		return mustReplace(t, p, `"agent":"refactor-bot"`, `"agent":"refactor-bot","Agent":"release-bot"`)
	}), status: 400, code: "case_variant_key", signer: "alice", partial: true},
	{name: "unknown field in payload", body: rawBody("alice", func(t *testing.T, p []byte) []byte {
		return mustReplace(t, p, `"task":`, `"priority":"high","task":`)
	}), status: 400, code: "unknown_field", signer: "alice", partial: true},
	{name: "trailing data in payload", body: rawBody("alice", func(t *testing.T, p []byte) []byte {
		return append(p, []byte(` {"agent":"release-bot"}`)...)
	}), status: 400, code: "trailing_data", signer: "alice", partial: true},
	{name: "issuer is someone else", body: func(f *fixture) ([]byte, []byte) {
		p := f.payload(f.trig("bob", nil))
		return f.signDSSE("alice", p), p
	}, status: 401, code: "issuer_mismatch", signer: "alice"},
	{name: "not yet valid", body: signedBody("alice", func(t *writ.Trigger) {
		t.IssuedAt = t0.Add(testLeeway + time.Second)
		t.ExpiresAt = t.IssuedAt.Add(time.Hour)
	}), status: 401, code: "trigger_not_yet_valid", signer: "alice"},
	{name: "expired", body: signedBody("alice", func(t *writ.Trigger) {
		t.IssuedAt = t0.Add(-2 * time.Hour)
		t.ExpiresAt = t0.Add(-testLeeway - time.Second)
	}), status: 401, code: "trigger_expired", signer: "alice"},
	{name: "expired sshsig", body: func(f *fixture) ([]byte, []byte) {
		p := f.payload(f.trig("bob", func(t *writ.Trigger) { t.IssuedAt = t0.Add(-3 * time.Hour); t.ExpiresAt = t0.Add(-time.Hour) }))
		return f.signSSH("bob", p), p
	}, status: 401, code: "trigger_expired", signer: "bob"},
	{name: "lifetime too long", body: signedBody("alice", func(t *writ.Trigger) { t.ExpiresAt = t.IssuedAt.Add(testMaxLifetime + time.Second) }),
		status: 400, code: "trigger_lifetime_too_long", signer: "alice"},
	{name: "unknown agent", body: signedBody("alice", func(t *writ.Trigger) { t.Agent = "nope-bot" }), status: 400, code: "unknown_agent", signer: "alice"},
	{name: "unknown profile", body: signedBody("alice", func(t *writ.Trigger) { t.Profile = "nope" }), status: 400, code: "unknown_profile", signer: "alice"},
	{name: "agent disabled", body: signedBody("alice", func(t *writ.Trigger) { t.Agent = "old-bot" }), status: 403, code: "agent_disabled", signer: "alice"},
	{name: "signer may not use the profile", body: signedBody("alice", func(t *writ.Trigger) { t.Agent = "release-bot"; t.Profile = "release" }),
		status: 403, code: "signer_not_allowed", signer: "alice"},
	{name: "system signer may not trigger the agent", body: signedBody("tickets", func(t *writ.Trigger) { t.Agent = "review-bot"; t.Profile = "review" }),
		status: 403, code: "signer_not_allowed", signer: "tickets"},
	{name: "agent may not run under the profile", body: signedBody("alice", func(t *writ.Trigger) { t.Agent = "review-bot" }),
		status: 403, code: "profile_not_allowed", signer: "alice"},
	{name: "scope too broad", body: signedBody("alice", func(t *writ.Trigger) {
		t.Scope.Repos = append(t.Scope.Repos, writ.RepoScope{Name: "other/secret-repo", Base: "main"})
		t.Scope.Tools = []string{"read", "shell:net", "web:fetch"}
		t.Scope.Hosts = []string{"proxy.golang.org", "evil.example.com"}
		t.Scope.Environments = []string{"production"}
		t.Scope.Secrets = []string{"db-password"}
	}), status: 403, code: "scope_too_broad", signer: "alice",
		items: []string{"repo:other/secret-repo", "tool:shell:net", "tool:web:fetch", "host:evil.example.com", "environment:production", "secret:db-password"}},
	{name: "scope too broad sshsig", body: func(f *fixture) ([]byte, []byte) {
		p := f.payload(f.trig("bob", func(t *writ.Trigger) { t.Scope.Tools = []string{"read", "shell:pkg"} }))
		return f.signSSH("bob", p), p
	}, status: 403, code: "scope_too_broad", signer: "bob", items: []string{"tool:shell:pkg"}},
	{name: "duration over the profile", body: signedBody("alice", func(t *writ.Trigger) { t.Scope.MaxDuration = writ.Duration(61 * time.Minute) }),
		status: 403, code: "duration_exceeds_profile", signer: "alice"},
	{name: "replay", setup: func(f *fixture, body []byte) { f.mustStart(body) }, body: signedBody("alice", nil),
		status: 409, code: "replay", signer: "alice"},
}

// TestTriggerRefusals sends each refused trigger five times: every answer
// has the status of docs/design.md §4.8 and the JSON error envelope; a known
// signer's refusal is exactly one trigger.refused event however often it
// is sent; junk leaves no event; the metric counts every attempt; no run
// starts.
func TestTriggerRefusals(t *testing.T) {
	for _, c := range refusalCases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			body, payload := c.body(f)
			if c.setup != nil {
				c.setup(f, body)
			}
			pos := f.lastPos()
			runsBefore := len(f.runs())
			for i := range 5 {
				r := f.startRun(body)
				d := wantError(t, r, c.status, c.code)
				if c.items != nil {
					if diff := cmp.Diff(c.items, d.Items); diff != "" {
						t.Errorf("attempt %d: items (-want +got):\n%s", i, diff)
					}
					for _, it := range c.items {
						if !strings.Contains(d.Message, it) {
							t.Errorf("message %q does not name %q", d.Message, it)
						}
					}
				} else if len(d.Items) != 0 {
					t.Errorf("attempt %d: unexpected items %q", i, d.Items)
				}
				if c.msg != "" && !strings.Contains(d.Message, c.msg) {
					t.Errorf("message %q does not contain %q", d.Message, c.msg)
				}
				if c.notMsg != "" && strings.Contains(d.Message, c.notMsg) {
					t.Errorf("message %q contains %q", d.Message, c.notMsg)
				}
				if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
			}
			if n := len(f.runs()); n != runsBefore {
				t.Errorf("runs: %d after the refusals, %d before", n, runsBefore)
			}
			if n := metric(t, f.url, "writ_trigger_refusals_total", fmt.Sprintf("reason=%q", c.code)); n != 5 {
				t.Errorf(`writ_trigger_refusals_total{reason=%q} = %v; want 5`, c.code, n)
			}
			evs := f.eventsAfter(pos)
			if c.signer == "" {
				if len(evs) != 0 {
					t.Errorf("unauthenticated junk left events %v; want none", types(evs))
				}
				return
			}
			if diff := cmp.Diff([]string{writ.EventTriggerRefused}, types(evs)); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			e := evs[0]
			if e.Actor != "signer:"+c.signer || e.Run != "" {
				t.Errorf("event actor %q run %q; want actor signer:%s and no run", e.Actor, e.Run, c.signer)
			}
			if e.Details["code"] != c.code || e.Details["digest"] != digestOf(payload) {
				t.Errorf("event details %v; want code %q digest %s", e.Details, c.code, digestOf(payload))
			}
			wantSubject := "trigger:" + digestOf(payload)
			if !c.partial {
				var tr writ.Trigger
				if err := json.Unmarshal(payload, &tr); err != nil {
					t.Fatal(err)
				}
				wantSubject = "trigger:" + tr.ID
			}
			if e.Subject != wantSubject {
				t.Errorf("event subject %q; want %q", e.Subject, wantSubject)
			}
			if c.items != nil {
				var items []string
				for _, it := range e.Details["items"].([]any) {
					items = append(items, it.(string))
				}
				if diff := cmp.Diff(c.items, items); diff != "" {
					t.Errorf("event items (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestTriggerRefusalReasonsAreSeparate: one signed trigger, refused as not
// yet valid, then accepted, then replayed, then expired, is audited once
// per reason however often each refusal repeats.
func TestTriggerRefusalReasonsAreSeparate(t *testing.T) {
	f := newFixture(t)
	body := f.signed("alice", func(t *writ.Trigger) {
		t.IssuedAt = t0.Add(time.Hour)
		t.ExpiresAt = t0.Add(2 * time.Hour)
	})
	pos := f.lastPos()
	wantError(t, f.startRun(body), 401, "trigger_not_yet_valid")
	wantError(t, f.startRun(body), 401, "trigger_not_yet_valid")
	f.clock.Set(t0.Add(90 * time.Minute))
	f.mustStart(body)
	wantError(t, f.startRun(body), 409, "replay")
	wantError(t, f.startRun(body), 409, "replay")
	f.clock.Set(t0.Add(3 * time.Hour))
	wantError(t, f.startRun(body), 401, "trigger_expired")
	want := []string{writ.EventTriggerRefused, writ.EventTriggerAccepted, writ.EventRunStarted, writ.EventTokenIssued, writ.EventTriggerRefused, writ.EventTriggerRefused}
	evs := f.eventsAfter(pos)
	if diff := cmp.Diff(want, types(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	var codes []any
	for _, e := range evs {
		if e.Type == writ.EventTriggerRefused {
			codes = append(codes, e.Details["code"])
		}
	}
	if diff := cmp.Diff([]any{"trigger_not_yet_valid", "replay", "trigger_expired"}, codes); diff != "" {
		t.Errorf("refusal codes (-want +got):\n%s", diff)
	}
}

// TestTriggerTimeBoundaries checks issuedAt and expiresAt against the
// injected clock exactly at the leeway and one nanosecond past it.
func TestTriggerTimeBoundaries(t *testing.T) {
	issued, expires := t0, t0.Add(time.Hour)
	for _, c := range []struct {
		name string
		now  time.Time
		code string // "" means accepted
	}{
		{"issued at now", issued, ""},
		{"issued leeway ahead", issued.Add(-testLeeway), ""},
		{"issued leeway+1ns ahead", issued.Add(-testLeeway - 1), "trigger_not_yet_valid"},
		{"at expiry", expires, ""},
		{"leeway past expiry", expires.Add(testLeeway), ""},
		{"leeway+1ns past expiry", expires.Add(testLeeway + 1), "trigger_expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			body := f.signed("alice", func(t *writ.Trigger) { t.IssuedAt, t.ExpiresAt = issued, expires })
			f.clock.Set(c.now)
			r := f.startRun(body)
			if c.code != "" {
				wantError(t, r, http.StatusUnauthorized, c.code)
				return
			}
			if r.status != http.StatusCreated {
				t.Fatalf("status %d %s; want 201", r.status, r.body)
			}
			// The deadline runs from the server's clock, whatever the
			// trigger's times say.
			if run := decodeRun(t, r.body); !run.Deadline.Equal(c.now.Add(30 * time.Minute)) {
				t.Errorf("deadline %v; want %v", run.Deadline, c.now.Add(30*time.Minute))
			}
		})
	}
}

// TestJunkLogIsRateLimited: a flood of junk gives one log line a second,
// not one per request, while the metric counts all of it.
func TestJunkLogIsRateLimited(t *testing.T) {
	f := newFixture(t)
	count := func() int { return strings.Count(f.logs.String(), `"msg":"refused unauthenticated trigger"`) }
	for range 10 {
		wantError(t, f.startRun([]byte(`{}`)), 400, "malformed_envelope")
	}
	if n := count(); n != 1 {
		t.Errorf("after 10 junk requests in one instant: %d log lines; want 1", n)
	}
	f.clock.Add(time.Second)
	wantError(t, f.startRun([]byte(`{}`)), 400, "malformed_envelope")
	if n := count(); n != 2 {
		t.Errorf("a second later: %d log lines; want 2", n)
	}
	if !strings.Contains(f.logs.String(), `"suppressed_since_last":9`) {
		t.Errorf("the second line does not report 9 suppressed lines:\n%s", f.logs.String())
	}
	if n := metric(t, f.url, "writ_trigger_refusals_total", `reason="malformed_envelope"`); n != 11 {
		t.Errorf("metric = %v; want 11", n)
	}
}

// TestPaddedTriggerUnderTheLimit is the control for the oversized cases:
// whitespace after a valid envelope is fine while the body is small.
func TestPaddedTriggerUnderTheLimit(t *testing.T) {
	f := newFixture(t)
	body, _ := pad(8 << 10)(f)
	f.mustStart(body)
}

// TestConcurrentReplay: the same signed trigger posted many times at once
// starts exactly one run; every other copy is a replay.
func TestConcurrentReplay(t *testing.T) {
	f := newFixture(t)
	body := f.signed("alice", nil)
	const n = 16
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, err := http.NewRequest("POST", f.url+"/v1/runs", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if diff := cmp.Diff(map[int]int{201: 1, 409: n - 1}, count); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if runs := f.runs(); len(runs) != 1 {
		t.Errorf("%d runs; want 1", len(runs))
	}
	var refused int
	for _, e := range f.eventsAfter(0) {
		if e.Type == writ.EventTriggerRefused {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("%d trigger.refused events; want 1", refused)
	}
}
