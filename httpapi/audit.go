package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/auditlog"
)

// AuditLog is what the API needs of the audit log (auditlog.Log).
type AuditLog interface {
	Checkpoint(ctx context.Context) ([]byte, error)
	Latest(ctx context.Context) (auditlog.Checkpoint, []byte, error)
	Size() int64
	WaitFor(ctx context.Context, seq int64) error
	InclusionProof(ctx context.Context, index, size int64) (tlog.RecordProof, error)
	ConsistencyProof(ctx context.Context, from, to int64) (tlog.TreeProof, error)
}

// AuditStore is what the audit read API needs from storage.
type AuditStore interface {
	LogEntries(ctx context.Context, start, end int64) ([]writ.LogEntry, error)
	EntryByLeaf(ctx context.Context, leaf [32]byte) (*writ.LogEntry, error)
	EntryByID(ctx context.Context, id string) (*writ.LogEntry, error)
	RunEntries(ctx context.Context, run writ.RunID) ([]writ.LogEntry, error)
	Checkpoints(ctx context.Context, limit int) ([][]byte, error)
}

// maxWait bounds how long a caller may ask the API to wait for its event
// to be in a signed checkpoint.
const maxWait = 10 * time.Second

func entryView(e *writ.LogEntry) api.AuditEntry {
	v := api.AuditEntry{Seq: e.Seq, ID: e.ID, Type: e.Type, Run: e.Run, Body: e.Body}
	if e.Seq >= 0 {
		v.LeafHash = hex.EncodeToString(e.Leaf[:])
	}
	return v
}

func (a *API) auditCheckpoint(w http.ResponseWriter, r *http.Request) error {
	if s := r.URL.Query().Get("wait"); s != "" {
		size, err := strconv.ParseInt(s, 10, 64)
		if err != nil || size < 1 {
			return writ.Errorf(writ.KindInvalid, "invalid_wait", "wait=%q: want a tree size ≥ 1 to wait for", s)
		}
		ctx, cancel := context.WithTimeout(r.Context(), maxWait)
		defer cancel()
		if err := a.cfg.Audit.WaitFor(ctx, size-1); err != nil {
			return writ.Errorf(writ.KindUnavailable, "not_yet_logged", "the log did not reach size %d within %v", size, maxWait)
		}
	}
	note, err := a.cfg.Audit.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(note)
	return err
}

func (a *API) auditCheckpoints(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", 100, 1, 10000)
	if err != nil {
		return err
	}
	notes, err := a.cfg.AuditStore.Checkpoints(r.Context(), int(limit))
	if err != nil {
		return err
	}
	out := api.AuditCheckpoints{Checkpoints: make([]string, len(notes))}
	for i, n := range notes {
		out.Checkpoints[i] = string(n)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) auditEntries(w http.ResponseWriter, r *http.Request) error {
	start, err := intParam(r, "start", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	end, err := intParam(r, "end", start+1000, start, 1<<62)
	if err != nil {
		return err
	}
	es, err := a.cfg.AuditStore.LogEntries(r.Context(), start, end)
	if err != nil {
		return err
	}
	out := api.AuditEntries{Entries: make([]api.AuditEntry, len(es))}
	for i := range es {
		out.Entries[i] = entryView(&es[i])
	}
	return writeJSON(w, http.StatusOK, out)
}

// auditInclusion proves an entry — named by index, leaf hash or event id —
// in the current signed tree (or a given size). With wait, it first waits
// (at most 10 s) for the entry to be logged: the way a caller that needs
// the proof at once gets it right after its state change.
func (a *API) auditInclusion(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	var e *writ.LogEntry
	switch {
	case q.Get("event") != "":
		var err error
		if e, err = a.cfg.AuditStore.EntryByID(ctx, q.Get("event")); err != nil {
			return err
		}
		if e.Seq < 0 && q.Get("wait") != "" {
			wctx, cancel := context.WithTimeout(ctx, maxWait)
			defer cancel()
			for e.Seq < 0 {
				if err := a.cfg.Audit.WaitFor(wctx, a.cfg.Audit.Size()); err != nil {
					return writ.Errorf(writ.KindUnavailable, "not_yet_logged", "event %s was not logged within %v", e.ID, maxWait)
				}
				if e, err = a.cfg.AuditStore.EntryByID(ctx, e.ID); err != nil {
					return err
				}
			}
		}
		if e.Seq < 0 {
			return writ.Errorf(writ.KindUnavailable, "not_yet_logged", "event %s is committed but not yet logged; add wait=1 to wait for it", e.ID)
		}
	case q.Get("leaf") != "":
		b, err := hex.DecodeString(q.Get("leaf"))
		if err != nil || len(b) != 32 {
			return writ.Errorf(writ.KindInvalid, "invalid_leaf", "leaf must be a hex SHA-256 leaf hash")
		}
		var leaf [32]byte
		copy(leaf[:], b)
		if e, err = a.cfg.AuditStore.EntryByLeaf(ctx, leaf); err != nil {
			return err
		}
	default:
		idx, err := intParam(r, "index", -1, 0, 1<<62)
		if err != nil {
			return err
		}
		if idx < 0 {
			return writ.Errorf(writ.KindInvalid, "invalid_request", "name the entry: index=N, leaf=HEX or event=ID")
		}
		es, err := a.cfg.AuditStore.LogEntries(ctx, idx, idx+1)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return writ.Errorf(writ.KindNotFound, "entry_not_found", "no logged entry %d", idx)
		}
		e = &es[0]
	}
	// The proof is against the checkpoint served with it, read once: a
	// checkpoint signed in between would not match the proof.
	cp, note, err := a.cfg.Audit.Latest(ctx)
	if err != nil {
		return err
	}
	size, err := intParam(r, "size", cp.Size, 1, cp.Size)
	if err != nil {
		return err
	}
	proof, err := a.cfg.Audit.InclusionProof(ctx, e.Seq, size)
	if err != nil {
		return err
	}
	resp := api.InclusionResponse{Index: e.Seq, Size: size, Entry: entryView(e), Proof: hashes(proof)}
	if size == cp.Size {
		resp.Checkpoint = string(note)
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (a *API) auditConsistency(w http.ResponseWriter, r *http.Request) error {
	from, err := intParam(r, "from", -1, 1, 1<<62)
	if err != nil {
		return err
	}
	to, err := intParam(r, "to", a.cfg.Audit.Size(), 1, 1<<62)
	if err != nil {
		return err
	}
	if from < 0 {
		return writ.Errorf(writ.KindInvalid, "invalid_request", "from=N is required: the tree size you trust")
	}
	proof, err := a.cfg.Audit.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ConsistencyResponse{From: from, To: to, Proof: hashes(proof)})
}

// trace is GET /v1/trace/{run}: everything a run did — and was refused —
// in commit order, with log indexes.
func (a *API) trace(w http.ResponseWriter, r *http.Request) error {
	if strings.HasPrefix(r.PathValue("id"), "sha256:") {
		return a.artifactTrace(w, r) // GET /v1/trace/sha256:… (httpapi/trace_artifact.go)
	}
	id, err := writ.ParseRunID(r.PathValue("id"))
	if err != nil {
		return err
	}
	run, err := a.cfg.Store.GetRun(r.Context(), id)
	if err != nil {
		return err
	}
	es, err := a.cfg.AuditStore.RunEntries(r.Context(), id)
	if err != nil {
		return err
	}
	out := api.Trace{Run: a.view(run), Events: traceEvents(es)}
	// Not indented: each event stays the exact bytes the log hashed
	// (encoding/json only re-indents raw messages when asked to indent).
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(out)
}

// traceEvents is es on the wire: each event the exact bytes logged.
func traceEvents(es []writ.LogEntry) []api.TraceEvent {
	out := make([]api.TraceEvent, len(es))
	for i, e := range es {
		out[i] = api.TraceEvent{Seq: e.Seq, ID: e.ID, Type: e.Type, Event: json.RawMessage(e.Body)}
	}
	return out
}

func hashes[T ~[]tlog.Hash](p T) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func intParam(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, writ.Errorf(writ.KindInvalid, "invalid_"+name, "%s=%q: want a number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}

// auditKey serves the log's public key, for a verifier that pins it on
// first use (and should compare it with what the operator publishes).
func (a *API) auditKey(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.AuditKey{Key: a.cfg.AuditKey, Origin: a.cfg.AuditOrigin})
}
