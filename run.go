package writ

import (
	"fmt"
	"time"
)

// RunState is the lifecycle state of a run (docs/design.md §4.3):
// active ⇄ suspended, then exactly one of ended, killed or expired.
type RunState string

// Run states.
const (
	RunActive    RunState = "active"
	RunSuspended RunState = "suspended"
	RunEnded     RunState = "ended"
	RunKilled    RunState = "killed"
	RunExpired   RunState = "expired"
)

// RunStates lists every state, live ones first.
var RunStates = []RunState{RunActive, RunSuspended, RunEnded, RunKilled, RunExpired}

// Final reports whether s is a final state, from which no transition leads.
func (s RunState) Final() bool {
	return s == RunEnded || s == RunKilled || s == RunExpired
}

// Valid reports whether s is one of the defined states.
func (s RunState) Valid() bool {
	for _, v := range RunStates {
		if s == v {
			return true
		}
	}
	return false
}

// CanTransition reports whether a run in state s may move to state to.
// Final states are one-way: nothing leaves them.
func (s RunState) CanTransition(to RunState) bool {
	switch s {
	case RunActive:
		return to == RunSuspended || to.Final()
	case RunSuspended:
		return to == RunActive || to.Final()
	}
	return false
}

// EventType is the audit event type recorded when a run enters state s.
func (s RunState) EventType() string {
	switch s {
	case RunActive:
		return EventRunResumed
	case RunSuspended:
		return EventRunSuspended
	case RunEnded:
		return EventRunEnded
	case RunKilled:
		return EventRunKilled
	case RunExpired:
		return EventRunExpired
	}
	return ""
}

// Run is one bounded execution of an agent under a signed trigger.
type Run struct {
	ID            RunID     `json:"id"`
	Agent         string    `json:"agent"`
	Profile       string    `json:"profile"`
	Ticket        Ticket    `json:"ticket"`
	Task          string    `json:"task,omitempty"`
	Scope         Scope     `json:"scope"`
	ScopeDigest   string    `json:"scopeDigest"`
	TriggerID     string    `json:"triggerId"`
	TriggerDigest string    `json:"triggerDigest"`
	Issuer        string    `json:"issuer"`
	SignerKey     string    `json:"signerKey"`
	State         RunState  `json:"state"`
	CreatedAt     time.Time `json:"createdAt"`
	Deadline      time.Time `json:"deadline"`
	EndedAt       time.Time `json:"endedAt,omitzero"`
	EndReason     string    `json:"endReason,omitempty"`
	Parent        RunID     `json:"parent,omitempty"`
	Depth         int       `json:"depth"`
	// Chain names the run's ancestors, its parent first: the delegation
	// chain its tokens carry as RFC 8693 act claims and policy sees.
	Chain []ChainLink `json:"chain,omitempty"`
}

// ChainLink is one ancestor of a delegated run.
type ChainLink struct {
	Run   RunID  `json:"run"`
	Agent string `json:"agent"`
}

// SPIFFEID returns the run's workload identity in trust domain td:
// spiffe://<td>/agent/<agent>/run/<run-id>.
func (r *Run) SPIFFEID(td string) string {
	return fmt.Sprintf("spiffe://%s/agent/%s/run/%s", td, r.Agent, r.ID)
}

// LiveAt reports whether the run may act at time now: its state is active
// and its deadline has not passed. Enforcement points use this rather than
// the stored state alone, so a run is refused at its deadline even before
// the expiry loop has recorded it as expired.
func (r *Run) LiveAt(now time.Time) bool {
	return r.State == RunActive && now.Before(r.Deadline)
}

// RunFilter selects runs in a listing. Zero fields match everything.
type RunFilter struct {
	State RunState
	Agent string
	Limit int // 0 means the store's default
}
