package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/internal/strictjson"
)

// Verified is a trigger whose signature verified and whose payload decoded
// strictly and passed field validation. It has not yet been checked against
// configuration and time: see [Rules.Check].
type Verified struct {
	Trigger writ.Trigger
	Payload []byte // the exact signed bytes
	Digest  string // "sha256:" + hex(SHA-256(Payload)), the trigger digest
	Signer  string // the signer whose key verified
	KeyID   string // the fingerprint of that key
	Format  string // FormatDSSE or FormatSSHSig
}

// triggerOptions are the [OpenOptions] of a trigger. Unexported, so that no
// importer can loosen them.
var triggerOptions = OpenOptions{
	PayloadType:  writ.TriggerPayloadType,
	SSHNamespace: writ.TriggerSSHNS,
	MaxPayload:   MaxTriggerPayload,
}

// Verify opens body (see [Open]) as a trigger: payload type
// [writ.TriggerPayloadType], SSH namespace [writ.TriggerSSHNS], at most
// [MaxTriggerPayload] bytes of payload. It then decodes the
// same payload bytes strictly into a [writ.Trigger] and validates its
// fields. A strict-decoding refusal is a *writ.Error of KindInvalid whose
// Code is the strictjson code (duplicate_key, case_variant_key,
// unknown_field, trailing_data, invalid_utf8, bom, too_deep, syntax, type,
// not_object); a field that breaks the contract is invalid_trigger
// (KindInvalid).
//
// When the signature verifies but the payload is refused, Verify returns
// both the error and a partial *Verified (Payload, Digest, Signer, KeyID and
// Format set, Trigger zero): the signer is then known, and its refusal is an
// audit event rather than anonymous junk. On any other error the
// *Verified is nil.
func Verify(body []byte, ring *KeyRing) (*Verified, error) {
	o, err := Open(body, ring, triggerOptions)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(o.Payload)
	v := &Verified{
		Payload: o.Payload,
		Digest:  "sha256:" + hex.EncodeToString(sum[:]),
		Signer:  o.Signer,
		KeyID:   o.KeyID,
		Format:  o.Format,
	}
	var t writ.Trigger
	if err := strictjson.Decode(o.Payload, &t); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) {
			return v, writ.Errorf(writ.KindInvalid, se.Code, "trigger payload at %s: %s; fix the payload and sign it again", clip(se.Path), asciiSafe(se.Msg))
		}
		return v, writ.Errorf(writ.KindInvalid, CodeInvalidTrigger, "trigger payload does not decode; fix the payload and sign it again")
	}
	if err := validate(&t); err != nil {
		return v, err
	}
	v.Trigger = t
	return v, nil
}

func invalid(format string, args ...any) error {
	e := writ.Errorf(writ.KindInvalid, CodeInvalidTrigger, format, args...)
	e.Message = clip(e.Message)
	return e
}

// clip caps a message that may quote parts of the payload.
func clip(s string) string {
	const max = 400
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// validate checks the fields of t by the contract of docs/design.md §4.1.
func validate(t *writ.Trigger) error {
	if t.APIVersion != writ.TriggerAPIVersion {
		return invalid("apiVersion is %s; want %q", quote(t.APIVersion), writ.TriggerAPIVersion)
	}
	if t.Kind != writ.TriggerKind {
		return invalid("kind is %s; want %q", quote(t.Kind), writ.TriggerKind)
	}
	if _, err := writ.ParseULID(t.ID); err != nil {
		return invalid("id %s is not a lowercase ULID (26 characters of Crockford base32); use a fresh ULID per trigger", quote(t.ID))
	}
	if t.IssuedAt.IsZero() || t.ExpiresAt.IsZero() {
		return invalid("issuedAt and expiresAt are required (RFC 3339 times)")
	}
	if !t.ExpiresAt.After(t.IssuedAt) {
		return invalid("expiresAt must be after issuedAt")
	}
	for _, f := range []struct{ name, v string }{{"issuer", t.Issuer}, {"agent", t.Agent}, {"profile", t.Profile}} {
		if !writ.ValidName(f.v) {
			return invalid("%s %s is not a valid name (lowercase letters, digits, '.', '_', '-'; at most 63 characters)", f.name, quote(f.v))
		}
	}
	if t.Ticket.System == "" || t.Ticket.ID == "" {
		return invalid("ticket.system and ticket.id are required; name the work item this trigger comes from")
	}
	if err := t.Scope.Validate(); err != nil {
		return invalid("%s", asciiSafe(err.Error()))
	}
	return nil
}

// quote quotes an untrusted string for a message: ASCII only, shortened.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.QuoteToASCII(s[:cut]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

// asciiSafe escapes every rune of s outside printable ASCII, so that text
// derived from the payload cannot carry control or bidi characters.
func asciiSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			q := strconv.QuoteToASCII(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
