package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/launch"
)

// cosignBinary is the cosign the test script built once into its cache
// (WRIT_TEST_COSIGN), or skips the test.
func cosignBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("WRIT_TEST_COSIGN")
	if bin == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			bin = filepath.Join(dir, "writ-test", "cosign-v2.6.5", "cosign")
		}
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("cosign not found at %q and WRIT_TEST_REQUIRE_ALL=1 (scripts/test.sh builds it)", bin)
		}
		t.Skipf("cosign not found at %q (scripts/test.sh builds it once into its cache)", bin)
	}
	return bin
}

// TestCosignVerifiesProvenance: the SLSA provenance writ's builder signs
// for a file artifact verifies with `cosign verify-blob-attestation` and
// with `writ attest verify`, offline, given the attest public key; a
// tampered artifact and a tampered envelope fail in both.
func TestCosignVerifiesProvenance(t *testing.T) {
	cosign := cosignBinary(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	git := func(d string, args ...string) string {
		t.Helper()
		c := exec.Command("git", args...)
		c.Dir = d
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(src, 0o755)
	git(src, "init", "-q", "--initial-branch=main")
	os.WriteFile(filepath.Join(src, "main.txt"), []byte("hello\n"), 0o644)
	git(src, "add", ".")
	git(src, "commit", "-q", "-m", "init")
	commit := git(src, "rev-parse", "HEAD")
	bare := filepath.Join(dir, "repo.git")
	git(dir, "clone", "-q", "--bare", src, bare)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := builder.Config{WorkRoot: filepath.Join(dir, "builds"), ArtifactDir: filepath.Join(dir, "artifacts"), Git: "git", Key: key, BuilderID: "spiffe://test/writ/builder/v1"}
	if launch.ABI() >= launch.MinABI {
		cfg.Sandbox = buildSandbox()
	} else {
		cfg.Unsandboxed = true
	}
	b, err := builder.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Build(context.Background(), &builder.Request{ID: "b1", Repo: "acme/api", RepoDir: bare, Commit: commit,
		Recipe: builder.Recipe{Name: "app", Command: []string{"sh", "-c", "mkdir -p out && cp main.txt out/app"}, Outputs: []string{"out/app"}}})
	if err != nil || res.Failure != "" {
		t.Fatalf("build: %+v, %v", res, err)
	}
	artifact := filepath.Join(cfg.ArtifactDir, strings.TrimPrefix(res.Outputs[0].Digest, "sha256:"))
	pubPEM, _ := attest.MarshalPublicKey(&key.PublicKey)
	pubFile, envFile := filepath.Join(dir, "writ.pub"), filepath.Join(dir, "app.intoto.json")
	os.WriteFile(pubFile, pubPEM, 0o644)
	os.WriteFile(envFile, res.Provenance, 0o644)

	verify := func(env, file string) (string, error) {
		out, err := exec.Command(cosign, "verify-blob-attestation", "--key", pubFile, "--type", "slsaprovenance1",
			"--insecure-ignore-tlog", "--signature", env, file).CombinedOutput()
		return string(out), err
	}
	writ := func(env, file string) (string, int) {
		out, errOut, code := runCLI(map[string]string{}, "attest", "verify", "--key", pubFile, "--artifact", file, env)
		return out + errOut, code
	}
	if out, err := verify(envFile, artifact); err != nil {
		t.Fatalf("cosign refused writ's provenance: %v\n%s", err, out)
	}
	if out, code := writ(envFile, artifact); code != 0 || !strings.Contains(out, "verified: "+attest.PredicateSLSAProvenance) {
		t.Fatalf("writ attest verify: exit %d\n%s", code, out)
	}

	// A release attestation of the same file, under writ's own predicate
	// type.
	rel, err := attest.Sign(&attest.Statement{Subject: []attest.Subject{{Name: res.Outputs[0].Digest,
		Digest: map[string]string{"sha256": strings.TrimPrefix(res.Outputs[0].Digest, "sha256:")}}},
		PredicateType: attest.PredicateRelease, Predicate: attest.ReleasePredicate{Artifact: res.Outputs[0].Digest, Environment: "staging"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	relFile := filepath.Join(dir, "release.intoto.json")
	os.WriteFile(relFile, rel, 0o644)
	if out, err := exec.Command(cosign, "verify-blob-attestation", "--key", pubFile, "--type", attest.PredicateRelease,
		"--insecure-ignore-tlog", "--signature", relFile, artifact).CombinedOutput(); err != nil {
		t.Errorf("cosign refused a release attestation: %v\n%s", err, out)
	}

	// A tampered artifact: one byte more.
	tampered := filepath.Join(dir, "tampered")
	data, _ := os.ReadFile(artifact)
	os.WriteFile(tampered, append(data, '!'), 0o644)
	if out, err := verify(envFile, tampered); err == nil {
		t.Errorf("cosign verified a tampered artifact:\n%s", out)
	}
	if out, code := writ(envFile, tampered); code == 0 {
		t.Errorf("writ verified a tampered artifact:\n%s", out)
	}
	// A tampered envelope: the source commit changed under the signature.
	var env map[string]any
	json.Unmarshal(res.Provenance, &env)
	payload, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
	env["payload"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload), commit, strings.Repeat("0", 40), 1)))
	bad, _ := json.Marshal(env)
	badFile := filepath.Join(dir, "bad.intoto.json")
	os.WriteFile(badFile, bad, 0o644)
	if out, err := verify(badFile, artifact); err == nil {
		t.Errorf("cosign verified a tampered envelope:\n%s", out)
	}
	if out, code := writ(badFile, artifact); code == 0 {
		t.Errorf("writ verified a tampered envelope:\n%s", out)
	}
	// Another key.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPEM, _ := attest.MarshalPublicKey(&other.PublicKey)
	os.WriteFile(pubFile, otherPEM, 0o644)
	if out, err := verify(envFile, artifact); err == nil {
		t.Errorf("cosign verified with another key:\n%s", out)
	}
	if out, code := writ(envFile, artifact); code == 0 {
		t.Errorf("writ verified with another key:\n%s", out)
	}
}
