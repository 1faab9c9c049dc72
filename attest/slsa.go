package attest

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SLSA Provenance v1 (https://slsa.dev/provenance/v1), as writ's builder
// writes it.
const (
	PredicateSLSAProvenance = "https://slsa.dev/provenance/v1"
	// BuildTypeRecipe is the build type of a writ build recipe run on an
	// approved, merged commit.
	BuildTypeRecipe = "https://writ.dev/build/recipe/v1"
)

// Provenance is an SLSA Provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built, from what, how.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   BuildExternal        `json:"externalParameters"`
	InternalParameters   BuildInternal        `json:"internalParameters"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
}

// BuildExternal are the parameters a requester chose: the recipe (by name,
// with the command and outputs the configuration gives it) and the source.
type BuildExternal struct {
	Recipe RecipeRef `json:"recipe"`
	Source SourceRef `json:"source"`
}

// RecipeRef is a configured build recipe.
type RecipeRef struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
	Outputs []string `json:"outputs"`
	Hosts   []string `json:"hosts,omitempty"`
}

// SourceRef is the commit built.
type SourceRef struct {
	Repo   string `json:"repo"`
	Commit string `json:"commit"`
}

// BuildInternal are the parameters writ set: the run whose merged work
// was built, its trigger, the policy in force, and the approved merge that
// put the commit on its protected branch.
type BuildInternal struct {
	Run           string `json:"run"`
	TriggerDigest string `json:"triggerDigest"`
	PolicyDigest  string `json:"policyDigest"`
	MergeEvent    string `json:"mergeEvent"`
	MergeApproval string `json:"mergeApproval"`
	MergeInto     string `json:"mergeInto"`
	Sandbox       string `json:"sandbox"` // "landlock", or "none" when the server was configured without one
}

// ResourceDescriptor is an in-toto resource descriptor.
type ResourceDescriptor struct {
	URI    string            `json:"uri,omitempty"`
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// RunDetails says who built and when.
type RunDetails struct {
	Builder  BuilderRef    `json:"builder"`
	Metadata BuildMetadata `json:"metadata"`
}

// BuilderRef names the builder.
type BuilderRef struct {
	ID string `json:"id"`
}

// BuildMetadata identifies one build.
type BuildMetadata struct {
	InvocationID string    `json:"invocationId"`
	StartedOn    time.Time `json:"startedOn"`
	FinishedOn   time.Time `json:"finishedOn"`
}

// VerifyProvenance checks a build provenance envelope: the signature with
// the attest key pub, the SLSA v1 predicate type, the build type and that
// its builder is builderID. It returns the statement and the predicate.
func VerifyProvenance(env []byte, pub *ecdsa.PublicKey, builderID string) (*Statement, *Provenance, error) {
	st, payload, err := Verify(env, pub)
	if err != nil {
		return nil, nil, err
	}
	if st.PredicateType != PredicateSLSAProvenance {
		return nil, nil, fmt.Errorf("attest: predicate type %q, want %s", st.PredicateType, PredicateSLSAProvenance)
	}
	var raw struct {
		Predicate json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, nil, fmt.Errorf("attest: %w", err)
	}
	var p Provenance
	dec := json.NewDecoder(bytes.NewReader(raw.Predicate))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, nil, fmt.Errorf("attest: provenance: %w", err)
	}
	if p.BuildDefinition.BuildType != BuildTypeRecipe {
		return nil, nil, fmt.Errorf("attest: build type %q, want %s", p.BuildDefinition.BuildType, BuildTypeRecipe)
	}
	if builderID == "" || p.RunDetails.Builder.ID != builderID {
		return nil, nil, fmt.Errorf("attest: built by %q, not by writ's builder %q", p.RunDetails.Builder.ID, builderID)
	}
	if p.BuildDefinition.ExternalParameters.Source.Commit == "" {
		return nil, nil, errors.New("attest: provenance names no source commit")
	}
	return st, &p, nil
}

// HasSubject reports whether st names an artifact with the SHA-256
// digest hex.
func (st *Statement) HasSubject(alg, hex string) bool {
	for _, s := range st.Subject {
		if s.Digest[alg] == hex {
			return true
		}
	}
	return false
}
