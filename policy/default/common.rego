# Facts about the input, and the rules every profile shares.
#
# Go computes every pattern match and hands the answers over in
# input.context; a fact counts only when it is literally true, so a missing
# fact fails closed.
package writ

# ---------------------------------------------------------------- facts

# The configuration from writ.yaml; empty if none was provided.
default cfg := {}

cfg := data.writ.config

# The action being decided.
action_kind := object.get(input, ["action", "kind"], "")

action_name := object.get(input, ["action", "name"], "")

# The run asking, and its profile's configuration.
run_id := object.get(input, ["run", "id"], "")

run_state := object.get(input, ["run", "state"], "")

run_profile := object.get(input, ["run", "profile"], "")

profile_conf := object.get(cfg, ["profiles", run_profile], {})

# Approval requests name this group.
approvers := object.get(cfg, "approvers", "maintainers")

# A profile is known only if writ.yaml configures it.
profile_known if run_profile in object.keys(object.get(cfg, "profiles", {}))

# Only an active run may act.
run_active if run_state == "active"

# Nothing is allowed for a run that is not active or has an unknown profile.
usable if {
	run_active
	profile_known
}

# Facts Go computed with the pattern matcher (policy/CONTRACT.md).
tool_in_scope if input.context.toolInScope == true

host_in_scope if input.context.host.inScope == true

repo_in_scope if input.context.repo.inScope == true

repo_writable if input.context.repo.write == true

branch_protected if input.context.repo.protected == true

on_run_branch if input.context.repo.runBranch == true

secret_in_scope if input.context.secret.inScope == true

env_in_scope if input.context.environment.inScope == true

# An environment is sensitive if Go says so, or writ.yaml does.
env_sensitive if input.context.environment.sensitive == true

env_sensitive if cfg.environments[input.action.target.environment].sensitive == true

# Names for messages.
# The repository the facts are about (Go fills it in for a hook's edit or
# push when the run's scope names one repository), else the action's.
target_repo := object.get(input, ["context", "repo", "name"], object.get(input, ["action", "target", "repo"], ""))

repo_desc := sprintf("repository %q", [target_repo]) if {
	target_repo != ""
} else := "no repository"

branch := object.get(input, ["context", "repo", "branch"], "")

branch_prefix := object.get(input, ["run", "branchPrefix"], "")

host_name := object.get(input, ["context", "host", "name"], action_name)

# scope_list lists the run's scope entries of one kind, for messages.
scope_list(key) := concat(", ", [sprintf("%v", [x]) | some x in object.get(input, ["run", "scope", key], [])])

scope_repos := concat(", ", [r.name | some r in object.get(input, ["run", "scope", "repos"], [])])

# ------------------------------------------------------ run and profile

# A suspended, ended or killed run may do nothing until a human resumes it —
# except that the work of a run that ended normally may still be merged,
# behind the same human approval (the usual order: the agent finishes, then
# a human reviews and merges). A killed, expired or suspended run's work is
# never merged.
violation contains reason(
	"run_not_active",
	sprintf("run %s is %q, not active; only an active run may act: a human may resume it (writ run resume), or start a new run", [run_id, run_state]),
) if {
	not run_active
	not merge_of_ended_run
}

merge_of_ended_run if {
	action_kind == "merge"
	run_state == "ended"
	profile_known
}

# Rego cannot vouch for a profile writ.yaml does not define.
violation contains reason(
	"unknown_profile",
	sprintf("profile %q is not configured; add it under profiles in writ.yaml or sign a trigger for a configured profile", [run_profile]),
) if not profile_known

# Runs start from signed triggers, never from a decision a run asks for.
violation contains reason(
	"action_not_allowed",
	"a run cannot start runs through a decision; runs start from a signed trigger (writ run start --trigger), children by delegation",
) if action_kind == "run.start"

# ---------------------------------------------------------------- tools

# A tool or MCP call must be one of the tools the run's scope lists.
violation contains reason(
	"tool_not_in_scope",
	sprintf("tool %q is not in this run's scope (tools: %s); use a listed tool, or sign a trigger whose scope grants it", [action_name, scope_list("tools")]),
) if {
	action_kind in {"tool", "mcp.call"}
	not tool_in_scope
}

# An MCP call's filesystem paths stay inside the run's workspace, and the
# URLs in its arguments stay on the run's hosts (facts from the gateway).
violation contains reason(
	"path_outside_workspace",
	sprintf("%q leaves this run's workspace: an MCP call may only touch paths inside it", [concat(", ", input.context.args.outsideWorkspace)]),
) if {
	action_kind == "mcp.call"
	count(input.context.args.outsideWorkspace) > 0
}

violation contains reason(
	"host_not_in_scope",
	sprintf("host %q is not in this run's scope (hosts: %s); an MCP call's URLs must stay on the run's hosts", [concat(", ", input.context.args.hostsOutsideScope), scope_list("hosts")]),
) if {
	action_kind == "mcp.call"
	count(input.context.args.hostsOutsideScope) > 0
}

# --------------------------------------------------------------- egress

# Network egress only to hosts the run's scope lists.
violation contains reason(
	"host_not_in_scope",
	sprintf("host %q is not in this run's scope (hosts: %s); use a listed host, or sign a trigger whose scope grants it", [host_name, scope_list("hosts")]),
) if {
	action_kind == "egress"
	not host_in_scope
}

# Egress to a host in scope is allowed for every profile.
allow if {
	usable
	action_kind == "egress"
	host_in_scope
}

# ------------------------------------------------------------------ git

# Actions that must name a repository of the run's scope.
needs_repo if action_kind in {"git.fetch", "git.push", "merge"}

needs_repo if {
	action_kind == "credential"
	action_name in {"git", "github"}
}

needs_repo if {
	action_kind == "build"
	target_repo != ""
}

# Repositories outside the run's scope are out of reach, read or write.
violation contains reason(
	"repo_not_in_scope",
	sprintf("%s is not in this run's scope (repos: %s); act on a listed repository, or sign a trigger whose scope grants it", [repo_desc, scope_repos]),
) if {
	needs_repo
	not repo_in_scope
}

# A git credential that may push.
git_write_credential if {
	action_kind == "credential"
	action_name == "git"
	"write" in credential_perms
}

# Actions that write to the repository they name.
writes_repo if action_kind in {"git.push", "merge"}

writes_repo if git_write_credential

# A repository the scope grants read-only is never written.
violation contains reason(
	"repo_read_only",
	sprintf("%s is read-only in this run's scope; fetch it only, or sign a trigger that grants write", [repo_desc]),
) if {
	writes_repo
	repo_in_scope
	not repo_writable
}

# Fetching a repository in scope is allowed for every profile.
allow if {
	usable
	action_kind == "git.fetch"
	repo_in_scope
}

# A git credential for a repository in scope is allowed (writes are checked above).
allow if {
	usable
	action_kind == "credential"
	action_name == "git"
	repo_in_scope
}

# The push checks below apply to a repository in scope (otherwise repo_not_in_scope says it all).
pushing if {
	action_kind == "git.push"
	repo_in_scope
}

# Protected branches change only by a human-approved merge (docs/threat-model.md C-GT1, C-AP1).
violation contains reason(
	"protected_branch",
	sprintf("branch %q of %s is protected; protected branches change only by an approved merge: writ merge %s", [branch, repo_desc, run_id]),
) if {
	pushing
	branch_protected
}

# A run pushes only its own branches, so its work stays reviewable and revocable.
violation contains reason(
	"push_outside_run_branch",
	sprintf("branch %q is not a branch of this run; a run may push only branches under %q: push to %s<name> and merge with writ merge", [branch, branch_prefix, branch_prefix]),
) if {
	pushing
	not on_run_branch
	not branch_protected
}

# A push may change only the paths the run's scope covers.
violation contains reason(
	"path_not_in_scope",
	sprintf("the push to %s changes paths outside this run's scope: %s; revert those changes, or sign a trigger whose scope covers them", [repo_desc, concat(", ", sort(paths))]),
) if {
	pushing
	paths := object.get(input, ["context", "paths", "outsideScope"], [])
	count(paths) > 0
}

# Every path the push changes, as Go reports them and as the action names them.
changed_paths contains p if some p in object.get(input, ["context", "paths", "changed"], [])

changed_paths contains p if some p in object.get(input, ["action", "target", "paths"], [])

# CI workflows, CODEOWNERS and policy steer every later change, so they are
# protected even where repos[].protectedPaths forgets them.
builtin_protected(p) if startswith(p, ".github/workflows/")

builtin_protected(p) if p in {".gitlab-ci.yml", "CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS"}

builtin_protected(p) if startswith(p, "policy/")

builtin_protected(p) if startswith(p, ".writ/")

# Changed paths that need a human's approval.
protected_changes contains p if some p in object.get(input, ["context", "paths", "protected"], [])

protected_changes contains p if {
	some p in changed_paths
	builtin_protected(p)
}

# A push touching protected paths lands on the run branch with an approval on record (docs/design.md §4.5).
approval contains ask(
	"protected_path",
	sprintf("the push changes protected paths: %s; one member of %q must approve (writ approvals approve); the commit approval at merge time covers them", [concat(", ", sort(protected_changes)), approvers]),
	1,
) if {
	pushing
	count(protected_changes) > 0
}

# An edit names the files it changes (a hook reports them); the same path
# rules as a push apply, so the agent hears early what the push would meet.
editing if {
	action_kind == "tool"
	action_name == "edit"
	count(changed_paths) > 0
}

# An edit may change only the paths the run's scope covers.
violation contains reason(
	"path_not_in_scope",
	sprintf("the edit changes paths outside this run's scope: %s; change only files the trigger covers (%s), or sign a trigger whose scope covers them", [concat(", ", sort(paths)), concat(", ", scope_paths)]),
) if {
	editing
	paths := object.get(input, ["context", "paths", "outsideScope"], [])
	count(paths) > 0
}

# The paths of the run's scope, for messages.
scope_paths := [p | some r in object.get(input, ["run", "scope", "repos"], []); some p in object.get(r, "paths", [])]

# An edit of protected paths (CI, CODEOWNERS, policy) waits for a human, as the push would.
approval contains ask(
	"protected_path",
	sprintf("the edit changes protected paths: %s; one member of %q must approve (writ approvals approve)", [concat(", ", sort(protected_changes)), approvers]),
	1,
) if {
	editing
	count(protected_changes) > 0
}

# A push to a writable repository in scope is allowed for every profile but review (the checks above deny the rest).
allow if {
	usable
	pushing
	not profile_review
}

# ---------------------------------------------------------- credentials

# Only git and secret credentials exist outside a release run.
violation contains reason(
	"credential_kind_not_allowed",
	sprintf("profile %q may not obtain %q credentials; only git credentials (and secrets where the profile allows them) are issued outside a release run", [run_profile, action_name]),
) if {
	action_kind == "credential"
	not action_name in {"git", "secret"}
	run_profile != "release"
}

# The broker's configuration (data.writ.config.credentials): the kinds it
# issues, each PostgreSQL database's allowed permissions, the Vault paths.
credential_conf := object.get(cfg, "credentials", {})

# What a credential request asks for; the broker, not the run, builds these args.
credential_perms := object.get(input, ["action", "args", "permissions"], [])

credential_target := object.get(input, ["action", "args", "target"], "")

# A kind no configured backend issues.
violation contains reason(
	"credential_kind_unknown",
	sprintf("no %q credential backend is configured; ask for one of %v", [action_name, object.get(credential_conf, "kinds", [])]),
) if {
	action_kind == "credential"
	"kinds" in object.keys(credential_conf)
	not action_name in credential_conf.kinds
}

# The longest a credential lives, in seconds (writ.rego's maxTTL says the same).
max_credential_seconds := 300

# A credential asked for longer than the cap is refused, not silently shortened.
violation contains reason(
	"credential_ttl_too_long",
	sprintf("a credential lives at most %d seconds; ask for a ttl of 5m or less, or none", [max_credential_seconds]),
) if {
	action_kind == "credential"
	object.get(input, ["action", "args", "ttlSeconds"], 0) > max_credential_seconds
}

# The permissions each kind may have: git read or write; a secret or a Vault
# path read; GitHub read plus issues and pull requests (writes to code go
# through writ's git gateway); PostgreSQL what writ.yaml allows on that database.
credential_perms_allowed := {"read", "write"} if action_name == "git"

credential_perms_allowed := {"read"} if action_name in {"secret", "vault"}

credential_perms_allowed := {
	"contents:read", "metadata:read", "issues:read", "issues:write",
	"pull_requests:read", "pull_requests:write",
} if action_name == "github"

credential_perms_allowed := {p | some p in object.get(credential_conf, ["postgres", credential_target], [])} if action_name == "postgres"

# Requested permissions beyond those.
credential_perms_too_wide contains p if {
	action_kind == "credential"
	some p in credential_perms
	not p in credential_perms_allowed
}

violation contains reason(
	"credential_permissions_not_allowed",
	sprintf("permissions %v are not allowed for a %s credential on %q (allowed: %v); ask for less", [sort(credential_perms_too_wide), action_name, credential_target, sort(object.get({"x": credential_perms_allowed}, "x", set()))]),
) if {
	count(credential_perms_too_wide) > 0
}

# PostgreSQL databases and Vault paths must be configured targets.
violation contains reason(
	"credential_target_unknown",
	sprintf("no PostgreSQL database %q is configured for leases (configured: %v)", [credential_target, object.keys(object.get(credential_conf, "postgres", {}))]),
) if {
	action_kind == "credential"
	action_name == "postgres"
	not credential_target in object.keys(object.get(credential_conf, "postgres", {}))
}

violation contains reason(
	"credential_target_unknown",
	sprintf("Vault path %q is not one writ reads for runs (configured: %v)", [credential_target, object.get(credential_conf, "vault", [])]),
) if {
	action_kind == "credential"
	action_name == "vault"
	not credential_target in object.get(credential_conf, "vault", [])
}
