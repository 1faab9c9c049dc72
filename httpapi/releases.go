package httpapi

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/writ-dev/writ"
)

// Artifacts is writ's builder and release gate (server.Server).
type Artifacts interface {
	Build(ctx context.Context, p *writ.Principal, req *writ.BuildRequest) (*writ.BuildResult, error)
	Release(ctx context.Context, p *writ.Principal, req *writ.ReleaseRequest) (*writ.ReleaseResult, error)
	Deploy(ctx context.Context, body []byte) (*writ.DeploymentResult, error)
}

// artifactRoutes serves builds and releases: humans, or a run for itself
// (policy decides both; the release gate needs a human's approval).
func (a *API) artifactRoutes() {
	a.route("POST /v1/builds", a.auth(humans|tokenRun, a.build))
	a.route("POST /v1/releases", a.auth(humans|tokenRun, a.release))
	// A deployment report authenticates by its signature (a configured
	// system signer's key), not by a token.
	a.route("POST /v1/deployments", a.public(a.deploy))
}

func (a *API) deploy(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Artifacts == nil {
		return writ.Errorf(writ.KindNotFound, "no_reporters", "this writ accepts no deployment reports")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return writ.Errorf(writ.KindTooLarge, "too_large", "a deployment report is at most 64 KiB")
	}
	res, err := a.cfg.Artifacts.Deploy(r.Context(), body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, res)
}

func (a *API) build(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Artifacts == nil {
		return writ.Errorf(writ.KindNotFound, "no_builder", "this writ has no builder")
	}
	var req writ.BuildRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if _, err := writ.ParseRunID(string(req.Run)); err != nil {
		return err
	}
	// A build runs up to its recipe's timeout: lift the server's write
	// timeout for this response (the build is recorded either way).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	res, err := a.cfg.Artifacts.Build(r.Context(), writ.PrincipalFromContext(r.Context()), &req)
	if err != nil {
		return err
	}
	// A failed build is recorded too: 201 either way, State says which.
	return writeJSON(w, http.StatusCreated, res)
}

func (a *API) release(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Artifacts == nil {
		return writ.Errorf(writ.KindNotFound, "no_release_gate", "this writ has no release gate")
	}
	var req writ.ReleaseRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if _, err := writ.ParseRunID(string(req.Run)); err != nil {
		return err
	}
	res, err := a.cfg.Artifacts.Release(r.Context(), writ.PrincipalFromContext(r.Context()), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, res)
}
