package trigger

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hiddeco/sshsig"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
)

func TestVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	p := payload(t, nil)
	want := Template(testNow, "alice")
	if err := json.Unmarshal(p, &want); err != nil { // same id as p
		t.Fatal(err)
	}
	aliceFP, _ := Fingerprint(f.alice.Public())
	ticketsFP, _ := Fingerprint(f.tickets.Public())
	tests := []struct {
		name   string
		body   []byte
		signer string
		keyID  string
		format string
	}{
		{"dsse ed25519", signDSSE(t, p, f.alice), "alice", aliceFP, FormatDSSE},
		{"dsse ecdsa p256", signDSSE(t, p, f.tickets), "tickets", ticketsFP, FormatDSSE},
		{"ssh ed25519", signSSH(t, p, f.alice), "alice", aliceFP, FormatSSHSig},
		{"ssh ecdsa p256", signSSH(t, p, f.tickets), "tickets", ticketsFP, FormatSSHSig},
	}
	sum := sha256.Sum256(p)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Verify(tt.body, f.ring)
			if err != nil {
				t.Fatalf("Verify = %v; want success", err)
			}
			wantV := &Verified{
				Trigger: want,
				Payload: p,
				Digest:  "sha256:" + hexString(sum[:]),
				Signer:  tt.signer,
				KeyID:   tt.keyID,
				Format:  tt.format,
			}
			if diff := cmp.Diff(wantV, v); diff != "" {
				t.Errorf("Verify mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// tamperPayload flips one byte of the payload inside a signed body.
func tamperPayload(t *testing.T, body []byte) []byte {
	m := mapJSON(t, body)
	p, err := base64.StdEncoding.DecodeString(m["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// Change the agent without breaking the JSON: "refactor-bot" -> "refactor-bou".
	i := bytes.Index(p, []byte("refactor-bot"))
	p[i+len("refactor-bot")-1] ^= 0x01
	m["payload"] = base64.StdEncoding.EncodeToString(p)
	return mustJSON(t, m)
}

func TestOpenRefuses(t *testing.T) {
	f := newFixture(t)
	p := payload(t, nil)
	dsseBody := signDSSE(t, p, f.alice)
	sshBody := signSSH(t, p, f.alice)
	dsseMap := func() map[string]any { return mapJSON(t, dsseBody) }
	sshMap := func() map[string]any { return mapJSON(t, sshBody) }
	aliceFP, _ := Fingerprint(f.alice.Public())

	// A second valid signature, by tickets.
	twoSigs := dsseMap()
	other := mapJSON(t, signDSSE(t, p, f.tickets))["signatures"].([]any)[0]
	twoSigs["signatures"] = append(twoSigs["signatures"].([]any), other)
	// The same valid signature twice.
	sameTwice := dsseMap()
	sig0 := sameTwice["signatures"].([]any)[0]
	sameTwice["signatures"] = []any{sig0, sig0}

	noSigs := dsseMap()
	noSigs["signatures"] = []any{}

	// Signed correctly, but for another payload type.
	otherType, err := SignDSSE(p, "application/vnd.in-toto+json", f.alice)
	if err != nil {
		t.Fatal(err)
	}
	// Relabelled: the signature is over the in-toto PAE, the envelope says trigger.
	relabelled := mapJSON(t, otherType)
	relabelled["payloadType"] = writ.TriggerPayloadType

	// mallory's key, keyid claiming alice's.
	forged := mapJSON(t, signDSSE(t, p, f.mallory))
	forged["signatures"].([]any)[0].(map[string]any)["keyid"] = aliceFP

	// An ECDSA signature in raw r||s form instead of ASN.1 DER.
	rawECDSA := mapJSON(t, signDSSE(t, p, f.tickets))
	{
		h := sha256.Sum256(dsse.PAE(writ.TriggerPayloadType, p))
		r, s, err := ecdsa.Sign(rand.Reader, f.tickets, h[:])
		if err != nil {
			t.Fatal(err)
		}
		raw := append(pad32(r), pad32(s)...)
		rawECDSA["signatures"].([]any)[0].(map[string]any)["sig"] = base64.StdEncoding.EncodeToString(raw)
	}

	// An Ed25519 signature made over the bare payload rather than the PAE.
	noPAE := dsseMap()
	noPAE["signatures"].([]any)[0].(map[string]any)["sig"] = base64.StdEncoding.EncodeToString(ed25519.Sign(f.alice, p))

	wrongNS, err := SignSSH(p, "git", f.alice)
	if err != nil {
		t.Fatal(err)
	}

	armor := sshMap()["sshsig"].(string)
	junkBefore := sshMap()
	junkBefore["sshsig"] = "look here\n" + armor
	twoArmors := sshMap()
	twoArmors["sshsig"] = armor + mapJSON(t, signSSH(t, p, f.tickets))["sshsig"].(string)
	headers := sshMap()
	headers["sshsig"] = strings.Replace(armor, "-----\n", "-----\nComment: hi\n\n", 1)
	corrupt := sshMap()
	corrupt["sshsig"] = strings.Replace(armor, "U1NIU0lH", "U1NIU0lI", 1) // "SSHSIG" -> "SSHSIH"
	mixed := dsseMap()
	mixed["sshsig"] = armor

	// An SSH signature with sha256 (accepted) and one whose hash name is
	// changed after signing.
	sshSigner, err := ssh.NewSignerFromSigner(f.alice)
	if err != nil {
		t.Fatal(err)
	}
	s256, err := sshsig.Sign(bytes.NewReader(p), sshSigner, sshsig.HashSHA256, writ.TriggerSSHNS)
	if err != nil {
		t.Fatal(err)
	}
	sha256Body, err := WrapSSHSig(p, sshsig.Armor(s256))
	if err != nil {
		t.Fatal(err)
	}
	s256.HashAlgorithm = sshsig.HashSHA512
	hashSwapped, err := WrapSSHSig(p, sshsig.Armor(s256))
	if err != nil {
		t.Fatal(err)
	}

	bigPayload := bytes.Repeat([]byte("a"), MaxTriggerPayload+1)
	justFits := bytes.Repeat([]byte(" "), MaxTriggerPayload-len(p))
	justFits = append(p[:len(p):len(p)], justFits...)

	b64 := base64.StdEncoding.EncodeToString(p)
	badB64 := dsseMap()
	badB64["payload"] = "%%%" + b64
	nlB64 := dsseMap()
	nlB64["payload"] = b64[:8] + "\n" + b64[8:]
	unpadded := dsseMap()
	unpadded["payload"] = strings.TrimRight(b64, "=") + "A"
	noKeyID := dsseMap()
	delete(noKeyID["signatures"].([]any)[0].(map[string]any), "keyid")
	emptySig := dsseMap()
	emptySig["signatures"].([]any)[0].(map[string]any)["sig"] = ""
	badSig64 := dsseMap()
	badSig64["signatures"].([]any)[0].(map[string]any)["sig"] = "not base64!"
	extraSigField := dsseMap()
	extraSigField["signatures"].([]any)[0].(map[string]any)["cert"] = "x"
	noPayload := dsseMap()
	delete(noPayload, "payload")
	noType := dsseMap()
	delete(noType, "payloadType")
	noSigField := dsseMap()
	delete(noSigField, "signatures")

	dsseStr := string(dsseBody)
	tests := []struct {
		name string
		body []byte
		kind writ.Kind
		code string
	}{
		{"accepts sha256 ssh signature", sha256Body, 0, ""},
		{"accepts payload at the limit", signDSSE(t, justFits, f.alice), 0, ""}, // trailing whitespace is allowed
		{"not json", []byte("hello"), writ.KindInvalid, CodeMalformedEnvelope},
		{"empty", nil, writ.KindInvalid, CodeMalformedEnvelope},
		{"json array", []byte(`[` + dsseStr + `]`), writ.KindInvalid, CodeMalformedEnvelope},
		{"bom", append([]byte("\xef\xbb\xbf"), dsseBody...), writ.KindInvalid, CodeMalformedEnvelope},
		{"trailing data", append(append([]byte{}, dsseBody...), dsseBody...), writ.KindInvalid, CodeMalformedEnvelope},
		{"unknown field", mustJSON(t, map[string]any{"payloadType": writ.TriggerPayloadType, "payload": b64, "signatures": dsseMap()["signatures"], "extra": 1}), writ.KindInvalid, CodeMalformedEnvelope},
		{"case variant field", []byte(strings.Replace(dsseStr, `"payloadType"`, `"PayloadType"`, 1)), writ.KindInvalid, CodeMalformedEnvelope},
		{"duplicate payload key", []byte(strings.Replace(dsseStr, `"payload":`, `"payload":"e30=","payload":`, 1)), writ.KindInvalid, CodeMalformedEnvelope},
		{"unknown field in signature", mustJSON(t, extraSigField), writ.KindInvalid, CodeMalformedEnvelope},
		{"missing payload", mustJSON(t, noPayload), writ.KindInvalid, CodeMalformedEnvelope},
		{"missing payloadType", mustJSON(t, noType), writ.KindInvalid, CodeMalformedEnvelope},
		{"missing signatures", mustJSON(t, noSigField), writ.KindInvalid, CodeMalformedEnvelope},
		{"mixed forms", mustJSON(t, mixed), writ.KindInvalid, CodeMalformedEnvelope},
		{"bad base64 payload", mustJSON(t, badB64), writ.KindInvalid, CodeMalformedEnvelope},
		{"line break in base64 payload", mustJSON(t, nlB64), writ.KindInvalid, CodeMalformedEnvelope},
		{"unpadded base64 payload", mustJSON(t, unpadded), writ.KindInvalid, CodeMalformedEnvelope},
		{"wrong payloadType", otherType, writ.KindInvalid, CodeMalformedEnvelope},
		{"relabelled payloadType", mustJSON(t, relabelled), writ.KindUnauthenticated, CodeBadSignature},
		{"zero signatures", mustJSON(t, noSigs), writ.KindInvalid, CodeMalformedEnvelope},
		{"two signatures", mustJSON(t, twoSigs), writ.KindInvalid, CodeMalformedEnvelope},
		{"same signature twice", mustJSON(t, sameTwice), writ.KindInvalid, CodeMalformedEnvelope},
		{"missing keyid", mustJSON(t, noKeyID), writ.KindInvalid, CodeMalformedEnvelope},
		{"empty sig", mustJSON(t, emptySig), writ.KindInvalid, CodeMalformedEnvelope},
		{"bad base64 sig", mustJSON(t, badSig64), writ.KindInvalid, CodeMalformedEnvelope},
		{"unknown signer dsse", signDSSE(t, p, f.mallory), writ.KindUnauthenticated, CodeUnknownSigner},
		{"unknown signer dsse ecdsa", signDSSE(t, p, f.malloryE), writ.KindUnauthenticated, CodeUnknownSigner},
		{"unknown signer ssh", signSSH(t, p, f.mallory), writ.KindUnauthenticated, CodeUnknownSigner},
		{"forged keyid", mustJSON(t, forged), writ.KindUnauthenticated, CodeBadSignature},
		{"bad signature dsse ed25519", tamperPayload(t, dsseBody), writ.KindUnauthenticated, CodeBadSignature},
		{"bad signature dsse ecdsa", tamperPayload(t, signDSSE(t, p, f.tickets)), writ.KindUnauthenticated, CodeBadSignature},
		{"bad signature ssh ed25519", tamperPayload(t, sshBody), writ.KindUnauthenticated, CodeBadSignature},
		{"bad signature ssh ecdsa", tamperPayload(t, signSSH(t, p, f.tickets)), writ.KindUnauthenticated, CodeBadSignature},
		{"ecdsa raw r||s signature", mustJSON(t, rawECDSA), writ.KindUnauthenticated, CodeBadSignature},
		{"ed25519 over payload not PAE", mustJSON(t, noPAE), writ.KindUnauthenticated, CodeBadSignature},
		{"ssh hash name swapped", hashSwapped, writ.KindUnauthenticated, CodeBadSignature},
		{"namespace mismatch", wrongNS, writ.KindInvalid, CodeMalformedEnvelope},
		{"armor garbage", mustJSON(t, map[string]any{"payload": b64, "sshsig": "garbage"}), writ.KindInvalid, CodeMalformedEnvelope},
		{"armor junk before", mustJSON(t, junkBefore), writ.KindInvalid, CodeMalformedEnvelope},
		{"armor two signatures", mustJSON(t, twoArmors), writ.KindInvalid, CodeMalformedEnvelope},
		{"armor headers", mustJSON(t, headers), writ.KindInvalid, CodeMalformedEnvelope},
		{"armor corrupt magic", mustJSON(t, corrupt), writ.KindInvalid, CodeMalformedEnvelope},
		{"armor wrong pem type", mustJSON(t, map[string]any{"payload": b64, "sshsig": strings.ReplaceAll(armor, "SSH SIGNATURE", "PGP SIGNATURE")}), writ.KindInvalid, CodeMalformedEnvelope},
		{"payload too large dsse", signDSSE(t, bigPayload, f.alice), writ.KindTooLarge, CodeTooLarge},
		{"payload too large ssh", signSSH(t, bigPayload, f.alice), writ.KindTooLarge, CodeTooLarge},
		{"body too large", append(bytes.Repeat([]byte(" "), 100<<10), dsseBody...), writ.KindTooLarge, CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.body, f.ring)
			kind, code := errCode(t, err)
			if kind != tt.kind || code != tt.code {
				t.Errorf("Verify = %v (kind %s); want kind %s code %q", err, kind, tt.kind, tt.code)
			}
			if err != nil {
				checkMessageHygiene(t, err, p)
			}
		})
	}
}

// checkMessageHygiene fails if an error message carries the payload, its
// base64, or key material.
func checkMessageHygiene(t *testing.T, err error, p []byte) {
	t.Helper()
	msg := err.Error()
	b64 := base64.StdEncoding.EncodeToString(p)
	for _, secret := range []string{string(p), b64[:min(40, len(b64))], "PRIVATE KEY", "AAAAC3NzaC1lZDI1NTE5"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error message %q contains %.20q…", msg, secret)
		}
	}
	if strings.HasSuffix(msg, ".") {
		t.Errorf("error message %q ends with a period", msg)
	}
}

func pad32(n *big.Int) []byte {
	b := make([]byte, 32)
	return n.FillBytes(b)
}

func TestOpenOptionsRequired(t *testing.T) {
	f := newFixture(t)
	body := signDSSE(t, payload(t, nil), f.alice)
	for _, o := range []OpenOptions{
		{SSHNamespace: "x", MaxPayload: 1},
		{PayloadType: "x", MaxPayload: 1},
		{PayloadType: "x", SSHNamespace: "x"},
	} {
		if _, err := Open(body, f.ring, o); writ.ErrorKind(err) != writ.KindInternal {
			t.Errorf("Open(%+v) = %v; want KindInternal", o, err)
		}
	}
	// Open works for other payload types, with the options given.
	other, err := SignDSSE([]byte("hello"), "text/plain", f.alice)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Open(other, f.ring, OpenOptions{PayloadType: "text/plain", SSHNamespace: "file", MaxPayload: 5})
	if err != nil || string(o.Payload) != "hello" || o.Signer != "alice" {
		t.Errorf("Open(text/plain) = %+v, %v; want payload hello by alice", o, err)
	}
	if _, err := Open(other, f.ring, OpenOptions{PayloadType: "text/plain", SSHNamespace: "file", MaxPayload: 4}); writ.ErrorCode(err) != CodeTooLarge {
		t.Errorf("Open(5 bytes, max 4) = %v; want too_large", err)
	}
	if _, err := Open(other, nil, OpenOptions{PayloadType: "text/plain", SSHNamespace: "file", MaxPayload: 5}); writ.ErrorCode(err) != CodeUnknownSigner {
		t.Errorf("Open(nil ring) = %v; want unknown_signer", err)
	}
}
