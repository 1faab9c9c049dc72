# Tests of profiles.rego: refactor, review, release and generic profiles.
package writ

# ---------------------------------------------------------------- tools

test_refactor_edit_allowed if allowed(decide({"action": {"name": "edit"}}))

test_generic_tool_allowed if allowed(decide(as_profile("docs", {"action": {"name": "edit"}})))

test_release_tool_allowed if allowed(decide(as_profile("release", {"action": {"name": "shell:build"}})))

test_tool_not_allowed_out_of_scope if decide({"action": {"name": "edit"}, "context": {"toolInScope": false}}).allow == false

test_review_read_allowed if allowed(decide(as_profile("review", {})))

test_review_web_allowed if {
	allowed(decide(as_profile("review", {"action": {"name": "web:fetch"}})))
	allowed(decide(as_profile("review", {"action": {"name": "web:search"}})))
}

test_review_mcp_allowed if allowed(decide(as_profile("review", {"action": {"kind": "mcp.call", "name": "mcp:everything/echo"}})))

test_review_mcp_out_of_scope_not_allowed if {
	r := decide(as_profile("review", {"action": {"kind": "mcp.call", "name": "mcp:x/y"}, "context": {"toolInScope": false}}))
	r.allow == false
	denied(r, "tool_not_in_scope")
}

# ----------------------------------------------------- review read-only

test_review_edit_denied if {
	r := decide(as_profile("review", {"action": {"name": "edit"}}))
	denied(r, "review_read_only")
	r.allow == false
}

test_review_shell_denied if denied(decide(as_profile("review", {"action": {"name": "shell:test"}})), "review_read_only")

test_review_push_denied if denied(decide(as_profile("review", push)), "review_read_only")

test_review_push_not_allowed if decide(as_profile("review", push)).allow == false

test_review_build_denied if {
	r := decide(as_profile("review", {"action": {"kind": "build", "name": "read"}}))
	denied(r, "review_read_only")
	r.allow == false
}

test_review_merge_denied if {
	r := decide(as_profile("review", merge))
	denied(r, "review_read_only")
	not asked(r, "merge_requires_approval", 1)
}

test_review_git_write_credential_denied if denied(decide(as_profile("review", git_cred("write"))), "review_read_only")

test_review_git_read_credential_allowed if allowed(decide(as_profile("review", git_cred("read"))))

test_review_other_write_credential_not_read_only if {
	r := decide(as_profile("review", {"action": {"kind": "credential", "name": "postgres", "args": {"permissions": "write"}}}))
	denied(r, "credential_kind_not_allowed")
	not denied(r, "review_read_only")
}

# What an action is named matters only for the kind it names: a review of "git" or "secret" is just a review.
test_names_of_other_kinds_mean_nothing if {
	allowed(decide(as_profile("review", {"action": {"kind": "review", "name": "git", "args": {"permissions": "write"}}, "context": repo_ctx(true, false)})))
	allowed(decide(as_profile("review", {"action": {"kind": "review", "name": "git", "args": {"permissions": "write"}}, "context": repo_ctx(false, false)})))
	allowed(decide(as_profile("review", {"action": {"kind": "review", "name": "secret"}, "context": {"secret": {"name": "x", "inScope": false}}})))
}

test_review_allowed_unless_active_and_known if {
	decide(as_profile("review", object.union(review, {"run": {"state": "ended"}}))).allow == false
	decide(as_profile("cowboy", review)).allow == false
}

test_refactor_not_read_only if {
	not denied(decide({"action": {"name": "edit"}}), "review_read_only")
	not denied(decide(push), "review_read_only")
}

# ------------------------------------------------------ delegate, review

delegate := {"action": {"kind": "delegate", "name": "refactor-bot", "args": {"agent": "refactor-bot", "profile": "refactor"}}}

review := {"action": {"kind": "review", "name": "acme/api"}}

test_delegate_allowed if allowed(decide(delegate))

test_delegate_allowed_for_generic if allowed(decide(as_profile("docs", delegate_to("docs"))))

test_review_delegate_denied if {
	r := decide(as_profile("review", delegate))
	denied(r, "delegate_not_allowed")
	r.allow == false
}

test_refactor_delegate_not_denied if not_denied(decide(delegate), "delegate_not_allowed")

test_review_action_allowed if allowed(decide(as_profile("review", review)))

test_refactor_review_action_denied if {
	r := decide(review)
	denied(r, "review_not_allowed")
	r.allow == false
}

test_release_review_action_denied if denied(decide(as_profile("release", review)), "review_not_allowed")

test_review_profile_review_not_denied if not_denied(decide(as_profile("review", review)), "review_not_allowed")

# ---------------------------------------------------------- build, merge

test_refactor_build_allowed if allowed(decide({"action": {"kind": "build", "name": "go"}}))

test_release_build_in_scope_allowed if allowed(decide(as_profile("release", {"action": {"kind": "build", "name": "go", "target": {"repo": "acme/api"}}, "context": repo_ctx(true, false)})))

test_build_repo_out_of_scope_not_allowed if decide({"action": {"kind": "build", "name": "go", "target": {"repo": "o/r"}}, "context": repo_ctx(false, false)}).allow == false

test_generic_build_not_allowed if decide(as_profile("docs", {"action": {"kind": "build", "name": "go"}})).allow == false

test_refactor_merge_needs_approval if {
	r := decide(merge)
	asked(r, "merge_requires_approval", 1)
	count(r.deny) == 0
}

test_release_merge_needs_approval if asked(decide(as_profile("release", merge)), "merge_requires_approval", 1)

test_merge_out_of_scope_no_approval if {
	r := decide(object.union(merge, {"context": repo_ctx(false, false)}))
	not asked(r, "merge_requires_approval", 1)
	denied(r, "repo_not_in_scope")
}

test_merge_never_plain_allowed if decide(merge).allow == false

# --------------------------------------------------------------- secrets

test_refactor_secret_denied if {
	r := decide(secret(true))
	denied(r, "secrets_not_allowed")
	count(r.approval) == 0
}

# Refactor and review never get secrets, even if writ.yaml says secrets: true.
test_refactor_secret_denied_whatever_config if denied(decide_with(secret(true), {"profiles": {"refactor": {"secrets": true}}}), "secrets_not_allowed")

test_refactor_secret_out_of_scope_one_reason if {
	r := decide(secret(false))
	denied(r, "secrets_not_allowed")
	not denied(r, "secret_not_in_scope")
}

test_review_secret_denied if denied(decide(as_profile("review", secret(true))), "secrets_not_allowed")

test_generic_without_secrets_denied if denied(decide(as_profile("docs", secret(true))), "secrets_not_allowed")

test_release_secret_not_secrets_not_allowed if not_denied(decide(as_profile("release", secret(true))), "secrets_not_allowed")

test_release_secret_not_in_scope_denied if {
	r := decide(as_profile("release", secret(false)))
	denied(r, "secret_not_in_scope")
	not denied(r, "secrets_not_allowed")
}

test_generic_secret_not_in_scope_denied if denied(decide(as_profile("ops", secret(false))), "secret_not_in_scope")

test_secret_in_scope_not_denied if not_denied(decide(as_profile("release", secret(true))), "secret_not_in_scope")

test_release_secret_needs_approval if {
	r := decide(as_profile("release", secret(true)))
	asked(r, "secret_requires_approval", 1)
	count(r.deny) == 0
	r.obligations.maxTTL == "5m"
}

test_release_secret_sensitive_needs_two if {
	r := decide(as_profile("release", object.union(secret(true), {"action": {"target": {"environment": "production"}}, "context": {"environment": {"name": "production", "inScope": true, "sensitive": true}}})))
	asked(r, "secret_requires_approval", 2)
}

# A release run's secrets follow the release rules even if writ.yaml says secrets: false.
test_release_secret_needs_approval_whatever_config if asked(decide_with(as_profile("release", secret(true)), {"profiles": {"release": {"secrets": false}}}), "secret_requires_approval", 1)

test_generic_secret_needs_approval if asked(decide(as_profile("ops", secret(true))), "secret_requires_approval", 1)

test_secret_fact_alone_needs_no_approval if allowed(decide(as_profile("release", {"context": {"secret": {"name": "x", "inScope": true}}})))

test_secret_out_of_scope_no_approval if count(decide(as_profile("release", secret(false))).approval) == 0

test_release_other_credential_needs_approval if {
	r := decide_with(as_profile("release", pg_cred(["read:public"])), cred_config)
	asked(r, "secret_requires_approval", 1)
	count(r.deny) == 0
}

test_refactor_other_credential_no_approval if count(decide({"action": {"kind": "credential", "name": "postgres"}}).approval) == 0

test_release_git_credential_no_approval if allowed(decide(as_profile("release", git_cred("write"))))

# ------------------------------------------------------ release, deploy

test_refactor_release_not_allowed if denied(decide(release_to("staging", true, false)), "release_not_allowed")

test_generic_deploy_not_allowed if {
	r := decide(as_profile("docs", object.union(release_to("staging", true, false), {"action": {"kind": "deploy"}})))
	denied(r, "release_not_allowed")
	not denied(r, "scope_creep")
}

test_release_profile_release_not_denied if not_denied(decide(as_profile("release", release_to("staging", true, false))), "release_not_allowed")

test_release_environment_not_in_scope_denied if denied(decide(as_profile("release", release_to("qa", false, false))), "environment_not_in_scope")

test_release_without_environment_denied if denied(decide(as_profile("release", {"action": {"kind": "deploy", "name": "app"}})), "environment_not_in_scope")

test_refactor_release_environment_not_checked if {
	r := decide(release_to("qa", false, false))
	denied(r, "release_not_allowed")
	not denied(r, "environment_not_in_scope")
}

test_release_environment_in_scope_not_denied if count(decide(as_profile("release", release_to("staging", true, false))).deny) == 0

test_release_needs_one_approval if {
	r := decide(as_profile("release", release_to("staging", true, false)))
	asked(r, "release_requires_approval", 1)
	not asked(r, "sensitive_environment", 2)
	r.allow == false
}

test_deploy_needs_one_approval if asked(decide(as_profile("release", object.union(release_to("staging", true, false), {"action": {"kind": "deploy"}}))), "release_requires_approval", 1)

test_release_sensitive_needs_two if {
	r := decide(as_profile("release", release_to("production", true, true)))
	asked(r, "sensitive_environment", 2)
	not asked(r, "release_requires_approval", 1)
}

# Go's sensitivity fact counts even for an environment writ.yaml does not list.
test_release_sensitive_from_context if asked(decide(as_profile("release", release_to("dr", true, true))), "sensitive_environment", 2)

# writ.yaml marks production sensitive even if the context fact says otherwise.
test_release_sensitive_from_config if asked(decide(as_profile("release", release_to("production", true, false))), "sensitive_environment", 2)

test_release_out_of_scope_no_approval if {
	count(decide(as_profile("release", release_to("production", false, true))).approval) == 0
	count(decide(as_profile("release", release_to("qa", false, false))).approval) == 0
}

# Release approvals are for release runs, and for release and deploy actions only.
test_release_approvals_only_for_releases if {
	count(decide(release_to("staging", true, false)).approval) == 0
	count(decide(release_to("production", true, true)).approval) == 0
	allowed(decide(as_profile("release", object.union(release_to("production", true, true), {"action": {"kind": "build"}}))))
	allowed(decide(as_profile("release", object.union(release_to("staging", true, false), {"action": {"kind": "build"}}))))
}

# ------------------------------------------------------------- delegation

delegate_to(profile) := {"action": {"kind": "delegate", "name": "review-bot", "args": {"agent": "review-bot", "profile": profile}}}

test_refactor_delegates_a_review if {
	r := decide(delegate_to("review"))
	r.allow
	count(r.deny) == 0
}

test_refactor_delegates_refactor if decide(delegate_to("refactor")).allow

test_refactor_may_not_delegate_a_release if {
	r := decide(delegate_to("release"))
	some d in r.deny
	d.code == "delegation_not_allowed"
	contains(d.message, "review")
}

test_release_delegates_a_review if decide(as_profile("release", delegate_to("review"))).allow

test_generic_profile_delegates_its_own if decide(as_profile("docs", delegate_to("docs"))).allow

test_generic_profile_may_not_delegate_others if {
	r := decide(as_profile("docs", delegate_to("review")))
	some d in r.deny
	d.code == "delegation_not_allowed"
}

test_secret_from_environment_out_of_scope_denied if {
	r := decide(as_profile("release", object.union(secret(true), {"action": {"target": {"environment": "production"}}, "context": {"environment": {"name": "production", "inScope": false, "sensitive": true}}})))
	denied(r, "environment_not_in_scope")
}

test_secret_from_environment_in_scope_not_env_denied if {
	r := decide(as_profile("release", object.union(secret(true), {"action": {"target": {"environment": "staging"}}, "context": {"environment": {"name": "staging", "inScope": true, "sensitive": false}}})))
	not_denied(r, "environment_not_in_scope")
}

test_merge_of_ended_run_asks_approval if {
	r := decide(object.union(merge, {"run": {"state": "ended"}}))
	not_denied(r, "run_not_active")
	asked(r, "merge_requires_approval", 1)
}

test_merge_of_killed_run_denied if denied(decide(object.union(merge, {"run": {"state": "killed"}})), "run_not_active")

test_merge_of_suspended_run_denied if denied(decide(object.union(merge, {"run": {"state": "suspended"}})), "run_not_active")

test_push_of_ended_run_denied if {
	r := decide(object.union({"action": {"kind": "git.push", "name": "acme/api", "target": {"repo": "acme/api", "ref": "writ/01jtest/x"}}, "context": repo_ctx(true, true)}, {"run": {"state": "ended"}}))
	denied(r, "run_not_active")
}
