package attest

import "time"

// PredicateRelease is the predicate type of a release attestation: writ
// released an artifact to an environment, through its release gate.
const PredicateRelease = "https://writ.dev/attestation/release/v1"

// ReleasePredicate is what the release gate checked: the artifact's
// provenance from writ's builder (the build event, its source commit and
// the approved merge that put it on its protected branch), and the
// release decision with its approval of this digest for this environment.
type ReleasePredicate struct {
	Artifact      string    `json:"artifact"` // sha256:<hex>
	Environment   string    `json:"environment"`
	Run           string    `json:"run"` // the release run
	Actor         string    `json:"actor"`
	Decision      string    `json:"decision"`
	Approval      string    `json:"approval,omitempty"`
	PolicyDigest  string    `json:"policyDigest"`
	BuildEvent    string    `json:"buildEvent"`
	BuildRun      string    `json:"buildRun"`
	Builder       string    `json:"builder"`
	SourceRepo    string    `json:"sourceRepo"`
	SourceCommit  string    `json:"sourceCommit"`
	MergeEvent    string    `json:"mergeEvent"`
	MergeApproval string    `json:"mergeApproval"`
	ReleasedAt    time.Time `json:"releasedAt"`
}
