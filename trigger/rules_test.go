package trigger

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
)

func TestCheck(t *testing.T) {
	f := newFixture(t)
	issued := testNow // Template's issuedAt; expiresAt is an hour later
	expires := issued.Add(time.Hour)
	verified := func(signer string, m func(*writ.Trigger)) *Verified {
		tr := Template(testNow, "alice")
		if m != nil {
			m(&tr)
		}
		return &Verified{Trigger: tr, Signer: signer}
	}
	withIssuer := func(name string) func(*writ.Trigger) {
		return func(t *writ.Trigger) { t.Issuer = name }
	}
	rules := func(m func(*Rules)) *Rules {
		r := *f.rules
		if m != nil {
			m(&r)
		}
		return &r
	}
	tests := []struct {
		name  string
		rules *Rules
		v     *Verified
		now   time.Time
		kind  writ.Kind
		code  string
		items []string
	}{
		{name: "ok", v: verified("alice", nil), now: testNow},
		{name: "ok system signer", v: verified("tickets", withIssuer("tickets")), now: testNow},
		{name: "issuer mismatch", v: verified("tickets", nil), now: testNow, kind: writ.KindUnauthenticated, code: CodeIssuerMismatch},
		{name: "issuer mismatch other way", v: verified("alice", withIssuer("tickets")), now: testNow, kind: writ.KindUnauthenticated, code: CodeIssuerMismatch},
		{name: "signer without configuration", v: verified("carol", withIssuer("carol")), now: testNow, kind: writ.KindUnauthenticated, code: CodeUnknownSigner},

		// Leeway boundaries: default 60s.
		{name: "issued 60s ahead", v: verified("alice", nil), now: issued.Add(-60 * time.Second)},
		{name: "issued 60s+1ns ahead", v: verified("alice", nil), now: issued.Add(-60*time.Second - 1), kind: writ.KindUnauthenticated, code: CodeNotYetValid},
		{name: "expired 60s ago", v: verified("alice", nil), now: expires.Add(60 * time.Second)},
		{name: "expired 60s+1ns ago", v: verified("alice", nil), now: expires.Add(60*time.Second + 1), kind: writ.KindUnauthenticated, code: CodeExpired},
		{name: "expired long ago", v: verified("alice", nil), now: expires.Add(48 * time.Hour), kind: writ.KindUnauthenticated, code: CodeExpired},
		// Custom leeway 10s.
		{name: "leeway 10s issued 10s ahead", rules: rules(func(r *Rules) { r.Leeway = 10 * time.Second }), v: verified("alice", nil), now: issued.Add(-10 * time.Second)},
		{name: "leeway 10s issued 11s ahead", rules: rules(func(r *Rules) { r.Leeway = 10 * time.Second }), v: verified("alice", nil), now: issued.Add(-11 * time.Second), kind: writ.KindUnauthenticated, code: CodeNotYetValid},
		{name: "leeway 10s expired 10s ago", rules: rules(func(r *Rules) { r.Leeway = 10 * time.Second }), v: verified("alice", nil), now: expires.Add(10 * time.Second)},
		{name: "leeway 10s expired 11s ago", rules: rules(func(r *Rules) { r.Leeway = 10 * time.Second }), v: verified("alice", nil), now: expires.Add(11 * time.Second), kind: writ.KindUnauthenticated, code: CodeExpired},
		// Leeway over 60s is clamped.
		{name: "leeway 1h clamped issued", rules: rules(func(r *Rules) { r.Leeway = time.Hour }), v: verified("alice", nil), now: issued.Add(-61 * time.Second), kind: writ.KindUnauthenticated, code: CodeNotYetValid},
		{name: "leeway 1h clamped expired", rules: rules(func(r *Rules) { r.Leeway = time.Hour }), v: verified("alice", nil), now: expires.Add(61 * time.Second), kind: writ.KindUnauthenticated, code: CodeExpired},

		{name: "lifetime 24h", v: verified("alice", func(t *writ.Trigger) { t.ExpiresAt = t.IssuedAt.Add(24 * time.Hour) }), now: testNow},
		{name: "lifetime 24h+1s", v: verified("alice", func(t *writ.Trigger) { t.ExpiresAt = t.IssuedAt.Add(24*time.Hour + time.Second) }), now: testNow, kind: writ.KindInvalid, code: CodeLifetimeTooLong},
		{name: "lifetime over custom cap", rules: rules(func(r *Rules) { r.MaxLifetime = 30 * time.Minute }), v: verified("alice", nil), now: testNow, kind: writ.KindInvalid, code: CodeLifetimeTooLong},

		{name: "unknown agent", v: verified("alice", func(t *writ.Trigger) { t.Agent = "ghost-bot" }), now: testNow, kind: writ.KindInvalid, code: CodeUnknownAgent},
		{name: "unknown profile", v: verified("alice", func(t *writ.Trigger) { t.Profile = "yolo" }), now: testNow, kind: writ.KindInvalid, code: CodeUnknownProfile},
		{name: "agent disabled", v: verified("alice", func(t *writ.Trigger) { t.Agent = "old-bot" }), now: testNow, kind: writ.KindDenied, code: CodeAgentDisabled},
		{name: "signer may not trigger agent", v: verified("tickets", func(t *writ.Trigger) { t.Issuer = "tickets"; t.Agent = "review-bot"; t.Profile = "review" }), now: testNow, kind: writ.KindDenied, code: CodeSignerNotAllowed},
		{name: "signer may not trigger profile", v: verified("alice", func(t *writ.Trigger) { t.Profile = "release" }), now: testNow, kind: writ.KindDenied, code: CodeSignerNotAllowed},
		{name: "agent may not run profile", v: verified("alice", func(t *writ.Trigger) { t.Profile = "review" }), now: testNow, kind: writ.KindDenied, code: CodeProfileNotAllowed},
		{
			name: "scope too broad lists every item",
			v: verified("alice", func(t *writ.Trigger) {
				t.Scope.Repos = append(t.Scope.Repos,
					writ.RepoScope{Name: "other/x", Base: "main"},
					writ.RepoScope{Name: "acme/web", Base: "main"},
					writ.RepoScope{Name: "evil/y", Base: "main", Write: true})
				t.Scope.Tools = append(t.Scope.Tools, "shell:net", "mcp:everything/echo", "mcp:evil/*", "exec:rm")
				t.Scope.Hosts = []string{"proxy.golang.org", "evil.example.com", "docs.example.org", "*.example.org", "*.org"}
				t.Scope.Environments = []string{"staging", "production"}
				t.Scope.Secrets = []string{"db-password", "prod/*"}
			}),
			now:  testNow,
			kind: writ.KindDenied,
			code: CodeScopeTooBroad,
			items: []string{
				"repo:other/x", "repo:evil/y",
				"tool:shell:net", "tool:mcp:evil/*", "tool:exec:rm",
				"host:evil.example.com", "host:*.org",
				"environment:production",
				"secret:db-password", "secret:prod/*",
			},
		},
		{name: "duration at profile cap", v: verified("alice", func(t *writ.Trigger) { t.Scope.MaxDuration = writ.Duration(time.Hour) }), now: testNow},
		{name: "duration over profile cap", v: verified("alice", func(t *writ.Trigger) { t.Scope.MaxDuration = writ.Duration(time.Hour + time.Second) }), now: testNow, kind: writ.KindDenied, code: CodeDurationExceedsProfile},

		// Order: an earlier refusal wins.
		{name: "order issuer before expiry", v: verified("tickets", nil), now: expires.Add(time.Hour), kind: writ.KindUnauthenticated, code: CodeIssuerMismatch},
		{name: "order expiry before agent", v: verified("alice", func(t *writ.Trigger) { t.Agent = "ghost-bot" }), now: expires.Add(time.Hour), kind: writ.KindUnauthenticated, code: CodeExpired},
		{name: "order scope before duration", v: verified("alice", func(t *writ.Trigger) {
			t.Scope.Tools = []string{"shell:net"}
			t.Scope.MaxDuration = writ.Duration(10 * time.Hour)
		}), now: testNow, kind: writ.KindDenied, code: CodeScopeTooBroad, items: []string{"tool:shell:net"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rules
			if r == nil {
				r = f.rules
			}
			err := r.Check(tt.v, tt.now)
			kind, code := errCode(t, err)
			if kind != tt.kind || code != tt.code {
				t.Fatalf("Check = %v (kind %s); want kind %s code %q", err, kind, tt.kind, tt.code)
			}
			var e *writ.Error
			if errors.As(err, &e) {
				if diff := cmp.Diff(tt.items, e.Items); diff != "" {
					t.Errorf("Items mismatch (-want +got):\n%s", diff)
				}
				for _, it := range tt.items {
					if !strings.Contains(e.Message, it) {
						t.Errorf("message %q does not list %q", e.Message, it)
					}
				}
			}
		})
	}
}

func TestCheckAfterVerify(t *testing.T) {
	f := newFixture(t)
	for _, k := range []struct {
		name   string
		issuer string
		body   func([]byte) []byte
	}{
		{"alice dsse", "alice", func(p []byte) []byte { return signDSSE(t, p, f.alice) }},
		{"tickets ssh", "tickets", func(p []byte) []byte { return signSSH(t, p, f.tickets) }},
	} {
		t.Run(k.name, func(t *testing.T) {
			v, err := Verify(k.body(payload(t, func(t *writ.Trigger) { t.Issuer = k.issuer })), f.ring)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.rules.Check(v, testNow.Add(time.Minute)); err != nil {
				t.Errorf("Check = %v; want nil", err)
			}
		})
	}
	// alice signs a trigger naming tickets as issuer: the key decides.
	v, err := Verify(signDSSE(t, payload(t, func(t *writ.Trigger) { t.Issuer = "tickets" }), f.alice), f.ring)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rules.Check(v, testNow); writ.ErrorCode(err) != CodeIssuerMismatch {
		t.Errorf("Check = %v; want %s", err, CodeIssuerMismatch)
	}
}
