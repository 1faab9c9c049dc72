package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
)

// attestRoutes serves writ's attestations and the key that verifies them.
func (a *API) attestRoutes() {
	a.route("GET /v1/attest/key", a.public(a.attestKey))
	a.route("GET /v1/runs/{id}/attestation", a.auth(humans|ownRun, a.runAttestation))
}

// attestKey is GET /v1/attest/key: the attest key's public half, PEM —
// what `writ attest verify --key` and `cosign verify-blob-attestation
// --key` read. It is public: it verifies, it cannot sign.
func (a *API) attestKey(w http.ResponseWriter, r *http.Request) error {
	if len(a.cfg.AttestKey) == 0 {
		return writ.Errorf(writ.KindNotFound, "no_attest_key", "this server has no attest key")
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(a.cfg.AttestKey)
	return err
}

// runAttestation is GET /v1/runs/{id}/attestation: the run's signed
// attestation (a DSSE envelope), once writ has signed it — after the run
// ended and its end event is in a signed checkpoint.
func (a *API) runAttestation(w http.ResponseWriter, r *http.Request) error {
	id, err := writ.ParseRunID(r.PathValue("id"))
	if err != nil {
		return err
	}
	run, err := a.cfg.Store.GetRun(r.Context(), id)
	if err != nil {
		return err
	}
	if !run.State.Final() {
		return writ.Errorf(writ.KindConflict, "run_not_ended", "run %s is %s: it is attested once it ends", id, run.State)
	}
	es, err := a.cfg.AuditStore.RunEntries(r.Context(), id)
	if err != nil {
		return err
	}
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Type != attest.EventSigned {
			continue
		}
		var ev struct {
			Details struct {
				PredicateType string          `json:"predicateType"`
				Envelope      json.RawMessage `json:"envelope"`
			} `json:"details"`
		}
		if err := json.Unmarshal(es[i].Body, &ev); err != nil || ev.Details.PredicateType != attest.PredicateRun || len(ev.Details.Envelope) == 0 {
			continue
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(ev.Details.Envelope)
		return err
	}
	return writ.Errorf(writ.KindUnavailable, "not_yet_attested", "run %s ended but is not attested yet: writ signs once its end is in a signed checkpoint; retry in a few seconds", id)
}
