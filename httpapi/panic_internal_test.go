package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/internal/writtest"
)

// TestInternalFailuresAreGeneric: a handler that panics or returns an
// error that is not a *writ.Error gets a 500 whose body is a generic
// message naming the request id, never the panic value or error text;
// the detail goes to the log under the same request id, and the server
// keeps serving. Without the recovery, net/http would drop the connection
// and the client would see no answer at all.
//
// The routes are test-only, added through the package's own route table
// helper (the API has no exported seam for this).
func TestInternalFailuresAreGeneric(t *testing.T) {
	logs := &writtest.SyncBuffer{}
	a := New(Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	const secret = "hunter2-internal-detail"
	a.route("GET /v1/test/panic", a.public(func(http.ResponseWriter, *http.Request) error {
		panic("decrypting with key " + secret)
	}))
	a.route("GET /v1/test/error", a.public(func(http.ResponseWriter, *http.Request) error {
		return fmt.Errorf("dial postgres://writ:%s@db: connection refused", secret)
	}))
	srv := httptest.NewServer(a)
	defer srv.Close()

	for _, path := range []string{"/v1/test/panic", "/v1/test/error"} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatalf("GET %s: %v (the connection was dropped?)", path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError {
				t.Fatalf("status %d %s; want 500", resp.StatusCode, body)
			}
			rid := resp.Header.Get("X-Request-Id")
			if rid == "" {
				t.Fatal("no X-Request-Id")
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			want := api.ErrorDetail{Code: "internal", Message: "internal error (request " + rid + ")"}
			if eb.Error.Code != want.Code || eb.Error.Message != want.Message || eb.Error.Items != nil {
				t.Errorf("error = %+v; want %+v", eb.Error, want)
			}
			for _, leak := range []string{secret, "panic", "postgres", "decrypting"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("body %s contains %q", body, leak)
				}
			}
			if l := logs.String(); !strings.Contains(l, rid) || !strings.Contains(l, secret) {
				t.Errorf("the log does not hold the request id %s and the detail:\n%s", rid, l)
			}
		})
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the failures: /healthz = %d", resp.StatusCode)
	}
}
