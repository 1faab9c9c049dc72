package writ_test

import (
	"bytes"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// refULID encodes a ULID the slow, obvious way, independently of NewULID:
// the 128-bit number ms<<80 | random, written as 26 base-32 digits.
func refULID(t *testing.T, ms uint64, random []byte) string {
	t.Helper()
	if len(random) != 10 {
		t.Fatalf("refULID: %d random bytes, want 10", len(random))
	}
	n := new(big.Int).SetUint64(ms)
	n.Lsh(n, 80)
	n.Or(n, new(big.Int).SetBytes(random))
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz" // Crockford, lower case
	out := make([]byte, 26)
	thirtyTwo := big.NewInt(32)
	for i := 25; i >= 0; i-- {
		var d big.Int
		n.DivMod(n, thirtyTwo, &d)
		out[i] = alphabet[d.Int64()]
	}
	if n.Sign() != 0 {
		t.Fatalf("refULID: ms %d does not fit in 48 bits", ms)
	}
	return string(out)
}

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func TestNewULIDKnownAnswers(t *testing.T) {
	maxMS := uint64(1)<<48 - 1
	tests := []struct {
		name   string
		t      time.Time
		random []byte
		want   string // "" means: compare with refULID only
	}{
		{"zero", time.UnixMilli(0), make([]byte, 10), "00000000000000000000000000"},
		{"all ones", time.UnixMilli(int64(maxMS)), bytes.Repeat([]byte{0xff}, 10), "7zzzzzzzzzzzzzzzzzzzzzzzzz"},
		{"one ms, zero random", time.UnixMilli(1), make([]byte, 10), "00000000010000000000000000"},
		{"zero time, random 1", time.UnixMilli(0), append(make([]byte, 9), 1), "00000000000000000000000001"},
		{"design example time", time.Date(2026, 11, 25, 20, 0, 0, 123_000_000, time.UTC), seq(0, 10), ""},
		{"sub-millisecond is truncated", time.Date(2026, 11, 25, 20, 0, 0, 123_999_999, time.UTC), seq(0xf0, 10), ""},
		{"other zone, same instant", time.Date(2026, 11, 25, 21, 0, 0, 0, time.FixedZone("CET", 3600)), seq(0x10, 10), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writ.NewULID(tt.t, bytes.NewReader(tt.random))
			want := refULID(t, uint64(tt.t.UnixMilli()), tt.random)
			if tt.want != "" && want != tt.want {
				t.Fatalf("test is wrong: refULID = %q, table says %q", want, tt.want)
			}
			if got != want {
				t.Errorf("NewULID(%v, %x) = %q; want %q", tt.t, tt.random, got, want)
			}
			// The same inputs give the same output.
			if again := writ.NewULID(tt.t, bytes.NewReader(tt.random)); again != got {
				t.Errorf("NewULID is not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestNewULIDRoundTrip(t *testing.T) {
	times := []time.Time{
		time.UnixMilli(0),
		time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 25, 20, 0, 0, 987_654_321, time.FixedZone("X", -7*3600)),
		time.UnixMilli(1<<48 - 1), // the last millisecond a ULID can hold (year 10889)
	}
	for _, tm := range times {
		for _, r := range []struct {
			name string
			rnd  []byte // nil: crypto/rand
		}{
			{"crypto/rand", nil},
			{"fixed", seq(0xa0, 10)},
		} {
			var src io.Reader // a nil interface, not a nil *bytes.Reader
			if r.rnd != nil {
				src = bytes.NewReader(r.rnd)
			}
			id := writ.NewULID(tm, src)
			if len(id) != 26 {
				t.Errorf("NewULID(%v, %s) = %q: %d characters, want 26", tm, r.name, id, len(id))
			}
			if id != strings.ToLower(id) || strings.ContainsAny(id, "ilou") {
				t.Errorf("NewULID(%v, %s) = %q: not lowercase Crockford base32", tm, r.name, id)
			}
			got, err := writ.ParseULID(id)
			if err != nil {
				t.Errorf("ParseULID(NewULID(%v, %s) = %q): %v", tm, r.name, id, err)
				continue
			}
			want := tm.Truncate(time.Millisecond).UTC()
			if !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("ParseULID(%q) = %v; want %v (UTC)", id, got, want)
			}
		}
	}
}

func TestNewULIDRandom(t *testing.T) {
	now := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for range 1000 {
		id := writ.NewULID(now, nil)
		if seen[id] {
			t.Fatalf("NewULID repeated %q within one millisecond", id)
		}
		seen[id] = true
	}
}

// TestNewULIDOrder checks that ULIDs sort by time across milliseconds,
// whatever their random part: the extremes of randomness at adjacent
// milliseconds still sort by time.
func TestNewULIDOrder(t *testing.T) {
	base := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	hi, lo := bytes.Repeat([]byte{0xff}, 10), make([]byte, 10)
	prev := ""
	for i := range 2000 {
		tm := base.Add(time.Duration(i) * time.Millisecond)
		// Alternate the randomness so that "later, but smaller random"
		// follows "earlier, but larger random".
		rnd := lo
		if i%2 == 0 {
			rnd = hi
		}
		id := writ.NewULID(tm, bytes.NewReader(rnd))
		if prev != "" && id <= prev {
			t.Fatalf("NewULID at +%dms = %q sorts before or equal to the previous %q", i, id, prev)
		}
		prev = id
	}
	// Also with real randomness, across the seconds and years.
	a := writ.NewULID(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), nil)
	b := writ.NewULID(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), nil)
	if a >= b {
		t.Errorf("ULID of 2025 %q does not sort before ULID of 2026 %q", a, b)
	}
}

func TestParseULIDRefuses(t *testing.T) {
	valid := "01jd8x6k3m4n5p6q7r8s9t0v1w"
	if _, err := writ.ParseULID(valid); err != nil {
		t.Fatalf("ParseULID(%q) = %v; the table below starts from a valid ULID", valid, err)
	}
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"25 characters", valid[:25]},
		{"27 characters", valid + "0"},
		{"upper case", strings.ToUpper(valid)},
		{"one upper-case letter", "01JD8x6k3m4n5p6q7r8s9t0v1w"},
		{"letter i", "01jd8x6k3m4n5p6q7r8s9t0v1i"},
		{"letter l", "01jd8x6k3m4n5p6q7r8s9t0v1l"},
		{"letter o", "01jd8x6k3m4n5p6q7r8s9t0v1o"},
		{"letter u", "01jd8x6k3m4n5p6q7r8s9t0v1u"},
		{"overflows 128 bits", "8" + valid[1:]},
		{"overflows, letter first", "z" + valid[1:]},
		{"space", "01jd8x6k3m4n5p6q7r8s9t0v1 "},
		{"hyphen", "01jd8x6k3m-n5p6q7r8s9t0v1w"},
		{"NUL", "01jd8x6k3m4n5p6q7r8s9t0v1\x00"},
		{"non-ASCII, 26 bytes", "01jd8x6k3m4n5p6q7r8s9t0vé"},
		{"uuid", "0190f0a4-7b1c-7d2e-8f3a-4b5c6d7e8f90"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := writ.ParseULID(tt.in); err == nil {
				t.Errorf("ParseULID(%q) = %v, nil; want an error", tt.in, got)
			}
			id, err := writ.ParseRunID(tt.in)
			if err == nil {
				t.Fatalf("ParseRunID(%q) = %q, nil; want an error", tt.in, id)
			}
			var e *writ.Error
			if !errors.As(err, &e) || e.Kind != writ.KindInvalid || e.Code != "invalid_run_id" {
				t.Errorf("ParseRunID(%q) error = %#v; want a *writ.Error of kind invalid, code invalid_run_id", tt.in, err)
			}
		})
	}
}

func TestParseRunID(t *testing.T) {
	id := writ.NewULID(time.Now(), nil)
	got, err := writ.ParseRunID(id)
	if err != nil || got != writ.RunID(id) {
		t.Errorf("ParseRunID(%q) = %q, %v; want %q, nil", id, got, err, id)
	}
}
