# Tests of limits.rego: scope creep, budgets and the denial threshold.
package writ

# ------------------------------------------------------------ scope creep

edited_and_built := {"history": {"allowed": {"edit": true, "shell:build": true}}}

# scope_creep_alerted holds if r denies scope_creep, suspends the run and raises an alert.
scope_creep_alerted(r) if {
	denied(r, "scope_creep")
	r.obligations.suspend == true
	some a in r.alerts
	startswith(a, "scope creep: run 01jtest")
}

test_scope_creep_secret_after_edit_and_build if scope_creep_alerted(decide(object.union(edited_and_built, secret(false))))

test_scope_creep_secret_after_edit_and_build_kind if scope_creep_alerted(decide(object.union({"history": {"allowed": {"edit": true, "build": true}}}, secret(false))))

test_scope_creep_secret_advisory_too if scope_creep_alerted(decide(object.union({"enforced": false}, object.union(edited_and_built, secret(false)))))

test_no_scope_creep_secret_without_build if {
	r := decide(object.union({"history": {"allowed": {"edit": true}}}, secret(false)))
	not denied(r, "scope_creep")
	r.obligations.suspend == false
}

test_no_scope_creep_secret_without_edit if not_denied(decide(object.union({"history": {"allowed": {"shell:build": true}}}, secret(false))), "scope_creep")

test_no_scope_creep_other_actions if allowed(decide(object.union(edited_and_built, {"context": {"secret": {"name": "x", "inScope": false}}})))

test_no_scope_creep_secret_in_scope if not_denied(decide(as_profile("release", object.union(edited_and_built, secret(true)))), "scope_creep")

test_scope_creep_refactor_release if scope_creep_alerted(decide(release_to("production", false, true)))

test_scope_creep_review_deploy if scope_creep_alerted(decide(as_profile("review", object.union(release_to("staging", false, false), {"action": {"kind": "deploy"}}))))

test_scope_creep_release_advisory_too if scope_creep_alerted(decide(object.union({"enforced": false}, release_to("staging", true, false))))

test_no_scope_creep_release_profile if {
	r := decide(as_profile("release", release_to("staging", true, false)))
	not denied(r, "scope_creep")
	count(r.alerts) == 0
}

test_scope_creep_review_push if scope_creep_alerted(decide(as_profile("review", push)))

test_no_scope_creep_refactor_push if not_denied(decide(push), "scope_creep")

# ----------------------------------------------------------------- budgets

counts(c) := {"history": {"counts": c}}

test_budget_calls_per_minute_denied if {
	r := decide(counts({"lastMinute": 120}))
	denied(r, "budget_calls_per_minute")
	r.obligations.suspend == true
	count(r.alerts) > 0
}

test_budget_calls_per_minute_under_limit if {
	r := decide(counts({"lastMinute": 119}))
	allowed(r)
	r.obligations.suspend == false
}

test_budget_calls_per_minute_unlimited if not_denied(decide(as_profile("review", counts({"lastMinute": 100000}))), "budget_calls_per_minute")

test_budget_calls_per_minute_missing_unlimited if not_denied(decide(as_profile("docs", counts({"lastMinute": 100000}))), "budget_calls_per_minute")

test_budget_calls_per_minute_advisory if not_denied(decide(object.union({"enforced": false}, counts({"lastMinute": 500}))), "budget_calls_per_minute")

test_budget_total_calls_denied if {
	r := decide(counts({"total": 2000}))
	denied(r, "budget_total_calls")
	r.obligations.suspend == true
	count(r.alerts) > 0
}

test_budget_total_calls_under_limit if not_denied(decide(counts({"total": 1999})), "budget_total_calls")

test_budget_total_calls_unlimited if not_denied(decide(as_profile("review", counts({"total": 100000}))), "budget_total_calls")

test_budget_total_calls_advisory if not_denied(decide(object.union({"enforced": false}, counts({"total": 5000}))), "budget_total_calls")

test_budget_children_denied if {
	r := decide(object.union(delegate, counts({"children": 3})))
	denied(r, "budget_children")
	r.obligations.suspend == false
	r.allow == true
}

test_budget_children_under_limit if allowed(decide(object.union(delegate, counts({"children": 2}))))

test_budget_children_only_delegate if not_denied(decide(counts({"children": 3})), "budget_children")

test_budget_children_unlimited if not_denied(decide(as_profile("docs", object.union(delegate, counts({"children": 50})))), "budget_children")

test_budget_children_advisory if not_denied(decide(object.union({"enforced": false}, object.union(delegate, counts({"children": 3})))), "budget_children")

# enforced missing counts as enforced (fails closed).
test_budget_enforced_missing_counts if denied(decide({"enforced": null, "history": {"counts": {"total": 2000}}}), "budget_total_calls")

# ------------------------------------------------------ denial threshold

out_of_scope_tool := {"action": {"name": "shell:net"}, "context": {"toolInScope": false}}

test_too_many_denials if {
	r := decide(object.union(out_of_scope_tool, counts({"denials": 4})))
	denied(r, "tool_not_in_scope")
	denied(r, "too_many_denials")
	r.obligations.suspend == true
	some a in r.alerts
	startswith(a, "denials: run 01jtest")
}

test_too_many_denials_over_threshold if denied(decide(object.union(out_of_scope_tool, counts({"denials": 9}))), "too_many_denials")

test_too_many_denials_below_threshold if {
	r := decide(object.union(out_of_scope_tool, counts({"denials": 3})))
	not denied(r, "too_many_denials")
	r.obligations.suspend == false
}

test_too_many_denials_needs_a_deny if {
	r := decide(counts({"denials": 10}))
	allowed(r)
	r.obligations.suspend == false
}

test_too_many_denials_approval_is_not_a_deny if not_denied(decide(object.union(merge, counts({"denials": 10}))), "too_many_denials")

test_too_many_denials_no_threshold if not_denied(decide_with(object.union(out_of_scope_tool, counts({"denials": 100})), {"denials": {"max": 0}}), "too_many_denials")

test_too_many_denials_advisory if not_denied(decide(object.union({"enforced": false}, object.union(out_of_scope_tool, counts({"denials": 4})))), "too_many_denials")

# A budget deny counts toward the threshold too (no recursion through deny).
test_too_many_denials_from_budget if denied(decide(counts({"denials": 4, "children": 3, "total": 2000})), "too_many_denials")
