// Package trigger verifies and checks signed triggers, the task mandates
// that start writ runs (docs/design.md §4.1). It is part of the writ server and
// has no API stability.
//
// A trigger arrives in one of two wire forms: a DSSE envelope (payload type
// [writ.TriggerPayloadType], Ed25519 or ECDSA P-256, keyid = the key's
// "SHA256:…" fingerprint as ssh-keygen -l prints it) or
// {"payload": "<base64>", "sshsig": "<armored SSH SIGNATURE>"} with
// namespace [writ.TriggerSSHNS], as made by ssh-keygen -Y sign.
//
// The path through the package is [Open] (envelope and signature), [Verify]
// (Open, then strict decoding and field validation of the same bytes) and
// [Rules.Check] (the verified trigger against configuration and the clock).
// [SignDSSE], [SignSSH] and [WrapSSHSig] make the wire forms.
//
// # Security properties
//
//   - The signature is verified over the exact payload bytes before anything
//     in them is parsed, and the trigger is decoded from those same bytes;
//     [Verified.Digest] is the SHA-256 of them. Nothing is re-encoded.
//   - Only keys in the [KeyRing] are trusted, and only Ed25519 and ECDSA
//     P-256 keys can be in it. A key belongs to exactly one signer, and the
//     trigger's issuer must be that signer ([Rules.Check]).
//   - The envelope and the payload are decoded strictly (internal/strictjson):
//     duplicate keys, case-variant keys, unknown fields, trailing data,
//     invalid UTF-8, a BOM and deep nesting are refused, so no two JSON
//     parsers can read different triggers out of one signature.
//   - DSSE signatures cover PAE(payloadType, payload), so a signature made
//     for another payload type does not verify; SSH signatures must carry the
//     writ-trigger namespace, so a git-commit or file signature made with the
//     same key is not a trigger.
//   - Exactly one signature is accepted; sizes are capped before any
//     signature work.
//   - Expiry is checked against the caller's clock with at most 60 s of
//     leeway, lifetimes are capped, and a scope is refused with every item
//     outside the agent's and profile's allowance listed, never narrowed.
//   - Errors are *writ.Error values whose messages say what is wrong and
//     what to do; they never carry key material or the payload.
//
// Replay protection (the trigger id is the nonce) is the caller's: it needs
// the store.
package trigger
