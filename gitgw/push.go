package gitgw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// Limits on what one push's event lists.
const (
	maxEventCommits = 100
	maxEventPaths   = 200
)

// refusal is why one ref update of a push is refused.
type refusal struct {
	code, message string
	decision      string
}

// pushState is what the gateway learned about one push.
type pushState struct {
	name     string
	who      *principal
	req      *pushRequest
	refused  map[int]*refusal
	commits  []string
	paths    []string
	findings []finding
	// decisions are the policy decisions per command (runs).
	decisions []*writ.Decision
	notes     []string // shown to the user as remote: lines
	unscanned []string
	// intent is the id of the push's write-ahead intent; moved says its
	// refs moved (update-ref succeeded).
	intent string
	moved  bool
	// timings of the phases, for the debug log (docs/performance.md).
	timings []slog.Attr
	last    time.Time
}

// phase records the time since the last phase under name.
func (st *pushState) phase(name string) {
	now := time.Now()
	st.timings = append(st.timings, slog.Duration(name, now.Sub(st.last)))
	st.last = now
}

// receivePack serves a push (see the package doc for the order of checks).
func (g *Gateway) receivePack(ctx context.Context, w http.ResponseWriter, r *http.Request, name string, who *principal) error {
	start := time.Now()
	rd, closeBody, err := body(r, g.cfg.MaxPackBytes+1<<20)
	if err != nil {
		return err
	}
	defer closeBody()
	br := bufio.NewReaderSize(rd, 64<<10)
	req, err := readPushRequest(br)
	if err != nil {
		if writ.ErrorKind(err) == writ.KindTooLarge {
			return err
		}
		return writ.Errorf(writ.KindInvalid, "bad_push", "not a receive-pack request: %v", err)
	}
	w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	if len(req.Commands) == 0 {
		// git's probe before a large push: nothing to do, nothing to say.
		w.WriteHeader(http.StatusOK)
		return nil
	}
	st := &pushState{name: name, who: who, req: req, refused: map[int]*refusal{}, last: start}
	st.phase("commands")

	// 1. What the commands alone say: refused before the pack is read.
	g.checkCommands(ctx, st)
	if len(st.refused) > 0 {
		_, _ = io.Copy(io.Discard, br) // git reads the answer after it sent everything
		return g.answer(ctx, w, st, "ok")
	}

	// 2. The pack, into a quarantine beside the repository's objects.
	q, err := os.MkdirTemp(g.dir(name), "writ-incoming-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(q)
	qobj := filepath.Join(q, "objects")
	if err := os.MkdirAll(filepath.Join(qobj, "pack"), 0o755); err != nil {
		return err
	}
	qenv := []string{"GIT_OBJECT_DIRECTORY=" + qobj, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(g.dir(name), "objects"), "GIT_QUARANTINE_PATH=" + qobj}
	if code, msg := g.indexPack(ctx, st, br, qenv); code != "" {
		_, _ = io.Copy(io.Discard, br)
		for i := range req.Commands {
			st.refused[i] = &refusal{code: code, message: msg}
		}
		unpack := "ok"
		if code == "unpack_failed" {
			unpack = "index-pack failed"
		}
		return g.answer(ctx, w, st, unpack)
	}

	st.phase("index")
	// 3. What the pack holds: commits, changed paths, new blobs.
	perRef := make([][]string, len(req.Commands))
	var blobs []blob
	base := g.headBranch(ctx, name)
	if who.run != nil {
		for _, rs := range who.run.Scope.Repos {
			if rs.Name == name && rs.Base != "" {
				base = rs.Base
			}
		}
	}
	for i, c := range req.Commands {
		// What the ref gains: against its old value, or for a new branch
		// against the base it grows from, so commits the repository
		// already has (another run's, say) count as this push's change.
		not := []string{c.Old}
		if c.isCreate() {
			not = []string{"--all"}
			if _, err := g.revParse(ctx, name, "refs/heads/"+base); err == nil {
				not = []string{"refs/heads/" + base}
			}
		}
		commits, paths, bs, err := g.inspect(ctx, name, qenv, c.New, not)
		if err != nil {
			g.log.InfoContext(ctx, "reading a push", slog.String("repo", name), slog.Any("error", err))
			_, _ = io.Copy(io.Discard, br)
			for j := range req.Commands {
				st.refused[j] = &refusal{code: "unreadable_push", message: "writ could not read what the push brings (is the branch where your git thinks it is? fetch and push again)"}
			}
			return g.answer(ctx, w, st, "ok")
		}
		perRef[i] = paths
		st.commits = appendNew(st.commits, commits...)
		st.paths = appendNew(st.paths, paths...)
		blobs = append(blobs, bs...)
		if who.human != nil && !c.isCreate() {
			// Humans never rewrite a branch's history.
			if ok, err := g.isAncestor(ctx, name, qenv, c.Old, c.New); err != nil {
				return err
			} else if !ok {
				st.refused[i] = &refusal{code: "non_fast_forward", message: fmt.Sprintf("%s: a force push (non-fast-forward) is refused; branches keep their history: pull, rebase your work on top, and push again", c.Ref)}
			}
		}
	}
	st.phase("inspect")
	if st.findings, st.unscanned, err = g.scanBlobs(ctx, name, qenv, blobs); err != nil {
		return err
	}
	st.phase("scan")
	if len(st.findings) > 0 {
		var where []string
		for _, f := range st.findings[:min(len(st.findings), 10)] {
			where = append(where, fmt.Sprintf("%s:%d (%s)", f.Path, f.Line, f.Kind))
		}
		for i := range req.Commands {
			st.refused[i] = &refusal{code: "secret_in_push", message: "the push holds what looks like a secret: " + strings.Join(where, ", ") +
				"; remove it from every commit of the push (git rebase -i, or git commit --amend), revoke it if it was real, and push again; credentials come from writ's broker, never from the repository"}
		}
	}

	// 4. Policy, per ref, for runs.
	if who.run != nil && len(st.refused) == 0 {
		for i, c := range req.Commands {
			d, ref := g.decidePush(ctx, st, c, perRef[i])
			if d != nil {
				st.decisions = append(st.decisions, d)
			}
			if ref != nil {
				st.refused[i] = ref
			}
		}
	}
	st.phase("decide")
	if len(st.refused) > 0 {
		return g.answer(ctx, w, st, "ok")
	}

	// 5. Accepted. Write-ahead: the intent is committed before anything
	// moves (a push whose intent cannot be recorded is refused); then the
	// objects move in, then the refs move with a compare-and-swap of their
	// old values; the git.pushed event completes the intent.
	if err := g.pushIntent(ctx, st); err != nil {
		g.log.ErrorContext(ctx, "recording a push's intent; the push is refused", slog.String("repo", name), slog.Any("error", err))
		_, _ = io.Copy(io.Discard, br)
		for i := range req.Commands {
			st.refused[i] = &refusal{code: "push_not_recorded", message: notRecorded}
		}
		return g.answer(ctx, w, st, "ok")
	}
	st.phase("intent")
	if g.fault(FaultIntent) {
		return errStopped
	}
	if err := g.migrate(qobj, filepath.Join(g.dir(name), "objects")); err != nil {
		return err
	}
	var in strings.Builder
	for _, c := range req.Commands {
		fmt.Fprintf(&in, "update %s %s %s\n", c.Ref, c.New, c.Old)
	}
	if _, err := g.run(ctx, g.dir(name), []string{"GIT_COMMITTER_NAME=writ", "GIT_COMMITTER_EMAIL=writ@localhost"}, strings.NewReader(in.String()),
		"update-ref", "-m", "writ push by "+who.actor(), "--stdin"); err != nil {
		g.log.InfoContext(ctx, "push lost a race", slog.String("repo", name), slog.Any("error", err))
		for i := range req.Commands {
			st.refused[i] = &refusal{code: "ref_moved", message: "the branch moved while this push was checked; fetch and push again"}
		}
		return g.answer(ctx, w, st, "ok")
	}
	st.moved = true
	st.phase("update")
	if g.fault(FaultMoved) {
		return errStopped
	}
	g.maybeGC(name)
	return g.answer(ctx, w, st, "ok")
}

// checkCommands applies the rules the ref update commands alone decide
// (docs/threat-model.md C-GT1, C-GT3).
func (g *Gateway) checkCommands(ctx context.Context, st *pushState) {
	prefix := ""
	if st.who.run != nil {
		prefix = "refs/heads/" + decision.BranchPrefix(st.who.run.ID)
	}
	head := g.headBranch(ctx, st.name)
	for i, c := range st.req.Commands {
		branch, isBranch := strings.CutPrefix(c.Ref, "refs/heads/")
		switch {
		case !strings.HasPrefix(c.Ref, "refs/") || validateRef(c.Ref) != nil:
			st.refused[i] = &refusal{code: "invalid_ref", message: fmt.Sprintf("%q is not a valid ref name", truncate(c.Ref, 100))}
		case strings.HasPrefix(c.Ref, "refs/tags/"):
			st.refused[i] = &refusal{code: "tag_push", message: fmt.Sprintf("%s: tags are immutable and made by releases, never pushed: tag creation, moves and deletion are refused", c.Ref)}
		case c.isDelete():
			st.refused[i] = &refusal{code: "ref_delete", message: fmt.Sprintf("%s: deleting a ref is refused; branches of a run go away with the repository's retention, not by a push", c.Ref)}
		case !isBranch:
			st.refused[i] = &refusal{code: "ref_not_allowed", message: fmt.Sprintf("%s: only branches (refs/heads/…) are pushed", c.Ref)}
		case st.who.run != nil && !strings.HasPrefix(c.Ref, prefix):
			// Policy decides (and records) the refusal; the gateway refuses
			// whatever it says.
			d, _ := g.decide(ctx, st.who, st.name, c, nil, nil)
			r := &refusal{code: "push_outside_run_branch", message: fmt.Sprintf("branch %q is not a branch of this run; a run may push only branches under %q: push to %s<name> and merge with writ merge %s", branch, strings.TrimPrefix(prefix, "refs/heads/"), strings.TrimPrefix(prefix, "refs/heads/"), st.who.run.ID)}
			if g.protected(st.name, branch, head) {
				r.code = "protected_branch"
				r.message = fmt.Sprintf("branch %q of %s is protected; protected branches change only by an approved merge: writ merge %s", branch, st.name, st.who.run.ID)
			}
			if d != nil {
				st.decisions = append(st.decisions, d)
				r.decision = d.ID
				if d.Verdict == writ.VerdictDeny && len(d.Reasons) > 0 {
					r.code, r.message = writ.DecisionMessage(d)
				}
			}
			st.refused[i] = r
		case st.who.human != nil && strings.HasPrefix(branch, "writ/"):
			st.refused[i] = &refusal{code: "run_branch", message: fmt.Sprintf("%s: branches under writ/ belong to runs; push your work to another branch", c.Ref)}
		case st.who.human != nil && g.protected(st.name, branch, head):
			st.refused[i] = &refusal{code: "protected_branch", message: fmt.Sprintf("branch %q of %s is protected; protected branches change only by an approved merge (writ merge), for humans too", branch, st.name)}
		}
	}
}

// validateRef checks a full ref name with writ's branch grammar.
func validateRef(ref string) error {
	if len(ref) > 255 {
		return errors.New("too long")
	}
	return writ.ValidateRefName(strings.TrimPrefix(ref, "refs/"))
}

// protected reports whether branch of repository name is protected: it
// matches a configured pattern, or it is the branch HEAD names.
func (g *Gateway) protected(name, branch, head string) bool {
	if branch == head {
		return true
	}
	for _, p := range g.repos[name].Protected {
		if writ.MatchPath(p, branch) {
			return true
		}
	}
	return false
}

// indexPack reads the pack from br into the quarantine. It returns a
// refusal code and message when the pack is refused.
func (g *Gateway) indexPack(ctx context.Context, st *pushState, br *bufio.Reader, qenv []string) (string, string) {
	var hdr [12]byte
	n, err := io.ReadFull(br, hdr[:])
	if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
		return "", "" // no pack (git sends none when no object is new)
	}
	if writ.ErrorKind(err) == writ.KindTooLarge {
		return "pack_too_large", fmt.Sprintf("the push is over the %d-byte limit", g.cfg.MaxPackBytes)
	}
	if err != nil || string(hdr[:4]) != "PACK" {
		return "unpack_failed", "the request does not carry a valid pack"
	}
	count := binary.BigEndian.Uint32(hdr[8:])
	if count == 0 {
		return "", ""
	}
	if int64(count) > int64(g.cfg.MaxObjects) {
		return "too_many_objects", fmt.Sprintf("the push carries %d objects; the limit is %d: push in smaller steps", count, g.cfg.MaxObjects)
	}
	c := g.cmd(ctx, g.dir(st.name), qenv, "index-pack", "--stdin", "--strict", "--fix-thin")
	lr := &errReader{r: io.MultiReader(bytes.NewReader(hdr[:]), br)}
	c.Stdin = lr
	var stderr bytes.Buffer
	c.Stdout, c.Stderr = io.Discard, &limitedWriter{w: &stderr, n: 4096}
	if err := c.Run(); err != nil {
		if writ.ErrorKind(lr.err) == writ.KindTooLarge {
			return "pack_too_large", fmt.Sprintf("the push is over the %d-byte limit", g.cfg.MaxPackBytes)
		}
		g.log.InfoContext(ctx, "index-pack refused a pack", slog.String("repo", st.name), slog.String("actor", st.who.actor()), slog.String("stderr", truncate(stderr.String(), 300)))
		return "unpack_failed", "the pack is malformed or refers to objects the repository does not have (git index-pack --strict refused it)"
	}
	return "", ""
}

type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// blob is a new blob at path.
type blob struct{ id, path string }

// inspect lists what tip brings that the refs in not do not have: its
// commits, every path they change (each against its first parent), and
// the blobs those changes write. tip and not are commit ids or refs writ
// built, never a client's text.
func (g *Gateway) inspect(ctx context.Context, name string, qenv []string, tip string, not []string) (commits, paths []string, blobs []blob, err error) {
	args := []string{"log", "--no-color", "--no-renames", "--no-ext-diff", "--no-textconv", "--raw", "--no-abbrev", "-z",
		"--diff-merges=first-parent", "--format=format:%x01%H", tip, "--not"}
	out, err := g.run(ctx, g.dir(name), qenv, nil, append(append(args, not...), "--")...)
	if err != nil {
		return nil, nil, nil, err
	}
	toks := bytes.Split(out, []byte{0})
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if len(t) > 0 && t[0] == 1 {
			line, meta, _ := bytes.Cut(t[1:], []byte{'\n'})
			commits = append(commits, string(line))
			t = meta
		}
		if len(t) == 0 || t[0] != ':' || i+1 >= len(toks) {
			continue
		}
		// :<old mode> <new mode> <old id> <new id> <status>
		f := strings.Fields(string(t[1:]))
		i++
		path := string(toks[i])
		paths = appendNew(paths, path)
		if len(f) == 5 && f[4] != "D" && (f[1] == "100644" || f[1] == "100755") {
			blobs = append(blobs, blob{id: f[3], path: path})
		}
	}
	return commits, paths, blobs, nil
}

func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// isAncestor reports whether old is an ancestor of new (a fast-forward).
func (g *Gateway) isAncestor(ctx context.Context, name string, env []string, old, new string) (bool, error) {
	_, err := g.run(ctx, g.dir(name), env, nil, "merge-base", "--is-ancestor", old, new)
	if err == nil {
		return true, nil
	}
	var ge *gitError
	if errors.As(err, &ge) {
		var ee *exec.ExitError
		if errors.As(ge.err, &ee) && ee.ExitCode() == 1 {
			return false, nil
		}
	}
	return false, err
}

// scanBlobs reads the new blobs (one git cat-file process) and scans
// them. Blobs over the scan limit are listed, not read.
func (g *Gateway) scanBlobs(ctx context.Context, name string, qenv []string, blobs []blob) ([]finding, []string, error) {
	if len(blobs) == 0 {
		return nil, nil, nil
	}
	c := g.cmd(ctx, g.dir(name), qenv, "cat-file", "--batch-command")
	stdin, err := c.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := c.Start(); err != nil {
		return nil, nil, err
	}
	defer func() { stdin.Close(); _ = c.Wait() }()
	out := bufio.NewReader(stdout)
	var findings []finding
	var unscanned []string
	var total int64
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.id] {
			continue
		}
		seen[b.id] = true
		if _, err := fmt.Fprintf(stdin, "info %s\n", b.id); err != nil {
			return nil, nil, err
		}
		line, err := out.ReadString('\n')
		if err != nil {
			return nil, nil, err
		}
		var id, typ string
		var size int64
		if _, err := fmt.Sscanf(line, "%s %s %d", &id, &typ, &size); err != nil || typ != "blob" {
			return nil, nil, fmt.Errorf("cat-file info %s: %q", b.id, truncate(line, 100))
		}
		if size > g.cfg.MaxScanBytes || total+size > g.cfg.MaxScanTotal {
			unscanned = append(unscanned, b.path)
			continue
		}
		total += size
		if _, err := fmt.Fprintf(stdin, "contents %s\n", b.id); err != nil {
			return nil, nil, err
		}
		if _, err := out.ReadString('\n'); err != nil {
			return nil, nil, err
		}
		data := make([]byte, size+1)
		if _, err := io.ReadFull(out, data); err != nil {
			return nil, nil, err
		}
		findings = append(findings, scanBlob(b.path, data[:size])...)
	}
	return findings, unscanned, nil
}

// decide asks policy about one ref update of a run.
func (g *Gateway) decide(ctx context.Context, who *principal, name string, c command, paths []string, args map[string]any) (*writ.Decision, error) {
	t := writ.Target{Repo: name, Ref: c.Ref, Head: c.New, Paths: paths}
	if !c.isCreate() {
		t.Base = c.Old
	}
	a := writ.Action{Kind: writ.ActionGitPush, Target: t}
	if len(args) > 0 {
		b, err := json.Marshal(args)
		if err != nil {
			return nil, err
		}
		a.Args = b
	}
	d, err := g.cfg.Decider.Decide(ctx, &decision.Request{Run: who.run, Action: a, Via: "git", Actor: who.actor()})
	if err != nil {
		g.log.WarnContext(ctx, "deciding a push", slog.String("repo", name), slog.String("ref", c.Ref), slog.Any("error", err))
	}
	return d, err
}

// decidePush decides one ref update of a run with what the pack holds.
func (g *Gateway) decidePush(ctx context.Context, st *pushState, c command, paths []string) (*writ.Decision, *refusal) {
	if len(paths) > writ.MaxActionPaths {
		return nil, &refusal{code: "too_many_paths", message: fmt.Sprintf("%s: the push changes %d paths; the limit is %d: push in smaller steps", c.Ref, len(paths), writ.MaxActionPaths)}
	}
	for _, p := range paths {
		if err := writ.ValidatePath(p); err != nil {
			return nil, &refusal{code: "invalid_path", message: fmt.Sprintf("%s: %v; rename it", c.Ref, err)}
		}
	}
	args := map[string]any{"commits": len(st.commits)}
	if len(st.unscanned) > 0 {
		args["unscanned"] = st.unscanned[:min(len(st.unscanned), 50)]
	}
	d, err := g.decide(ctx, st.who, st.name, c, paths, args)
	if err != nil {
		msg := "policy could not decide this push; try again"
		if we := asWritError(err); we != nil {
			msg = we.Message
		}
		return nil, &refusal{code: "decision_failed", message: msg}
	}
	switch d.Verdict {
	case writ.VerdictAllow:
		return d, nil
	case writ.VerdictApprovalRequired:
		// docs/design.md §4.5: accepted onto the run's branch with the approval
		// on record; the commit approval at merge time covers it.
		if strings.HasPrefix(c.Ref, "refs/heads/"+decision.BranchPrefix(st.who.run.ID)) {
			_, sentence := writ.DecisionMessage(d)
			st.notes = append(st.notes, fmt.Sprintf("writ: %s: accepted onto the run's branch with approval_required on record: %s (decision %s)", c.Ref, sentence, d.ID))
			return d, nil
		}
	}
	code, sentence := writ.DecisionMessage(d)
	return d, &refusal{code: code, message: sentence, decision: d.ID}
}

// migrate moves the quarantined pack into the repository: the pack
// first, its index last, so the objects appear all at once.
func (g *Gateway) migrate(qobj, objects string) error {
	files, err := os.ReadDir(filepath.Join(qobj, "pack"))
	if err != nil {
		return err
	}
	rank := func(n string) int {
		switch {
		case strings.HasSuffix(n, ".pack"):
			return 0
		case strings.HasSuffix(n, ".idx"):
			return 2
		}
		return 1
	}
	slices.SortFunc(files, func(a, b os.DirEntry) int { return rank(a.Name()) - rank(b.Name()) })
	for _, f := range files {
		if !strings.HasPrefix(f.Name(), "pack-") {
			continue
		}
		if err := os.Rename(filepath.Join(qobj, "pack", f.Name()), filepath.Join(objects, "pack", f.Name())); err != nil {
			return err
		}
	}
	return nil
}

// maybeGC packs a repository's many small packs now and then, in the
// background, as receive-pack's gc --auto would.
func (g *Gateway) maybeGC(name string) {
	g.mu.Lock()
	g.pushes[name]++
	n := g.pushes[name]
	g.mu.Unlock()
	if n%50 != 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
		defer cancel()
		if _, err := g.run(ctx, g.dir(name), nil, nil, "gc", "--auto", "--quiet"); err != nil {
			g.log.Warn("git gc --auto", slog.String("repo", name), slog.Any("error", err))
		}
	}()
}

// notRecorded is what git shows when writ cannot record a push.
const notRecorded = "writ could not record the push, so nothing was changed; try again (writ's store is failing: an admin reads writ's log)"

// pushIntent commits the write-ahead intent of an accepted push.
func (g *Gateway) pushIntent(ctx context.Context, st *pushState) error {
	moves := make([]refMove, len(st.req.Commands))
	for i, c := range st.req.Commands {
		moves[i] = refMove{Ref: c.Ref, Old: c.Old, New: c.New}
		if c.isCreate() {
			moves[i].Old = ""
		}
	}
	extra := map[string]any{"commits": st.commits[:min(len(st.commits), maxEventCommits)], "commitCount": len(st.commits)}
	if st.commits == nil {
		extra["commits"] = []string{}
	}
	var ids []string
	for _, d := range st.decisions {
		ids = append(ids, d.ID)
	}
	if len(ids) > 0 {
		extra["decisions"] = ids
		extra["decision"] = ids[len(ids)-1]
	}
	id, err := g.recordIntent(ctx, "push", st.name, st.who.runID(), st.who.actor(), moves, extra)
	st.intent = id
	return err
}

// rollback moves the refs of a push whose event could not be recorded
// back to their old values (a compare-and-swap from their new ones).
func (g *Gateway) rollback(ctx context.Context, st *pushState) error {
	var in strings.Builder
	for _, c := range st.req.Commands {
		if c.isCreate() {
			fmt.Fprintf(&in, "delete %s %s\n", c.Ref, c.New)
		} else {
			fmt.Fprintf(&in, "update %s %s %s\n", c.Ref, c.Old, c.New)
		}
	}
	_, err := g.run(ctx, g.dir(st.name), []string{"GIT_COMMITTER_NAME=writ", "GIT_COMMITTER_EMAIL=writ@localhost"}, strings.NewReader(in.String()),
		"update-ref", "-m", "writ: push rolled back, its event could not be recorded", "--stdin")
	return err
}

// answer records the push and writes its report. An accepted push whose
// event cannot be recorded is rolled back and refused.
func (g *Gateway) answer(ctx context.Context, w http.ResponseWriter, st *pushState, unpack string) error {
	ev, details := g.pushEvent(st)
	if err := g.cfg.Events.AppendEvent(ctx, ev); err != nil {
		g.log.ErrorContext(ctx, "recording a push", slog.String("repo", st.name), slog.Any("error", err))
		if st.moved {
			if rerr := g.rollback(ctx, st); rerr != nil {
				// The intent stays open: start-up reconciliation records it.
				g.log.ErrorContext(ctx, "rolling back an unrecorded push", slog.String("repo", st.name), slog.String("intent", st.intent), slog.Any("error", rerr))
			}
			st.moved = false
			for i := range st.req.Commands {
				st.refused[i] = &refusal{code: "push_not_recorded", message: notRecorded}
			}
			details["outcome"] = "refused"
		}
	}
	rw := newReportWriter(st.req)
	statuses := make([]refStatus, len(st.req.Commands))
	var first *refusal
	for i, c := range st.req.Commands {
		if r := st.refused[i]; r != nil {
			statuses[i] = refStatus{ref: c.Ref, reason: "writ: " + r.code}
			if first == nil {
				first = r
			}
			msg := "writ: " + r.message
			if r.decision != "" {
				msg += " (decision " + r.decision + ")"
			}
			rw.message(msg)
		}
	}
	for i, c := range st.req.Commands {
		if st.refused[i] == nil {
			if first != nil {
				statuses[i] = refStatus{ref: c.Ref, reason: "writ: push refused as a whole"}
			} else {
				statuses[i] = refStatus{ref: c.Ref, ok: true}
			}
		}
	}
	for _, n := range st.notes {
		rw.message(n)
	}
	// The event is recorded before git hears the answer.
	if st.last.IsZero() {
		st.last = time.Now()
	}
	st.phase("event")
	w.WriteHeader(http.StatusOK)
	_, werr := w.Write(rw.status(unpack, statuses))
	outcome := details["outcome"].(string)
	g.log.InfoContext(ctx, "push", slog.String("repo", st.name), slog.String("actor", st.who.actor()), slog.String("outcome", outcome), slog.Int("refs", len(st.req.Commands)))
	g.log.DebugContext(ctx, "push timings", slog.String("repo", st.name), slog.Any("phases", slog.GroupValue(st.timings...)))
	return werr
}

// pushEvent is the git.pushed event of a push, accepted or refused.
func (g *Gateway) pushEvent(st *pushState) (*writ.Event, map[string]any) {
	var first *refusal
	for i := range st.req.Commands {
		if r := st.refused[i]; r != nil && first == nil {
			first = r
		}
	}
	refs := make([]map[string]string, len(st.req.Commands))
	for i, c := range st.req.Commands {
		refs[i] = map[string]string{"ref": c.Ref, "old": c.Old, "new": c.New}
	}
	details := map[string]any{"repo": st.name, "refs": refs, "outcome": "accepted",
		"commits": st.commits[:min(len(st.commits), maxEventCommits)], "paths": st.paths[:min(len(st.paths), maxEventPaths)],
		"commitCount": len(st.commits), "pathCount": len(st.paths)}
	if st.commits == nil {
		details["commits"] = []string{}
	}
	if st.paths == nil {
		details["paths"] = []string{}
	}
	if st.intent != "" {
		details["intent"] = st.intent
	}
	var ids []string
	for _, d := range st.decisions {
		ids = append(ids, d.ID)
	}
	if len(ids) > 0 {
		details["decisions"] = ids
	}
	if len(st.findings) > 0 {
		details["secrets"] = st.findings[:min(len(st.findings), 20)]
	}
	if len(st.unscanned) > 0 {
		details["unscanned"] = st.unscanned[:min(len(st.unscanned), 20)]
	}
	if first != nil {
		details["outcome"] = "refused"
		details["code"] = first.code
		details["reason"] = first.message
	}
	ev := &writ.Event{Type: EventPushed, Run: st.who.runID(), Actor: st.who.actor(), Action: writ.ActionGitPush, Subject: st.name, Details: details}
	if len(ids) > 0 {
		ev.Decision = ids[len(ids)-1]
	}
	return ev, details
}
