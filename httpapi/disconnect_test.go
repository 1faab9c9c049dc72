package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientDisconnectIsNotAnError: a request whose client went away is
// a debug line, never an ERROR "internal error" (issue 22).
func TestClientDisconnectIsNotAnError(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodGet, "/v1/runs", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+f.tokens["alice"])
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, req)
	logs := f.logs.String()
	if strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("a disconnected client logged an error:\n%s", logs)
	}
	if !strings.Contains(logs, "client disconnected") {
		t.Errorf("no debug line for the disconnected client:\n%s", logs)
	}
}
