package server_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/server"
)

// baseConfig is a valid writ.yaml; the cases below break one thing each.
func baseConfig(t *testing.T) string {
	t.Helper()
	line := func(seed byte) string {
		k := ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
		sk, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))
	}
	return `publicURL: https://writ.example.org
trustDomain: writ.example.org
listen: 127.0.0.1:7300
signers:
  - name: alice
    kind: human
    groups: [maintainers, admins]
    keys: ["` + line(1) + `"]
    may: {agents: ["*"], profiles: [refactor, review]}
  - name: tickets
    kind: system
    keys: ["` + line(2) + `"]
    may: {agents: [refactor-bot], profiles: [refactor]}
agents:
  - name: refactor-bot
    owner: alice
    profiles: [refactor]
    repos: ["acme/*"]
profiles:
  - name: refactor
    maxDuration: 1h
    tools: [read, edit, "shell:test"]
    hosts: [proxy.golang.org]
  - name: review
    maxDuration: 30m
    tools: [read]
`
}

func TestParseConfigValid(t *testing.T) {
	base := t.TempDir()
	cfg, err := server.ParseConfig([]byte(baseConfig(t)), base)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		PublicURL, TrustDomain, Listen, DataDir, Store, Durability string
		Keys                                                       server.KeyPaths
		Leeway, MaxLifetime, ExpiryInterval                        time.Duration
		Signers, Agents                                            []string
		Profiles                                                   map[string]time.Duration
	}
	got := summary{PublicURL: cfg.PublicURL, TrustDomain: cfg.TrustDomain, Listen: cfg.Listen, DataDir: cfg.DataDir,
		Store: cfg.Store, Durability: cfg.Durability, Keys: cfg.Keys,
		Leeway: cfg.TriggerLeeway, MaxLifetime: cfg.TriggerMaxLifetime, ExpiryInterval: cfg.ExpiryInterval,
		Profiles: map[string]time.Duration{}}
	for _, s := range cfg.Signers {
		got.Signers = append(got.Signers, s.Name+"/"+string(s.Kind))
	}
	for _, a := range cfg.Agents {
		got.Agents = append(got.Agents, a.Name+"/"+a.Owner)
	}
	for _, p := range cfg.Profiles {
		got.Profiles[p.Name] = p.MaxDuration
	}
	want := summary{
		PublicURL: "https://writ.example.org", TrustDomain: "writ.example.org", Listen: "127.0.0.1:7300",
		DataDir: filepath.Join(base, "data"), Store: "sqlite://" + filepath.Join(base, "data", "writ.db"), Durability: "normal",
		Keys: server.KeyPaths{Identity: filepath.Join(base, "keys/identity.pem"), Log: filepath.Join(base, "keys/log.key"),
			Attest: filepath.Join(base, "keys/attest.pem")},
		Leeway: 60 * time.Second, MaxLifetime: 24 * time.Hour, ExpiryInterval: time.Second,
		Signers: []string{"alice/human", "tickets/system"}, Agents: []string{"refactor-bot/alice"},
		Profiles: map[string]time.Duration{"refactor": time.Hour, "review": 30 * time.Minute},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}

	// Limits: unset keys keep their defaults; 0 turns a bound off.
	cfg, err = server.ParseConfig([]byte(baseConfig(t)+"limits: {decide: {inFlight: 8, rate: 0}, signIn: {rate: 0.5}}\n"), base)
	if err != nil {
		t.Fatal(err)
	}
	def := httpapi.DefaultLimits()
	if got := cfg.Limits[httpapi.ClassDecide]; got != (httpapi.Limit{InFlight: 8, Rate: 0, Burst: def[httpapi.ClassDecide].Burst}) {
		t.Errorf("limits.decide = %+v", got)
	}
	if got := cfg.Limits[httpapi.ClassSignIn]; got.Rate != 0.5 || got.Burst != def[httpapi.ClassSignIn].Burst {
		t.Errorf("limits.signIn = %+v", got)
	}
	if got := cfg.Limits[httpapi.ClassAudit]; got != def[httpapi.ClassAudit] {
		t.Errorf("limits.audit = %+v; want the default %+v", got, def[httpapi.ClassAudit])
	}

	// Relative paths in the file are relative to its directory.
	cfg, err = server.ParseConfig([]byte(baseConfig(t)+"store: sqlite://db/w.db\ntriggers: {leeway: 10s, maxLifetime: 2h}\n"), base)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqlite://" + filepath.Join(base, "db/w.db"); cfg.Store != want || cfg.TriggerLeeway != 10*time.Second || cfg.TriggerMaxLifetime != 2*time.Hour {
		t.Errorf("store %q leeway %v maxLifetime %v; want %q 10s 2h", cfg.Store, cfg.TriggerLeeway, cfg.TriggerMaxLifetime, want)
	}
}

// TestParseConfigRefusals: each broken config is refused with an error that
// names the key at fault.
func TestParseConfigRefusals(t *testing.T) {
	type edit struct{ old, new string }
	for _, c := range []struct {
		name  string
		edits []edit // applied to baseConfig in order; old "" appends new
		want  []string
	}{
		{"unknown top-level key", []edit{{"", "tustDomain: writ.example.org\n"}}, []string{"unknown key", "tustDomain"}},
		{"unknown nested key", []edit{{`may: {agents: ["*"]`, `may: {agent: ["*"]`}}, []string{"unknown key", `"agent"`}},
		{"misspelled profile key", []edit{{"maxDuration: 1h", "maxDuraton: 1h"}}, []string{"maxDuraton"}},
		{"case-variant key", []edit{{"trustDomain: writ.example.org", "TrustDomain: writ.example.org"}}, []string{"TrustDomain"}},
		{"case-variant duplicate", []edit{{"", "trustdomain: other.example.org\n"}}, []string{"trustdomain"}},
		{"duplicate key", []edit{{"", "trustDomain: evil.example.org\n"}}, []string{"trustDomain"}},
		{"duplicate nested key", []edit{{"    kind: system\n", "    kind: system\n    kind: human\n"}}, []string{"kind"}},
		{"wrong value type", []edit{{"maxDuration: 1h", "maxDuration: [1h]"}}, []string{"maxDuration"}},
		{"publicURL without scheme", []edit{{"publicURL: https://writ.example.org", "publicURL: writ.example.org"}}, []string{"publicURL"}},
		{"publicURL ftp", []edit{{"publicURL: https://writ.example.org", "publicURL: ftp://writ.example.org"}}, []string{"publicURL"}},
		{"publicURL without host", []edit{{"publicURL: https://writ.example.org", "publicURL: https://"}}, []string{"publicURL"}},
		{"publicURL with query", []edit{{"publicURL: https://writ.example.org", "publicURL: https://writ.example.org/?x=1"}}, []string{"publicURL"}},
		{"missing trustDomain", []edit{{"trustDomain: writ.example.org\n", ""}}, []string{"trustDomain"}},
		{"trustDomain upper case", []edit{{"trustDomain: writ.example.org", "trustDomain: Writ.Example.org"}}, []string{"trustDomain"}},
		{"trustDomain with a path", []edit{{"trustDomain: writ.example.org", "trustDomain: writ.example.org/x"}}, []string{"trustDomain"}},
		{"bad listen", []edit{{"listen: 127.0.0.1:7300", "listen: 7300"}}, []string{"listen"}},
		{"bad durability", []edit{{"", "durability: fast\n"}}, []string{"durability"}},
		{"bad log format", []edit{{"", "log: {format: xml}\n"}}, []string{"log.format"}},
		{"bad log level", []edit{{"", "log: {level: loud}\n"}}, []string{"log.level"}},
		{"leeway over 60s", []edit{{"", "triggers: {leeway: 61s}\n"}}, []string{"triggers.leeway"}},
		{"negative leeway", []edit{{"", "triggers: {leeway: -1s}\n"}}, []string{"triggers.leeway"}},
		{"zero leeway is not silently the default", []edit{{"", "triggers: {leeway: 0s}\n"}}, []string{"triggers.leeway", "1s"}},
		{"maxLifetime over a week", []edit{{"", "triggers: {maxLifetime: 169h}\n"}}, []string{"triggers.maxLifetime"}},
		{"expiryInterval over a minute", []edit{{"", "runs: {expiryInterval: 61s}\n"}}, []string{"runs.expiryInterval"}},
		{"negative inFlight", []edit{{"", "limits: {decide: {inFlight: -1}}\n"}}, []string{"limits.decide.inFlight"}},
		{"negative rate", []edit{{"", "limits: {runStart: {rate: -2}}\n"}}, []string{"limits.runStart.rate"}},
		{"rate without a burst", []edit{{"", "limits: {api: {rate: 5, burst: 0}}\n"}}, []string{"limits.api.burst", "at least 1"}},
		{"inFlight on a rate-only class", []edit{{"", "limits: {signIn: {inFlight: 4}}\n"}}, []string{"limits.signIn.inFlight", "rate limit only"}},
		{"unknown limits class", []edit{{"", "limits: {decisions: {rate: 5}}\n"}}, []string{"decisions"}},
		{"agent with unknown profile", []edit{{"    profiles: [refactor]\n    repos", "    profiles: [refactor, nope]\n    repos"}}, []string{"agents[0]", "refactor-bot", `unknown profile "nope"`}},
		{"agent owner a system signer", []edit{{"owner: alice", "owner: tickets"}}, []string{"agents[0]", "owner", "tickets"}},
		{"agent owner unknown", []edit{{"owner: alice", "owner: zed"}}, []string{"agents[0]", "owner", "zed"}},
		{"agent bad repo pattern", []edit{{`repos: ["acme/*"]`, `repos: ["../*"]`}}, []string{"agents[0]"}},
		{"duplicate agent", []edit{{"profiles:\n  - name: refactor\n", "  - {name: refactor-bot, owner: alice, profiles: [refactor]}\nprofiles:\n  - name: refactor\n"}}, []string{"agents[1]", "refactor-bot", "twice"}},
		{"duplicate signer", []edit{{"  - name: tickets", "  - name: alice"}}, []string{"signers[1]", "alice", "twice"}},
		{"signer without keys", []edit{{"    kind: system\n    keys: [", "    kind: system\n    nokeys: ["}, {"nokeys", "# keys"}}, []string{"signers[1]", "tickets", "public key"}},
		{"signer with empty keys", []edit{{"    kind: system\n    keys: [", "    kind: system\n    keys: []\n    # ["}}, []string{"signers[1]", "tickets", "public key"}},
		{"signer bad kind", []edit{{"kind: system", "kind: robot"}}, []string{"signers[1]", "kind"}},
		{"signer bad name", []edit{{"  - name: alice", "  - name: Alice"}}, []string{"signers[0]", "Alice"}},
		{"signer may use unknown profile", []edit{{"profiles: [refactor, review]}", "profiles: [refactor, nope]}"}}, []string{"signers[0]", "may.profiles", "nope"}},
		{"profile without maxDuration", []edit{{"    maxDuration: 30m\n", ""}}, []string{"profiles[1]", "review", "maxDuration"}},
		{"profile bad tool", []edit{{`tools: [read, edit, "shell:test"]`, `tools: [read, teleport]`}}, []string{"profiles[0]", "teleport"}},
		{"profile bad host", []edit{{"hosts: [proxy.golang.org]", "hosts: [PROXY.golang.org]"}}, []string{"profiles[0]", "PROXY"}},
		{"duplicate profile", []edit{{"  - name: review", "  - name: refactor"}}, []string{"profiles[1]", "refactor", "twice"}},
		{"not a mapping", []edit{{"", "- just\n- a list\n"}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := baseConfig(t)
			for _, e := range c.edits {
				if e.old == "" {
					y += e.new
					continue
				}
				if !strings.Contains(y, e.old) {
					t.Fatalf("%q not in the base config", e.old)
				}
				y = strings.Replace(y, e.old, e.new, 1)
			}
			_, err := server.ParseConfig([]byte(y), t.TempDir())
			if err == nil {
				t.Fatalf("ParseConfig accepted:\n%s", y)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestLoadConfigNamesTheFile: errors from a file carry its path.
func TestLoadConfigNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "writ.yaml")
	if err := os.WriteFile(p, []byte(baseConfig(t)+"extra: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := server.LoadConfig(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "extra") {
		t.Errorf("LoadConfig = %v; want an error naming %s and the key extra", err, p)
	}
}

func keyPaths(dir string) server.KeyPaths {
	return server.KeyPaths{
		Identity: filepath.Join(dir, "keys", "identity.pem"),
		Log:      filepath.Join(dir, "keys", "log.key"),
		Attest:   filepath.Join(dir, "keys", "attest.pem"),
	}
}

func readAll(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(b)
	}
	return out
}

func TestGenerateAndLoadKeys(t *testing.T) {
	dir := t.TempDir()
	kp := keyPaths(dir)
	if err := server.GenerateKeys(kp, "writ.example.org"); err != nil {
		t.Fatal(err)
	}
	all := []string{kp.Identity, kp.Log, kp.Attest}
	for _, p := range all {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %#o; want 0600", p, st.Mode().Perm())
		}
	}
	before := readAll(t, all...)
	keys, err := server.LoadKeys(kp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(keys.LogKey, "writ.example.org/audit+") {
		t.Errorf("log verifier key %q", keys.LogKey)
	}
	// Printing the keys shows no key material.
	s := keys.String()
	for _, content := range before {
		for _, line := range strings.Split(content, "\n") {
			if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(s, line) {
				t.Errorf("Keys.String() %q holds key material", s)
			}
		}
	}
	// No overwrite.
	if err := server.GenerateKeys(kp, "writ.example.org"); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second GenerateKeys = %v; want a refusal to overwrite", err)
	}
	if diff := cmp.Diff(before, readAll(t, all...)); diff != "" {
		t.Errorf("key files changed:\n%s", diff)
	}
}

// TestLoadKeysRefusals: key files readable by others and key files of the
// wrong type are refused with an error naming the file.
func TestLoadKeysRefusals(t *testing.T) {
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		file func(server.KeyPaths) string
		mode os.FileMode
		data []byte // nil: keep the generated key
		want []string
	}{
		{"identity world-readable", func(k server.KeyPaths) string { return k.Identity }, 0o644, nil, []string{"identity", "too open"}},
		{"log group-readable", func(k server.KeyPaths) string { return k.Log }, 0o640, nil, []string{"log", "too open"}},
		{"attest others-readable", func(k server.KeyPaths) string { return k.Attest }, 0o604, nil, []string{"attest", "too open"}},
		{"identity is Ed25519", func(k server.KeyPaths) string { return k.Identity }, 0o600, pkcs8(edKey), []string{"identity", "ECDSA P-256"}},
		{"attest is P-384", func(k server.KeyPaths) string { return k.Attest }, 0o600, pkcs8(p384), []string{"attest", "ECDSA P-256"}},
		{"identity is SEC1", func(k server.KeyPaths) string { return k.Identity }, 0o600,
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), []string{"identity", "PKCS#8"}},
		{"log is a PEM key", func(k server.KeyPaths) string { return k.Log }, 0o600, pkcs8(edKey), []string{"log key", "note signer key"}},
		{"identity is garbage", func(k server.KeyPaths) string { return k.Identity }, 0o600, []byte("hello\n"), []string{"identity"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			kp := keyPaths(t.TempDir())
			if err := server.GenerateKeys(kp, "writ.example.org"); err != nil {
				t.Fatal(err)
			}
			// Control: the generated keys load.
			if _, err := server.LoadKeys(kp); err != nil {
				t.Fatal(err)
			}
			p := c.file(kp)
			if c.data != nil {
				if err := os.WriteFile(p, c.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := server.LoadKeys(kp)
			if err == nil {
				t.Fatal("LoadKeys accepted the key")
			}
			for _, w := range append(c.want, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := server.LoadKeys(keyPaths(t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), "writ init") {
			t.Errorf("LoadKeys of missing files = %v; want a hint to run writ init", err)
		}
	})
	t.Run("owner read-only is fine", func(t *testing.T) {
		kp := keyPaths(t.TempDir())
		if err := server.GenerateKeys(kp, "writ.example.org"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{kp.Identity, kp.Log, kp.Attest} {
			if err := os.Chmod(p, 0o400); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := server.LoadKeys(kp); err != nil {
			t.Errorf("LoadKeys of 0400 keys: %v", err)
		}
	})
}

// dirFiles maps every file under dir to its contents.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	res, err := server.Init(dir, server.InitOptions{Human: "alice", TrustDomain: "writ.test"})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{
		"writ.yaml": 0o644, "trigger.example.json": 0o644, "alice.key": 0o600, "alice.key.pub": 0o644,
		"keys/identity.pem": 0o600, "keys/log.key": 0o600, "keys/attest.pem": 0o600,
	}
	for name, want := range modes {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %#o; want %#o", name, st.Mode().Perm(), want)
		}
	}
	if res.Config != filepath.Join(dir, "writ.yaml") || res.HumanKeyFile != filepath.Join(dir, "alice.key") {
		t.Errorf("result %+v", res)
	}
	cfg, err := server.LoadConfig(res.Config)
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if cfg.TrustDomain != "writ.test" || len(cfg.Signers) != 1 || cfg.Signers[0].Name != "alice" {
		t.Errorf("config: trust domain %q signers %v", cfg.TrustDomain, cfg.Signers)
	}

	// A second init changes nothing.
	before := dirFiles(t, dir)
	if _, err := server.Init(dir, server.InitOptions{Human: "alice"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Init = %v; want a refusal", err)
	}
	if _, err := server.Init(dir, server.InitOptions{Human: "bob"}); err == nil {
		t.Errorf("Init for another human over an installation succeeded")
	}
	if diff := cmp.Diff(before, dirFiles(t, dir)); diff != "" {
		t.Errorf("files changed by a refused Init (-before +after):\n%s", diff)
	}
}

// TestInitKeepsExistingKeys: Init into a directory that holds keys but no
// config refuses, and leaves the keys as they were.
func TestInitKeepsExistingKeys(t *testing.T) {
	dir := t.TempDir()
	kp := keyPaths(dir)
	if err := server.GenerateKeys(kp, "old.example.org"); err != nil {
		t.Fatal(err)
	}
	before := dirFiles(t, dir)
	if _, err := server.Init(dir, server.InitOptions{}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("Init over existing keys = %v; want a refusal to overwrite", err)
	}
	// Nothing changed and nothing was added (no stray human key that
	// would block the next attempt).
	if diff := cmp.Diff(before, dirFiles(t, dir)); diff != "" {
		t.Errorf("files changed by a refused Init (-before +after):\n%s", diff)
	}
	// Once the old keys are gone, Init succeeds.
	for _, p := range []string{kp.Identity, kp.Log, kp.Attest} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.Init(dir, server.InitOptions{}); err != nil {
		t.Errorf("Init after removing the old keys: %v", err)
	}
}

// TestInitKeepsExistingHumanKey: an existing key file of the human is not
// overwritten, nor is its .pub.
func TestInitKeepsExistingHumanKey(t *testing.T) {
	for _, name := range []string{"alice.key", "alice.key.pub"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, name), []byte("mine\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			before := dirFiles(t, dir)
			if _, err := server.Init(dir, server.InitOptions{}); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("Init = %v; want a refusal naming %s", err, name)
			}
			if diff := cmp.Diff(before, dirFiles(t, dir)); diff != "" {
				t.Errorf("files changed by a refused Init (-before +after):\n%s", diff)
			}
		})
	}
}

func TestInitRefusesBadHuman(t *testing.T) {
	for _, o := range []server.InitOptions{{Human: "Alice"}, {Human: "../x"}, {HumanKey: "ssh-rsa AAAA"}} {
		if _, err := server.Init(t.TempDir(), o); err == nil {
			t.Errorf("Init(%+v) succeeded", o)
		}
	}
}
