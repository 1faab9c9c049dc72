package server_test

import (
	"strings"
	"testing"

	"github.com/writ-dev/writ/server"
)

// TestGitConfig: the git section and repos[].upstream are read strictly,
// and an upstream with a transport helper or options is refused at load.
func TestGitConfig(t *testing.T) {
	y := baseConfig(t) + "repos:\n  - {name: acme/api, protected: [main], upstream: \"https://git.example.org/acme/api.git\"}\n" +
		"git: {maxPackBytes: 1048576, maxObjects: 10, timeout: 1m}\n"
	cfg, err := server.ParseConfig([]byte(y), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Git.Upstreams["acme/api"] != "https://git.example.org/acme/api.git" || cfg.Git.MaxPackBytes != 1<<20 || cfg.Git.MaxObjects != 10 || cfg.Git.Timeout.String() != "1m0s" {
		t.Errorf("git config %+v", cfg.Git)
	}
	for _, c := range []struct{ yaml, want string }{
		{"repos:\n  - {name: acme/api, upstream: \"ext::sh -c touch% /tmp/x\"}\n", "upstream"},
		{"repos:\n  - {name: acme/api, upstream: \"--upload-pack=x\"}\n", "upstream"},
		{"repos:\n  - {name: acme/api, upstream: \"relative/dir\"}\n", "upstream"},
		{"git: {maxObjects: -1}\n", "git:"},
		{"git: {maxPackByte: 1}\n", "maxPackByte"},
	} {
		if _, err := server.ParseConfig([]byte(baseConfig(t)+c.yaml), t.TempDir()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v; want one naming %q", c.yaml, err, c.want)
		}
	}
}
