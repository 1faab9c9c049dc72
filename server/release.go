package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/gitgw"
)

// provenanceOf is what the release gate accepted of an artifact's build.
type provenanceOf struct {
	buildEvent, buildRun string
	repo, commit         string
	merge                *mergeRef
}

// Release is POST /v1/releases: the release gate. An artifact is released
// to an environment only if (1) writ's builder built it — a build event
// whose SLSA provenance verifies with the attest key, names writ's builder
// and this digest; what a run built for itself is agent-asserted and never
// counts — (2) its source commit reached its protected branch by an
// approved merge (the merge event the provenance names, re-read from the
// log), and (3) policy allows the release run's `release` action, which
// by default needs an `artifact` approval of exactly this digest for
// exactly this environment (two approvers for a sensitive one). Then the
// release is recorded and its attestation signed.
func (s *Server) Release(ctx context.Context, p *writ.Principal, req *writ.ReleaseRequest) (*writ.ReleaseResult, error) {
	hexDigest, ok := strings.CutPrefix(req.Artifact, "sha256:")
	if b, err := hex.DecodeString(hexDigest); !ok || err != nil || len(b) != 32 || strings.ToLower(hexDigest) != hexDigest {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_artifact", "artifact %q: want sha256:<64 lowercase hex>", req.Artifact)
	}
	if req.Environment == "" {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_environment", "name the environment to release to")
	}
	run, err := s.store.GetRun(ctx, req.Run)
	if err != nil {
		return nil, err
	}
	if p.Kind == writ.PrincipalRun && p.Run != run.ID {
		return nil, writ.Errorf(writ.KindDenied, "not_your_run", "a run may release only as itself")
	}
	prov, err := s.provenance(ctx, req.Artifact, hexDigest)
	if err != nil {
		return nil, err
	}
	a := writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Repo: prov.repo, Environment: req.Environment, Digest: req.Artifact}}
	d, err := s.decider.Decide(ctx, &decision.Request{Run: run, Action: a, Via: "api", Actor: p.Actor()})
	if err != nil {
		return nil, err
	}
	switch d.Verdict {
	case writ.VerdictAllow:
	case writ.VerdictApprovalRequired:
		e := writ.Errorf(writ.KindApprovalPending, "approval_required", "releasing %s to %s: %s", req.Artifact, req.Environment, verdictText(d))
		e.Decision = d.ID
		if d.Approval != nil {
			e.Approval = d.Approval.ID
			e.Message += "; approve " + d.Approval.ID + " (writ approvals approve), then release again"
		}
		return nil, e
	default:
		e := writ.Errorf(writ.KindDenied, "release_denied", "releasing %s to %s: %s", req.Artifact, req.Environment, verdictText(d))
		e.Decision = d.ID
		return nil, e
	}
	id := writ.NewULID(s.now(), nil)
	pred := attest.ReleasePredicate{
		Artifact: req.Artifact, Environment: req.Environment, Run: string(run.ID), Actor: p.Actor(), Decision: d.ID,
		PolicyDigest: s.policy.engine.Bundle().Digest, BuildEvent: prov.buildEvent, BuildRun: prov.buildRun, Builder: builderID(s.cfg.TrustDomain),
		SourceRepo: prov.repo, SourceCommit: prov.commit, MergeEvent: prov.merge.Event, MergeApproval: prov.merge.Approval,
		ReleasedAt: s.now().UTC(),
	}
	if d.Approval != nil {
		pred.Approval = d.Approval.ID
	}
	env, err := attest.Sign(&attest.Statement{Subject: []attest.Subject{{Name: req.Artifact, Digest: map[string]string{"sha256": hexDigest}}},
		PredicateType: attest.PredicateRelease, Predicate: pred}, s.keys.Attest)
	if err != nil {
		return nil, err
	}
	ev := &writ.Event{Type: writ.EventRelease, Run: run.ID, Actor: p.Actor(), Action: writ.ActionRelease, Decision: d.ID, Subject: req.Artifact,
		Details: map[string]any{"id": id, "artifact": req.Artifact, "environment": req.Environment, "buildEvent": prov.buildEvent,
			"repo": prov.repo, "commit": prov.commit, "mergeEvent": prov.merge.Event, "approval": pred.Approval, "attestation": json.RawMessage(env)}}
	if err := s.store.AppendArtifactEvent(ctx, ev, writ.ArtifactRef{Digest: req.Artifact, Kind: writ.EventRelease, Environment: req.Environment}); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "released", slog.String("artifact", req.Artifact), slog.String("environment", req.Environment), slog.String("run", string(run.ID)))
	return &writ.ReleaseResult{ID: id, Run: run.ID, Artifact: req.Artifact, Environment: req.Environment, Build: prov.buildEvent,
		Repo: prov.repo, Commit: prov.commit, Decision: d.ID, Approval: pred.Approval, Attestation: env}, nil
}

// provenance finds a build of the artifact by writ's builder whose source
// commit was merged by approval, or says why there is none.
func (s *Server) provenance(ctx context.Context, digest, hexDigest string) (*provenanceOf, error) {
	builds, err := s.store.ArtifactEntries(ctx, digest, writ.EventBuild)
	if err != nil {
		return nil, err
	}
	why := "no build by writ's builder produced it: an artifact a run built for itself (writ exec, its own CI) is agent-asserted and is never released; build it with writ build RUN --recipe NAME"
	code := "no_provenance"
	for _, b := range builds {
		var ev struct {
			Type    string `json:"type"`
			Run     string `json:"run"`
			Details struct {
				State      string          `json:"state"`
				Provenance json.RawMessage `json:"provenance"`
			} `json:"details"`
		}
		if json.Unmarshal(b.Body, &ev) != nil || ev.Type != writ.EventBuild || ev.Details.State != writ.BuildSucceeded || len(ev.Details.Provenance) == 0 {
			continue
		}
		st, prov, err := attest.VerifyProvenance(ev.Details.Provenance, &s.keys.Attest.PublicKey, builderID(s.cfg.TrustDomain))
		if err != nil {
			why, code = "its build provenance does not verify: "+err.Error(), "bad_provenance"
			continue
		}
		if !st.HasSubject("sha256", hexDigest) {
			why, code = "its build provenance is about other artifacts", "bad_provenance"
			continue
		}
		src := prov.BuildDefinition.ExternalParameters.Source
		in := prov.BuildDefinition.InternalParameters
		// The merge is re-read from the log, not taken from the
		// provenance's word.
		me, err := s.store.EntryByID(ctx, in.MergeEvent)
		if err != nil {
			why, code = "the merge its provenance names is not in the log", "source_not_merged"
			continue
		}
		m, ok := mergeFromEvent(me.Body)
		if !ok || me.Type != gitgw.EventMerge || m.Head != src.Commit || m.Repo != src.Repo {
			why, code = "its source commit "+src.Commit+" did not reach its protected branch by an approved merge", "source_not_merged"
			continue
		}
		m.Event = me.ID
		return &provenanceOf{buildEvent: b.ID, buildRun: ev.Run, repo: src.Repo, commit: src.Commit, merge: m}, nil
	}
	return nil, writ.Errorf(writ.KindDenied, code, "artifact %s cannot be released: %s", digest, why)
}
