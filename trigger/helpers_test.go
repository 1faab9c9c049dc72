package trigger

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
)

// testNow is the fixed server clock of these tests.
var testNow = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

// fixture holds keys, a ring and rules shared by the tests.
type fixture struct {
	alice    ed25519.PrivateKey // signer alice (human)
	tickets  *ecdsa.PrivateKey  // signer tickets (system)
	mallory  ed25519.PrivateKey // in no ring
	malloryE *ecdsa.PrivateKey  // in no ring
	ring     *KeyRing
	rules    *Rules
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{
		alice:   ed25519.NewKeyFromSeed(make([]byte, 32)),
		mallory: ed25519.NewKeyFromSeed([]byte("mallory-mallory-mallory-mallory!")),
	}
	var err error
	if f.tickets, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	if f.malloryE, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	f.ring = NewKeyRing()
	if _, err := f.ring.Add("alice", authorizedKey(tb, f.alice.Public())); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.ring.Add("tickets", pkixPEM(tb, f.tickets.Public())); err != nil {
		tb.Fatal(err)
	}
	f.rules = &Rules{
		Signers: map[string]*writ.Signer{
			"alice":   {Name: "alice", Kind: writ.SignerHuman, MayAgents: []string{"*"}, MayProfiles: []string{"refactor", "review"}},
			"tickets": {Name: "tickets", Kind: writ.SignerSystem, MayAgents: []string{"refactor-bot"}, MayProfiles: []string{"refactor"}},
		},
		Agents: map[string]*writ.Agent{
			"refactor-bot": {Name: "refactor-bot", Owner: "alice", Profiles: []string{"refactor"}, Repos: []string{"acme/*"}},
			"review-bot":   {Name: "review-bot", Owner: "alice", Profiles: []string{"review"}, Repos: []string{"acme/*"}},
			"old-bot":      {Name: "old-bot", Owner: "alice", Profiles: []string{"refactor"}, Repos: []string{"acme/*"}, Disabled: true},
		},
		Profiles: map[string]*writ.Profile{
			"refactor": {Name: "refactor", MaxDuration: time.Hour, Tools: []string{"read", "edit", "shell:build", "shell:test", "mcp:everything/*"}, Hosts: []string{"proxy.golang.org", "*.example.org"}, Environments: []string{"staging"}},
			"review":   {Name: "review", MaxDuration: 30 * time.Minute, Tools: []string{"read"}},
			"release":  {Name: "release", MaxDuration: time.Hour, Tools: []string{"read"}},
		},
	}
	return f
}

func authorizedKey(tb testing.TB, pub crypto.PublicKey) string {
	tb.Helper()
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(sk))
}

// payload returns the JSON of the template trigger by alice at testNow.
func payload(tb testing.TB, mod func(*writ.Trigger)) []byte {
	tb.Helper()
	t := Template(testNow, "alice")
	if mod != nil {
		mod(&t)
	}
	b, err := json.Marshal(t)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func signDSSE(tb testing.TB, p []byte, k crypto.Signer) []byte {
	tb.Helper()
	b, err := SignDSSE(p, writ.TriggerPayloadType, k)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func signSSH(tb testing.TB, p []byte, k crypto.Signer) []byte {
	tb.Helper()
	b, err := SignSSH(p, writ.TriggerSSHNS, k)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// errCode returns the kind and code of err, which must be a *writ.Error
// (or nil).
func errCode(tb testing.TB, err error) (writ.Kind, string) {
	tb.Helper()
	if err == nil {
		return 0, ""
	}
	var e *writ.Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v (%T) is not a *writ.Error", err, err)
	}
	return e.Kind, e.Code
}

// mapJSON decodes a JSON object loosely into a map, for tampering.
func mapJSON(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
