package trigger

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// TestVerifyRefusesPayload signs each tampered payload validly, so the only
// thing between it and acceptance is the strict decoding or validation.
func TestVerifyRefusesPayload(t *testing.T) {
	f := newFixture(t)
	p := string(payload(t, nil))
	replace := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(p, old) {
			t.Fatalf("payload %s has no %q", p, old)
		}
		return []byte(strings.Replace(p, old, new, 1))
	}
	mod := func(m func(*writ.Trigger)) []byte { return payload(t, m) }
	tests := []struct {
		name    string
		payload []byte
		code    string
	}{
		{"duplicate agent", replace(`"agent":"refactor-bot"`, `"agent":"refactor-bot","agent":"release-bot"`), "duplicate_key"},
		{"duplicate nested tools", replace(`"tools":[`, `"tools":["shell:net"],"tools":[`), "duplicate_key"},
		{"duplicate by escape", replace(`"agent":"refactor-bot"`, `"agent":"refactor-bot","\u0061gent":"release-bot"`), "duplicate_key"},
		{"case variant Agent", replace(`"agent":"refactor-bot"`, `"agent":"refactor-bot","Agent":"release-bot"`), "case_variant_key"},
		{"case variant Tools", replace(`"hosts":`, `"Tools":["shell:net"],"hosts":`), "case_variant_key"},
		{"case variant first", replace(`"agent":"refactor-bot"`, `"AGENT":"release-bot","agent":"refactor-bot"`), "unknown_field"},
		{"Agent instead of agent", replace(`"agent":`, `"Agent":`), "unknown_field"},
		{"unknown top field", replace(`"task":`, `"tenant":"acme","task":`), "unknown_field"},
		{"unknown repo field", replace(`"write":true`, `"write":true,"force":true`), "unknown_field"},
		{"unknown ticket field", replace(`"system":"jira"`, `"system":"jira","priority":1`), "unknown_field"},
		{"trailing object", []byte(p + `{"agent":"release-bot"}`), "trailing_data"},
		{"trailing garbage", []byte(p + "\x00"), "trailing_data"},
		{"invalid utf8", replace(`Rename`, "Re\xffname"), "invalid_utf8"},
		{"lone surrogate", replace(`Rename`, `Re\ud800name`), "invalid_utf8"},
		{"bom", []byte("\xef\xbb\xbf" + p), "bom"},
		{"too deep", replace(`"hosts":[]`, `"hosts":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)), "too_deep"},
		{"syntax", []byte(p[:len(p)-1]), "syntax"},
		{"type", replace(`"write":true`, `"write":"yes"`), "type"},
		{"type duration", replace(`"maxDuration":"30m0s"`, `"maxDuration":1800`), "type"},
		{"not object", []byte(`["trigger"]`), "not_object"},
		{"apiVersion", mod(func(t *writ.Trigger) { t.APIVersion = "writ.dev/v2" }), CodeInvalidTrigger},
		{"kind", mod(func(t *writ.Trigger) { t.Kind = "trigger" }), CodeInvalidTrigger},
		{"id uppercase", mod(func(t *writ.Trigger) { t.ID = strings.ToUpper(t.ID) }), CodeInvalidTrigger},
		{"id missing", mod(func(t *writ.Trigger) { t.ID = "" }), CodeInvalidTrigger},
		{"issuedAt missing", mod(func(t *writ.Trigger) { t.IssuedAt = time.Time{} }), CodeInvalidTrigger},
		{"expiresAt missing", mod(func(t *writ.Trigger) { t.ExpiresAt = time.Time{} }), CodeInvalidTrigger},
		{"expiresAt before issuedAt", mod(func(t *writ.Trigger) { t.ExpiresAt = t.IssuedAt.Add(-time.Second) }), CodeInvalidTrigger},
		{"expiresAt equals issuedAt", mod(func(t *writ.Trigger) { t.ExpiresAt = t.IssuedAt }), CodeInvalidTrigger},
		{"issuer empty", mod(func(t *writ.Trigger) { t.Issuer = "" }), CodeInvalidTrigger},
		{"agent invalid", mod(func(t *writ.Trigger) { t.Agent = "Refactor-Bot" }), CodeInvalidTrigger},
		{"profile invalid", mod(func(t *writ.Trigger) { t.Profile = "../release" }), CodeInvalidTrigger},
		{"ticket system empty", mod(func(t *writ.Trigger) { t.Ticket.System = "" }), CodeInvalidTrigger},
		{"ticket id empty", mod(func(t *writ.Trigger) { t.Ticket.ID = "" }), CodeInvalidTrigger},
		{"scope repo name", mod(func(t *writ.Trigger) { t.Scope.Repos[0].Name = "acme/../etc" }), CodeInvalidTrigger},
		{"scope path", mod(func(t *writ.Trigger) { t.Scope.Repos[0].Paths = []string{"/etc/**"} }), CodeInvalidTrigger},
		{"scope tool", mod(func(t *writ.Trigger) { t.Scope.Tools = append(t.Scope.Tools, "shell:*") }), CodeInvalidTrigger},
		{"scope maxDuration zero", mod(func(t *writ.Trigger) { t.Scope.MaxDuration = 0 }), CodeInvalidTrigger},
	}
	for _, tt := range tests {
		for _, form := range []string{FormatDSSE, FormatSSHSig} {
			t.Run(tt.name+"/"+form, func(t *testing.T) {
				body := signDSSE(t, tt.payload, f.alice)
				if form == FormatSSHSig {
					body = signSSH(t, tt.payload, f.alice)
				}
				v, err := Verify(body, f.ring)
				kind, code := errCode(t, err)
				if kind != writ.KindInvalid || code != tt.code {
					t.Fatalf("Verify = %+v, %v; want KindInvalid %q", v, err, tt.code)
				}
				checkMessageHygiene(t, err, tt.payload)
			})
		}
	}
}

// TestVerifySameBytes checks that the trigger is decoded from the signed
// bytes as they are: whitespace and key order in the payload are kept, and
// the digest is over them.
func TestVerifySameBytes(t *testing.T) {
	f := newFixture(t)
	p := payload(t, nil)
	var pretty bytes.Buffer
	pretty.WriteString("\n  ")
	pretty.Write(p)
	pretty.WriteString("\n")
	v1, err := Verify(signDSSE(t, p, f.alice), f.ring)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Verify(signDSSE(t, pretty.Bytes(), f.alice), f.ring)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v2.Payload, pretty.Bytes()) {
		t.Errorf("Payload = %q; want the signed bytes %q", v2.Payload, pretty.Bytes())
	}
	if v1.Digest == v2.Digest {
		t.Errorf("digests of different payload bytes are equal: %s", v1.Digest)
	}
	if v1.Trigger.ID != v2.Trigger.ID {
		t.Errorf("trigger ids differ: %s, %s", v1.Trigger.ID, v2.Trigger.ID)
	}
}

// TestVerifyMessagesAreShort checks that long payload values are not echoed
// back in full.
func TestVerifyMessagesAreShort(t *testing.T) {
	f := newFixture(t)
	p := string(payload(t, nil))
	long := strings.Repeat("x", 20000)
	for _, tampered := range []string{
		strings.Replace(p, `"issuedAt":"`, `"issuedAt":"`+long, 1),
		strings.Replace(p, `"write":true`, `"write":1`+strings.Repeat("0", 20000), 1),
		strings.Replace(p, `"src/**"`, `"/`+long+`"`, 1),
		strings.Replace(p, `"task":`, `"`+long+`":1,"task":`, 1),
	} {
		_, err := Verify(signDSSE(t, []byte(tampered), f.alice), f.ring)
		if err == nil {
			t.Fatalf("Verify accepted a tampered payload")
		}
		if len(err.Error()) > 1000 || strings.Contains(err.Error(), strings.Repeat("x", 500)) {
			t.Errorf("Verify error is %d bytes long: %.200s…", len(err.Error()), err)
		}
	}
}
