package auditlog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a SHA-256 tree hash: a leaf hash, an interior node or a root. It
// is tlog's hash type, so values pass to and from tlog unchanged.
type Hash = tlog.Hash

// LeafHash returns the leaf hash of an entry whose stored bytes are body:
// SHA-256(0x00 || body), as in RFC 6962 §2.1.
func LeafHash(body []byte) Hash { return tlog.RecordHash(body) }

// emptyRoot is the root of the empty tree, SHA-256 of the empty string
// (RFC 6962 §2.1).
var emptyRoot, _ = tlog.TreeHash(0, nil)

// Checkpoint is a signed tree head in the C2SP tlog-checkpoint format
// (https://c2sp.org/tlog-checkpoint): the origin line, the tree size in
// decimal, the root hash in base64, no extension lines, then the
// signed-note signatures. A Checkpoint value holds the text only; [Sign]
// and [OpenCheckpoint] add and check the signatures.
type Checkpoint struct {
	Origin string // the log's identity, "<trust-domain>/audit"
	Size   int64  // the number of entries the tree holds
	Root   Hash   // the RFC 6962 root of those entries
}

// Text returns the checkpoint's note text: "<origin>\n<size>\n<base64
// root>\n".
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// String returns the checkpoint in one line, for messages.
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s@%d:%s", c.Origin, c.Size, c.Root)
}

// Sign returns the signed note of c, signed by s: c.Text(), a blank line
// and the signature line.
func Sign(c Checkpoint, s note.Signer) ([]byte, error) {
	if s == nil {
		return nil, errors.New("audit log: sign checkpoint: no signer")
	}
	if err := checkOrigin(c.Origin); err != nil {
		return nil, fmt.Errorf("audit log: sign checkpoint: %w", err)
	}
	if c.Size < 0 {
		return nil, fmt.Errorf("audit log: sign checkpoint: negative size %d", c.Size)
	}
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		return nil, fmt.Errorf("audit log: sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint verifies the signed checkpoint note msg with v, the
// verifier of the log key, and parses it. It wants the origin line to be
// expectedOrigin, which must not be empty.
//
// A note that is not signed by v's key, whose signature by that key does
// not verify, or whose origin is another log's yields a [*VerifyError]
// (errors.As finds it). A note that is not a well-formed signed note, or
// whose text is not exactly a checkpoint — three lines, a canonical
// decimal size, a base64 SHA-256 root, no extension lines — yields a plain
// error saying what is wrong. Signatures by other keys (cosignatures) are
// ignored.
func OpenCheckpoint(msg []byte, v note.Verifier, expectedOrigin string) (Checkpoint, error) {
	if v == nil {
		return Checkpoint{}, errors.New("audit log: open checkpoint: no verifier (the log's public key)")
	}
	if expectedOrigin == "" {
		return Checkpoint{}, errors.New("audit log: open checkpoint: no expected origin")
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, &VerifyError{Index: -1, Reason: fmt.Sprintf("checkpoint is not signed by the log key %s+%08x", v.Name(), v.KeyHash()), cause: err}
		case errors.As(err, &invalid):
			return Checkpoint{}, &VerifyError{Index: -1, Reason: fmt.Sprintf("checkpoint signature by the log key %s+%08x does not verify", v.Name(), v.KeyHash()), cause: err}
		}
		return Checkpoint{}, fmt.Errorf("audit log: open checkpoint: %w", err)
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit log: open checkpoint: %w", err)
	}
	if c.Origin != expectedOrigin {
		return Checkpoint{}, &VerifyError{Index: -1, Reason: fmt.Sprintf("checkpoint is for log %q, not %q", c.Origin, expectedOrigin)}
	}
	return c, nil
}

// parseCheckpoint parses a checkpoint's note text strictly: exactly
// "<origin>\n<size>\n<root>\n". It does not look at signatures.
func parseCheckpoint(text string) (Checkpoint, error) {
	bad := func(format string, args ...any) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: "+format, args...)
	}
	lines := strings.Split(text, "\n")
	switch {
	case len(lines) < 4 || lines[len(lines)-1] != "":
		return bad("want three lines (origin, size, root hash), each ending in a newline")
	case len(lines) > 4:
		return bad("%d lines after the root hash; writ checkpoints have no extension lines", len(lines)-4)
	}
	origin, sizeText, rootText := lines[0], lines[1], lines[2]
	if err := checkOrigin(origin); err != nil {
		return bad("%v", err)
	}
	size, err := parseSize(sizeText)
	if err != nil {
		return bad("%v", err)
	}
	root, err := parseRoot(rootText)
	if err != nil {
		return bad("%v", err)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// checkOrigin checks an origin line: non-empty UTF-8 without control
// characters (the signed-note format allows none in a line).
func checkOrigin(origin string) error {
	if origin == "" {
		return errors.New("empty origin")
	}
	if !utf8.ValidString(origin) {
		return errors.New("origin is not valid UTF-8")
	}
	for _, r := range origin {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("origin %q contains a control character", origin)
		}
	}
	return nil
}

// parseSize parses a tree size: ASCII decimal digits, no sign, no leading
// zeros (except "0" itself), within int64.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty tree size")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("tree size %q is not a decimal number", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("tree size %q has a leading zero", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tree size %q is out of range", s)
	}
	return n, nil
}

// parseRoot parses a root hash: the canonical standard base64 of exactly
// 32 bytes.
func parseRoot(s string) (Hash, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return Hash{}, fmt.Errorf("root hash %q is not standard base64", s)
	}
	if len(b) != tlog.HashSize {
		return Hash{}, fmt.Errorf("root hash is %d bytes, want %d", len(b), tlog.HashSize)
	}
	var h Hash
	copy(h[:], b)
	if base64.StdEncoding.EncodeToString(h[:]) != s {
		return Hash{}, fmt.Errorf("root hash %q is not canonical base64", s)
	}
	return h, nil
}
