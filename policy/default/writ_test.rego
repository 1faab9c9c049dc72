# Test helpers shared by every *_test.rego, and the tests of writ.rego.
package writ

# ---------------------------------------------------------------- helpers

# The writ.yaml every test decides against (mock_config_with varies it).
mock_config := {
	"profiles": {
		"refactor": {
			"tools": ["read", "edit", "shell:build", "shell:test", "shell:git"],
			"hosts": ["proxy.golang.org"], "environments": [], "secrets": false, "maxDuration": "1h0m0s",
			"budgets": {"callsPerMinute": 120, "totalCalls": 2000, "children": 3},
		},
		"review": {"tools": ["read", "web:fetch", "web:search"], "secrets": false, "budgets": {"callsPerMinute": 0, "totalCalls": 0, "children": 0}},
		"release": {"tools": ["read", "shell:build"], "environments": ["staging", "production"], "secrets": true},
		"docs": {"tools": ["read", "edit"], "secrets": false},
		"ops": {"tools": ["read"], "secrets": true},
	},
	"environments": {"production": {"sensitive": true}, "staging": {"sensitive": false}},
	"repos": {"acme/api": {"protected": ["main", "release/*"], "protectedPaths": [".github/workflows/**", "CODEOWNERS"]}},
	"denials": {"max": 5, "window": "10m0s"},
	"approvers": "maintainers",
}

# The base input: an active, enforced refactor run reading a file, scope acme/api src/** write.
mock_input := {
	"action": {"kind": "tool", "name": "read", "args": {}, "target": {}},
	"via": "api",
	"enforced": true,
	"run": {
		"id": "01jtest", "agent": "refactor-bot", "profile": "refactor", "issuer": "alice",
		"scope": {
			"repos": [{"name": "acme/api", "base": "main", "write": true, "paths": ["src/**"]}],
			"tools": ["read", "edit", "shell:build", "shell:test"],
			"hosts": ["proxy.golang.org"], "environments": [], "secrets": [], "maxDuration": "30m0s",
		},
		"depth": 0, "parent": "", "state": "active", "branchPrefix": "writ/01jtest/",
	},
	"history": {"actions": [], "counts": {"total": 0, "lastMinute": 0, "denials": 0, "children": 0}, "allowed": {}},
	"context": {"time": "2026-11-25T20:00:00Z", "hour": 20, "weekday": "Wednesday", "remainingSeconds": 1500, "toolInScope": true},
}

# decide is data.writ.result for the base input deep-merged with patch.
decide(patch) := r if {
	r := result with input as object.union(mock_input, patch) with data.writ.config as mock_config
}

# decide_with is decide under the mock config deep-merged with config_patch.
decide_with(patch, config_patch) := r if {
	r := result with input as object.union(mock_input, patch) with data.writ.config as object.union(mock_config, config_patch)
}

# as_profile switches the run to profile p.
as_profile(p, patch) := object.union({"run": {"profile": p}}, patch)

# denied holds if result r carries a deny reason with this code.
denied(r, code) if {
	some d in r.deny
	d.code == code
}

# not_denied holds if r is a result (so an undefined one fails the test) without a deny reason of this code.
not_denied(r, code) if {
	is_set(r.deny)
	not denied(r, code)
}

# asked holds if r requests an approval with this code, from n maintainers.
asked(r, code, n) if {
	some a in r.approval
	a.code == code
	a.count == n
	a.group == "maintainers"
}

# clean holds if r denies nothing and asks for no approval.
clean(r) if {
	count(r.deny) == 0
	count(r.approval) == 0
}

# allowed holds if r would be allowed: allow, and nothing denied or gated.
allowed(r) if {
	r.allow == true
	clean(r)
}

# Patches for the usual actions.
push := {
	"action": {"kind": "git.push", "name": "acme/api", "target": {"repo": "acme/api", "ref": "writ/01jtest/fix", "paths": ["src/a.go"]}},
	"context": {
		"repo": {"name": "acme/api", "inScope": true, "write": true, "base": "main", "branch": "writ/01jtest/fix", "protected": false, "runBranch": true},
		"paths": {"changed": ["src/a.go"], "outsideScope": [], "protected": []},
	},
}

# push_changing is a push of the given paths, none outside scope or configured as protected.
push_changing(paths) := object.union(push, {"action": {"target": {"paths": paths}}, "context": {"paths": {"changed": paths}}})

repo_ctx(in_scope, write) := {"repo": {"name": "acme/api", "inScope": in_scope, "write": write, "base": "main", "branch": "", "protected": false, "runBranch": false}}

fetch := {"action": {"kind": "git.fetch", "name": "acme/api", "target": {"repo": "acme/api"}}, "context": repo_ctx(true, true)}

merge := {"action": {"kind": "merge", "name": "acme/api", "target": {"repo": "acme/api", "ref": "writ/01jtest/fix"}}, "context": repo_ctx(true, true)}

git_cred(permissions) := {
	"action": {"kind": "credential", "name": "git", "args": {"target": "acme/api", "permissions": [permissions], "ttl": "5m0s", "ttlSeconds": 300}, "target": {"repo": "acme/api"}},
	"context": repo_ctx(true, true),
}

secret(in_scope) := {
	"action": {"kind": "credential", "name": "secret", "target": {"secret": "db/password"}},
	"context": {"secret": {"name": "db/password", "inScope": in_scope}},
}

# release_to is a release to env, in scope or not, sensitive or not.
release_to(env, in_scope, sensitive) := {
	"action": {"kind": "release", "name": "app", "target": {"environment": env, "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}},
	"context": {"environment": {"name": env, "inScope": in_scope, "sensitive": sensitive}},
}

# ------------------------------------------------------------ writ.rego

# result carries exactly the five fields of the contract, with their types.
test_result_shape if {
	r := decide({})
	object.keys(r) == {"deny", "approval", "allow", "obligations", "alerts"}
	is_set(r.deny)
	is_set(r.approval)
	is_boolean(r.allow)
	is_boolean(r.obligations.suspend)
	is_set(r.alerts)
}

test_result_allows_tool_in_scope if allowed(decide({}))

# default allow: an action no rule allows is not allowed, with no reason of its own (Go adds no_rule_allowed).
test_default_allow_false if {
	r := decide(as_profile("docs", {"action": {"kind": "build", "name": "go"}}))
	r.allow == false
	clean(r)
}

test_deny_collects_violations if {
	r := decide({"run": {"state": "suspended"}, "context": {"toolInScope": false}})
	denied(r, "run_not_active")
	denied(r, "tool_not_in_scope")
}

test_deny_empty_when_nothing_wrong if count(decide({}).deny) == 0

test_obligations_suspend_false_by_default if {
	r := decide({})
	r.obligations == {"suspend": false}
	count(r.alerts) == 0
}

test_obligations_suspend_true_when_asked if {
	r := decide(as_profile("review", push))
	r.obligations.suspend == true
}

test_credential_max_ttl if decide(git_cred("read")).obligations.maxTTL == "5m"

test_credential_max_ttl_even_when_denied if {
	r := decide(secret(false))
	denied(r, "secrets_not_allowed")
	r.obligations.maxTTL == "5m"
}

test_no_max_ttl_for_other_actions if decide(fetch).obligations == {"suspend": false}

test_approval_group_from_config if {
	r := decide_with(merge, {"approvers": "release-managers"})
	some a in r.approval
	a.group == "release-managers"
}
