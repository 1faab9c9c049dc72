package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/writ-dev/writ"
)

// artifactStore finds the events filed under an artifact digest
// (sqlstore.DB).
type artifactStore interface {
	ArtifactEntries(ctx context.Context, digest, kind string) ([]writ.LogEntry, error)
}

// ArtifactTraceRun is one run in an artifact's chain, with its timeline.
type ArtifactTraceRun struct {
	Run    RunView      `json:"run"`
	Role   string       `json:"role"` // built (its merged work was built) or released
	Events []TraceEvent `json:"events"`
}

// maxTraceRuns bounds how many runs an artifact trace walks.
const maxTraceRuns = 20

// artifactTrace is GET /v1/trace/sha256:…: the artifact's chain from
// ticket to deployment — the runs whose merged work was built into it and
// the runs that released it (trigger, actions, approvals, merge), then the
// builds, releases, deployments and alerts filed under its digest.
func (a *API) artifactTrace(w http.ResponseWriter, r *http.Request) error {
	digest := r.PathValue("id")
	as, ok := a.cfg.AuditStore.(artifactStore)
	if !ok {
		return writ.Errorf(writ.KindNotFound, "no_artifacts", "this store does not index artifacts")
	}
	ctx := r.Context()
	es, err := as.ArtifactEntries(ctx, digest, "")
	if err != nil {
		return err
	}
	if len(es) == 0 {
		return writ.Errorf(writ.KindNotFound, "artifact_not_found", "writ knows nothing of artifact %s: no build, release or deployment", digest)
	}
	events := make([]TraceEvent, len(es))
	var runs []ArtifactTraceRun
	seen := map[writ.RunID]bool{}
	for i, e := range es {
		events[i] = TraceEvent{Seq: e.Seq, ID: e.ID, Type: e.Type, Event: json.RawMessage(e.Body)}
		if e.Run == "" || seen[e.Run] || len(runs) >= maxTraceRuns {
			continue
		}
		seen[e.Run] = true
		run, err := a.cfg.Store.GetRun(ctx, e.Run)
		if err != nil {
			continue
		}
		res, err := a.cfg.AuditStore.RunEntries(ctx, e.Run)
		if err != nil {
			return err
		}
		role := "built"
		if e.Type == writ.EventRelease {
			role = "released"
		}
		tr := ArtifactTraceRun{Run: a.view(run), Role: role, Events: make([]TraceEvent, len(res))}
		for j, re := range res {
			tr.Events[j] = TraceEvent{Seq: re.Seq, ID: re.ID, Type: re.Type, Event: json.RawMessage(re.Body)}
		}
		runs = append(runs, tr)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(map[string]any{"artifact": digest, "runs": runs, "events": events})
}
