# writ's default policy bundle. writ asks one query per decision,
# data.writ.result (policy/CONTRACT.md); Go applies the precedence
# deny > approval > allow, so this bundle only collects sets:
#
#   writ.rego      the result and its obligations (this file)
#   common.rego    facts about the input, and the rules every profile shares
#   profiles.rego  what refactor, review, release and other profiles may do
#   limits.rego    scope creep, budgets and the denial threshold
#
# Rules add deny reasons to `violation`, approval requests to `approval`,
# codes that suspend the run to `suspensions`, and strings to `alerts`.
package writ

# Anything no rule allows is refused; Go reports it as no_rule_allowed.
default allow := false

# The whole answer, in the shape policy/CONTRACT.md fixes.
result := {
	"deny": deny,
	"approval": approval,
	"allow": allow,
	"obligations": obligations,
	"alerts": alerts,
}

# Every violation is a deny reason (limits.rego adds too_many_denials on top,
# computed from `violation` alone so that it never counts itself).
deny contains r if some r in violation

# Obligations always say whether to suspend; maxTTL is set for credentials only.
obligations := object.union({"suspend": suspend}, credential_ttl)

# The run is suspended with this decision iff some rule asked for it.
default suspend := false

suspend if count(suspensions) > 0

# No maxTTL for actions that issue no credential.
default credential_ttl := {}

# Credentials live at most 5 minutes (docs/threat-model.md C-ID2, revocation).
credential_ttl := {"maxTTL": "5m"} if input.action.kind == "credential"

# reason builds one deny reason: what was wrong and what to do.
reason(code, message) := {"code": code, "message": message}

# ask builds one approval request for n humans of the configured approver group.
ask(code, message, n) := {"code": code, "message": message, "group": approvers, "count": n}
