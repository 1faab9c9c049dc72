package api

import (
	"encoding/json"
	"time"

	"github.com/writ-dev/writ"
)

// ApprovalList is the answer of GET /v1/approvals, newest first.
type ApprovalList struct {
	Approvals []*writ.ApprovalRequest `json:"approvals"`
}

// ApprovalView is what an approver is shown (docs/design.md §4.5), the
// answer of GET /v1/approvals/{id}: the request and its subject, the run
// it gates and its trigger, the risk, and — kept apart and labelled —
// what the agent itself wrote.
type ApprovalView struct {
	writ.ApprovalRequest
	RunInfo        *ApprovalRun  `json:"runInfo,omitempty"`
	Risk           ApprovalRisk  `json:"risk"`
	Action         *writ.Action  `json:"action,omitempty"`
	WrittenByAgent *AgentWritten `json:"writtenByAgent,omitempty"`
	// Statements is reserved for the signed statements of the request's
	// verdicts; the server sets none yet.
	Statements map[string]string `json:"statements,omitempty"`
}

// ApprovalRun summarizes the gated run.
type ApprovalRun struct {
	ID            writ.RunID    `json:"id"`
	Agent         string        `json:"agent"`
	Profile       string        `json:"profile"`
	Issuer        string        `json:"issuer"`
	Ticket        writ.Ticket   `json:"ticket"`
	State         writ.RunState `json:"state"`
	Deadline      time.Time     `json:"deadline"`
	Scope         writ.Scope    `json:"scope"`
	TriggerDigest string        `json:"triggerDigest"`
}

// ApprovalRisk are the risk signals, computed by the server.
type ApprovalRisk struct {
	Profile        string   `json:"profile"`
	Environment    string   `json:"environment,omitempty"`
	Sensitive      bool     `json:"sensitiveEnvironment"`
	Secret         string   `json:"secret,omitempty"`
	ProtectedPaths []string `json:"protectedPaths,omitempty"`
	Reasons        []string `json:"reasons"`
}

// AgentWritten is text the agent wrote: it is shown, never trusted.
type AgentWritten struct {
	Note string          `json:"note"`
	Args json.RawMessage `json:"args,omitempty"`
}
