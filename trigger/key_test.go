package trigger

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
)

func pkixPEM(tb testing.TB, pub crypto.PublicKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestParsePublicKey(t *testing.T) {
	edKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edLine := strings.TrimSpace(authorizedKey(t, edKey.Public()))
	ecLine := strings.TrimSpace(authorizedKey(t, ecKey.Public()))
	edFP, _ := Fingerprint(edKey.Public())
	ecFP, _ := Fingerprint(ecKey.Public())
	tests := []struct {
		name    string
		in      string
		wantFP  string
		wantErr string
	}{
		{"ssh ed25519", edLine, edFP, ""},
		{"ssh ed25519 with comment", edLine + " alice@laptop", edFP, ""},
		{"ssh ed25519 surrounding space", "\n  " + edLine + " c\n", edFP, ""},
		{"ssh ecdsa p256", ecLine, ecFP, ""},
		{"pem ed25519", pkixPEM(t, edKey.Public()), edFP, ""},
		{"pem ecdsa p256", pkixPEM(t, ecKey.Public()), ecFP, ""},
		{"ssh rsa", authorizedKey(t, rsaKey.Public()), "", "accepted: Ed25519 or ECDSA P-256"},
		{"ssh p384", authorizedKey(t, p384.Public()), "", "accepted: Ed25519 or ECDSA P-256"},
		{"pem rsa", pkixPEM(t, rsaKey.Public()), "", "accepted: Ed25519 or ECDSA P-256"},
		{"pem p384", pkixPEM(t, p384.Public()), "", "not on P-256"},
		{"pem wrong type", strings.ReplaceAll(pkixPEM(t, edKey.Public()), "PUBLIC KEY", "RSA PUBLIC KEY"), "", "accepted"},
		{"pem two blocks", pkixPEM(t, edKey.Public()) + pkixPEM(t, ecKey.Public()), "", "one key"},
		{"two ssh keys", edLine + "\n" + ecLine, "", "one key"},
		{"options", `command="rm -rf /" ` + edLine, "", "options are not supported"},
		{"garbage", "hello world", "", "accepted"},
		{"empty", "  ", "", "accepted"},
		{"truncated base64", edLine[:40], "", "accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := ParsePublicKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePublicKey = %v, %v; want error containing %q", pub, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKey = %v", err)
			}
			if got := ssh.FingerprintSHA256(pub); got != tt.wantFP {
				t.Errorf("fingerprint = %s; want %s", got, tt.wantFP)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	edKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	sk, _ := ssh.NewPublicKey(edKey.Public())
	a, err := Fingerprint(edKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fingerprint(sk)
	if a != b || !strings.HasPrefix(a, "SHA256:") || strings.HasSuffix(a, "=") || len(a) != len("SHA256:")+43 {
		t.Errorf("Fingerprint = %q and %q; want equal SHA256:<43 chars>", a, b)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // only a type check
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, bad := range []any{rsaKey.Public(), &p384.PublicKey, ed25519.PublicKey(make([]byte, 31)), "ssh-ed25519 AAAA", nil} {
		if fp, err := Fingerprint(bad); err == nil {
			t.Errorf("Fingerprint(%T) = %q; want an error", bad, fp)
		}
	}
}

func TestKeyRing(t *testing.T) {
	edKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	line := authorizedKey(t, edKey.Public())
	r := NewKeyRing()
	fp, err := r.Add("alice", line)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := Fingerprint(edKey.Public()); fp != want {
		t.Errorf("Add = %s; want %s", fp, want)
	}
	if _, err := r.Add("alice", line); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("Add(same key, same signer) = %v; want listed twice", err)
	}
	// The same key as PEM, for another signer: still the same key.
	if _, err := r.Add("bob", pkixPEM(t, edKey.Public())); err == nil || !strings.Contains(err.Error(), "already a key of signer alice") {
		t.Errorf("Add(same key, other signer) = %v; want already a key of signer alice", err)
	}
	if _, err := r.Add("Bob", pkixPEM(t, ed25519.NewKeyFromSeed(make([]byte, 32)).Public())); err == nil {
		t.Errorf("Add(invalid signer name) = nil; want an error")
	}
	if _, err := r.Add("bob", "ssh-rsa AAAA"); err == nil {
		t.Errorf("Add(bad key) = nil; want an error")
	}
	signer, pub, ok := r.Lookup(fp)
	if !ok || signer != "alice" || ssh.FingerprintSHA256(pub) != fp {
		t.Errorf("Lookup(%s) = %q, %v, %v; want alice", fp, signer, pub, ok)
	}
	if _, _, ok := r.Lookup("SHA256:nope"); ok {
		t.Errorf("Lookup(unknown) ok")
	}
	var nilRing *KeyRing
	if _, _, ok := nilRing.Lookup(fp); ok {
		t.Errorf("nil ring Lookup ok")
	}
	// Concurrent lookups and adds (run with -race).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			k := ed25519.NewKeyFromSeed(append(make([]byte, 31), byte(i+1)))
			if _, err := r.Add("s"+string(rune('a'+i)), authorizedKey(t, k.Public())); err != nil {
				t.Error(err)
			}
			r.Lookup(fp)
		})
	}
	wg.Wait()
}

func TestLoadPrivateKey(t *testing.T) {
	edKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	pemOf := func(b *pem.Block, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(b)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		return pemOf(&pem.Block{Type: "PRIVATE KEY", Bytes: der}, err)
	}
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	edPEM, err := MarshalPrivateKeyPEM(edKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM, err := MarshalPrivateKeyPEM(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      []byte
		want    crypto.PublicKey
		wantErr string
	}{
		{"pkcs8 ed25519 (MarshalPrivateKeyPEM)", edPEM, edKey.Public(), ""},
		{"pkcs8 ecdsa (MarshalPrivateKeyPEM)", ecPEM, ecKey.Public(), ""},
		{"sec1 ecdsa", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ecKey.Public(), ""},
		{"openssh ed25519", pemOf(ssh.MarshalPrivateKey(edKey, "c")), edKey.Public(), ""},
		{"openssh ecdsa", pemOf(ssh.MarshalPrivateKey(ecKey, "c")), ecKey.Public(), ""},
		{"openssh encrypted", pemOf(ssh.MarshalPrivateKeyWithPassphrase(edKey, "c", []byte("pw"))), nil, "encrypted"},
		{"pkcs8 rsa", pkcs8(rsaKey), nil, "not accepted"},
		{"pkcs8 p384", pkcs8(p384), nil, "not on P-256"},
		{"rsa pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), nil, "not supported"},
		{"garbage", []byte("hello"), nil, "no PEM block"},
		{"corrupt pkcs8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("xxxx")}), nil, "private key:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadPrivateKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadPrivateKey = %v; want error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY-----") {
					t.Errorf("error %q contains key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadPrivateKey = %v", err)
			}
			type equaler interface{ Equal(crypto.PublicKey) bool }
			if !k.Public().(equaler).Equal(tt.want) {
				t.Errorf("LoadPrivateKey gave another key")
			}
		})
	}
	if _, err := MarshalPrivateKeyPEM(rsaKey); err == nil {
		t.Errorf("MarshalPrivateKeyPEM(rsa) = nil error")
	}
	if _, err := MarshalPrivateKeyPEM(p384); err == nil {
		t.Errorf("MarshalPrivateKeyPEM(p384) = nil error")
	}
}

func TestSignRejectsOtherKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, k := range []crypto.Signer{rsaKey, p384} {
		if _, err := SignDSSE([]byte("{}"), writ.TriggerPayloadType, k); err == nil {
			t.Errorf("SignDSSE(%T) = nil error", k)
		}
		if _, err := SignSSH([]byte("{}"), writ.TriggerSSHNS, k); err == nil {
			t.Errorf("SignSSH(%T) = nil error", k)
		}
	}
	if _, err := WrapSSHSig([]byte("{}"), []byte("not a signature")); err == nil {
		t.Errorf("WrapSSHSig(junk) = nil error")
	}
}

// sshKeygen returns the path of ssh-keygen, skipping the test when it is
// missing unless WRIT_TEST_REQUIRE_ALL=1.
func sshKeygen(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("ssh-keygen not found and WRIT_TEST_REQUIRE_ALL=1: %v", err)
		}
		t.Skipf("ssh-keygen not found: %v", err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestSSHKeygen checks interoperability with OpenSSH both ways: a trigger
// signed with ssh-keygen -Y sign verifies, the key file loads, fingerprints
// match ssh-keygen -l, and ssh-keygen -Y verify accepts SignSSH's output.
func TestSSHKeygen(t *testing.T) {
	keygen := sshKeygen(t)
	for _, kt := range []struct{ name, args string }{
		{"ed25519", "-t ed25519"},
		{"ecdsa", "-t ecdsa -b 256"},
	} {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "key")
			run(t, keygen, append(strings.Fields(kt.args), "-q", "-N", "", "-C", "alice@test", "-f", key)...)
			pubLine, err := os.ReadFile(key + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			ring := NewKeyRing()
			fp, err := ring.Add("alice", string(pubLine))
			if err != nil {
				t.Fatal(err)
			}
			// ssh-keygen -l prints "256 SHA256:… alice@test (ED25519)".
			if l := run(t, keygen, "-l", "-f", key+".pub"); !strings.Contains(l, " "+fp+" ") {
				t.Errorf("ssh-keygen -l = %q; want fingerprint %s", l, fp)
			}

			p := payload(t, nil)
			file := filepath.Join(dir, "trigger.json")
			if err := os.WriteFile(file, p, 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, keygen, "-Y", "sign", "-n", writ.TriggerSSHNS, "-f", key, file)
			armored, err := os.ReadFile(file + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			body, err := WrapSSHSig(p, armored)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Verify(body, ring)
			if err != nil {
				t.Fatalf("Verify(ssh-keygen signature) = %v", err)
			}
			if v.Signer != "alice" || v.KeyID != fp || v.Format != FormatSSHSig {
				t.Errorf("Verify = signer %q key %q format %q; want alice %s sshsig", v.Signer, v.KeyID, v.Format, fp)
			}

			// A signature in another namespace, by the same key, is refused.
			if err := os.Remove(file + ".sig"); err != nil {
				t.Fatal(err)
			}
			run(t, keygen, "-Y", "sign", "-n", "git", "-f", key, file)
			gitSig, _ := os.ReadFile(file + ".sig")
			body, err = WrapSSHSig(p, gitSig)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(body, ring); writ.ErrorCode(err) != CodeMalformedEnvelope {
				t.Errorf("Verify(namespace git) = %v; want %s", err, CodeMalformedEnvelope)
			}

			// The OpenSSH private key loads, and signs both forms.
			keyPEM, err := os.ReadFile(key)
			if err != nil {
				t.Fatal(err)
			}
			k, err := LoadPrivateKey(keyPEM)
			if err != nil {
				t.Fatalf("LoadPrivateKey(ssh-keygen key) = %v", err)
			}
			if got, _ := Fingerprint(k.Public()); got != fp {
				t.Errorf("Fingerprint(loaded key) = %s; want %s", got, fp)
			}
			for _, b := range [][]byte{signDSSE(t, p, k), signSSH(t, p, k)} {
				if _, err := Verify(b, ring); err != nil {
					t.Errorf("Verify(signed with loaded key) = %v", err)
				}
			}

			// ssh-keygen -Y verify accepts what SignSSH makes.
			sshBody := mapJSON(t, signSSH(t, p, k))
			if err := os.WriteFile(file+".sig", []byte(sshBody["sshsig"].(string)), 0o600); err != nil {
				t.Fatal(err)
			}
			allowed := filepath.Join(dir, "allowed_signers")
			if err := os.WriteFile(allowed, []byte(`alice namespaces="writ-trigger" `+string(pubLine)), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "alice", "-n", writ.TriggerSSHNS, "-s", file+".sig")
			in, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			cmd.Stdin = in
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("ssh-keygen -Y verify(SignSSH output): %v\n%s", err, out)
			}
		})
	}
}
