package writ_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/writ-dev/writ"
)

func TestActionValidate(t *testing.T) {
	sha := strings.Repeat("a", 40)
	ok := []writ.Action{
		{Kind: "tool", Name: "shell:test"},
		{Kind: "tool", Name: "exec:build"},
		{Kind: "mcp.call", Name: "mcp:everything/echo"},
		{Kind: "egress", Name: "proxy.golang.org:443"},
		{Kind: "credential", Name: "git", Target: writ.Target{Repo: "acme/api"}},
		{Kind: "git.push", Target: writ.Target{Repo: "acme/api", Ref: "refs/heads/writ/x/y", Paths: []string{"src/a.go", ".github/workflows/ci.yml"}}},
		{Kind: "merge", Target: writ.Target{Repo: "acme/api", Ref: "main", Base: sha, Head: sha}},
		{Kind: "release", Target: writ.Target{Digest: "sha256:" + strings.Repeat("0", 64), Environment: "production"}},
		{Kind: "tool", Name: "read", Args: json.RawMessage(`{"file_path": "/etc/hosts"}`)},
	}
	for _, a := range ok {
		if err := a.Validate(); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
	bad := []struct {
		a    writ.Action
		code string
	}{
		{writ.Action{Kind: "exec"}, "invalid_action"},
		{writ.Action{Kind: "tool", Name: "bash"}, "invalid_action"},
		{writ.Action{Kind: "tool", Name: "mcp:everything/echo"}, "invalid_action"},
		{writ.Action{Kind: "mcp.call", Name: "shell:test"}, "invalid_action"},
		{writ.Action{Kind: "mcp.call", Name: "mcp:everything/*"}, "invalid_action"},
		{writ.Action{Kind: "egress", Name: "proxy.golang.org"}, "invalid_action"},
		{writ.Action{Kind: "egress", Name: "*.golang.org:443"}, "invalid_action"},
		{writ.Action{Kind: "egress", Name: "proxy.golang.org:70000"}, "invalid_action"},
		{writ.Action{Kind: "credential", Name: "Secret Stuff"}, "invalid_action"},
		{writ.Action{Kind: "tool", Name: "read", Args: json.RawMessage(`{"a":`)}, "invalid_action"},
		{writ.Action{Kind: "tool", Name: "read", Args: json.RawMessage(`"` + strings.Repeat("x", writ.MaxActionArgs) + `"`)}, "too_large"},
		{writ.Action{Kind: "git.push", Target: writ.Target{Repo: "acme/../etc"}}, "invalid_target"},
		{writ.Action{Kind: "git.push", Target: writ.Target{Repo: "acme/api", Ref: "main..x"}}, "invalid_target"},
		{writ.Action{Kind: "git.push", Target: writ.Target{Repo: "acme/api", Paths: []string{"/etc/passwd"}}}, "invalid_target"},
		{writ.Action{Kind: "git.push", Target: writ.Target{Repo: "acme/api", Paths: []string{"src/../../x"}}}, "invalid_target"},
		{writ.Action{Kind: "git.push", Target: writ.Target{Repo: "acme/api", Paths: []string{"src/*"}}}, "invalid_target"},
		{writ.Action{Kind: "git.push", Target: writ.Target{Repo: "acme/api", Paths: make([]string, writ.MaxActionPaths+1)}}, "too_large"},
		{writ.Action{Kind: "release", Target: writ.Target{Digest: "sha256:xyz"}}, "invalid_target"},
		{writ.Action{Kind: "release", Target: writ.Target{Environment: "Prod"}}, "invalid_target"},
		{writ.Action{Kind: "merge", Target: writ.Target{Head: "HEAD"}}, "invalid_target"},
		{writ.Action{Kind: "credential", Name: "secret", Target: writ.Target{Secret: "../x"}}, "invalid_target"},
	}
	for _, c := range bad {
		err := c.a.Validate()
		if writ.ErrorCode(err) != c.code {
			t.Errorf("%+v: got %v, want %s", c.a.Kind+" "+c.a.Name, err, c.code)
		}
	}
}

func TestVerdictPrecedence(t *testing.T) {
	deny := []writ.Reason{{Code: "no"}}
	appr := []writ.ApprovalReason{{Reason: writ.Reason{Code: "a"}, Group: "g", Count: 1}, {Reason: writ.Reason{Code: "b"}, Group: "h", Count: 2}}
	cases := []struct {
		r     writ.PolicyResult
		want  string
		code  string
		count int
	}{
		{writ.PolicyResult{Deny: deny, Approval: appr, Allow: true}, writ.VerdictDeny, "no", 0},
		{writ.PolicyResult{Approval: appr, Allow: true}, writ.VerdictApprovalRequired, "a", 2},
		{writ.PolicyResult{Allow: true}, writ.VerdictAllow, "", 0},
		{writ.PolicyResult{}, writ.VerdictDeny, "no_rule_allowed", 0},
	}
	for _, c := range cases {
		v, reasons, a := c.r.Verdict()
		if v != c.want || (c.code != "" && reasons[0].Code != c.code) || (c.count > 0 && (a == nil || a.Count != c.count || a.Group != "h")) {
			t.Errorf("%+v: got %s %v %+v", c.r, v, reasons, a)
		}
		if v == writ.VerdictAllow && len(reasons) != 0 {
			t.Errorf("allow with reasons %v", reasons)
		}
	}
}
