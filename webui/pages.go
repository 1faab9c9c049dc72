package webui

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
)

// --- approvals ---

// approvalView is the API's approval view, read from its JSON (the same
// type the Go client decodes it into).
type approvalView = client.ApprovalView

func (u *UI) approvals(w http.ResponseWriter, r *http.Request, s *session) error {
	state := r.URL.Query().Get("state")
	if state == "" {
		state = writ.ApprovalPending
	}
	if state == "all" {
		state = ""
	}
	var out struct {
		Approvals []*writ.ApprovalRequest `json:"approvals"`
	}
	if _, err := u.call(r, s, "GET", "/v1/approvals?limit=500&state="+url.QueryEscape(state), nil, &out); err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "approvals", s, pageData{Title: "Approvals", Nav: "approvals",
		Data: map[string]any{"Approvals": out.Approvals, "State": cmpOr(state, "all"),
			"States": []string{"pending", "approved", "denied", "voided", "expired", "used", "all"}}})
	return nil
}

type statementView struct {
	Verdict string
	Text    string
	Error   string
}

type approvalPage struct {
	V          *approvalView
	Run        *writ.Run
	Files      []diffFile
	Commits    []Commit
	Diff       *Diff
	DiffError  string
	DigestOK   bool
	ScopePaths []string
	OutScope   []string
	Subject    []kv
	AgentArgs  string
	Statements []statementView
	Pending    bool
}

type kv struct{ K, V string }

func (u *UI) approval(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	v := &approvalView{}
	if _, err := u.call(r, s, "GET", "/v1/approvals/"+url.PathEscape(id), nil, v); err != nil {
		return err
	}
	p := &approvalPage{V: v, Pending: v.State == writ.ApprovalPending}
	for _, k := range slices.Sorted(maps.Keys(v.Subject)) {
		p.Subject = append(p.Subject, kv{k, plain(v.Subject[k])})
	}
	run := &writ.Run{}
	if _, err := u.call(r, s, "GET", "/v1/runs/"+url.PathEscape(string(v.Run)), nil, run); err == nil {
		p.Run = run
	}
	if v.WrittenByAgent != nil && len(v.WrittenByAgent.Args) > 0 {
		p.AgentArgs = readableJSON(v.WrittenByAgent.Args)
	}
	if a := v.Action; a != nil && a.Target.Repo != "" && a.Target.Head != "" && u.cfg.Diff != nil {
		d, err := u.cfg.Diff(r.Context(), a.Target.Repo, a.Target.Base, a.Target.Head)
		if err != nil {
			p.DiffError = "the diff could not be computed: " + userMessage(err)
			u.log.WarnContext(r.Context(), "approval diff", slog.String("approval", v.ID), slog.Any("error", err))
		} else {
			p.Diff, p.Commits = d, d.Commits
			p.DigestOK = a.Target.Digest != "" && d.Digest == a.Target.Digest
			p.Files = parseDiff(string(d.Text))
			if v.RunInfo != nil {
				for _, rs := range v.RunInfo.Scope.Repos {
					if rs.Name == a.Target.Repo {
						p.ScopePaths = append(p.ScopePaths, rs.Paths...)
					}
				}
			}
			for i := range p.Files {
				f := &p.Files[i]
				in := len(p.ScopePaths) == 0
				for _, pat := range p.ScopePaths {
					if writ.MatchPath(pat, f.Path) {
						in = true
					}
				}
				if !in {
					f.OutScope = true
					p.OutScope = append(p.OutScope, f.Path)
				}
			}
		}
	}
	if p.Pending {
		for _, verdict := range []string{"approve", "deny"} {
			sv := statementView{Verdict: verdict}
			b, err := u.call(r, s, "GET", "/v1/approvals/"+url.PathEscape(id)+"/statement?verdict="+verdict, nil, nil)
			if err != nil {
				if err == errSignedOut {
					return err
				}
				sv.Error = userMessage(err)
			} else {
				sv.Text = string(b)
			}
			p.Statements = append(p.Statements, sv)
		}
	}
	flash := ""
	if d := r.URL.Query().Get("done"); d == "approve" || d == "deny" {
		flash = "Your signed " + d + " verdict was accepted."
	}
	u.render(w, r, http.StatusOK, "approval", s, pageData{Title: "Approval " + v.ID, Nav: "approvals", Flash: flash, Data: p})
	return nil
}

// statement serves the exact statement bytes, for signing with
// ssh-keygen -Y sign.
func (u *UI) statement(w http.ResponseWriter, r *http.Request, s *session) error {
	id, verdict := r.PathValue("id"), r.URL.Query().Get("verdict")
	b, err := u.call(r, s, "GET", "/v1/approvals/"+url.PathEscape(id)+"/statement?verdict="+url.QueryEscape(verdict), nil, nil)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/vnd.writ.approval.v1+json")
	w.Header().Set("Content-Disposition", `attachment; filename="statement.json"`)
	_, err = w.Write(b)
	return err
}

// submit carries a pasted SSH signature over the server's statement to
// the approval service, as `writ approvals approve --ssh-sig` does.
func (u *UI) submit(w http.ResponseWriter, r *http.Request, s *session) error {
	id, verdict := r.PathValue("id"), r.PathValue("verdict")
	if verdict != "approve" && verdict != "deny" {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such verdict"}
	}
	sig := strings.TrimSpace(strings.ReplaceAll(r.PostForm.Get("sshsig"), "\r\n", "\n"))
	if !strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----") {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_signature",
			Message: "paste the whole armored signature, from -----BEGIN SSH SIGNATURE----- to -----END SSH SIGNATURE-----"}
	}
	st, err := u.call(r, s, "GET", "/v1/approvals/"+url.PathEscape(id)+"/statement?verdict="+verdict, nil, nil)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"payload": base64.StdEncoding.EncodeToString(st), "sshsig": sig + "\n"})
	if err != nil {
		return err
	}
	if _, err := u.call(r, s, "POST", "/v1/approvals/"+url.PathEscape(id)+"/"+verdict, body, nil); err != nil {
		return err
	}
	u.log.InfoContext(r.Context(), "verdict submitted from the web UI", slog.String("approval", id), slog.String("verdict", verdict), slog.String("human", s.human))
	http.Redirect(w, r, "/ui/approvals/"+url.PathEscape(id)+"?done="+verdict, http.StatusSeeOther)
	return nil
}

// --- runs ---

func (u *UI) runs(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	f := map[string]string{"state": q.Get("state"), "agent": q.Get("agent"), "repo": q.Get("repo"), "profile": q.Get("profile")}
	var out struct {
		Runs []*writ.Run `json:"runs"`
	}
	path := "/v1/runs?limit=1000&state=" + url.QueryEscape(f["state"]) + "&agent=" + url.QueryEscape(f["agent"])
	if _, err := u.call(r, s, "GET", path, nil, &out); err != nil {
		return err
	}
	// The API filters by state and agent; profile and repository are
	// filtered here, over what it returned.
	var runs []*writ.Run
	for _, run := range out.Runs {
		if f["profile"] != "" && run.Profile != f["profile"] {
			continue
		}
		if f["repo"] != "" && !slices.ContainsFunc(run.Scope.Repos, func(rs writ.RepoScope) bool { return rs.Name == f["repo"] }) {
			continue
		}
		runs = append(runs, run)
	}
	u.render(w, r, http.StatusOK, "runs", s, pageData{Title: "Runs", Nav: "runs",
		Data: map[string]any{"Runs": runs, "F": f, "States": []string{"", "active", "suspended", "ended", "killed", "expired"}}})
	return nil
}

// timelineEvent is one event of a run's timeline.
type timelineEvent struct {
	Seq     int64
	ID      string
	Type    string
	Group   string
	Time    time.Time
	Actor   string
	Action  string
	Subject string
	Dec     string
	Verdict string
	Details []kv
}

func (u *UI) run(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	var out struct {
		Run    *writ.Run `json:"run"`
		Events []struct {
			Seq   int64           `json:"seq"`
			ID    string          `json:"id"`
			Type  string          `json:"type"`
			Event json.RawMessage `json:"event"`
		} `json:"events"`
	}
	if _, err := u.call(r, s, "GET", "/v1/trace/"+url.PathEscape(id), nil, &out); err != nil {
		return err
	}
	tl := make([]timelineEvent, 0, len(out.Events))
	for _, e := range out.Events {
		var ev writ.Event
		_ = json.Unmarshal(e.Event, &ev)
		te := timelineEvent{Seq: e.Seq, ID: e.ID, Type: e.Type, Group: group(e.Type), Time: ev.Time, Actor: ev.Actor,
			Action: ev.Action, Subject: ev.Subject, Dec: ev.Decision}
		for _, k := range slices.Sorted(maps.Keys(ev.Details)) {
			te.Details = append(te.Details, kv{k, plain(ev.Details[k])})
		}
		if e.Type == writ.EventDecision {
			te.Verdict, te.Dec = ev.Decision, ""
		}
		tl = append(tl, te)
	}
	live := out.Run != nil && (out.Run.State == writ.RunActive || out.Run.State == writ.RunSuspended)
	flash := ""
	if r.URL.Query().Get("killed") == "1" {
		flash = "The run was killed; its kill is on the record below."
	}
	u.render(w, r, http.StatusOK, "run", s, pageData{Title: "Run " + id, Nav: "runs", Flash: flash,
		Data: map[string]any{"Run": out.Run, "Events": tl, "Live": live}})
	return nil
}

// group names the part of a run's life an event type belongs to.
func group(t string) string {
	head, _, _ := strings.Cut(t, ".")
	switch head {
	case "trigger", "run", "token":
		return "run"
	case "decision":
		return "decision"
	case "credential":
		return "credential"
	case "approval":
		return "approval"
	case "git", "merge":
		return "git"
	case "build", "release", "deployment", "attestation":
		return "delivery"
	}
	return "other"
}

func (u *UI) kill(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if r.PostForm.Get("confirm") != "yes" {
		return &apiError{Status: http.StatusBadRequest, Code: "not_confirmed", Message: "tick the confirmation box to kill the run"}
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		reason = "killed by " + s.human + " in the web UI"
	}
	body, err := json.Marshal(map[string]string{"reason": reason})
	if err != nil {
		return err
	}
	if _, err := u.call(r, s, "POST", "/v1/runs/"+url.PathEscape(id)+"/kill", body, nil); err != nil {
		return err
	}
	u.log.InfoContext(r.Context(), "run killed from the web UI", slog.String("run", id), slog.String("human", s.human))
	http.Redirect(w, r, "/ui/runs/"+url.PathEscape(id)+"?killed=1", http.StatusSeeOther)
	return nil
}

// --- audit ---

// auditEntry is the API's audit entry (httpapi.AuditEntry).
type auditEntry struct {
	Seq      int64      `json:"seq"`
	ID       string     `json:"id"`
	Type     string     `json:"type"`
	Run      writ.RunID `json:"run"`
	Body     []byte     `json:"body"`
	LeafHash string     `json:"leafHash"`
}

type logKey struct {
	Key    string `json:"key"`
	Origin string `json:"origin"`
}

func (u *UI) checkpoint(r *http.Request, s *session) (string, int64, error) {
	b, err := u.call(r, s, "GET", "/v1/audit/checkpoint", nil, nil)
	if err != nil {
		return "", 0, err
	}
	lines := strings.SplitN(string(b), "\n", 3)
	var size int64
	if len(lines) > 1 {
		size, _ = strconv.ParseInt(lines[1], 10, 64)
	}
	return string(b), size, nil
}

func (u *UI) audit(w http.ResponseWriter, r *http.Request, s *session) error {
	cp, size, err := u.checkpoint(r, s)
	if err != nil {
		return err
	}
	var key logKey
	if _, err := u.call(r, s, "GET", "/v1/audit/key", nil, &key); err != nil {
		return err
	}
	var out struct {
		Entries []auditEntry `json:"entries"`
	}
	if size > 0 {
		start := max(0, size-25)
		if _, err := u.call(r, s, "GET", fmt.Sprintf("/v1/audit/entries?start=%d&end=%d", start, size), nil, &out); err != nil {
			return err
		}
		slices.Reverse(out.Entries)
	}
	u.render(w, r, http.StatusOK, "audit", s, pageData{Title: "Audit log", Nav: "audit",
		Data: map[string]any{"Checkpoint": cp, "Size": size, "Key": key, "Entries": out.Entries}})
	return nil
}

func (u *UI) entry(w http.ResponseWriter, r *http.Request, s *session) error {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 0 {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "a log index is a number ≥ 0"}
	}
	var out struct {
		Entries []auditEntry `json:"entries"`
	}
	if _, err := u.call(r, s, "GET", fmt.Sprintf("/v1/audit/entries?start=%d&end=%d", seq, seq+1), nil, &out); err != nil {
		return err
	}
	if len(out.Entries) == 0 {
		return &apiError{Status: http.StatusNotFound, Code: "entry_not_found", Message: fmt.Sprintf("no logged entry %d (yet)", seq)}
	}
	e := out.Entries[0]
	var pretty bytes.Buffer
	if json.Indent(&pretty, e.Body, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(e.Body)
	}
	var key logKey
	if _, err := u.call(r, s, "GET", "/v1/audit/key", nil, &key); err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "entry", s, pageData{Title: fmt.Sprintf("Log entry %d", seq), Nav: "audit",
		Data: map[string]any{"E": e, "Pretty": pretty.String(), "Key": key}})
	return nil
}

// proof passes the API's inclusion proof through as JSON, for the check
// the browser does (static/verify.js).
func (u *UI) proof(w http.ResponseWriter, r *http.Request, s *session) error {
	idx, err := strconv.ParseInt(r.URL.Query().Get("index"), 10, 64)
	if err != nil || idx < 0 {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_index", Message: "index=N is required"}
	}
	b, err := u.call(r, s, "GET", fmt.Sprintf("/v1/audit/proof/inclusion?index=%d", idx), nil, nil)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(b)
	return err
}

// export downloads the log in the format of `writ audit export`, so
// `writ audit verify --export FILE --key KEY` checks it offline: a header
// line (key, origin, the signed checkpoint and the older ones), then one
// line per entry up to the checkpoint's size.
func (u *UI) export(w http.ResponseWriter, r *http.Request, s *session) error {
	var key logKey
	if _, err := u.call(r, s, "GET", "/v1/audit/key", nil, &key); err != nil {
		return err
	}
	// The older checkpoints first: read after the latest, they could hold
	// one larger than it, which reads as a rollback.
	var older struct {
		Checkpoints []string `json:"checkpoints"`
	}
	if _, err := u.call(r, s, "GET", "/v1/audit/checkpoints?limit=1000", nil, &older); err != nil {
		return err
	}
	cp, size, err := u.checkpoint(r, s)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(map[string]any{"key": key.Key, "origin": key.Origin, "checkpoint": cp, "checkpoints": older.Checkpoints}); err != nil {
		return err
	}
	for start := int64(0); start < size; start += 1000 {
		var out struct {
			Entries []json.RawMessage `json:"entries"`
		}
		if _, err := u.call(r, s, "GET", fmt.Sprintf("/v1/audit/entries?start=%d&end=%d", start, min(size, start+1000)), nil, &out); err != nil {
			return err
		}
		if len(out.Entries) == 0 {
			break
		}
		for _, e := range out.Entries {
			var c bytes.Buffer
			if err := json.Compact(&c, e); err != nil {
				return err
			}
			c.WriteByte('\n')
			b.Write(c.Bytes())
		}
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Content-Disposition", `attachment; filename="writ-audit.jsonl"`)
	_, err = w.Write(b.Bytes())
	return err
}

// --- helpers ---

// readableJSON indents JSON for reading, with <, > and & as themselves
// (the API's encoder writes them as \u003c…): the page escapes them, and
// the approver must see what the agent wrote, not an encoding of it.
func readableJSON(raw []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// plain renders a JSON value as text: strings as they are, the rest as
// JSON.
func plain(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the page escapes; the human reads the characters
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func userMessage(err error) string {
	if ae, ok := err.(*apiError); ok {
		return ae.Message
	}
	if we, ok := err.(*writ.Error); ok {
		return we.Message
	}
	return "internal error"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
