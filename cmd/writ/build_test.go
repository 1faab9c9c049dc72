package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/launch"
)

// TestBuildSandbox runs build recipes through the builder with the real
// Landlock helper `writ serve` gives it: a recipe builds its checkout; one
// that reads writ's attest key (a file in writ's data dir) fails, as does
// one that connects to the network without naming the host, while a
// recipe naming host:port may reach it.
func TestBuildSandbox(t *testing.T) {
	if launch.ABI() < launch.MinABI {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("Landlock ABI %d < %d and WRIT_TEST_REQUIRE_ALL=1", launch.ABI(), launch.MinABI)
		}
		t.Skipf("Landlock ABI %d: the sandbox tests need %d", launch.ABI(), launch.MinABI)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	dataDir := t.TempDir()
	keyFile := filepath.Join(dataDir, "keys", "attest.pem")
	os.MkdirAll(filepath.Dir(keyFile), 0o700)
	if err := os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A repository with one commit.
	src := t.TempDir()
	git := func(dir string, args ...string) string {
		t.Helper()
		c := exec.Command("git", args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(src, "init", "-q", "--initial-branch=main")
	os.WriteFile(filepath.Join(src, "main.txt"), []byte("hello\n"), 0o644)
	git(src, "add", ".")
	git(src, "commit", "-q", "-m", "init")
	commit := git(src, "rev-parse", "HEAD")
	bare := filepath.Join(t.TempDir(), "repo.git")
	git(src, "clone", "-q", "--bare", src, bare)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, err := builder.New(builder.Config{WorkRoot: filepath.Join(dataDir, "builds"), Git: "git", Sandbox: buildSandbox(), Key: key, BuilderID: "test-builder"})
	if err != nil {
		t.Fatal(err)
	}
	connect := fmt.Sprintf("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", %d), 2)' && echo reached > out/app", port)
	if _, err := exec.LookPath("python3"); err != nil {
		connect = ""
	}
	for _, c := range []struct {
		name    string
		command string
		hosts   []string
		ok      bool
	}{
		{"builds its checkout", "mkdir -p out && cp main.txt out/app", nil, true},
		{"reads the attest key", "mkdir -p out && cat " + keyFile + " > out/app", nil, false},
		{"lists writ's data dir", "mkdir -p out && ls " + dataDir + " > out/app", nil, false},
		{"writes outside its directory", "mkdir -p out && touch " + filepath.Join(dataDir, "planted") + " && cp main.txt out/app", nil, false},
		{"connects without naming the host", connect, nil, false},
		{"connects to a named host", connect, []string{fmt.Sprintf("localhost:%d", port)}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.command == "" {
				t.Skip("needs python3")
			}
			res, err := b.Build(context.Background(), &builder.Request{ID: "b1", Repo: "acme/api", RepoDir: bare, Commit: commit,
				Recipe: builder.Recipe{Name: "r", Command: []string{"sh", "-c", "mkdir -p out && " + c.command}, Outputs: []string{"out/app"}, Hosts: c.hosts}})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Failure == ""; got != c.ok {
				t.Fatalf("succeeded %v, want %v: %s\nlog: %s", got, c.ok, res.Failure, res.Log)
			}
			if !c.ok {
				if res.Provenance != nil {
					t.Error("a failed build has provenance")
				}
				// Refused by the sandbox, not failed for another reason.
				if !strings.Contains(res.Log, "ermission denied") && !strings.Contains(res.Log, "PermissionError") {
					t.Errorf("failed without a permission error: %s", res.Log)
				}
				return
			}
			st, prov, err := attest.VerifyProvenance(res.Provenance, &key.PublicKey, "test-builder")
			if err != nil || prov.BuildDefinition.InternalParameters.Sandbox != "landlock" || !st.HasSubject("sha256", strings.TrimPrefix(res.Outputs[0].Digest, "sha256:")) {
				t.Errorf("provenance %+v: %v", prov, err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dataDir, "planted")); err == nil {
		t.Error("a recipe wrote into writ's data dir")
	}
	if es, _ := os.ReadDir(filepath.Join(dataDir, "builds")); len(es) != 0 {
		t.Errorf("build directories left behind: %v", es)
	}
}
