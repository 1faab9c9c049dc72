package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/gitgw"
)

// fileBuilds is the builds section of writ.yaml (DESIGN.md §4.10).
type fileBuilds struct {
	Recipes []fileRecipe `json:"recipes"`
	// WorkDir is where builds check out and run (default <dataDir>/builds;
	// each build's own directory is all its sandbox may write).
	WorkDir string `json:"workDir"`
	// UnsandboxedUnsafe runs recipes without the Landlock sandbox. For
	// tests on hosts without Landlock only: the code built is agent-written.
	UnsandboxedUnsafe bool `json:"unsandboxedUnsafe"`
}

type fileRecipe struct {
	Name    string        `json:"name"`
	Command []string      `json:"command"`
	Outputs []string      `json:"outputs"`
	Hosts   []string      `json:"hosts"`
	Timeout writ.Duration `json:"timeout"`
}

// BuildsConfig configures writ's builder.
type BuildsConfig struct {
	Recipes           []builder.Recipe
	WorkDir           string
	UnsandboxedUnsafe bool
}

func (fb fileBuilds) config() BuildsConfig {
	c := BuildsConfig{WorkDir: fb.WorkDir, UnsandboxedUnsafe: fb.UnsandboxedUnsafe}
	for _, r := range fb.Recipes {
		c.Recipes = append(c.Recipes, builder.Recipe{Name: r.Name, Command: r.Command, Outputs: r.Outputs, Hosts: r.Hosts, Timeout: r.Timeout.D()})
	}
	return c
}

func (c BuildsConfig) validate() error {
	seen := map[string]bool{}
	for i, r := range c.Recipes {
		switch {
		case r.Name == "" || seen[r.Name]:
			return fmt.Errorf("builds.recipes[%d]: want a unique name", i)
		case len(r.Command) == 0 || r.Command[0] == "":
			return fmt.Errorf("builds.recipes[%d] %q: command is required (an argv list)", i, r.Name)
		case len(r.Outputs) == 0:
			return fmt.Errorf("builds.recipes[%d] %q: outputs is required (the files the command produces)", i, r.Name)
		case r.Timeout < 0 || r.Timeout > time.Hour:
			return fmt.Errorf("builds.recipes[%d] %q: timeout %v: want at most 1h (default 10m)", i, r.Name, r.Timeout)
		}
		for _, o := range r.Outputs {
			if c := filepath.Clean(o); filepath.IsAbs(c) || c == "." || c == ".." || len(c) > 2 && c[:3] == "../" {
				return fmt.Errorf("builds.recipes[%d] %q: output %q must be a path inside the checkout", i, r.Name, o)
			}
		}
		seen[r.Name] = true
	}
	return nil
}

// builderID is the SLSA builder id of this installation's builder.
func builderID(trustDomain string) string { return "spiffe://" + trustDomain + "/writ/builder/v1" }

// newBuilder builds the builder (nil when no recipe is configured or
// there is no git gateway).
func (s *Server) newBuilder(sandbox builder.Sandbox) (*builder.Builder, error) {
	if len(s.cfg.Builds.Recipes) == 0 || s.git == nil {
		return nil, nil
	}
	work := s.cfg.Builds.WorkDir
	if work == "" {
		work = filepath.Join(s.cfg.DataDir, "builds")
	}
	return builder.New(builder.Config{
		WorkRoot: work, ArtifactDir: filepath.Join(s.cfg.DataDir, "artifacts"), Git: s.git.Binary(),
		Sandbox: sandbox, Unsandboxed: s.cfg.Builds.UnsandboxedUnsafe, Key: s.keys.Attest, BuilderID: builderID(s.cfg.TrustDomain), Now: s.now,
	})
}

// Build is POST /v1/builds: it builds a run's approved, merged commit with
// a configured recipe — the run's `build` action, decided by policy — and
// records the build (succeeded or failed) with its signed provenance.
func (s *Server) Build(ctx context.Context, p *writ.Principal, req *writ.BuildRequest) (*writ.BuildResult, error) {
	if s.builder == nil {
		return nil, writ.Errorf(writ.KindUnavailable, "no_builder", "this server has no build recipes (builds.recipes in writ.yaml) or no git gateway")
	}
	i := slices.IndexFunc(s.cfg.Builds.Recipes, func(r builder.Recipe) bool { return r.Name == req.Recipe })
	if i < 0 {
		var names []string
		for _, r := range s.cfg.Builds.Recipes {
			names = append(names, r.Name)
		}
		return nil, writ.Errorf(writ.KindNotFound, "no_such_recipe", "no build recipe %q (configured: %v)", req.Recipe, names)
	}
	recipe := s.cfg.Builds.Recipes[i]
	run, err := s.store.GetRun(ctx, req.Run)
	if err != nil {
		return nil, err
	}
	if p.Kind == writ.PrincipalRun && p.Run != run.ID {
		return nil, writ.Errorf(writ.KindDenied, "not_your_run", "a run may build only its own merged work")
	}
	merge, err := s.approvedMerge(ctx, run.ID, req.Repo)
	if err != nil {
		return nil, err
	}
	a := writ.Action{Kind: writ.ActionBuild, Name: recipe.Name, Target: writ.Target{Repo: merge.Repo, Head: merge.Head}}
	d, err := s.decider.Decide(ctx, &decision.Request{Run: run, Action: a, Via: "api", Actor: p.Actor()})
	if err != nil {
		return nil, err
	}
	if d.Verdict != writ.VerdictAllow {
		e := writ.Errorf(writ.KindDenied, "build_not_allowed", "building %s of run %s: %s", merge.Head, run.ID, verdictText(d))
		if d.Verdict == writ.VerdictApprovalRequired {
			e.Kind, e.Code = writ.KindApprovalPending, "approval_required"
			if d.Approval != nil {
				e.Approval = d.Approval.ID
			}
		}
		e.Decision = d.ID
		return nil, e
	}
	repoDir, err := s.git.RepoDir(merge.Repo)
	if err != nil {
		return nil, err
	}
	id := writ.NewULID(s.now(), nil)
	res, err := s.builder.Build(ctx, &builder.Request{ID: id, Recipe: recipe, Repo: merge.Repo, RepoDir: repoDir, Commit: merge.Head,
		Internal: attest.BuildInternal{Run: string(run.ID), TriggerDigest: run.TriggerDigest, PolicyDigest: s.policy.engine.Bundle().Digest,
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
		"mergeEvent": merge.Event, "mergeApproval": merge.Approval, "builder": s.builder.BuilderID(),
		"startedOn": res.StartedOn, "finishedOn": res.FinishedOn}
	if out.Failure != "" {
		details["failure"] = out.Failure
	}
	if out.Provenance != nil {
		details["provenance"] = json.RawMessage(out.Provenance)
	}
	ev := &writ.Event{Type: writ.EventBuild, Run: run.ID, Actor: p.Actor(), Action: writ.ActionBuild, Decision: d.ID, Subject: "build:" + id, Details: details}
	if err := s.store.AppendArtifactEvent(ctx, ev, refs...); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "build", slog.String("id", id), slog.String("run", string(run.ID)), slog.String("recipe", recipe.Name),
		slog.String("commit", merge.Head), slog.String("state", out.State))
	return out, nil
}

// mergeRef is an approved merge of a run's work, from its merge event.
type mergeRef struct {
	Event, Repo, Into, Head, Approval string
}

// approvedMerge returns the run's last merge into repo (any repo when
// empty) that a human approved.
func (s *Server) approvedMerge(ctx context.Context, id writ.RunID, repo string) (*mergeRef, error) {
	es, err := s.store.RunEntries(ctx, id)
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

// verdictText is the reasons of a decision, for an error message.
func verdictText(d *writ.Decision) string {
	if len(d.Reasons) == 0 {
		return d.Verdict
	}
	msg := d.Reasons[0].Message
	for _, r := range d.Reasons[1:] {
		msg += "; " + r.Message
	}
	return msg
}
