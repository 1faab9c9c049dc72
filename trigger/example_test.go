package trigger_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/trigger"
)

func ExampleVerify() {
	// The server's configuration: alice's public key and what she may do.
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // use a real key
	sshPub, _ := ssh.NewPublicKey(key.Public())
	ring := trigger.NewKeyRing()
	if _, err := ring.Add("alice", string(ssh.MarshalAuthorizedKey(sshPub))); err != nil {
		panic(err)
	}
	rules := &trigger.Rules{
		Signers:  map[string]*writ.Signer{"alice": {Name: "alice", MayAgents: []string{"*"}, MayProfiles: []string{"refactor"}}},
		Agents:   map[string]*writ.Agent{"refactor-bot": {Name: "refactor-bot", Profiles: []string{"refactor"}, Repos: []string{"acme/*"}}},
		Profiles: map[string]*writ.Profile{"refactor": {Name: "refactor", MaxDuration: time.Hour, Tools: []string{"read", "edit", "shell:build", "shell:test"}}},
	}

	// alice signs a trigger.
	now := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	payload, _ := json.Marshal(trigger.Template(now, "alice"))
	body, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, key)
	if err != nil {
		panic(err)
	}

	// The server verifies it, then checks it against configuration.
	v, err := trigger.Verify(body, ring)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println(v.Signer, v.Format, v.KeyID, v.Trigger.Agent, v.Trigger.Profile)
	fmt.Println("check:", rules.Check(v, now.Add(time.Minute)))
	fmt.Println("later:", writ.ErrorCode(rules.Check(v, now.Add(2*time.Hour))))
	// Output:
	// alice dsse SHA256:tAXFyTXI8xtDaujAEcwJslAYc9/6FKcUkd2Lw0xDhPo refactor-bot refactor
	// check: <nil>
	// later: trigger_expired
}

func ExampleFingerprint() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	fp, _ := trigger.Fingerprint(key.Public())
	fmt.Println(fp)
	// Output: SHA256:tAXFyTXI8xtDaujAEcwJslAYc9/6FKcUkd2Lw0xDhPo
}
