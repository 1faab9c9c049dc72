package attest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/writ-dev/writ/attest"
)

func TestSignVerify(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	st := &attest.Statement{Subject: []attest.Subject{{Name: "approval:apr_x", Digest: map[string]string{"sha256": strings.Repeat("a", 64)}}},
		PredicateType: attest.PredicateApproval, Predicate: map[string]any{"verdict": "approve"}}
	env, err := attest.Sign(st, k)
	if err != nil {
		t.Fatal(err)
	}
	got, payload, err := attest.Verify(env, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != attest.StatementType || got.PredicateType != attest.PredicateApproval || got.Subject[0].Digest["sha256"] != strings.Repeat("a", 64) {
		t.Fatalf("statement: %+v", got)
	}
	if !strings.Contains(string(payload), `"predicate":{"verdict":"approve"}`) {
		t.Fatalf("payload: %s", payload)
	}
	if _, _, err := attest.Verify(env, &other.PublicKey); err == nil {
		t.Fatal("verified with another key")
	}
	// Tampering with the payload or its type breaks the signature.
	var e map[string]any
	_ = json.Unmarshal(env, &e)
	e["payload"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload), "approve", "deny", 1)))
	bad, _ := json.Marshal(e)
	if _, _, err := attest.Verify(bad, &k.PublicKey); err == nil {
		t.Fatal("a tampered payload verified")
	}
	_ = json.Unmarshal(env, &e)
	e["payloadType"] = "application/json"
	bad, _ = json.Marshal(e)
	if _, _, err := attest.Verify(bad, &k.PublicKey); err == nil {
		t.Fatal("another payload type verified")
	}
	if _, err := attest.Sign(&attest.Statement{PredicateType: "x"}, k); err == nil {
		t.Fatal("signed a statement without subjects")
	}
}
