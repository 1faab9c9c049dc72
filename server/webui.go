package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/webui"
)

// maxUIDiff is how much of a diff the approval page shows.
const maxUIDiff = 1 << 20

// withUI mounts the web UI's own mux at /ui/ beside the API. The UI reads
// and acts through api in-process, with the signed-in human's token.
func (s *Server) withUI(api *httpapi.API) http.Handler {
	cfg := webui.Config{API: api, Authenticate: s.runs.AuthenticateHuman, Logger: s.log, Now: s.now,
		Secure: strings.HasPrefix(s.cfg.PublicURL, "https://")}
	if s.git != nil {
		cfg.Diff = func(ctx context.Context, repo, base, head string) (*webui.Diff, error) {
			d, err := s.git.Diff(ctx, repo, base, head, maxUIDiff)
			if err != nil {
				return nil, err
			}
			out := &webui.Diff{Text: d.Text, Digest: d.Digest, Truncated: d.Truncated}
			for _, c := range d.Commits {
				out.Commits = append(out.Commits, webui.Commit{SHA: c.SHA, Message: c.Message})
			}
			return out, nil
		}
	}
	u := webui.New(cfg)
	ui := api.Admit(httpapi.ClassUI, httpapi.ClassUI, u)
	signIn := api.Admit(httpapi.ClassUI, httpapi.ClassSignIn, u)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/ui":
			http.Redirect(w, r, webui.Prefix, http.StatusSeeOther)
		case r.Method == http.MethodPost && r.URL.Path == webui.Prefix+"signin":
			signIn.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, webui.Prefix):
			ui.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}
