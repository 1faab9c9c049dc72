package writ

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
)

// Human API tokens are opaque: "writ_" + a 16-character public id + "_" +
// 32 random bytes in base64url. The store keeps only SHA-256 of the secret
// part, looked up by id and compared in constant time.
const humanTokenPrefix = "writ_"

// NewHumanToken returns a fresh token string for human and the record to
// store. The token string is shown once and never stored.
func NewHumanToken(human, createdBy string, now time.Time, ttl time.Duration) (string, *HumanToken) {
	var idb [10]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		panic("writ: reading randomness: " + err.Error())
	}
	if _, err := rand.Read(secret[:]); err != nil {
		panic("writ: reading randomness: " + err.Error())
	}
	id := encodeBase32(idb[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	h := sha256.Sum256([]byte(sec))
	return humanTokenPrefix + id + "_" + sec, &HumanToken{
		ID: id, Human: human, Hash: h[:], CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC(), CreatedBy: createdBy,
	}
}

// SplitHumanToken splits a token string into its id and the SHA-256 of its
// secret. ok is false when s does not have the token's shape.
func SplitHumanToken(s string) (id string, secretHash []byte, ok bool) {
	rest, found := strings.CutPrefix(s, humanTokenPrefix)
	if !found {
		return "", nil, false
	}
	id, sec, found := strings.Cut(rest, "_")
	if !found || len(id) != 16 || len(sec) != 43 {
		return "", nil, false
	}
	h := sha256.Sum256([]byte(sec))
	return id, h[:], true
}

// Matches reports, in constant time, whether secretHash is this token's hash.
func (t *HumanToken) Matches(secretHash []byte) bool {
	return subtle.ConstantTimeCompare(t.Hash, secretHash) == 1
}

// LooksLikeHumanToken reports whether s has the shape of a human API token,
// so callers can tell it from a JWT without trying to verify it.
func LooksLikeHumanToken(s string) bool { return strings.HasPrefix(s, humanTokenPrefix) }

func encodeBase32(b []byte) string {
	var out strings.Builder
	var acc uint32
	var bits uint
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			out.WriteByte(crockford[(acc>>(bits-5))&31])
			bits -= 5
		}
	}
	if bits > 0 {
		out.WriteByte(crockford[(acc<<(5-bits))&31])
	}
	return out.String()
}
