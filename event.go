package writ

import (
	"encoding/json"
	"time"
)

// Event types (docs/design.md §4.6): dotted and stable.
const (
	EventTriggerAccepted = "trigger.accepted"
	EventTriggerRefused  = "trigger.refused"
	EventRunStarted      = "run.started"
	EventRunSuspended    = "run.suspended"
	EventRunResumed      = "run.resumed"
	EventRunEnded        = "run.ended"
	EventRunKilled       = "run.killed"
	EventRunExpired      = "run.expired"
	EventRunDelegated    = "run.delegated"
	EventReviewRecorded  = "review.recorded"
	EventTokenIssued     = "token.issued"
	EventAlert           = "alert"
	EventKeyRotated      = "key.rotated"
)

// Event is one audit log entry. The store fills ID and Time (the commit
// time) and serializes it once with [Event.Marshal]; those exact bytes are
// what the audit log hashes, so nothing ever re-canonicalizes them.
//
// Details must never carry a secret.
type Event struct {
	ID       string         `json:"id"`
	Time     time.Time      `json:"time"`
	Type     string         `json:"type"`
	Run      RunID          `json:"run,omitempty"`
	Actor    string         `json:"actor,omitempty"`
	Action   string         `json:"action,omitempty"`
	Decision string         `json:"decision,omitempty"`
	Subject  string         `json:"subject,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
}

// Marshal returns the bytes stored for e. Field order is fixed by the struct
// and map keys are sorted, so the same event always gives the same bytes.
func (e *Event) Marshal() ([]byte, error) {
	c := *e
	c.Time = c.Time.UTC()
	return json.Marshal(&c)
}

// Actor strings name who caused an event.
const (
	ActorSystem = "writ"
)

// HumanActor returns the actor string of a human: "human:<name>".
func HumanActor(name string) string { return "human:" + name }

// SignerActor returns the actor string of a trigger signer:
// "signer:<name>".
func SignerActor(name string) string { return "signer:" + name }

// LogEntry is one event as the audit log serves it. Seq is its log index,
// or -1 while it is committed but not yet logged; Body is the exact stored
// bytes; Leaf is the leaf hash, SHA-256(0x00 || Body), recorded when it was
// logged (zero before).
type LogEntry struct {
	Seq  int64
	ID   string
	Type string
	Run  RunID
	Body []byte
	Leaf [32]byte
}
