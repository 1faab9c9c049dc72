package api

import (
	"encoding/json"

	"github.com/writ-dev/writ"
)

// AuditEntry is one log entry on the wire. Body is the exact stored bytes,
// base64: the leaf hash is SHA-256(0x00 || those bytes), never of a
// re-encoding.
type AuditEntry struct {
	Seq      int64      `json:"seq"`
	ID       string     `json:"id"`
	Type     string     `json:"type"`
	Run      writ.RunID `json:"run,omitempty"`
	Body     []byte     `json:"body"`
	LeafHash string     `json:"leafHash,omitempty"` // hex, as recorded when logged
}

// AuditEntries is the answer of GET /v1/audit/entries: the logged entries
// with index in [start, end), at most 1000.
type AuditEntries struct {
	Entries []AuditEntry `json:"entries"`
}

// AuditCheckpoints is the answer of GET /v1/audit/checkpoints: stored
// signed checkpoint notes, newest first.
type AuditCheckpoints struct {
	Checkpoints []string `json:"checkpoints"`
}

// AuditKey is the answer of GET /v1/audit/key: the log's public note
// verifier key and its checkpoint origin.
type AuditKey struct {
	Key    string `json:"key"`
	Origin string `json:"origin"`
}

// InclusionResponse proves that an entry is in the tree of a size (GET
// /v1/audit/proof/inclusion).
type InclusionResponse struct {
	Index      int64      `json:"index"`
	Size       int64      `json:"size"`
	Entry      AuditEntry `json:"entry"`
	Proof      []string   `json:"proof"`                // base64 hashes, leaf to root (tlog.RecordProof)
	Checkpoint string     `json:"checkpoint,omitempty"` // the signed checkpoint of Size, when it is the latest
}

// ConsistencyResponse proves that the tree of size To extends the tree of
// size From (GET /v1/audit/proof/consistency).
type ConsistencyResponse struct {
	From  int64    `json:"from"`
	To    int64    `json:"to"`
	Proof []string `json:"proof"` // base64 hashes (tlog.TreeProof)
}

// TraceEvent is one event of a timeline.
type TraceEvent struct {
	Seq   int64           `json:"seq"` // -1 until logged
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	Event json.RawMessage `json:"event"` // the exact logged bytes
}

// Trace is the answer of GET /v1/trace/{run}: a run and everything it did
// — and was refused — in commit order.
type Trace struct {
	Run    RunView      `json:"run"`
	Events []TraceEvent `json:"events"`
}

// ArtifactTrace is the answer of GET /v1/trace/sha256:…: an artifact's
// chain, the runs that built and released it, and the build, release,
// deployment and alert events of its digest.
type ArtifactTrace struct {
	Artifact string             `json:"artifact"`
	Runs     []ArtifactTraceRun `json:"runs"`
	Events   []TraceEvent       `json:"events"`
}

// ArtifactTraceRun is one run in an artifact's chain, with its timeline.
type ArtifactTraceRun struct {
	Run    RunView      `json:"run"`
	Role   string       `json:"role"` // built (its merged work was built) or released
	Events []TraceEvent `json:"events"`
}
