package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// Broker issues and revokes leases (package broker).
type Broker interface {
	Request(ctx context.Context, run *writ.Run, req *writ.CredentialRequest, actor string) (*writ.IssuedCredential, error)
	Lease(ctx context.Context, id string) (*writ.Lease, error)
	Leases(ctx context.Context, f writ.LeaseFilter) ([]*writ.Lease, error)
	Revoke(ctx context.Context, id string, wait time.Duration) (*writ.Lease, error)
	Wake()
}

// Secrets manages static secrets (package broker/secret); nil when no
// broker key is configured.
type Secrets interface {
	Put(ctx context.Context, full string, value []byte, actor string) (int, error)
	Delete(ctx context.Context, full, actor string) error
	List(ctx context.Context) ([]*writ.Secret, error)
}

// revokeWait is how long POST /v1/leases/{id}/revoke waits for the
// backend before answering 202 (the revoker keeps trying).
const revokeWait = 5 * time.Second

func (a *API) noBroker() error {
	return writ.Errorf(writ.KindUnavailable, "broker_unavailable", "this server has no credential broker")
}

// requestCredential is POST /v1/runs/{id}/credentials: the run (its own
// token) asks for a credential; policy decides; the broker issues.
func (a *API) requestCredential(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Broker == nil {
		return a.noBroker()
	}
	p := writ.PrincipalFromContext(r.Context())
	var req writ.CredentialRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	run, err := a.runs.Get(r.Context(), p.Run)
	if err != nil {
		return err
	}
	if run.State != writ.RunActive {
		return writ.Errorf(writ.KindDenied, "run_not_active", "run %s is %s; credentials are issued only to an active run", run.ID, run.State)
	}
	out, err := a.cfg.Broker.Request(r.Context(), run, &req, p.Actor())
	if err != nil {
		if writ.ErrorKind(err) == writ.KindDenied || writ.ErrorKind(err) == writ.KindApprovalPending {
			a.runs.Stale(run.ID) // policy may have suspended it
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

// listCredentials is GET /v1/runs/{id}/credentials: a run's leases,
// without their credentials.
func (a *API) listCredentials(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Broker == nil {
		return a.noBroker()
	}
	id, err := writ.ParseRunID(r.PathValue("id"))
	if err != nil {
		return err
	}
	f := writ.LeaseFilter{Run: id, State: r.URL.Query().Get("state")}
	if f.State != "" && f.State != writ.LeaseIssuing && f.State != writ.LeaseActive && f.State != writ.LeaseRevoked {
		return writ.Errorf(writ.KindInvalid, "invalid_state", "state %q: want issuing, active or revoked", f.State)
	}
	ls, err := a.cfg.Broker.Leases(r.Context(), f)
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []*writ.Lease{}
	}
	return writeJSON(w, http.StatusOK, api.LeaseList{Leases: ls})
}

// leaseFor loads lease id for the caller: an admin or any human may read
// it; a run only its own.
func (a *API) leaseFor(r *http.Request) (*writ.Lease, *writ.Principal, error) {
	if a.cfg.Broker == nil {
		return nil, nil, a.noBroker()
	}
	p := writ.PrincipalFromContext(r.Context())
	l, err := a.cfg.Broker.Lease(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, nil, err
	}
	if p.Kind == writ.PrincipalRun && l.Run != p.Run {
		// Another run's lease does not exist, as far as this run knows.
		return nil, nil, writ.Errorf(writ.KindNotFound, "lease_not_found", "lease %s not found", r.PathValue("id"))
	}
	return l, p, nil
}

func (a *API) showLease(w http.ResponseWriter, r *http.Request) error {
	l, _, err := a.leaseFor(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

// revokeLease is POST /v1/leases/{id}/revoke, by the run that holds it or
// an admin. 200 with the revoked lease, or 202 while the backend has not
// confirmed (the revoker keeps trying).
func (a *API) revokeLease(w http.ResponseWriter, r *http.Request) error {
	l, p, err := a.leaseFor(r)
	if err != nil {
		return err
	}
	if p.Kind == writ.PrincipalHuman {
		if err := requireAdmin(p, "revoking a lease"); err != nil {
			return err
		}
	}
	if l.State == writ.LeaseRevoked {
		return writeJSON(w, http.StatusOK, l)
	}
	l, err = a.cfg.Broker.Revoke(r.Context(), l.ID, revokeWait)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if l.State != writ.LeaseRevoked {
		status = http.StatusAccepted
	}
	return writeJSON(w, status, l)
}

func (a *API) secrets(r *http.Request, what string) (Secrets, *writ.Principal, error) {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, what); err != nil {
		return nil, nil, err
	}
	if a.cfg.Secrets == nil {
		return nil, nil, writ.Errorf(writ.KindUnavailable, "secrets_unavailable", "static secrets need a broker key: set broker.key in writ.yaml (writ init writes one) or WRIT_BROKER_KEY")
	}
	return a.cfg.Secrets, p, nil
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) error {
	s, _, err := a.secrets(r, "listing secrets")
	if err != nil {
		return err
	}
	list, err := s.List(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*writ.Secret{}
	}
	return writeJSON(w, http.StatusOK, api.SecretList{Secrets: list})
}

func (a *API) putSecret(w http.ResponseWriter, r *http.Request) error {
	s, p, err := a.secrets(r, "storing a secret")
	if err != nil {
		return err
	}
	var body api.SecretPut
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	full := r.PathValue("env") + "/" + r.PathValue("name")
	v, err := s.Put(r.Context(), full, []byte(body.Value), p.Actor())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.SecretPutResponse{Secret: full, Version: v})
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	s, p, err := a.secrets(r, "removing a secret")
	if err != nil {
		return err
	}
	full := r.PathValue("env") + "/" + r.PathValue("name")
	if err := s.Delete(r.Context(), full, p.Actor()); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.SecretDeleteResponse{Secret: full, Deleted: true})
}
