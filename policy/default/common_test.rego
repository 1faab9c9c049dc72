# Tests of common.rego: the rules every profile shares.
package writ

# ------------------------------------------------------ run and profile

test_run_not_active_denied if {
	r := decide({"run": {"state": "suspended"}})
	denied(r, "run_not_active")
	r.allow == false
}

test_run_state_missing_denied if denied(decide({"run": {"state": null}}), "run_not_active")

test_run_active_not_denied if not_denied(decide({}), "run_not_active")

test_unknown_profile_denied if {
	r := decide(as_profile("cowboy", {}))
	denied(r, "unknown_profile")
	r.allow == false
}

test_unknown_profile_without_config if {
	r := result with input as mock_input with data.writ.config as {}
	denied(r, "unknown_profile")
	r.allow == false
}

# With no writ.yaml at all the result is still defined, denies, and approvals name the default group.
test_no_config_at_all if {
	r := result with input as object.union(mock_input, merge)
	denied(r, "unknown_profile")
	asked(r, "merge_requires_approval", 1)
}

# Allowable actions, one per allow rule (review has its own, in profiles_test.rego).
allowable := [
	{},
	{"action": {"kind": "mcp.call", "name": "mcp:everything/echo"}},
	egress(true),
	fetch,
	push,
	git_cred("read"),
	{"action": {"kind": "delegate", "name": "refactor-bot", "args": {"profile": "refactor"}}},
	{"action": {"kind": "build", "name": "go"}},
]

# Every allow rule requires an active run with a configured profile.
test_nothing_allowed_unless_active_and_known if {
	every p in allowable {
		allowed(decide(p))
		decide(object.union(p, {"run": {"state": "suspended"}})).allow == false
		decide(as_profile("cowboy", p)).allow == false
	}
}

test_configured_generic_profile_known if not_denied(decide(as_profile("docs", {})), "unknown_profile")

test_run_start_denied if denied(decide({"action": {"kind": "run.start", "name": "run"}}), "action_not_allowed")

test_other_actions_not_action_not_allowed if not_denied(decide(fetch), "action_not_allowed")

# ---------------------------------------------------------------- tools

test_tool_not_in_scope_denied if {
	r := decide({"action": {"name": "shell:net"}, "context": {"toolInScope": false}})
	denied(r, "tool_not_in_scope")
	r.allow == false
}

test_tool_in_scope_missing_fact_denied if denied(decide({"context": {"toolInScope": null}}), "tool_not_in_scope")

test_mcp_not_in_scope_denied if denied(decide({"action": {"kind": "mcp.call", "name": "mcp:evil/x"}, "context": {"toolInScope": false}}), "tool_not_in_scope")

test_tool_in_scope_allowed if allowed(decide({"action": {"name": "shell:test"}}))

test_tool_scope_only_for_tools if not_denied(decide(object.union(fetch, {"context": {"toolInScope": false}})), "tool_not_in_scope")

test_mcp_in_scope_allowed if allowed(decide({"action": {"kind": "mcp.call", "name": "mcp:everything/echo"}}))

test_mcp_path_outside_workspace_denied if {
	r := decide({"action": {"kind": "mcp.call", "name": "mcp:fs/read_file"}, "context": {"args": {"paths": ["/etc/passwd"], "outsideWorkspace": ["/etc/passwd"], "hosts": [], "hostsOutsideScope": []}}})
	denied(r, "path_outside_workspace")
}

test_mcp_path_inside_workspace_allowed if allowed(decide({"action": {"kind": "mcp.call", "name": "mcp:everything/echo"}, "context": {"args": {"paths": ["/ws/a"], "outsideWorkspace": [], "hosts": [{"name": "proxy.golang.org", "inScope": true}], "hostsOutsideScope": []}}}))

test_mcp_url_host_not_in_scope_denied if denied(decide({"action": {"kind": "mcp.call", "name": "mcp:everything/echo"}, "context": {"args": {"paths": [], "outsideWorkspace": [], "hosts": [{"name": "evil.example", "inScope": false}], "hostsOutsideScope": ["evil.example"]}}}), "host_not_in_scope")

# --------------------------------------------------------------- egress

egress(in_scope) := {"action": {"kind": "egress", "name": "evil.example:443"}, "context": {"host": {"name": "evil.example", "inScope": in_scope}}}

test_host_not_in_scope_denied if {
	r := decide(egress(false))
	denied(r, "host_not_in_scope")
	r.allow == false
}

test_host_in_scope_allowed if allowed(decide(egress(true)))

test_host_in_scope_allows_only_egress if decide(as_profile("docs", object.union(egress(true), {"action": {"kind": "build"}}))).allow == false

test_host_in_scope_allowed_for_review if allowed(decide(as_profile("review", egress(true))))

# ------------------------------------------------------------------ git

test_fetch_allowed if allowed(decide(fetch))

test_fetch_allowed_for_review if allowed(decide(as_profile("review", fetch)))

test_fetch_repo_not_in_scope_denied if {
	r := decide(object.union(fetch, {"context": repo_ctx(false, false)}))
	denied(r, "repo_not_in_scope")
	r.allow == false
}

test_fetch_without_repo_denied if denied(decide({"action": {"kind": "git.fetch", "name": "x"}}), "repo_not_in_scope")

test_push_allowed if allowed(decide(push))

# Out of scope, the other push checks stay quiet: repo_not_in_scope says it all.
test_push_repo_not_in_scope_denied if {
	r := decide(object.union(push, {"context": {
		"repo": {"inScope": false, "write": false, "protected": true, "runBranch": false},
		"paths": {"outsideScope": ["x"], "protected": ["CODEOWNERS"]},
	}}))
	denied(r, "repo_not_in_scope")
	count(r.deny) == 1
	count(r.approval) == 0
	r.allow == false
}

test_push_repo_read_only_denied if {
	r := decide(object.union(push, {"context": {"repo": {"write": false}}}))
	denied(r, "repo_read_only")
	not denied(r, "repo_not_in_scope")
}

test_push_writable_not_read_only if not_denied(decide(push), "repo_read_only")

test_push_protected_branch_denied if {
	r := decide(object.union(push, {"context": {"repo": {"branch": "main", "protected": true, "runBranch": false}}}))
	denied(r, "protected_branch")
	some d in r.deny
	d.code == "protected_branch"
	contains(d.message, "writ merge")
	not denied(r, "push_outside_run_branch")
}

test_push_unprotected_branch_not_denied if not_denied(decide(push), "protected_branch")

test_push_outside_run_branch_denied if {
	r := decide(object.union(push, {"context": {"repo": {"branch": "feature/x", "runBranch": false}}}))
	some d in r.deny
	d.code == "push_outside_run_branch"
	contains(d.message, "writ/01jtest/")
}

test_push_run_branch_fact_missing_denied if denied(decide(object.union(push, {"context": {"repo": {"runBranch": null}}})), "push_outside_run_branch")

test_push_on_run_branch_not_denied if not_denied(decide(push), "push_outside_run_branch")

test_push_path_not_in_scope_denied if {
	r := decide(object.union(push, {"context": {"paths": {"outsideScope": ["go.mod", "cmd/main.go"]}}}))
	some d in r.deny
	d.code == "path_not_in_scope"
	contains(d.message, "cmd/main.go, go.mod")
}

test_push_paths_in_scope_not_denied if not_denied(decide(push), "path_not_in_scope")

# ------------------------------------------------------- protected paths

test_protected_path_configured_needs_approval if {
	r := decide(object.union(push, {"context": {"paths": {"protected": ["CODEOWNERS"]}}}))
	asked(r, "protected_path", 1)
	count(r.deny) == 0
}

test_protected_path_workflow_builtin if asked(decide(push_changing(["src/a.go", ".github/workflows/ci.yml"])), "protected_path", 1)

test_protected_path_gitlab_ci_builtin if asked(decide(push_changing([".gitlab-ci.yml"])), "protected_path", 1)

test_protected_path_codeowners_builtin if {
	asked(decide(push_changing(["CODEOWNERS"])), "protected_path", 1)
	asked(decide(push_changing([".github/CODEOWNERS"])), "protected_path", 1)
	asked(decide(push_changing(["docs/CODEOWNERS"])), "protected_path", 1)
}

test_protected_path_policy_builtin if {
	asked(decide(push_changing(["policy/default/writ.rego"])), "protected_path", 1)
	asked(decide(push_changing([".writ/config.yaml"])), "protected_path", 1)
}

test_protected_path_message_lists_paths if {
	r := decide(push_changing([".github/workflows/ci.yml", "CODEOWNERS"]))
	some a in r.approval
	contains(a.message, ".github/workflows/ci.yml, CODEOWNERS")
}

test_ordinary_paths_need_no_approval if {
	r := decide(push_changing(["src/policy/x.go", "src/CODEOWNERS.md", "docs/ci.md", "src/.github/workflows/x"]))
	allowed(r)
}

# Go's list of changed paths and the action's own list each count.
test_protected_path_from_context_paths if asked(decide(object.union(push, {"context": {"paths": {"changed": ["CODEOWNERS"]}}})), "protected_path", 1)

test_protected_path_from_target_paths if asked(decide(object.union(push, {"action": {"target": {"paths": ["CODEOWNERS"]}}})), "protected_path", 1)

test_protected_path_only_on_push if count(decide(object.union(fetch, {"context": {"paths": {"protected": ["CODEOWNERS"]}}})).approval) == 0

# ---------------------------------------------------------- credentials

test_git_credential_allowed if {
	r := decide(git_cred("read"))
	allowed(r)
	r.obligations.maxTTL == "5m"
}

test_git_credential_allow_needs_git_and_scope if {
	decide(object.union(git_cred("read"), {"context": repo_ctx(false, false)})).allow == false
	decide(object.union(git_cred("read"), {"action": {"name": "postgres"}})).allow == false
	decide(as_profile("docs", object.union(git_cred("read"), {"action": {"kind": "build"}}))).allow == false
}

test_git_credential_write_allowed if allowed(decide(git_cred("write")))

test_git_credential_repo_not_in_scope_denied if denied(decide(object.union(git_cred("read"), {"context": repo_ctx(false, false)})), "repo_not_in_scope")

test_git_credential_without_repo_denied if denied(decide({"action": {"kind": "credential", "name": "git"}}), "repo_not_in_scope")

test_git_credential_write_read_only_denied if denied(decide(object.union(git_cred("write"), {"context": repo_ctx(true, false)})), "repo_read_only")

test_git_credential_read_on_read_only_repo_allowed if allowed(decide(object.union(git_cred("read"), {"context": repo_ctx(true, false)})))

test_credential_kind_not_allowed_denied if {
	r := decide({"action": {"kind": "credential", "name": "postgres"}})
	denied(r, "credential_kind_not_allowed")
	r.obligations.maxTTL == "5m"
}

test_credential_kind_not_allowed_for_generic if denied(decide(as_profile("ops", {"action": {"kind": "credential", "name": "vault"}})), "credential_kind_not_allowed")

test_credential_kind_allowed_for_release if not_denied(decide(as_profile("release", {"action": {"kind": "credential", "name": "postgres"}})), "credential_kind_not_allowed")

test_credential_git_not_kind_denied if not_denied(decide(git_cred("read")), "credential_kind_not_allowed")

# --------------------------------------------------------- merge, build

test_merge_repo_not_in_scope_denied if denied(decide(object.union(merge, {"context": repo_ctx(false, false)})), "repo_not_in_scope")

test_merge_read_only_denied if denied(decide(object.union(merge, {"context": repo_ctx(true, false)})), "repo_read_only")

test_merge_in_scope_not_denied if count(decide(merge).deny) == 0

test_build_repo_not_in_scope_denied if {
	r := decide({"action": {"kind": "build", "name": "go", "target": {"repo": "other/repo"}}, "context": repo_ctx(false, false)})
	denied(r, "repo_not_in_scope")
}

# Only git actions, merges, git credentials and builds are held to the repository scope.
test_repo_scope_only_for_repo_actions if allowed(decide({"action": {"target": {"repo": "other/repo"}}, "context": repo_ctx(false, false)}))

test_build_without_repo_not_denied if not_denied(decide({"action": {"kind": "build", "name": "go"}}), "repo_not_in_scope")

# ------------------------------------------------------------------ edits

edit_of(paths, outside) := {
	"action": {"kind": "tool", "name": "edit", "target": {"paths": paths}},
	"context": {"paths": {"changed": paths, "outsideScope": outside, "protected": []}},
}

test_edit_in_scope_allowed if {
	r := decide(edit_of(["src/a.go"], []))
	r.allow
	count(r.deny) == 0
	count(r.approval) == 0
}

test_edit_outside_scope_denied if {
	r := decide(edit_of(["src/a.go", "Makefile"], ["Makefile"]))
	some d in r.deny
	d.code == "path_not_in_scope"
	contains(d.message, "Makefile")
	contains(d.message, "src/**")
}

test_edit_of_workflow_needs_approval if asked(decide(edit_of([".github/workflows/ci.yml"], [])), "protected_path", 1)

test_edit_of_configured_protected_path_needs_approval if {
	r := decide(object.union(edit_of(["src/x.go"], []), {"context": {"paths": {"protected": ["src/x.go"]}}}))
	asked(r, "protected_path", 1)
}

test_edit_without_paths_is_a_tool_call if {
	r := decide({"action": {"kind": "tool", "name": "edit", "target": {}}})
	r.allow
	count(r.approval) == 0
}

test_read_of_protected_path_needs_nothing if {
	r := decide({"action": {"kind": "tool", "name": "read", "target": {"paths": [".github/workflows/ci.yml"]}}, "context": {"paths": {"changed": [".github/workflows/ci.yml"]}}})
	count(r.approval) == 0
}

test_message_names_repo_from_context if {
	r := decide(object.union(push, {"action": {"target": {"repo": "", "ref": "main"}}, "context": {"repo": {"branch": "main", "protected": true, "runBranch": false}}}))
	some d in r.deny
	d.code == "protected_branch"
	contains(d.message, "acme/api")
}

# ------------------------------------------------ broker credential rules

cred_config := {"credentials": {"kinds": ["git", "secret", "postgres", "vault", "github"], "postgres": {"app": ["read:public", "write:app"]}, "vault": ["database/creds/readonly"]}}

pg_cred(perms) := {"action": {"kind": "credential", "name": "postgres", "args": {"target": "app", "permissions": perms, "ttl": "5m0s", "ttlSeconds": 300}}}

github_cred(perms) := {
	"action": {"kind": "credential", "name": "github", "args": {"target": "acme/api", "permissions": perms, "ttlSeconds": 300}, "target": {"repo": "acme/api"}},
	"context": repo_ctx(true, true),
}

test_credential_kind_unknown_denied if {
	r := decide_with({"action": {"kind": "credential", "name": "aws", "args": {"target": "x", "permissions": ["read"]}}}, cred_config)
	denied(r, "credential_kind_unknown")
}

test_credential_kind_configured_not_unknown if not_denied(decide_with(git_cred("read"), cred_config), "credential_kind_unknown")

test_credential_kind_unknown_only_with_broker_config if not_denied(decide({"action": {"kind": "credential", "name": "aws"}}), "credential_kind_unknown")

test_credential_ttl_over_cap_denied if {
	r := decide_with(object.union(git_cred("read"), {"action": {"args": {"ttlSeconds": 301}}}), cred_config)
	denied(r, "credential_ttl_too_long")
}

test_credential_ttl_at_cap_allowed if allowed(decide_with(object.union(git_cred("read"), {"action": {"args": {"ttlSeconds": 300}}}), cred_config))

test_git_credential_unknown_permission_denied if denied(decide_with(git_cred("admin"), cred_config), "credential_permissions_not_allowed")

test_postgres_permission_allowed_by_config if {
	r := decide_with(as_profile("release", pg_cred(["read:public"])), cred_config)
	not_denied(r, "credential_permissions_not_allowed")
	not_denied(r, "credential_target_unknown")
}

test_postgres_permission_beyond_config_denied if denied(decide_with(as_profile("release", pg_cred(["write:public"])), cred_config), "credential_permissions_not_allowed")

test_postgres_unknown_database_denied if {
	r := decide_with(as_profile("release", object.union(pg_cred(["read:public"]), {"action": {"args": {"target": "billing"}}})), cred_config)
	denied(r, "credential_target_unknown")
}

test_vault_unknown_path_denied if {
	r := decide_with(as_profile("release", {"action": {"kind": "credential", "name": "vault", "args": {"target": "aws/creds/admin", "permissions": ["read"]}}}), cred_config)
	denied(r, "credential_target_unknown")
}

test_vault_configured_path_not_unknown if {
	r := decide_with(as_profile("release", {"action": {"kind": "credential", "name": "vault", "args": {"target": "database/creds/readonly", "permissions": ["read"]}}}), cred_config)
	not_denied(r, "credential_target_unknown")
}

test_github_read_and_issues_allowed_for_release if {
	r := decide_with(as_profile("release", github_cred(["contents:read", "issues:write", "pull_requests:write"])), cred_config)
	count(r.deny) == 0
}

test_github_contents_write_denied if denied(decide_with(as_profile("release", github_cred(["contents:write"])), cred_config), "credential_permissions_not_allowed")

test_github_workflows_denied if denied(decide_with(as_profile("release", github_cred(["workflows:write"])), cred_config), "credential_permissions_not_allowed")

test_github_repo_out_of_scope_denied if {
	r := decide_with(as_profile("release", object.union(github_cred(["contents:read"]), {"context": repo_ctx(false, false)})), cred_config)
	denied(r, "repo_not_in_scope")
}

test_secret_write_permission_denied if {
	r := decide_with(as_profile("release", object.union(secret(true), {"action": {"args": {"target": "production/db", "permissions": ["write"]}}})), cred_config)
	denied(r, "credential_permissions_not_allowed")
}
