package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAttestCLI: `writ attest get` fetches a run's attestation once the
// run ended and writ signed it; `writ attest verify` checks it online
// (keys from the server) and offline (--key, --log-key), and refuses a
// copy with a changed byte, or verified with another log key.
func TestAttestCLI(t *testing.T) {
	w := claudeStartWrit(t)
	run, _ := w.startRun(t, "read")
	ctx := context.Background()
	if _, err := w.admin.Transition(ctx, run, "end", "done"); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"WRIT_URL": w.url, "WRIT_TOKEN": w.dev.Token, "HOME": t.TempDir()}
	dir := t.TempDir()
	file := filepath.Join(dir, "run.intoto.json")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, errOut, code := runCLI(vars, "attest", "get", run, "-o", file)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(errOut, "not_yet_attested") && !strings.Contains(errOut, "not attested yet") {
			t.Fatalf("attest get: exit %d: %s", code, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, errOut, code := runCLI(vars, "attest", "verify", file)
	if code != 0 || !strings.Contains(out, "verified: https://writ.dev/attestation/run/v1") || !strings.Contains(out, "ended by human:") {
		t.Fatalf("attest verify: exit %d\n%s%s", code, out, errOut)
	}
	// Offline: the keys given, no server.
	pub, err := w.admin.AttestKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := w.admin.AuditKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "attest.pub")
	os.WriteFile(pubFile, pub, 0o644)
	if out, errOut, code := runCLI(map[string]string{}, "attest", "verify", "--key", pubFile, "--log-key", logKey, file); code != 0 {
		t.Fatalf("offline attest verify: exit %d\n%s%s", code, out, errOut)
	}
	// Another log key of the same name.
	other := strings.Split(logKey, "+")
	other[2] = "00000000"
	if _, _, code := runCLI(map[string]string{}, "attest", "verify", "--key", pubFile, "--log-key", strings.Join(other, "+"), file); code == 0 {
		t.Error("verified against another log key")
	}
	// A changed byte.
	data, _ := os.ReadFile(file)
	i := strings.Index(string(data), `"payload":"`) + len(`"payload":"`) + 10
	if data[i] == 'A' {
		data[i] = 'B'
	} else {
		data[i] = 'A'
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, data, 0o644)
	if _, _, code := runCLI(vars, "attest", "verify", bad); code == 0 {
		t.Error("verified a changed attestation")
	}
}
