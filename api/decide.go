package api

import "github.com/writ-dev/writ"

// DecideRequest is the body of POST /v1/decide (docs/design.md §4.4). A
// run leaves Run empty (it asks about itself); a human sets DryRun and
// Run.
type DecideRequest struct {
	Action  writ.Action `json:"action"`
	Via     string      `json:"via,omitempty"`
	CallRef string      `json:"callRef,omitempty"`
	DryRun  bool        `json:"dryRun,omitempty"`
	Run     string      `json:"run,omitempty"`
}

// DecideResponse is the answer of POST /v1/decide.
type DecideResponse struct {
	ID           string            `json:"id"`
	Decision     string            `json:"decision"`
	Reasons      []writ.Reason     `json:"reasons"`
	Approval     *writ.ApprovalRef `json:"approval,omitempty"`
	Obligations  writ.Obligations  `json:"obligations"`
	PolicyDigest string            `json:"policyDigest"`
	InputDigest  string            `json:"inputDigest"`
	RunState     writ.RunState     `json:"runState"`
	DryRun       bool              `json:"dryRun,omitempty"`
}

// OutcomeRequest is the body of POST /v1/decisions/{id}/outcome, and of
// POST /v1/outcomes with Via and CallRef naming the call.
type OutcomeRequest struct {
	Via        string `json:"via,omitempty"`
	CallRef    string `json:"callRef,omitempty"`
	ExitCode   *int   `json:"exitCode,omitempty"`
	DurationMS int64  `json:"durationMs"`
	Error      string `json:"error,omitempty"`
}

// OutcomeResponse answers both outcome routes: the decision the outcome
// was recorded for, and the outcome as recorded.
type OutcomeResponse struct {
	Decision string        `json:"decision"`
	Outcome  *writ.Outcome `json:"outcome"`
}
