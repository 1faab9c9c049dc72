package writ

import (
	"encoding/json"
	"time"
)

// Event types of builds, releases and deployments (docs/design.md §4.6).
const (
	EventBuild      = "build"
	EventRelease    = "release"
	EventDeployment = "deployment"
)

// ArtifactRef files an event under an artifact digest ("sha256:<hex>"):
// Kind is build, release or deployment; Environment names where a release
// or deployment went.
type ArtifactRef struct {
	Digest      string
	Kind        string
	Environment string
}

// BuildRequest asks writ's builder to build a run's merged, approved
// commit with a configured recipe (POST /v1/builds).
type BuildRequest struct {
	Run    RunID  `json:"run"`
	Recipe string `json:"recipe"`
	Repo   string `json:"repo,omitempty"` // when the run merged into several repositories
}

// BuildOutput is one file a build produced.
type BuildOutput struct {
	Name   string `json:"name"`
	Digest string `json:"digest"` // sha256:<hex>
	Size   int64  `json:"size"`
}

// BuildResult is a finished build: succeeded, with outputs and their
// signed SLSA provenance, or failed, with why.
type BuildResult struct {
	ID         string          `json:"id"`
	Run        RunID           `json:"run"`
	Recipe     string          `json:"recipe"`
	Repo       string          `json:"repo"`
	Commit     string          `json:"commit"`
	State      string          `json:"state"` // succeeded or failed
	Failure    string          `json:"failure,omitempty"`
	Outputs    []BuildOutput   `json:"outputs,omitempty"`
	Decision   string          `json:"decision"`
	Log        string          `json:"log,omitempty"`
	Provenance json.RawMessage `json:"provenance,omitempty"` // DSSE envelope
}

// Build states.
const (
	BuildSucceeded = "succeeded"
	BuildFailed    = "failed"
)

// ReleaseRequest asks to release an artifact to an environment as a
// release run's action (POST /v1/releases).
type ReleaseRequest struct {
	Run         RunID  `json:"run"`
	Artifact    string `json:"artifact"` // sha256:<hex>
	Environment string `json:"environment"`
}

// ReleaseResult is a recorded release with its signed attestation.
type ReleaseResult struct {
	ID          string          `json:"id"`
	Run         RunID           `json:"run"`
	Artifact    string          `json:"artifact"`
	Environment string          `json:"environment"`
	Build       string          `json:"build"` // the build event whose provenance the gate accepted
	Repo        string          `json:"repo"`
	Commit      string          `json:"commit"`
	Decision    string          `json:"decision"`
	Approval    string          `json:"approval,omitempty"`
	Attestation json.RawMessage `json:"attestation"` // DSSE envelope
}

// DeploymentPayloadType is the DSSE payload type of a deployment report a
// CI system signs with its system signer key (POST /v1/deployments).
const DeploymentPayloadType = "application/vnd.writ.deployment+json"

// DeploymentReport is what CI reports it deployed: signed, in a DSSE
// envelope, by a system signer configured as a deployment reporter.
type DeploymentReport struct {
	ID          string    `json:"id"` // a ULID the reporter makes; a repeat is refused
	Environment string    `json:"environment"`
	Artifact    string    `json:"artifact"` // sha256:<hex>
	Result      string    `json:"result"`   // succeeded or failed
	Pipeline    string    `json:"pipeline,omitempty"`
	ReportedAt  time.Time `json:"reportedAt"`
}

// DeploymentResult is a recorded deployment; Alert says it deployed an
// artifact never released to that environment.
type DeploymentResult struct {
	ID       string `json:"id"`
	Reporter string `json:"reporter"`
	Released bool   `json:"released"`
	Alert    bool   `json:"alert"`
}
