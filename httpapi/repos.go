package httpapi

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ"
)

// Git is the git gateway (package gitgw) as the API mounts it.
type Git interface {
	// ServeHTTP serves /git/{owner}/{repo}.git/… (smart HTTP).
	ServeHTTP(w http.ResponseWriter, r *http.Request)
	// Add hosts a new repository.
	Add(ctx context.Context, req *writ.RepoAddRequest, actor string) (*writ.RepoInfo, error)
	// Merge merges a run's branch by the approved SHA.
	Merge(ctx context.Context, repo string, req *writ.MergeRequest, who *writ.Principal) (*writ.MergeResult, error)
}

// gitRoutes mounts the git gateway (docs/design.md §4.8). The gateway writes
// its own responses at /git/: git's protocol, and the 401 with a Basic
// challenge that makes git ask its credential helper.
func (a *API) gitRoutes() {
	a.mount("/git/", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Git == nil {
			a.writeError(w, r, writ.Errorf(writ.KindNotFound, "no_git", "this writ hosts no repositories"))
			return
		}
		a.cfg.Git.ServeHTTP(w, r)
	})
	a.route("POST /v1/repos", a.human(a.addRepo))
	a.route("POST /v1/repos/{owner}/{repo}/merge", a.auth(humans|tokenRun, a.mergeRepo))
}

// addRepo is POST /v1/repos (admins).
func (a *API) addRepo(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "adding a repository"); err != nil {
		return err
	}
	if a.cfg.Git == nil {
		return writ.Errorf(writ.KindNotFound, "no_git", "this writ has no git gateway")
	}
	var req writ.RepoAddRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	info, err := a.cfg.Git.Add(r.Context(), &req, p.Actor())
	if err != nil {
		return err
	}
	info.URL = a.runs.PublicURL() + "/git/" + info.Name + ".git"
	return writeJSON(w, http.StatusCreated, info)
}

// mergeRepo is POST /v1/repos/{owner}/{repo}/merge (humans, or the run
// itself for its own work: the approval gate is what guards it).
func (a *API) mergeRepo(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Git == nil {
		return writ.Errorf(writ.KindNotFound, "no_git", "this writ has no git gateway")
	}
	var req writ.MergeRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	name := r.PathValue("owner") + "/" + r.PathValue("repo")
	if !writ.ValidRepoName(name) {
		return writ.Errorf(writ.KindInvalid, "invalid_repo", "repository %q: want owner/repo of [a-z0-9._-]", name)
	}
	res, err := a.cfg.Git.Merge(r.Context(), name, &req, writ.PrincipalFromContext(r.Context()))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
