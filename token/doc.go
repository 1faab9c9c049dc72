// Package token mints and verifies the identities of writ runs: JWT-SVIDs
// (the SPIFFE JWT-SVID profile, ES256, one audience, short-lived) and the
// DPoP proofs (RFC 9449) that bind them to a key the client holds
// (docs/design.md §4.2, docs/threat-model.md C-ID2). It also computes key ids (RFC 7638
// thumbprints) and the JSON Web Key Set that writ publishes for relying
// parties.
//
// The package is part of the writ server and has no API stability yet; its
// verification side ([Verifier], [VerifyProof]) may become public API. It is
// the only package of writ that imports a JOSE library
// (github.com/go-jose/go-jose/v4), and it imports nothing else outside the
// standard library but the root package writ.
//
// [Signer.Mint] makes a token; [Verifier.Verify] checks one for writ's own
// endpoints; [Proof] and [VerifyProof] make and check DPoP proofs; [JWKS]
// renders the published keys.
//
// # Security properties
//
// What is trusted: only the keys the caller's [KeyLookup] returns, by kid.
// Nothing in a token or proof picks a verification key for a token:
//
//   - The only algorithm issued or accepted is ES256 ([Algorithm]). "none",
//     HS*, RS*, PS*, EdDSA and every other alg are refused before any key is
//     looked up, so a public key can never be used as an HMAC secret.
//   - A token must carry a kid, and the kid must be one [KeyLookup] knows. An
//     unknown kid is refused; no key is ever fetched. The jku, x5u, x5c and
//     jwk header parameters are ignored: they never choose or fetch a key.
//   - Only the JWS compact serialization, with exactly one signature, is
//     accepted. A typ other than "JWT" is refused, so a DPoP proof
//     ("dpop+jwt") is never accepted as a token, and a crit or b64 header
//     (which writ never issues) is refused rather than interpreted.
//   - Claims are read only after the signature has verified, from the signed
//     bytes. iss must equal the configured issuer, and aud must be exactly
//     the audience the caller names: one audience, never one of several.
//     exp, iat and jti are required; exp, iat and nbf are checked against the
//     caller's clock with at most 60 s of leeway; sub must be a SPIFFE ID and
//     the run claim must be present. A cnf claim without a jkt, or an act
//     chain that is too deep or has an empty sub, is refused: a confirmation
//     writ cannot check is never dropped, so a bound token never turns into a
//     bearer token.
//   - A DPoP proof must be typ "dpop+jwt", ES256, carry a public P-256 key
//     in its jwk header (a key with private members is refused), verify under
//     that key, and match the request's method and URL, the clock (iat at
//     most [MaxProofAge] old, at most the leeway in the future), the access
//     token (ath) and the token's key binding (cnf.jkt).
//   - Every check fails closed: anything the package cannot parse or does not
//     understand is refused. Token and proof sizes are capped before any
//     parsing or signature work.
//   - Failures are *writ.Error values of kind writ.KindUnauthenticated with a
//     stable code (see the Code constants) and a message that says what to do;
//     messages never contain the token, the proof or key material. A verifier
//     or check that is misconfigured (no key lookup, no issuer, no audience,
//     no clock) is a plain error, so it surfaces as an internal error.
//
// What the package does not do, and its caller must:
//
//   - Replay detection. [VerifyProof] returns the proof's (jkt, jti); the
//     caller records them and refuses a pair it has seen within
//     MaxProofAge plus twice the leeway.
//   - Revocation and run state. A token stays cryptographically valid until
//     exp; writ's endpoints must also check that the token's run is still
//     active on every request (docs/design.md §4.2).
//   - Lifetime policy. [Signer.Mint] signs the expiry it is given; the caller
//     caps it by the lifetimes of docs/design.md §4.2 and the run's deadline.
//
// ECDSA signatures are malleable: one token or proof has more than one valid
// encoding. Identify tokens by their jti and proofs by (jkt, jti), never by
// their bytes.
package token
