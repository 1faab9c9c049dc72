package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/server"
)

// TestBuildsConfig: builds and deployments are read strictly; a recipe
// without a command or outputs, an output outside the checkout, a
// duplicate name, and a reporter that is not a system signer are refused
// at load.
func TestBuildsConfig(t *testing.T) {
	y := baseConfig(t) + "builds:\n  recipes:\n    - {name: go, command: [go, build, -o, out/app, ./cmd/app], outputs: [out/app], hosts: [\"proxy.golang.org:443\"], timeout: 5m}\n"
	cfg, err := server.ParseConfig([]byte(y), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Builds.Recipes
	if len(r) != 1 || r[0].Name != "go" || len(r[0].Command) != 5 || r[0].Outputs[0] != "out/app" || r[0].Hosts[0] != "proxy.golang.org:443" || r[0].Timeout != 5*time.Minute {
		t.Errorf("builds %+v", cfg.Builds)
	}
	for _, c := range []struct{ yaml, want string }{
		{"builds:\n  recipes:\n    - {name: go, outputs: [out/app]}\n", "command"},
		{"builds:\n  recipes:\n    - {name: go, command: [make]}\n", "outputs"},
		{"builds:\n  recipes:\n    - {name: go, command: [make], outputs: [../../keys/attest.pem]}\n", "inside the checkout"},
		{"builds:\n  recipes:\n    - {name: go, command: [make], outputs: [/etc/passwd]}\n", "inside the checkout"},
		{"builds:\n  recipes:\n    - {name: go, command: [make], outputs: [a]}\n    - {name: go, command: [make], outputs: [b]}\n", "unique name"},
		{"builds:\n  recipe: []\n", "recipe"},
		{"deployments:\n  reporters: [nobody]\n", "deployments.reporters"},
	} {
		if _, err := server.ParseConfig([]byte(baseConfig(t)+c.yaml), t.TempDir()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v; want one naming %q", c.yaml, err, c.want)
		}
	}
}
