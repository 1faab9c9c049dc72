package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// artifactStore finds the events filed under an artifact digest
// (sqlstore.DB).
type artifactStore interface {
	ArtifactEntries(ctx context.Context, digest, kind string) ([]writ.LogEntry, error)
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
	out := api.ArtifactTrace{Artifact: digest, Events: traceEvents(es)}
	seen := map[writ.RunID]bool{}
	for _, e := range es {
		if e.Run == "" || seen[e.Run] || len(out.Runs) >= maxTraceRuns {
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
		out.Runs = append(out.Runs, api.ArtifactTraceRun{Run: a.view(run), Role: role, Events: traceEvents(res)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(out)
}
