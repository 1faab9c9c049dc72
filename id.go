package writ

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"time"
)

// crockford is Crockford's base32 alphabet in lower case, as ULIDs use it.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// NewULID returns a lowercase ULID (26 characters: a 48-bit millisecond
// timestamp then 80 random bits) for t, reading randomness from r, or from
// crypto/rand when r is nil. Lowercase ULIDs are valid in SPIFFE paths, git
// refs and URLs.
func NewULID(t time.Time, r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := io.ReadFull(r, b[6:]); err != nil {
		panic("writ: reading randomness: " + err.Error())
	}
	var out [26]byte
	// 128 bits in 26 base32 digits: the first digit holds the top 3 bits.
	var acc uint64
	var bits uint
	j := 25
	for i := 15; i >= 0; i-- {
		acc |= uint64(b[i]) << bits
		bits += 8
		for bits >= 5 && j >= 0 {
			out[j] = crockford[acc&31]
			acc >>= 5
			bits -= 5
			j--
		}
	}
	out[0] = crockford[acc&7]
	return string(out[:])
}

// ParseULID checks that s is a lowercase ULID and returns the time it
// encodes.
func ParseULID(s string) (time.Time, error) {
	if len(s) != 26 {
		return time.Time{}, fmt.Errorf("ulid %q: want 26 characters, got %d", s, len(s))
	}
	if s[0] > '7' {
		return time.Time{}, fmt.Errorf("ulid %q: overflows 128 bits", s)
	}
	var ms uint64
	for i := 0; i < 26; i++ {
		v := strings.IndexByte(crockford, s[i])
		if v < 0 {
			return time.Time{}, fmt.Errorf("ulid %q: %q is not a lowercase Crockford base32 digit", s, s[i])
		}
		if i < 10 {
			ms = ms<<5 | uint64(v)
		}
	}
	return time.UnixMilli(int64(ms)).UTC(), nil
}

// RunID identifies a run: a lowercase ULID.
type RunID string

// ParseRunID validates s as a run id.
func ParseRunID(s string) (RunID, error) {
	if _, err := ParseULID(s); err != nil {
		return "", &Error{Kind: KindInvalid, Code: "invalid_run_id", Message: err.Error()}
	}
	return RunID(s), nil
}
