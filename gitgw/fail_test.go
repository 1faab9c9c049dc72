package gitgw

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// TestFailSaysWhenToRetry: a git client told "retry later" (503, 429) is
// told when, as the API does (docs/design.md §4.8); other refusals carry
// no Retry-After, and a 401 asks for credentials.
func TestFailSaysWhenToRetry(t *testing.T) {
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct {
		err        error
		status     int
		retryAfter string
	}{
		{&writ.Error{Kind: writ.KindUnavailable, Code: "store_unavailable", Message: "disk full", RetryAfter: 2500 * time.Millisecond}, 503, "3"},
		{fmt.Errorf("push: %w", &writ.Error{Kind: writ.KindRateLimited, Code: "rate_limited", Message: "slow down"}), 429, "1"},
		{writ.Errorf(writ.KindDenied, "path_not_in_scope", "no"), 403, ""},
		{writ.Errorf(writ.KindUnauthenticated, "invalid_token", "no"), 401, ""},
	} {
		w := httptest.NewRecorder()
		g.fail(w, httptest.NewRequest(http.MethodPost, "/git/acme/api.git/git-receive-pack", nil), c.err)
		if w.Code != c.status || w.Header().Get("Retry-After") != c.retryAfter {
			t.Errorf("%v: %d, Retry-After %q; want %d, %q", c.err, w.Code, w.Header().Get("Retry-After"), c.status, c.retryAfter)
		}
		if c.status == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 without a Basic challenge: git would not ask its credential helper")
		}
	}
}
