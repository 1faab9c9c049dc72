# Scope creep, budgets and the denial threshold: signs that a run has gone
# off task, which deny the action and (mostly) suspend the run.
package writ

# ----------------------------------------------------------------- facts

# Advisory decisions (hooks, dry runs) carry enforced: false; anything else
# counts, so a missing flag fails closed.
enforced if not input.enforced == false

# history_count is one of the counts of earlier decisions (0 if absent).
history_count(key) := object.get(input, ["history", "counts", key], 0)

# history_allowed holds if an action of this name was ever allowed for the run.
history_allowed(n) if input.history.allowed[n] == true

# budget is the profile's limit named key, if it sets one (0 or missing = unlimited).
budget(key) := n if {
	n := object.get(profile_conf, ["budgets", key], 0)
	n > 0
}

# Who to name in alerts.
who := sprintf("run %s (agent %s, profile %s)", [run_id, object.get(input, ["run", "agent"], ""), run_profile])

# ------------------------------------------------------------- breaches
#
# A breach is denied, suspends the run and raises an alert.

violation contains reason(b.code, b.message) if some b in breaches

suspensions contains b.code if some b in breaches

alerts contains b.alert if some b in breaches

# Scope creep (a): after editing and building, a secret outside scope is the exfiltration pattern.
breaches contains {
	"code": "scope_creep",
	"message": sprintf("after editing and building, this run asked for secret %q outside its scope; the run is suspended: a human should inspect it (writ trace %s) before writ run resume", [secret_name, run_id]),
	"alert": sprintf("scope creep: %s edited, built, then asked for secret %q outside its scope", [who, secret_name]),
} if {
	secret_request
	not secret_in_scope
	history_allowed("edit")
	built
}

built if history_allowed("shell:build")

built if history_allowed("build")

# Scope creep (b): a refactor or review run never ships anything.
breaches contains {
	"code": "scope_creep",
	"message": sprintf("a %s run attempted a %s; the run is suspended: a human should inspect it (writ trace %s) before writ run resume", [run_profile, action_kind, run_id]),
	"alert": sprintf("scope creep: %s attempted a %s", [who, action_kind]),
} if {
	run_profile in {"refactor", "review"}
	releasing
}

# Scope creep (c): a review run never pushes.
breaches contains {
	"code": "scope_creep",
	"message": sprintf("a review run attempted a git push; the run is suspended: a human should inspect it (writ trace %s) before writ run resume", [run_id]),
	"alert": sprintf("scope creep: %s attempted a git push", [who]),
} if {
	profile_review
	action_kind == "git.push"
}

# A run calling faster than its profile allows is runaway; stop it.
breaches contains {
	"code": "budget_calls_per_minute",
	"message": sprintf("this run made %v calls in the last minute; profile %q allows %v; the run is suspended: a human may resume it (writ run resume %s)", [history_count("lastMinute"), run_profile, limit, run_id]),
	"alert": sprintf("budget: %s exceeded %v calls per minute", [who, limit]),
} if {
	enforced
	limit := budget("callsPerMinute")
	history_count("lastMinute") >= limit
}

# A run that used up its total calls is done or looping; stop it.
breaches contains {
	"code": "budget_total_calls",
	"message": sprintf("this run made %v calls; profile %q allows %v in all; the run is suspended: a human may resume it (writ run resume %s) or end it", [history_count("total"), run_profile, limit, run_id]),
	"alert": sprintf("budget: %s used all %v calls", [who, limit]),
} if {
	enforced
	limit := budget("totalCalls")
	history_count("total") >= limit
}

# A run may delegate only so many children; the run itself may go on.
violation contains reason(
	"budget_children",
	sprintf("this run has delegated %v child runs; profile %q allows %v; finish the work in this run or in the children it has", [history_count("children"), run_profile, limit]),
) if {
	enforced
	action_kind == "delegate"
	limit := budget("children")
	history_count("children") >= limit
}

# ---------------------------------------------------------------- denials
#
# Computed from `violation` and added to `deny` directly, so it never counts
# itself (no recursion).

# The configured denial threshold (0 or missing = none).
denial_max := object.get(cfg, ["denials", "max"], 0)

# A run denied again and again is probing its limits; suspend it at the threshold.
too_many_denials contains reason(
	"too_many_denials",
	sprintf("this is denial %v of this run within %s; the threshold is %v; the run is suspended: a human should inspect it (writ trace %s) before writ run resume", [history_count("denials") + 1, object.get(cfg, ["denials", "window"], "the window"), denial_max, run_id]),
) if {
	enforced
	count(violation) > 0
	denial_max > 0
	history_count("denials") + 1 >= denial_max
}

# The threshold denies, suspends the run and raises an alert.
deny contains r if some r in too_many_denials

suspensions contains r.code if some r in too_many_denials

alerts contains sprintf("denials: %s reached %v denials", [who, denial_max]) if count(too_many_denials) > 0
