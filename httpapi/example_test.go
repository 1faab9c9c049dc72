package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/runs"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/trigger"
)

// An API around a store: health needs no credential, runs do.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "writ-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: "sqlite://" + filepath.Join(dir, "writ.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	svc := runs.New(runs.Config{Store: store, Ring: trigger.NewKeyRing(), Rules: &trigger.Rules{}, TrustDomain: "writ.example.org"})
	api := httpapi.New(httpapi.Config{Store: store, Runs: svc})
	srv := httptest.NewServer(api)
	defer srv.Close()

	for _, path := range []string{"/healthz", "/v1/runs"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.Join(strings.Fields(string(body)), " "))
	}
	// Output:
	// 200 { "status": "ok" }
	// 401 { "error": { "code": "missing_credential", "message": "this route needs a credential: send Authorization: Bearer \u003ctoken\u003e (WRIT_TOKEN for the CLI)" } }
}
