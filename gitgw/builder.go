package gitgw

import "github.com/writ-dev/writ"

// RepoDir returns the bare repository of a hosted repository, for writ's
// builder to check a merged commit out of (never handed to a run).
func (g *Gateway) RepoDir(name string) (string, error) {
	if !g.exists(name) {
		return "", writ.Errorf(writ.KindNotFound, "repo_not_found", "writ hosts no repository %q", name)
	}
	return g.dir(name), nil
}

// Binary is the git binary the gateway runs.
func (g *Gateway) Binary() string { return g.cfg.Git }
