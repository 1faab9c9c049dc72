package gitgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// Event types of the write-ahead of ref moves (docs/design.md §4.6,
// docs/git.md "Write-ahead and reconciliation").
const (
	// EventRefIntent records a ref move writ is about to make (a push's
	// update-ref, a merge's compare-and-swap), committed before git moves
	// anything. Its completion (git.pushed, merge or git.ref.abandoned)
	// names it in details.intent.
	EventRefIntent = "git.ref.intent"
	// EventRefAbandoned closes an intent whose ref never moved.
	EventRefAbandoned = "git.ref.abandoned"
	// EventRefReconciled records a branch start-up reconciliation found at
	// a value no event explains (moved outside writ).
	EventRefReconciled = "git.ref.reconciled"
)

// Fault points, the steps of a ref move a [Config.Fault] hook sees.
const (
	// FaultIntent: the intent is committed; the ref has not moved.
	FaultIntent = "intent"
	// FaultMoved: the ref moved; its completion is not recorded.
	FaultMoved = "moved"
)

// History reads events back from the log, for [Gateway.Reconcile]
// (package sqlstore).
type History interface {
	EventsOfTypes(ctx context.Context, types []string, fn func(*writ.Event) error) error
}

// errStopped is what a ref move returns when a fault hook stopped it.
var errStopped = errors.New("gitgw: stopped by a fault hook")

// fault calls the fault hook at point; true means stop there as if writ
// had died: nothing more is done or recorded.
func (g *Gateway) fault(point string) bool {
	return g.cfg.Fault != nil && g.cfg.Fault(point) != nil
}

// refMove is one ref a write-ahead intent moves: Old "" creates it.
type refMove struct {
	Ref, Old, New string
}

func movesDetail(ms []refMove) []map[string]string {
	out := make([]map[string]string, len(ms))
	for i, m := range ms {
		out[i] = map[string]string{"ref": m.Ref, "old": m.Old, "new": m.New}
	}
	return out
}

// recordIntent commits the intent of op (push or merge) to move refs of
// repo, before git moves any; it returns the intent's event id.
func (g *Gateway) recordIntent(ctx context.Context, op, repo string, run writ.RunID, actor string, moves []refMove, extra map[string]any) (string, error) {
	details := map[string]any{"repo": repo, "op": op, "refs": movesDetail(moves)}
	for k, v := range extra {
		details[k] = v
	}
	ev := &writ.Event{Type: EventRefIntent, Run: run, Actor: actor, Subject: repo, Details: details}
	if err := g.cfg.Events.AppendEvent(ctx, ev); err != nil {
		return "", err
	}
	return ev.ID, nil
}

// intent is a write-ahead intent read back from the log.
type intent struct {
	ev    *writ.Event
	repo  string
	op    string
	moves []refMove
}

func readMoves(v any) []refMove {
	list, _ := v.([]any)
	var out []refMove
	for _, x := range list {
		m, _ := x.(map[string]any)
		s := func(k string) string { v, _ := m[k].(string); return v }
		if s("ref") != "" {
			out = append(out, refMove{Ref: s("ref"), Old: s("old"), New: s("new")})
		}
	}
	return out
}

func detail(ev *writ.Event, k string) string {
	s, _ := ev.Details[k].(string)
	return s
}

// Reconcile compares every hosted repository's branches with the log, at
// start-up (docs/git.md "Write-ahead and reconciliation"). An intent with
// no completion is completed on writ's behalf when its refs are at their
// new values (an alert per ref and the missing git.pushed or merge event,
// actor writ, details reconciled and the intent), else closed by a
// git.ref.abandoned event. A branch at a value no event explains is an
// alert and a git.ref.reconciled event. Intents recorded after settled,
// and the refs they move, are left alone: another replica may still be
// moving them.
func (g *Gateway) Reconcile(ctx context.Context, settled time.Time) error {
	if g.cfg.History == nil {
		return errors.New("gitgw: Reconcile needs Config.History")
	}
	// The branches first, then the log: a ref moved before its snapshot
	// had its intent committed before the log is read, so a move in
	// flight (another replica's) is always seen as a young intent.
	repos, err := g.hosted()
	if err != nil {
		return fmt.Errorf("gitgw: reconcile: %w", err)
	}
	current := map[string]map[string]string{}
	for _, repo := range repos {
		if current[repo], err = g.branches(ctx, repo); err != nil {
			return fmt.Errorf("gitgw: reconcile: %s: %w", repo, err)
		}
	}
	logged := map[string]map[string]string{} // repo → ref → value as the log says
	set := func(repo, ref, sha string) {
		if logged[repo] == nil {
			logged[repo] = map[string]string{}
		}
		logged[repo][ref] = sha
	}
	// young[repo][ref]: a ref an intent recorded after settled moves (or
	// may still move): left alone.
	young := map[string]map[string]bool{}
	var order []string
	pending := map[string]*intent{}
	types := []string{EventRepoAdded, EventRefIntent, EventPushed, EventMerge, EventRefAbandoned, EventRefReconciled}
	err = g.cfg.History.EventsOfTypes(ctx, types, func(ev *writ.Event) error {
		repo := detail(ev, "repo")
		if id := detail(ev, "intent"); id != "" && ev.Type != EventRefIntent {
			delete(pending, id)
		}
		switch ev.Type {
		case EventRepoAdded:
			refs, _ := ev.Details["refs"].(map[string]any)
			for ref, v := range refs {
				s, _ := v.(string)
				set(repo, ref, s)
			}
		case EventRefIntent:
			in := &intent{ev: ev, repo: repo, op: detail(ev, "op"), moves: readMoves(ev.Details["refs"])}
			if ev.Time.After(settled) {
				for _, m := range in.moves {
					if young[repo] == nil {
						young[repo] = map[string]bool{}
					}
					young[repo][m.Ref] = true
				}
				return nil
			}
			pending[ev.ID] = in
			order = append(order, ev.ID)
		case EventPushed:
			if detail(ev, "outcome") == "accepted" {
				for _, m := range readMoves(ev.Details["refs"]) {
					set(repo, m.Ref, m.New)
				}
			}
		case EventMerge:
			if into, head := detail(ev, "into"), detail(ev, "head"); into != "" && head != "" {
				set(repo, "refs/heads/"+into, head)
			}
		case EventRefReconciled:
			set(repo, detail(ev, "ref"), detail(ev, "found"))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gitgw: reconcile: reading the log: %w", err)
	}

	var errs []error
	for _, id := range order {
		in := pending[id]
		if in == nil {
			continue
		}
		cur, ok := current[in.repo]
		if !ok {
			errs = append(errs, g.abandon(ctx, in, "the repository is not hosted"))
			continue
		}
		var moved []refMove
		for _, m := range in.moves {
			if cur[m.Ref] == m.New && logged[in.repo][m.Ref] != m.New && !young[in.repo][m.Ref] {
				moved = append(moved, m)
			}
		}
		if len(moved) == 0 {
			errs = append(errs, g.abandon(ctx, in, "the ref did not move: writ stopped before moving it, or git refused"))
			continue
		}
		if err := g.complete(ctx, in, moved); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range moved {
			set(in.repo, m.Ref, m.New)
		}
	}

	for _, repo := range repos {
		cur := current[repo]
		var refs []string
		for ref := range cur {
			refs = append(refs, ref)
		}
		for ref := range logged[repo] {
			if _, ok := cur[ref]; !ok {
				refs = append(refs, ref)
			}
		}
		slices.Sort(refs)
		for _, ref := range refs {
			found, was := cur[ref], logged[repo][ref]
			if found == was || young[repo][ref] {
				continue
			}
			errs = append(errs, g.unexplained(ctx, repo, ref, was, found))
		}
	}
	return errors.Join(errs...)
}

// complete records, on writ's behalf, the completion of an intent whose
// refs moved: an alert per ref, then the git.pushed or merge event the
// operation did not write.
func (g *Gateway) complete(ctx context.Context, in *intent, moved []refMove) error {
	typ := EventPushed
	details := map[string]any{"repo": in.repo, "refs": movesDetail(moved), "outcome": "accepted", "intent": in.ev.ID, "reconciled": true,
		"requestedBy": in.ev.Actor}
	action := writ.ActionGitPush
	subject := in.repo
	for _, k := range []string{"commits", "commitCount", "decisions"} {
		if v, ok := in.ev.Details[k]; ok {
			details[k] = v
		}
	}
	if in.op == "merge" {
		typ, action = EventMerge, writ.ActionMerge
		details = map[string]any{"intent": in.ev.ID, "reconciled": true, "requestedBy": in.ev.Actor, "mirrored": false}
		for _, k := range []string{"repo", "into", "branch", "base", "head", "diffDigest", "approval", "decision", "pathCount", "upstream"} {
			if v, ok := in.ev.Details[k]; ok {
				details[k] = v
			}
		}
		if _, ok := details["upstream"]; !ok {
			delete(details, "mirrored")
		} else {
			// Whether the mirror happened before writ stopped: the
			// upstream says (mirrored false and the next merge pushes it).
			details["mirrored"] = g.upstreamAt(ctx, in.repo, detail(in.ev, "into")) == detail(in.ev, "head")
		}
		subject = detail(in.ev, "approval")
	}
	for _, m := range moved {
		msg := fmt.Sprintf("%s of %s moved from %s to %s (%s intent %s) but writ stopped before recording it; recorded at start-up on writ's behalf",
			m.Ref, in.repo, short(cmpOr(m.Old, "nothing")), short(m.New), in.op, in.ev.ID)
		alert := &writ.Event{Type: writ.EventAlert, Run: in.ev.Run, Actor: writ.ActorSystem, Subject: in.repo, Details: map[string]any{
			"message": msg, "code": "ref_move_unrecorded", "repo": in.repo, "ref": m.Ref, "old": m.Old, "new": m.New, "intent": in.ev.ID, "reconciled": true}}
		if err := g.cfg.Events.AppendEvent(ctx, alert); err != nil {
			return err
		}
	}
	ev := &writ.Event{Type: typ, Run: in.ev.Run, Actor: writ.ActorSystem, Action: action, Decision: detail(in.ev, "decision"), Subject: subject, Details: details}
	if err := g.cfg.Events.AppendEvent(ctx, ev); err != nil {
		return err
	}
	g.log.WarnContext(ctx, "reconciled an unrecorded ref move", slog.String("repo", in.repo), slog.String("intent", in.ev.ID), slog.String("op", in.op))
	return nil
}

// upstreamAt reads where branch into is on repo's upstream ("" when
// unknown or absent).
func (g *Gateway) upstreamAt(ctx context.Context, repo, into string) string {
	upstream := g.upstream(ctx, repo)
	if upstream == "" || writ.ValidateRefName(into) != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, min(g.cfg.Timeout, 30*time.Second))
	defer cancel()
	out, err := g.run(ctx, g.dir(repo), nil, nil, "ls-remote", "--", upstream, "refs/heads/"+into)
	if err != nil {
		g.log.WarnContext(ctx, "reading the upstream at reconciliation", slog.String("repo", repo), slog.String("error", redactErr(err, upstream)))
		return ""
	}
	if f := strings.Fields(string(out)); len(f) > 0 {
		return f[0]
	}
	return ""
}

// abandon closes an intent whose refs did not move.
func (g *Gateway) abandon(ctx context.Context, in *intent, reason string) error {
	ev := &writ.Event{Type: EventRefAbandoned, Run: in.ev.Run, Actor: writ.ActorSystem, Subject: in.repo, Details: map[string]any{
		"repo": in.repo, "op": in.op, "refs": movesDetail(in.moves), "intent": in.ev.ID, "reason": reason, "reconciled": true}}
	if err := g.cfg.Events.AppendEvent(ctx, ev); err != nil {
		return err
	}
	g.log.InfoContext(ctx, "abandoned a ref intent", slog.String("repo", in.repo), slog.String("intent", in.ev.ID))
	return nil
}

// unexplained records a branch at a value no event explains: an alert
// and a git.ref.reconciled event, both writ's.
func (g *Gateway) unexplained(ctx context.Context, repo, ref, was, found string) error {
	msg := fmt.Sprintf("%s of %s is at %s but the log says %s: it moved outside writ; recorded at start-up", ref, repo, short(cmpOr(found, "nothing (deleted)")), short(cmpOr(was, "nothing")))
	alert := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: repo, Details: map[string]any{
		"message": msg, "code": "ref_moved_outside_writ", "repo": repo, "ref": ref, "logged": was, "found": found, "reconciled": true}}
	if err := g.cfg.Events.AppendEvent(ctx, alert); err != nil {
		return err
	}
	ev := &writ.Event{Type: EventRefReconciled, Actor: writ.ActorSystem, Subject: repo, Details: map[string]any{
		"repo": repo, "ref": ref, "logged": was, "found": found, "reconciled": true, "alert": alert.ID}}
	if err := g.cfg.Events.AppendEvent(ctx, ev); err != nil {
		return err
	}
	g.log.WarnContext(ctx, "a branch moved outside writ", slog.String("repo", repo), slog.String("ref", ref), slog.String("found", found), slog.String("logged", was))
	return nil
}

// Timeout is the bound of one git request (Config.Timeout).
func (g *Gateway) Timeout() time.Duration { return g.cfg.Timeout }

func cmpOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// branches lists the branches of repository name: full ref → commit.
func (g *Gateway) branches(ctx context.Context, name string) (map[string]string, error) {
	out, err := g.run(ctx, g.dir(name), nil, nil, "for-each-ref", "--format=%(objectname) %(refname)", "--", "refs/heads/")
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if sha, ref, ok := strings.Cut(line, " "); ok {
			refs[ref] = sha
		}
	}
	return refs, nil
}

// hosted lists the hosted repositories: Root/<owner>/<repo>.git.
func (g *Gateway) hosted() ([]string, error) {
	owners, err := os.ReadDir(g.cfg.Root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, o := range owners {
		if !o.IsDir() || strings.HasPrefix(o.Name(), ".") {
			continue
		}
		repos, err := os.ReadDir(filepath.Join(g.cfg.Root, o.Name()))
		if err != nil {
			return nil, err
		}
		for _, r := range repos {
			base, ok := strings.CutSuffix(r.Name(), ".git")
			if name := o.Name() + "/" + base; ok && r.IsDir() && g.exists(name) {
				names = append(names, name)
			}
		}
	}
	return names, nil
}
