# What each profile may do: refactor, review, release, and any other
# profile writ.yaml configures (the generic rules).
package writ

# ------------------------------------------------------------- profiles

# The built-in profiles with rules of their own; any other configured profile
# gets only the rules that do not name one.
profile_review if run_profile == "review"

profile_release if run_profile == "release"

# ---------------------------------------------------------------- tools

# Tools and MCP calls in scope are allowed for every profile but review.
allow if {
	usable
	not profile_review
	action_kind in {"tool", "mcp.call"}
	tool_in_scope
}

# The tools a review run may use: it reads and searches, never writes.
review_tools := {"read", "web:fetch", "web:search"}

review_may_use if action_kind == "mcp.call"

review_may_use if {
	action_kind == "tool"
	action_name in review_tools
}

# Read-only tools in scope are allowed for every profile, review included.
allow if {
	usable
	review_may_use
	tool_in_scope
}

# ----------------------------------------------------- review read-only

# Actions a review run may never take, because they change code or state.
review_writes if {
	action_kind == "tool"
	not action_name in review_tools
}

review_writes if action_kind in {"git.push", "merge", "build"}

review_writes if git_write_credential

# A review run is read-only: it reports what it finds and changes nothing.
violation contains reason(
	"review_read_only",
	sprintf("a review run is read-only and may not %s %q; review runs may only read (read, web:fetch, web:search, MCP tools in scope, git fetch), and a refactor run makes changes", [action_kind, action_name]),
) if {
	profile_review
	review_writes
}

# Delegation spawns runs that act; a review run only reports.
violation contains reason(
	"delegate_not_allowed",
	"a review run may not delegate; sign a trigger for a run whose profile may delegate",
) if {
	profile_review
	action_kind == "delegate"
}

# Which profiles a run may hand work to: the same profile, or a review of
# its work (writ checks in Go that the child's scope only narrows).
child_profiles := {"refactor": {"refactor", "review"}, "release": {"release", "review"}}

child_profile := object.get(input, ["action", "args", "profile"], "")

child_profile_allowed if child_profile == run_profile

child_profile_allowed if child_profile in object.get(child_profiles, run_profile, set())

# A run delegates only to the profiles its own profile may hand work to.
violation contains reason(
	"delegation_not_allowed",
	sprintf("a %s run may delegate to profiles %v, not %q", [run_profile, sort(array.concat([run_profile], [p | some p in object.get(child_profiles, run_profile, set()); p != run_profile])), child_profile]),
) if {
	action_kind == "delegate"
	not profile_review
	not child_profile_allowed
}

# Delegation is allowed for every profile but review (limits.rego caps the children).
allow if {
	usable
	not profile_review
	action_kind == "delegate"
}

# Only a review run submits reviews, so findings come from a read-only run.
violation contains reason(
	"review_not_allowed",
	sprintf("profile %q may not submit a review; reviews come from a run with the review profile", [run_profile]),
) if {
	action_kind == "review"
	not profile_review
}

# A review run may submit its review.
allow if {
	usable
	profile_review
	action_kind == "review"
}

# ---------------------------------------------------------- build, merge

# Builds belong to refactor and release runs, on a repository in scope if one is named.
allow if {
	usable
	run_profile in {"refactor", "release"}
	action_kind == "build"
	build_repo_ok
}

# A build names no repository, or one in scope.
build_repo_ok if target_repo == ""

build_repo_ok if repo_in_scope

# Every merge into a protected branch needs a human approver (docs/threat-model.md C-AP2).
approval contains ask(
	"merge_requires_approval",
	sprintf("merging this run's work into %s needs the approval of one member of %q (writ approvals approve)", [repo_desc, approvers]),
	1,
) if {
	action_kind == "merge"
	run_profile in {"refactor", "release"}
	repo_in_scope
}

# --------------------------------------------------------------- secrets

# A request for a static secret from the broker.
secret_request if {
	action_kind == "credential"
	action_name == "secret"
}

# The secret asked for, for messages.
secret_name := object.get(input, ["context", "secret", "name"], object.get(input, ["action", "target", "secret"], ""))

# Profiles that may ask for secrets at all: release, and any other profile with
# secrets: true in writ.yaml (never refactor or review, whatever writ.yaml says).
secrets_granted if profile_release

secrets_granted if {
	not run_profile in {"refactor", "review"}
	profile_conf.secrets == true
}

# Refactor, review and profiles without secrets: true get no secrets (INV-5).
violation contains reason(
	"secrets_not_allowed",
	sprintf("profile %q may not obtain secrets; work without %q, or run the task under a profile that allows secrets", [run_profile, secret_name]),
) if {
	secret_request
	not secrets_granted
}

# A profile that may have secrets gets only those its run's scope lists.
violation contains reason(
	"secret_not_in_scope",
	sprintf("secret %q is not in this run's scope (secrets: %s); ask for a listed secret, or sign a trigger whose scope grants it", [secret_name, scope_list("secrets")]),
) if {
	secret_request
	secrets_granted
	not secret_in_scope
}

# A secret lives in an environment; a run gets secrets only from environments its scope lists.
violation contains reason(
	"environment_not_in_scope",
	sprintf("secret %q is asked from environment %q, which is not in this run's scope (environments: %s); ask in a listed environment, or sign a trigger whose scope grants it", [secret_name, environment_name, scope_list("environments")]),
) if {
	secret_request
	environment_name != ""
	not env_in_scope
}

# Static secrets are handed out only after a human approves (docs/threat-model.md C-ID4, C-AP2); two for a sensitive environment.
approval contains ask(
	"secret_requires_approval",
	sprintf("secret %q is handed to a run only after %d member(s) of %q approve (writ approvals approve)", [secret_name, approval_count, approvers]),
	approval_count,
) if {
	secret_request
	secrets_granted
	secret_in_scope
}

# A release run may obtain other credential kinds (postgres, vault, github…) with the same approval.
approval contains ask(
	"secret_requires_approval",
	sprintf("a %q credential is handed to a release run only after %d member(s) of %q approve (writ approvals approve)", [action_name, approval_count, approvers]),
	approval_count,
) if {
	profile_release
	action_kind == "credential"
	not action_name in {"git", "secret"}
}

# Two humans for anything touching a sensitive environment, one otherwise.
approval_count := 2 if {
	env_sensitive
} else := 1

# ------------------------------------------------------ release, deploy

# Shipping an artifact somewhere.
releasing if action_kind in {"release", "deploy"}

# Only a release run releases or deploys.
violation contains reason(
	"release_not_allowed",
	sprintf("profile %q may not %s; releases and deploys happen only in a run with the release profile", [run_profile, action_kind]),
) if {
	releasing
	not profile_release
}

# The environment released to, for messages.
environment_name := object.get(input, ["action", "target", "environment"], "")

# A release run releases only to environments its scope lists.
violation contains reason(
	"environment_not_in_scope",
	sprintf("environment %q is not in this run's scope (environments: %s); name a listed environment in action.target.environment, or sign a trigger whose scope grants it", [environment_name, scope_list("environments")]),
) if {
	profile_release
	releasing
	not env_in_scope
}

# A release to an environment in scope needs one human approver.
approval contains ask(
	"release_requires_approval",
	sprintf("this %s to %q needs the approval of one member of %q (writ approvals approve)", [action_kind, environment_name, approvers]),
	1,
) if {
	profile_release
	releasing
	env_in_scope
	not env_sensitive
}

# A release to a sensitive environment needs two human approvers (docs/threat-model.md C-AP2).
approval contains ask(
	"sensitive_environment",
	sprintf("environment %q is sensitive: this %s needs the approval of two members of %q (writ approvals approve)", [environment_name, action_kind, approvers]),
	2,
) if {
	profile_release
	releasing
	env_in_scope
	env_sensitive
}
