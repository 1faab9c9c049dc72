// Package gate is writ's build, release and deployment gates
// (docs/design.md §4.4, docs/attestations.md): a server-side build of a
// run's approved merge with SLSA provenance, the release gate that lets an
// artifact reach an environment only with writ's provenance, a source that
// reached its branch by an approved merge and an artifact approval, and
// the deployment reports CI signs. It runs no builds itself: package
// builder does, under the sandbox.
//
// Part of the writ server; no API stability.
package gate

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/gitgw"
	"github.com/writ-dev/writ/internal/strictjson"
	"github.com/writ-dev/writ/trigger"
)

// Store is what the gates read and write (package sqlstore).
type Store interface {
	GetRun(ctx context.Context, id writ.RunID) (*writ.Run, error)
	RunEntries(ctx context.Context, run writ.RunID) ([]writ.LogEntry, error)
	ArtifactEntries(ctx context.Context, digest, kind string) ([]writ.LogEntry, error)
	EntryByID(ctx context.Context, id string) (*writ.LogEntry, error)
	AppendArtifactEvent(ctx context.Context, ev *writ.Event, refs ...writ.ArtifactRef) error
}

// Decider is the policy decision point.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error)
}

// Repos finds a hosted repository's directory (the git gateway).
type Repos interface {
	RepoDir(name string) (string, error)
}

// Config holds the gates' dependencies.
type Config struct {
	Store   Store
	Decider Decider
	// Builder runs recipes (nil: builds are refused); Recipes are the
	// configured ones; Repos finds the repository a build checks out.
	Builder *builder.Builder
	Recipes []builder.Recipe
	Repos   Repos
	// AttestKey signs release attestations and verifies build provenance;
	// BuilderID is writ's builder's id in that provenance.
	AttestKey *ecdsa.PrivateKey
	BuilderID string
	// PolicyDigest is the digest of the policy bundle in force.
	PolicyDigest func() string
	// Reporters is the key ring of the deployment reporters (system
	// signers); nil or empty: no deployment report is accepted.
	Reporters *trigger.KeyRing
	// Leeway bounds how far a deployment report's time may be from now
	// (plus five minutes in the past).
	Leeway time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// Gates serves builds, releases and deployment reports.
type Gates struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New returns the gates over cfg.
func New(cfg Config) *Gates {
	g := &Gates{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g
}

// BuilderID is the id of writ's builder in the trust domain, as build
// provenance names it.
func BuilderID(trustDomain string) string { return "spiffe://" + trustDomain + "/writ/builder/v1" }

// DeploySSHNamespace is the SSH signature namespace of deployment reports.
const DeploySSHNamespace = "writ-deployment"

// Build is POST /v1/builds: it builds a run's approved, merged commit with
// a configured recipe — the run's `build` action, decided by policy — and
// records the build (succeeded or failed) with its signed provenance.
func (g *Gates) Build(ctx context.Context, p *writ.Principal, req *writ.BuildRequest) (*writ.BuildResult, error) {
	if g.cfg.Builder == nil {
		return nil, writ.Errorf(writ.KindUnavailable, "no_builder", "this server has no build recipes (builds.recipes in writ.yaml) or no git gateway")
	}
	i := slices.IndexFunc(g.cfg.Recipes, func(r builder.Recipe) bool { return r.Name == req.Recipe })
	if i < 0 {
		var names []string
		for _, r := range g.cfg.Recipes {
			names = append(names, r.Name)
		}
		return nil, writ.Errorf(writ.KindNotFound, "no_such_recipe", "no build recipe %q (configured: %v)", req.Recipe, names)
	}
	recipe := g.cfg.Recipes[i]
	run, err := g.cfg.Store.GetRun(ctx, req.Run)
	if err != nil {
		return nil, err
	}
	if p.Kind == writ.PrincipalRun && p.Run != run.ID {
		return nil, writ.Errorf(writ.KindDenied, "not_your_run", "a run may build only its own merged work")
	}
	merge, err := g.approvedMerge(ctx, run.ID, req.Repo)
	if err != nil {
		return nil, err
	}
	a := writ.Action{Kind: writ.ActionBuild, Name: recipe.Name, Target: writ.Target{Repo: merge.Repo, Head: merge.Head}}
	d, err := g.cfg.Decider.Decide(ctx, &decision.Request{Run: run, Action: a, Via: "api", Actor: p.Actor()})
	if err != nil {
		return nil, err
	}
	if err := writ.DecisionError(d); err != nil {
		return nil, err
	}
	repoDir, err := g.cfg.Repos.RepoDir(merge.Repo)
	if err != nil {
		return nil, err
	}
	id := writ.NewULID(g.now(), nil)
	res, err := g.cfg.Builder.Build(ctx, &builder.Request{ID: id, Recipe: recipe, Repo: merge.Repo, RepoDir: repoDir, Commit: merge.Head,
		Internal: attest.BuildInternal{Run: string(run.ID), TriggerDigest: run.TriggerDigest, PolicyDigest: g.cfg.PolicyDigest(),
			MergeEvent: merge.Event, MergeApproval: merge.Approval, MergeInto: merge.Into}})
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", id, err)
	}
	out := &writ.BuildResult{ID: id, Run: run.ID, Recipe: recipe.Name, Repo: merge.Repo, Commit: merge.Head, State: writ.BuildSucceeded,
		Decision: d.ID, Log: res.Log, Provenance: res.Provenance}
	if res.Failure != "" {
		out.State, out.Failure, out.Provenance = writ.BuildFailed, res.Failure, nil
	}
	var refs []writ.ArtifactRef
	outputs := []map[string]any{}
	for _, o := range res.Outputs {
		out.Outputs = append(out.Outputs, writ.BuildOutput{Name: o.Name, Digest: o.Digest, Size: o.Size})
		outputs = append(outputs, map[string]any{"name": o.Name, "digest": o.Digest, "size": o.Size})
		refs = append(refs, writ.ArtifactRef{Digest: o.Digest, Kind: writ.EventBuild})
	}
	details := map[string]any{"recipe": recipe.Name, "repo": merge.Repo, "commit": merge.Head, "state": out.State, "outputs": outputs,
		"mergeEvent": merge.Event, "mergeApproval": merge.Approval, "builder": g.cfg.Builder.BuilderID(),
		"startedOn": res.StartedOn, "finishedOn": res.FinishedOn}
	if out.Failure != "" {
		details["failure"] = out.Failure
	}
	if out.Provenance != nil {
		details["provenance"] = json.RawMessage(out.Provenance)
	}
	ev := &writ.Event{Type: writ.EventBuild, Run: run.ID, Actor: p.Actor(), Action: writ.ActionBuild, Decision: d.ID, Subject: "build:" + id, Details: details}
	if err := g.cfg.Store.AppendArtifactEvent(ctx, ev, refs...); err != nil {
		return nil, err
	}
	g.log.InfoContext(ctx, "build", slog.String("id", id), slog.String("run", string(run.ID)), slog.String("recipe", recipe.Name),
		slog.String("commit", merge.Head), slog.String("state", out.State))
	return out, nil
}

// mergeRef is an approved merge of a run's work, from its merge event.
type mergeRef struct {
	Event, Repo, Into, Head, Approval string
}

// approvedMerge returns the run's last merge into repo (any repo when
// empty) that a human approved.
func (g *Gates) approvedMerge(ctx context.Context, id writ.RunID, repo string) (*mergeRef, error) {
	es, err := g.cfg.Store.RunEntries(ctx, id)
	if err != nil {
		return nil, err
	}
	var found *mergeRef
	for _, e := range es {
		if e.Type != gitgw.EventMerge {
			continue
		}
		m, ok := mergeFromEvent(e.Body)
		if !ok || (repo != "" && m.Repo != repo) {
			continue
		}
		m.Event = e.ID
		found = m
	}
	if found == nil {
		return nil, writ.Errorf(writ.KindConflict, "not_merged", "run %s has no approved merge%s: writ builds only commits that reached their protected branch by an approved merge (writ repo merge)", id, inRepo(repo))
	}
	return found, nil
}

// mergeFromEvent reads a merge event; ok is false unless it names a head
// and the approval it was merged under.
func mergeFromEvent(body []byte) (*mergeRef, bool) {
	var ev struct {
		Type    string `json:"type"`
		Details struct {
			Repo     string `json:"repo"`
			Into     string `json:"into"`
			Head     string `json:"head"`
			Approval string `json:"approval"`
		} `json:"details"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.Type != gitgw.EventMerge || ev.Details.Head == "" || ev.Details.Approval == "" {
		return nil, false
	}
	d := ev.Details
	return &mergeRef{Repo: d.Repo, Into: d.Into, Head: d.Head, Approval: d.Approval}, true
}

func inRepo(repo string) string {
	if repo == "" {
		return ""
	}
	return " into " + repo
}

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
func (g *Gates) Release(ctx context.Context, p *writ.Principal, req *writ.ReleaseRequest) (*writ.ReleaseResult, error) {
	hexDigest, ok := strings.CutPrefix(req.Artifact, "sha256:")
	if b, err := hex.DecodeString(hexDigest); !ok || err != nil || len(b) != 32 || strings.ToLower(hexDigest) != hexDigest {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_artifact", "artifact %q: want sha256:<64 lowercase hex>", req.Artifact)
	}
	if req.Environment == "" {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_environment", "name the environment to release to")
	}
	run, err := g.cfg.Store.GetRun(ctx, req.Run)
	if err != nil {
		return nil, err
	}
	if p.Kind == writ.PrincipalRun && p.Run != run.ID {
		return nil, writ.Errorf(writ.KindDenied, "not_your_run", "a run may release only as itself")
	}
	prov, err := g.provenance(ctx, req.Artifact, hexDigest)
	if err != nil {
		return nil, err
	}
	a := writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Repo: prov.repo, Environment: req.Environment, Digest: req.Artifact}}
	d, err := g.cfg.Decider.Decide(ctx, &decision.Request{Run: run, Action: a, Via: "api", Actor: p.Actor()})
	if err != nil {
		return nil, err
	}
	if err := writ.DecisionError(d); err != nil {
		return nil, err
	}
	id := writ.NewULID(g.now(), nil)
	pred := attest.ReleasePredicate{
		Artifact: req.Artifact, Environment: req.Environment, Run: string(run.ID), Actor: p.Actor(), Decision: d.ID,
		PolicyDigest: g.cfg.PolicyDigest(), BuildEvent: prov.buildEvent, BuildRun: prov.buildRun, Builder: g.cfg.BuilderID,
		SourceRepo: prov.repo, SourceCommit: prov.commit, MergeEvent: prov.merge.Event, MergeApproval: prov.merge.Approval,
		ReleasedAt: g.now().UTC(),
	}
	if d.Approval != nil {
		pred.Approval = d.Approval.ID
	}
	env, err := attest.Sign(&attest.Statement{Subject: []attest.Subject{{Name: req.Artifact, Digest: map[string]string{"sha256": hexDigest}}},
		PredicateType: attest.PredicateRelease, Predicate: pred}, g.cfg.AttestKey)
	if err != nil {
		return nil, err
	}
	ev := &writ.Event{Type: writ.EventRelease, Run: run.ID, Actor: p.Actor(), Action: writ.ActionRelease, Decision: d.ID, Subject: req.Artifact,
		Details: map[string]any{"id": id, "artifact": req.Artifact, "environment": req.Environment, "buildEvent": prov.buildEvent,
			"repo": prov.repo, "commit": prov.commit, "mergeEvent": prov.merge.Event, "approval": pred.Approval, "attestation": json.RawMessage(env)}}
	if err := g.cfg.Store.AppendArtifactEvent(ctx, ev, writ.ArtifactRef{Digest: req.Artifact, Kind: writ.EventRelease, Environment: req.Environment}); err != nil {
		return nil, err
	}
	g.log.InfoContext(ctx, "released", slog.String("artifact", req.Artifact), slog.String("environment", req.Environment), slog.String("run", string(run.ID)))
	return &writ.ReleaseResult{ID: id, Run: run.ID, Artifact: req.Artifact, Environment: req.Environment, Build: prov.buildEvent,
		Repo: prov.repo, Commit: prov.commit, Decision: d.ID, Approval: pred.Approval, Attestation: env}, nil
}

// provenance finds a build of the artifact by writ's builder whose source
// commit was merged by approval, or says why there is none.
func (g *Gates) provenance(ctx context.Context, digest, hexDigest string) (*provenanceOf, error) {
	builds, err := g.cfg.Store.ArtifactEntries(ctx, digest, writ.EventBuild)
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
		st, prov, err := attest.VerifyProvenance(ev.Details.Provenance, &g.cfg.AttestKey.PublicKey, g.cfg.BuilderID)
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
		me, err := g.cfg.Store.EntryByID(ctx, in.MergeEvent)
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

// Deploy is POST /v1/deployments: CI reports what it deployed, in a DSSE
// envelope signed by a configured reporter's system key. The deployment
// is recorded under the artifact's digest; a deployment of a digest never
// released to that environment is recorded with an alert.
func (g *Gates) Deploy(ctx context.Context, body []byte) (*writ.DeploymentResult, error) {
	if g.cfg.Reporters == nil {
		return nil, writ.Errorf(writ.KindNotFound, "no_reporters", "this writ accepts no deployment reports (deployments.reporters in writ.yaml)")
	}
	o, err := trigger.Open(body, g.cfg.Reporters, trigger.OpenOptions{PayloadType: writ.DeploymentPayloadType, SSHNamespace: DeploySSHNamespace, MaxPayload: 8 << 10})
	if err != nil {
		return nil, err
	}
	var rep writ.DeploymentReport
	if err := strictjson.Decode(o.Payload, &rep); err != nil {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_report", "deployment report: %v", err)
	}
	if _, err := writ.ParseRunID(rep.ID); err != nil {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_report", "deployment report id %q: want a ULID", rep.ID)
	}
	if !strings.HasPrefix(rep.Artifact, "sha256:") || len(rep.Artifact) != 71 || rep.Environment == "" || (rep.Result != "succeeded" && rep.Result != "failed") {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_report", "a deployment report needs an id, an environment, an artifact sha256:<hex> and a result (succeeded or failed)")
	}
	if d := g.now().Sub(rep.ReportedAt); d > g.cfg.Leeway+5*time.Minute || d < -g.cfg.Leeway {
		return nil, writ.Errorf(writ.KindInvalid, "stale_report", "the report was made at %s, too far from now: sign a fresh one", rep.ReportedAt.UTC().Format(time.RFC3339))
	}
	if _, err := g.cfg.Store.EntryByID(ctx, rep.ID); err == nil {
		return nil, writ.Errorf(writ.KindConflict, "replayed_report", "deployment report %s is already recorded", rep.ID)
	}
	released := false
	rels, err := g.cfg.Store.ArtifactEntries(ctx, rep.Artifact, writ.EventRelease)
	if err != nil {
		return nil, err
	}
	for _, e := range rels {
		var ev struct {
			Details struct {
				Environment string `json:"environment"`
			} `json:"details"`
		}
		if json.Unmarshal(e.Body, &ev) == nil && ev.Details.Environment == rep.Environment {
			released = true
		}
	}
	actor := writ.SignerActor(o.Signer)
	ref := writ.ArtifactRef{Digest: rep.Artifact, Kind: writ.EventDeployment, Environment: rep.Environment}
	ev := &writ.Event{ID: rep.ID, Type: writ.EventDeployment, Actor: actor, Action: writ.ActionDeploy, Subject: rep.Artifact,
		Details: map[string]any{"environment": rep.Environment, "artifact": rep.Artifact, "result": rep.Result, "pipeline": rep.Pipeline,
			"reportedAt": rep.ReportedAt.UTC(), "keyId": o.KeyID, "released": released}}
	if err := g.cfg.Store.AppendArtifactEvent(ctx, ev, ref); err != nil {
		if _, e := g.cfg.Store.EntryByID(ctx, rep.ID); e == nil {
			return nil, writ.Errorf(writ.KindConflict, "replayed_report", "deployment report %s is already recorded", rep.ID)
		}
		return nil, err
	}
	res := &writ.DeploymentResult{ID: rep.ID, Reporter: o.Signer, Released: released}
	if !released {
		alert := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: rep.Artifact, Details: map[string]any{
			"message":    fmt.Sprintf("%s reported deploying %s to %s, which writ never released there", o.Signer, rep.Artifact, rep.Environment),
			"deployment": rep.ID, "environment": rep.Environment, "artifact": rep.Artifact}}
		if err := g.cfg.Store.AppendArtifactEvent(ctx, alert, ref); err != nil {
			return nil, err
		}
		res.Alert = true
		g.log.WarnContext(ctx, "deployment of an unreleased artifact", slog.String("artifact", rep.Artifact), slog.String("environment", rep.Environment),
			slog.String("reporter", o.Signer))
	}
	return res, nil
}
