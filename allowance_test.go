package writ_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/writ-dev/writ"
)

func testAgent() *writ.Agent {
	return &writ.Agent{Name: "refactor-bot", Owner: "alice", Profiles: []string{"refactor"}, Repos: []string{"acme/*", "tools/lint"}}
}

func testProfile() *writ.Profile {
	return &writ.Profile{
		Name:         "refactor",
		MaxDuration:  time.Hour,
		Tools:        []string{"read", "edit", "shell:build", "shell:test", "mcp:everything/*"},
		Hosts:        []string{"proxy.golang.org", "*.githubusercontent.com"},
		Environments: []string{"staging", "preview-*"},
		Secrets:      false,
	}
}

func TestScopeOutside(t *testing.T) {
	tests := []struct {
		name    string
		scope   writ.Scope
		profile func(*writ.Profile)
		want    []string
	}{
		{
			name: "everything fits",
			scope: writ.Scope{
				Repos:        []writ.RepoScope{{Name: "acme/api", Base: "main"}, {Name: "tools/lint", Base: "main"}},
				Tools:        []string{"read", "shell:test", "mcp:everything/echo", "mcp:everything/*"},
				Hosts:        []string{"proxy.golang.org", "raw.githubusercontent.com", "*.githubusercontent.com"},
				Environments: []string{"staging", "preview-42"},
			},
		},
		{
			name:  "empty scope fits",
			scope: writ.Scope{},
		},
		{
			name: "every item outside is listed, in order",
			scope: writ.Scope{
				Repos:        []writ.RepoScope{{Name: "acme/api"}, {Name: "other/x"}, {Name: "tools/fmt"}},
				Tools:        []string{"read", "shell:net", "mcp:other/echo", "exec:deploy"},
				Hosts:        []string{"proxy.golang.org", "evil.example", "githubusercontent.com", "*.com"},
				Environments: []string{"staging", "production", "preview"},
				Secrets:      []string{"db/password", "npm-token"},
			},
			want: []string{
				"repo:other/x", "repo:tools/fmt",
				"tool:shell:net", "tool:mcp:other/echo", "tool:exec:deploy",
				"host:evil.example", "host:githubusercontent.com", "host:*.com",
				"environment:production", "environment:preview",
				"secret:db/password", "secret:npm-token",
			},
		},
		{
			name:  "a repo pattern does not reach across owners",
			scope: writ.Scope{Repos: []writ.RepoScope{{Name: "acme-evil/api"}}},
			want:  []string{"repo:acme-evil/api"},
		},
		{
			name:  "a tool wildcard in the scope needs a wildcard in the profile",
			scope: writ.Scope{Tools: []string{"mcp:everything/*", "mcp:files/*"}},
			profile: func(p *writ.Profile) {
				p.Tools = []string{"mcp:files/read"}
			},
			want: []string{"tool:mcp:everything/*", "tool:mcp:files/*"},
		},
		{
			name:    "secrets allowed by the profile",
			scope:   writ.Scope{Secrets: []string{"db/password"}},
			profile: func(p *writ.Profile) { p.Secrets = true },
		},
		{
			name:  "secrets refused by the profile",
			scope: writ.Scope{Secrets: []string{"db/password"}},
			want:  []string{"secret:db/password"},
		},
		{
			name:    "empty profile lists refuse everything",
			scope:   writ.Scope{Tools: []string{"read"}, Hosts: []string{"a.b"}, Environments: []string{"staging"}},
			profile: func(p *writ.Profile) { p.Tools, p.Hosts, p.Environments = nil, nil, nil },
			want:    []string{"tool:read", "host:a.b", "environment:staging"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProfile()
			if tt.profile != nil {
				tt.profile(p)
			}
			got := tt.scope.Outside(testAgent(), p)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Outside() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func validScope() writ.Scope {
	return writ.Scope{
		Repos:        []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**", "docs/**"}}},
		Tools:        []string{"read", "edit", "shell:build", "shell:test", "mcp:everything/echo"},
		Hosts:        []string{"proxy.golang.org", "*.example.org"},
		Environments: []string{"staging"},
		Secrets:      []string{"db/password", "ci/**"},
		MaxDuration:  writ.Duration(30 * time.Minute),
	}
}

func TestScopeValidate(t *testing.T) {
	valid := validScope()
	if err := valid.Validate(); err != nil {
		t.Fatalf("Validate(valid scope) = %v", err)
	}
	if err := (&writ.Scope{MaxDuration: writ.Duration(time.Minute)}).Validate(); err != nil {
		t.Errorf("Validate(empty scope with a duration) = %v; want nil", err)
	}
	tests := []struct {
		name    string
		change  func(*writ.Scope)
		wantErr string // a substring of the error
	}{
		{"no duration", func(s *writ.Scope) { s.MaxDuration = 0 }, "maxDuration"},
		{"negative duration", func(s *writ.Scope) { s.MaxDuration = writ.Duration(-time.Minute) }, "maxDuration"},
		{"bad repo name", func(s *writ.Scope) { s.Repos[0].Name = "acme/../x" }, "scope.repos[0].name"},
		{"repo with leading dot", func(s *writ.Scope) { s.Repos[0].Name = ".acme/api" }, "scope.repos[0].name"},
		{"repo pattern instead of a name", func(s *writ.Scope) { s.Repos[0].Name = "acme/*" }, "scope.repos[0].name"},
		{"repo listed twice", func(s *writ.Scope) { s.Repos = append(s.Repos, s.Repos[0]) }, "listed twice"},
		{"no base", func(s *writ.Scope) { s.Repos[0].Base = "" }, "scope.repos[0].base"},
		{"bad base", func(s *writ.Scope) { s.Repos[0].Base = "main..x" }, "scope.repos[0].base"},
		{"absolute path", func(s *writ.Scope) { s.Repos[0].Paths = []string{"/etc/**"} }, "scope.repos[0].paths"},
		{"dot-dot path", func(s *writ.Scope) { s.Repos[0].Paths = []string{"src/../../x"} }, "scope.repos[0].paths"},
		{"bad tool", func(s *writ.Scope) { s.Tools = append(s.Tools, "shell:*") }, "scope.tools"},
		{"bad host", func(s *writ.Scope) { s.Hosts = append(s.Hosts, "*") }, "scope.hosts"},
		{"environment pattern", func(s *writ.Scope) { s.Environments = []string{"prod*"} }, "scope.environments"},
		{"bad secret", func(s *writ.Scope) { s.Secrets = []string{"../x"} }, "scope.secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validScope()
			tt.change(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v; want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	var d writ.Duration
	if err := d.UnmarshalJSON([]byte(`"1h30m"`)); err != nil || d.D() != 90*time.Minute {
		t.Errorf(`UnmarshalJSON("1h30m") = %v, %v; want 1h30m`, d.D(), err)
	}
	for _, in := range []string{`90`, `"90"`, `"abc"`, `null`, `""`} {
		var d writ.Duration
		if err := d.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSON(%s) = %v, nil; want an error", in, d.D())
		}
	}
	b, err := writ.Duration(30 * time.Minute).MarshalJSON()
	if err != nil || string(b) != `"30m0s"` {
		t.Errorf("MarshalJSON(30m) = %s, %v; want \"30m0s\"", b, err)
	}
}

func TestInGroupAndNames(t *testing.T) {
	s := &writ.Signer{Name: "alice", Kind: writ.SignerHuman, Groups: []string{"maintainers", "admins"}}
	if !s.InGroup("admins") || s.InGroup("admin") || s.InGroup("") {
		t.Errorf("Signer.InGroup gives wrong answers for groups %v", s.Groups)
	}
	if !writ.MatchAnyName([]string{"*"}, "refactor-bot") || !writ.MatchAnyName([]string{"x", "refactor-*"}, "refactor-bot") {
		t.Error("MatchAnyName misses a match")
	}
	if writ.MatchAnyName(nil, "a") || writ.MatchAnyName([]string{"review"}, "refactor") {
		t.Error("MatchAnyName matches what it should not")
	}
}
