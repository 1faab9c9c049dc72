package gitgw

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// Merge fast-forwards a protected branch of repository name to the head
// of a run's branch — once a human approved exactly that change (a
// commit approval: repo, base, head and diff digest). The first request
// opens the approval (a KindApprovalPending error naming it); a request
// after the approval merges exactly the approved head with a
// compare-and-swap of the base. A repository with an upstream is checked
// for divergence first and mirrored after. who is the caller: a human, or
// the run itself.
func (g *Gateway) Merge(ctx context.Context, name string, req *writ.MergeRequest, who *writ.Principal) (*writ.MergeResult, error) {
	run, err := g.mergeRun(ctx, name, req, who)
	if err != nil {
		return nil, err
	}
	into, err := g.mergeInto(ctx, name, run, req.Into)
	if err != nil {
		return nil, err
	}
	branch, err := g.mergeBranch(ctx, name, run, req.Branch)
	if err != nil {
		return nil, err
	}
	base, head, from, err := g.mergeRange(ctx, name, into, branch)
	if err != nil {
		return nil, err
	}
	paths, err := g.changedPaths(ctx, name, from, head)
	if err != nil {
		return nil, err
	}
	digest, err := g.diffDigest(ctx, name, from, head)
	if err != nil {
		return nil, err
	}
	res := &writ.MergeResult{Repo: name, Into: into, Branch: branch, Base: base, Head: head, DiffDigest: digest}

	// An upstream that moved on its own would be overwritten: refuse.
	upstream := g.upstream(ctx, name)
	upOld := ""
	if upstream != "" {
		res.Upstream = redactURL(upstream)
		if upOld, err = g.checkUpstream(ctx, name, upstream, into, base); err != nil {
			return nil, err
		}
	}

	d, err := g.decideMerge(ctx, run, who, res, paths)
	if err != nil {
		return nil, err
	}
	// Write-ahead: the intent is committed before into moves; the merge
	// event completes it.
	intent, err := g.mergeIntent(ctx, run, who, d, res, len(paths), upstream != "")
	if err != nil {
		g.log.ErrorContext(ctx, "recording a merge's intent; the merge is refused", slog.String("repo", name), slog.Any("error", err))
		return nil, writ.Errorf(writ.KindUnavailable, "merge_not_recorded", "writ could not record the merge, so nothing was changed; merge again once writ's store works (the approval was used: the same change needs a new one)")
	}
	if g.fault(FaultIntent) {
		return nil, errStopped
	}
	if err := g.swapRef(ctx, run, res); err != nil {
		ab := &writ.Event{Type: EventRefAbandoned, Run: run.ID, Actor: who.Actor(), Subject: name, Details: map[string]any{
			"repo": name, "op": "merge", "refs": movesDetail(mergeMoves(res)), "intent": intent, "reason": "base_moved"}}
		if e := g.cfg.Events.AppendEvent(ctx, ab); e != nil {
			g.log.ErrorContext(ctx, "recording an abandoned merge", slog.String("repo", name), slog.Any("error", e))
		}
		return nil, err
	}
	if g.fault(FaultMoved) {
		return nil, errStopped
	}
	if upstream != "" {
		if err := g.mirror(ctx, name, upstream, into, head, upOld); err != nil {
			res.MirrorError = err.Error()
			g.log.WarnContext(ctx, "mirroring a merge upstream failed", slog.String("repo", name), slog.String("upstream", res.Upstream), slog.String("error", res.MirrorError))
		} else {
			res.Mirrored = true
		}
	}
	ev := mergeEvent(run, who, d, res, len(paths), upstream != "")
	ev.Details["intent"] = intent
	if err := g.cfg.Events.AppendEvent(ctx, ev); err != nil {
		g.log.ErrorContext(ctx, "recording a merge", slog.String("repo", name), slog.String("intent", intent), slog.Any("error", err))
		if res.Mirrored {
			// The upstream has head: writ keeps it too, and the open
			// intent is recorded on writ's behalf at the next start.
			return nil, writ.Errorf(writ.KindUnavailable, "merge_not_recorded", "%s of %s moved to %s (and the upstream with it) but writ could not record the merge; it is recorded when writ next starts", into, name, short(head))
		}
		// Nothing outside writ has head yet: move into back.
		if rerr := g.unswapRef(ctx, res); rerr != nil {
			g.log.ErrorContext(ctx, "rolling back an unrecorded merge", slog.String("repo", name), slog.String("intent", intent), slog.Any("error", rerr))
		}
		return nil, writ.Errorf(writ.KindUnavailable, "merge_not_recorded", "writ could not record the merge, so nothing was changed; merge again once writ's store works (the approval was used: the same change needs a new one)")
	}
	g.log.InfoContext(ctx, "merged", slog.String("repo", name), slog.String("into", into), slog.String("head", head), slog.String("approval", res.Approval))
	return res, nil
}

// mergeRun checks a merge request's repository, run and caller (a run
// merges only its own work) and returns the run's state.
func (g *Gateway) mergeRun(ctx context.Context, name string, req *writ.MergeRequest, who *writ.Principal) (*writ.Run, error) {
	if !writ.ValidRepoName(name) || !g.exists(name) {
		return nil, writ.Errorf(writ.KindNotFound, "unknown_repo", "repository %q is not hosted by this writ", name)
	}
	if _, err := writ.ParseRunID(string(req.Run)); err != nil {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_run", "run %q: want a run id", req.Run)
	}
	if who == nil || who.Kind == writ.PrincipalRun && who.Run != req.Run {
		return nil, writ.Errorf(writ.KindDenied, "not_own_run", "a run may ask to merge only its own work")
	}
	return g.cfg.Runs.Get(ctx, req.Run)
}

// mergeInto is the branch a merge moves: into as asked, else the run's
// base branch of the repository, else the repository's head branch. A
// run's own branch (writ/...) is never merged into.
func (g *Gateway) mergeInto(ctx context.Context, name string, run *writ.Run, into string) (string, error) {
	if into == "" {
		for _, r := range run.Scope.Repos {
			if r.Name == name {
				into = r.Base
			}
		}
	}
	if into == "" {
		into = g.headBranch(ctx, name)
	}
	if err := writ.ValidateRefName(into); err != nil {
		return "", writ.Errorf(writ.KindInvalid, "invalid_branch", "into: %v", err)
	}
	if strings.HasPrefix(into, "writ/") {
		return "", writ.Errorf(writ.KindInvalid, "invalid_branch", "into %q: a run's branch is never merged into", into)
	}
	return into, nil
}

// mergeBranch is the run's branch a merge takes: branch as asked (under
// the run's prefix), else the only branch the run pushed to the
// repository.
func (g *Gateway) mergeBranch(ctx context.Context, name string, run *writ.Run, branch string) (string, error) {
	prefix := decision.BranchPrefix(run.ID)
	if branch != "" && !strings.HasPrefix(branch, prefix) {
		branch = prefix + branch
	}
	if branch == "" {
		out, err := g.run(ctx, g.dir(name), nil, nil, "for-each-ref", "--format=%(refname)", "--", "refs/heads/"+prefix)
		if err != nil {
			return "", err
		}
		refs := strings.Fields(string(out))
		switch len(refs) {
		case 0:
			return "", writ.Errorf(writ.KindNotFound, "no_run_branch", "run %s has pushed no branch to %s; push to %s<name> first", run.ID, name, prefix)
		case 1:
			branch = strings.TrimPrefix(refs[0], "refs/heads/")
		default:
			return "", writ.Errorf(writ.KindInvalid, "branch_required", "run %s pushed %d branches to %s (%s); say which with --branch", run.ID, len(refs), name, strings.Join(refs, ", "))
		}
	}
	if err := writ.ValidateRefName(branch); err != nil {
		return "", writ.Errorf(writ.KindInvalid, "invalid_branch", "branch: %v", err)
	}
	return branch, nil
}

// mergeRange resolves what a merge of branch into into would do: base,
// into's commit ("" when into does not exist yet), and head, branch's
// commit, which must be a fast-forward of base. from is the commit the
// change is measured from: base, or the empty tree for a new branch.
func (g *Gateway) mergeRange(ctx context.Context, name, into, branch string) (base, head, from string, err error) {
	// A branch that does not exist yet (the first merge into a new,
	// empty repository) is created from the empty tree: base "" and the
	// compare-and-swap expects it absent.
	base, err = g.revParse(ctx, name, "refs/heads/"+into)
	if err != nil {
		if _, herr := g.run(ctx, g.dir(name), nil, nil, "show-ref", "--verify", "--quiet", "--", "refs/heads/"+into); herr == nil {
			return "", "", "", err
		}
		base = ""
	}
	head, err = g.revParse(ctx, name, "refs/heads/"+branch)
	if err != nil {
		return "", "", "", writ.Errorf(writ.KindNotFound, "no_such_branch", "%s has no branch %q", name, branch)
	}
	if base == head {
		return "", "", "", writ.Errorf(writ.KindConflict, "nothing_to_merge", "%s of %s is already at %s: nothing to merge", into, name, head)
	}
	from = base
	if base == "" {
		from = emptyTree
	} else if ok, err := g.isAncestor(ctx, name, nil, base, head); err != nil {
		return "", "", "", err
	} else if !ok {
		return "", "", "", writ.Errorf(writ.KindConflict, "not_fast_forward", "%s is not based on the tip of %s (%s); the run rebases its branch onto %s and pushes again", branch, into, short(base), into)
	}
	return base, head, from, nil
}

// changedPaths lists the paths that change from from to head.
func (g *Gateway) changedPaths(ctx context.Context, name, from, head string) ([]string, error) {
	out, err := g.run(ctx, g.dir(name), nil, nil, "diff", "--name-only", "-z", "--no-renames", from, head, "--")
	if err != nil {
		return nil, err
	}
	var paths []string
	for p := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if p != "" {
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// decideMerge asks policy about the merge res describes and sets its
// decision and approval. Only an allow returns no error: an approval
// requirement is a KindApprovalPending error naming the approval to give,
// anything else a KindDenied one.
func (g *Gateway) decideMerge(ctx context.Context, run *writ.Run, who *writ.Principal, res *writ.MergeResult, paths []string) (*writ.Decision, error) {
	a := writ.Action{Kind: writ.ActionMerge, Target: writ.Target{Repo: res.Repo, Ref: "refs/heads/" + res.Into, Base: res.Base, Head: res.Head, Digest: res.DiffDigest, Paths: paths[:min(len(paths), writ.MaxActionPaths)]}}
	args, _ := json.Marshal(map[string]any{"branch": res.Branch, "pathCount": len(paths)})
	a.Args = args
	d, err := g.cfg.Decider.Decide(ctx, &decision.Request{Run: run, Action: a, Via: "git", Actor: who.Actor()})
	if err != nil {
		return nil, err
	}
	res.Decision = d.ID
	if err := writ.DecisionError(d); err != nil {
		return nil, err
	}
	if d.Approval != nil {
		res.Approval = d.Approval.ID
	}
	return d, nil
}

// swapRef is the merge's compare-and-swap: into moves from exactly base
// to exactly the approved head, or not at all (a KindConflict error).
func (g *Gateway) swapRef(ctx context.Context, run *writ.Run, res *writ.MergeResult) error {
	unlock := g.lock(res.Repo)
	_, err := g.run(ctx, g.dir(res.Repo), []string{"GIT_COMMITTER_NAME=writ", "GIT_COMMITTER_EMAIL=writ@localhost"}, nil,
		"update-ref", "-m", fmt.Sprintf("writ merge of run %s (approval %s)", run.ID, res.Approval), "refs/heads/"+res.Into, res.Head, cmp.Or(res.Base, zeroID))
	unlock()
	if err != nil {
		g.log.InfoContext(ctx, "merge lost its compare-and-swap", slog.String("repo", res.Repo), slog.Any("error", err))
		return writ.Errorf(writ.KindConflict, "base_moved", "%s of %s moved while merging (it is no longer %s); ask again: a new approval of the new change is needed", res.Into, res.Repo, short(res.Base))
	}
	return nil
}

// unswapRef moves into back from the merged head to base (deletes it when
// the merge created it), a compare-and-swap.
func (g *Gateway) unswapRef(ctx context.Context, res *writ.MergeResult) error {
	defer g.lock(res.Repo)()
	args := []string{"update-ref", "-m", "writ: merge rolled back, its event could not be recorded", "refs/heads/" + res.Into, res.Base, res.Head}
	if res.Base == "" {
		args = []string{"update-ref", "-m", "writ: merge rolled back, its event could not be recorded", "-d", "refs/heads/" + res.Into, res.Head}
	}
	_, err := g.run(ctx, g.dir(res.Repo), []string{"GIT_COMMITTER_NAME=writ", "GIT_COMMITTER_EMAIL=writ@localhost"}, nil, args...)
	return err
}

// mergeMoves is the ref a merge moves.
func mergeMoves(res *writ.MergeResult) []refMove {
	return []refMove{{Ref: "refs/heads/" + res.Into, Old: res.Base, New: res.Head}}
}

// mergeIntent commits the write-ahead intent of an allowed merge.
func (g *Gateway) mergeIntent(ctx context.Context, run *writ.Run, who *writ.Principal, d *writ.Decision, res *writ.MergeResult, pathCount int, hasUpstream bool) (string, error) {
	extra := map[string]any{"into": res.Into, "branch": res.Branch, "base": res.Base, "head": res.Head, "diffDigest": res.DiffDigest,
		"approval": res.Approval, "decision": d.ID, "pathCount": pathCount}
	if hasUpstream {
		extra["upstream"] = res.Upstream
	}
	return g.recordIntent(ctx, "merge", res.Repo, run.ID, who.Actor(), mergeMoves(res), extra)
}

// mergeEvent is the audit event of a done merge; hasUpstream says the
// repository has an upstream, whose outcome it then records too.
func mergeEvent(run *writ.Run, who *writ.Principal, d *writ.Decision, res *writ.MergeResult, pathCount int, hasUpstream bool) *writ.Event {
	details := map[string]any{"repo": res.Repo, "into": res.Into, "branch": res.Branch, "base": res.Base, "head": res.Head, "diffDigest": res.DiffDigest,
		"approval": res.Approval, "decision": d.ID, "pathCount": pathCount}
	if hasUpstream {
		details["upstream"] = res.Upstream
		details["mirrored"] = res.Mirrored
		if res.MirrorError != "" {
			details["mirrorError"] = res.MirrorError
		}
	}
	return &writ.Event{Type: EventMerge, Run: run.ID, Actor: who.Actor(), Action: writ.ActionMerge, Decision: d.ID,
		Subject: res.Approval, Details: details}
}

// emptyTree is git's empty tree (SHA-1), the base of a first merge.
const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

func short(sha string) string { return sha[:min(len(sha), 12)] }

func (g *Gateway) revParse(ctx context.Context, name, ref string) (string, error) {
	out, err := g.run(ctx, g.dir(name), nil, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(out))
	if !isHexID(s) {
		return "", fmt.Errorf("rev-parse %s: %q", ref, s)
	}
	return s, nil
}

// diffDigest is the SHA-256 of the full binary diff from base to head:
// what the approver approves, byte for byte.
func (g *Gateway) diffDigest(ctx context.Context, name, base, head string) (string, error) {
	c := g.cmd(ctx, g.dir(name), nil, "diff", "--binary", "--full-index", "--no-renames", "--no-ext-diff", "--no-textconv", "--no-color", base, head, "--")
	h := sha256.New()
	var stderr bytes.Buffer
	c.Stdout, c.Stderr = h, &limitedWriter{w: &stderr, n: 4096}
	if err := c.Run(); err != nil {
		return "", &gitError{args: c.Args[1:], err: err, stderr: stderr.String()}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// checkUpstream reads where into is on the upstream; it must be base,
// absent, or an ancestor of base writ has (writ is ahead after a failed
// mirror). Anything else is a divergence, refused: writ never overwrites
// an upstream's history. It returns the upstream's value, for the push's
// lease.
func (g *Gateway) checkUpstream(ctx context.Context, name, upstream, into, base string) (string, error) {
	out, err := g.run(ctx, g.dir(name), nil, nil, "ls-remote", "--", upstream, "refs/heads/"+into)
	if err != nil {
		g.log.WarnContext(ctx, "reading the upstream", slog.String("repo", name), slog.String("error", redactErr(err, upstream)))
		return "", writ.Errorf(writ.KindUnavailable, "upstream_unreachable", "cannot read %s on the upstream %s; the merge waits until it answers", into, redactURL(upstream))
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", nil
	}
	up := f[0]
	if !isHexID(up) {
		return "", writ.Errorf(writ.KindUnavailable, "upstream_unreachable", "the upstream %s answered something that is not a commit id for %s", redactURL(upstream), into)
	}
	if up == base {
		return up, nil
	}
	if base == "" {
		return "", writ.Errorf(writ.KindConflict, "upstream_diverged", "%s exists on the upstream %s (at %s) but not in writ: an admin brings writ's copy up to date before this merge", into, redactURL(upstream), short(up))
	}
	if _, err := g.run(ctx, g.dir(name), nil, nil, "cat-file", "-e", up+"^{commit}"); err == nil {
		if ok, _ := g.isAncestor(ctx, name, nil, up, base); ok {
			return up, nil
		}
	}
	return "", writ.Errorf(writ.KindConflict, "upstream_diverged", "%s on the upstream %s is at %s, which is not in writ's %s (%s): the upstream changed on its own; an admin brings writ's copy up to date before this merge, writ never overwrites it", into, redactURL(upstream), short(up), into, short(base))
}

// mirror pushes head to into on the upstream, expecting it at old (""
// expects it absent).
func (g *Gateway) mirror(ctx context.Context, name, upstream, into, head, old string) error {
	_, err := g.run(ctx, g.dir(name), nil, nil, "push", "--quiet", "--porcelain", "--no-verify",
		"--force-with-lease=refs/heads/"+into+":"+old, "--", upstream, head+":refs/heads/"+into)
	if err != nil {
		return fmt.Errorf("git push to the upstream failed: %s", redactErr(err, upstream))
	}
	return nil
}
