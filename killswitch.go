package writ

import "time"

// Kill switch events (docs/design.md §4.3, C-PO7): an admin disabled or
// re-enabled an agent, or turned the global freeze on or off.
const (
	EventAgentDisabled = "agent.disabled"
	EventAgentEnabled  = "agent.enabled"
	EventFreeze        = "freeze"
)

// KillSwitchState is what the kill switches say now.
type KillSwitchState struct {
	Frozen         bool      `json:"frozen"`
	FrozenAt       time.Time `json:"frozenAt,omitzero"`
	FrozenBy       string    `json:"frozenBy,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	DisabledAgents []string  `json:"disabledAgents"`
}
