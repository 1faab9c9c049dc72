package auditlog_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ/auditlog"
)

func TestCheckpointRoundTrip(t *testing.T) {
	s, v := testKeys(t)
	for _, cp := range []auditlog.Checkpoint{
		{Origin: testOrigin, Size: 0, Root: auditlog.LeafHash(nil)},
		{Origin: testOrigin, Size: 1, Root: auditlog.LeafHash([]byte("x"))},
		{Origin: testOrigin, Size: 1<<63 - 1, Root: auditlog.Hash{0xff, 1, 2}},
	} {
		msg, err := auditlog.Sign(cp, s)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(msg), cp.Text()+"\n— "+testOrigin+" ") {
			t.Errorf("Sign(%v) = %q; want the text, a blank line and the signature line", cp, msg)
		}
		got, err := auditlog.OpenCheckpoint(msg, v, testOrigin)
		if err != nil {
			t.Fatalf("OpenCheckpoint(Sign(%v)) = %v", cp, err)
		}
		if got != cp {
			t.Errorf("OpenCheckpoint(Sign(%v)) = %v; want it back", cp, got)
		}
	}
}

func TestCheckpointText(t *testing.T) {
	cp := auditlog.Checkpoint{Origin: "example.com/behind-the-sofa", Size: 20852163}
	copy(cp.Root[:], mustB64(t, "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))
	// The example of https://c2sp.org/tlog-checkpoint.
	want := "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	if got := cp.Text(); got != want {
		t.Errorf("Text() = %q; want %q", got, want)
	}
	// And the spec's text opens (signed with our key, as only the log's
	// signature could be checked).
	s, v := otherKeys(t, "example.com/behind-the-sofa")
	msg, err := note.Sign(&note.Note{Text: want}, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auditlog.OpenCheckpoint(msg, v, "example.com/behind-the-sofa")
	if err != nil || got != cp {
		t.Errorf("OpenCheckpoint(spec example) = %v, %v; want %v", got, err, cp)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A checkpoint signed by any key other than the log's is refused, even
// when the forger uses the log's name.
func TestOpenCheckpointOtherKey(t *testing.T) {
	_, v := testKeys(t)
	cp := auditlog.Checkpoint{Origin: testOrigin, Size: 3, Root: auditlog.LeafHash([]byte("forged"))}
	for _, name := range []string{testOrigin, "attacker.example/audit"} {
		s, _ := otherKeys(t, name)
		msg, err := auditlog.Sign(cp, s)
		if err != nil {
			t.Fatal(err)
		}
		_, err = auditlog.OpenCheckpoint(msg, v, testOrigin)
		if ve := verifyErr(t, err); ve.Index != -1 || !strings.Contains(ve.Reason, "not signed by the log key") {
			t.Errorf("signed by another key named %q: error %v; want not signed by the log key", name, err)
		}
		var unverified *note.UnverifiedNoteError
		if !errors.As(err, &unverified) {
			t.Errorf("error %v does not unwrap to note.UnverifiedNoteError", err)
		}
	}
}

// A note whose text was changed after signing, or whose signature was
// changed, does not verify.
func TestOpenCheckpointBadSignature(t *testing.T) {
	s, v := testKeys(t)
	cp := auditlog.Checkpoint{Origin: testOrigin, Size: 10, Root: auditlog.LeafHash([]byte("r"))}
	msg, err := auditlog.Sign(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	// Change the size in the text: 10 → 11.
	edited := bytes.Replace(msg, []byte("\n10\n"), []byte("\n11\n"), 1)
	_, err = auditlog.OpenCheckpoint(edited, v, testOrigin)
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "does not verify") {
		t.Errorf("edited text: %v; want a signature that does not verify", err)
	}
	// Flip a bit of the signature (after its 4-byte key hash).
	i := bytes.LastIndexByte(msg, ' ') + 1
	raw := mustB64(t, strings.TrimSpace(string(msg[i:])))
	raw[10] ^= 1
	forged := append(slicesClone(msg[:i]), base64.StdEncoding.EncodeToString(raw)+"\n"...)
	_, err = auditlog.OpenCheckpoint(forged, v, testOrigin)
	verifyErr(t, err)
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func TestOpenCheckpointOriginMismatch(t *testing.T) {
	s, v := testKeys(t)
	msg, err := auditlog.Sign(auditlog.Checkpoint{Origin: "other.example/audit", Size: 1}, s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = auditlog.OpenCheckpoint(msg, v, testOrigin)
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, `"other.example/audit"`) {
		t.Errorf("origin mismatch: %v; want it named", err)
	}
	if _, err := auditlog.OpenCheckpoint(msg, v, ""); err == nil {
		t.Error("OpenCheckpoint with no expected origin passed")
	}
	if _, err := auditlog.OpenCheckpoint(msg, nil, testOrigin); err == nil {
		t.Error("OpenCheckpoint with no verifier passed")
	}
}

// Cosignatures by other keys (witnesses) are ignored, as the signed-note
// format requires.
func TestOpenCheckpointCosigned(t *testing.T) {
	s, v := testKeys(t)
	w, _ := otherKeys(t, "witness.example/w1")
	cp := auditlog.Checkpoint{Origin: testOrigin, Size: 5, Root: auditlog.LeafHash([]byte("r"))}
	msg, err := note.Sign(&note.Note{Text: cp.Text()}, s, w)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auditlog.OpenCheckpoint(msg, v, testOrigin)
	if err != nil || got != cp {
		t.Errorf("OpenCheckpoint(cosigned) = %v, %v; want %v", got, err, cp)
	}
}

// Texts that are not exactly a writ checkpoint are refused even when the
// log key signed them.
func TestOpenCheckpointMalformed(t *testing.T) {
	s, v := testKeys(t)
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct{ name, text string }{
		{"extension line", testOrigin + "\n1\n" + root + "\nextra\n"},
		{"two extension lines", testOrigin + "\n1\n" + root + "\na\nb\n"},
		{"no root", testOrigin + "\n1\n"},
		{"only origin", testOrigin + "\n"},
		{"leading zero", testOrigin + "\n01\n" + root + "\n"},
		{"zeros", testOrigin + "\n00\n" + root + "\n"},
		{"negative", testOrigin + "\n-1\n" + root + "\n"},
		{"plus sign", testOrigin + "\n+1\n" + root + "\n"},
		{"space", testOrigin + "\n 1\n" + root + "\n"},
		{"hex", testOrigin + "\n0x10\n" + root + "\n"},
		{"empty size", testOrigin + "\n\n" + root + "\n"},
		{"overflow", testOrigin + "\n9223372036854775808\n" + root + "\n"},
		{"root 31 bytes", testOrigin + "\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"},
		{"root 33 bytes", testOrigin + "\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n"},
		{"root unpadded", testOrigin + "\n1\n" + strings.TrimRight(root, "=") + "\n"},
		{"root url alphabet", testOrigin + "\n1\n" + "_-" + root[2:] + "\n"},
		{"root non-canonical", testOrigin + "\n1\n" + root[:42] + "B=\n"},
		{"root hex", testOrigin + "\n1\n" + strings.Repeat("00", 32) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := note.Sign(&note.Note{Text: tc.text}, s)
			if err != nil {
				t.Fatal(err)
			}
			_, err = auditlog.OpenCheckpoint(msg, v, testOrigin)
			if err == nil {
				t.Fatalf("OpenCheckpoint(%q) passed", tc.text)
			}
			if !strings.Contains(err.Error(), "malformed checkpoint") {
				t.Errorf("OpenCheckpoint(%q) = %v; want a malformed checkpoint error", tc.text, err)
			}
		})
	}
	// Not a signed note at all.
	for _, msg := range []string{"", "x", testOrigin + "\n1\n" + root + "\n", "\n\n— x y\n"} {
		if _, err := auditlog.OpenCheckpoint([]byte(msg), v, testOrigin); err == nil {
			t.Errorf("OpenCheckpoint(%q) passed", msg)
		}
	}
}

func TestSignRefuses(t *testing.T) {
	s, _ := testKeys(t)
	for _, cp := range []auditlog.Checkpoint{
		{Origin: "", Size: 1},
		{Origin: "a\nb", Size: 1},
		{Origin: "a\x00", Size: 1},
		{Origin: testOrigin, Size: -1},
	} {
		if msg, err := auditlog.Sign(cp, s); err == nil {
			t.Errorf("Sign(%q) = %q; want an error", cp.Text(), msg)
		}
	}
	if _, err := auditlog.Sign(auditlog.Checkpoint{Origin: testOrigin}, nil); err == nil {
		t.Error("Sign with a nil signer passed")
	}
}

// FuzzOpenCheckpoint: OpenCheckpoint never panics, and what it accepts is
// canonical — its Text is exactly the note's text, so no two accepted
// notes with different texts mean the same checkpoint.
func FuzzOpenCheckpoint(f *testing.F) {
	s, v := testKeys(f)
	for _, cp := range []auditlog.Checkpoint{
		{Origin: testOrigin, Size: 0, Root: auditlog.LeafHash(nil)},
		{Origin: testOrigin, Size: 12345, Root: auditlog.LeafHash([]byte("x"))},
	} {
		msg, err := auditlog.Sign(cp, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		f.Add([]byte(cp.Text()))
	}
	f.Add([]byte(testOrigin + "\n01\nAAAA\n\n— " + testOrigin + " AAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := auditlog.OpenCheckpoint(msg, v, testOrigin)
		if err != nil {
			return
		}
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil {
			t.Fatalf("OpenCheckpoint accepted what note.Open refuses: %v", err)
		}
		if n.Text != cp.Text() {
			t.Fatalf("accepted text %q parses to %v, whose text is %q", n.Text, cp, cp.Text())
		}
	})
}
