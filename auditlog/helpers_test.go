package auditlog_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ/auditlog"
)

// The log key of the tests and examples: a throwaway Ed25519 key made with
// note.GenerateKey for origin "example.com/audit". Fixed, so that examples
// print the same signature every run.
const (
	testOrigin = "example.com/audit"
	testSkey   = "PRIVATE+KEY+example.com/audit+e0e09697+AfYnzQiFvXmw/F3EqfHXeIe76mlpGVhvcgNuFbsQwdlL"
	testVkey   = "example.com/audit+e0e09697+AQCEepZMA9FLYojszRZQ1+YaE1yAizVBT4fuj4XprYm0"
)

func testKeys(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	s, err := note.NewSigner(testSkey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(testVkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// otherKeys returns a fresh key pair with the log's name: an attacker's.
func otherKeys(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func newTestLog(t testing.TB, s auditlog.Store, maxBatch int) *auditlog.Log {
	t.Helper()
	signer, _ := testKeys(t)
	l, err := auditlog.New(auditlog.Config{Store: s, Signer: signer, Origin: testOrigin, MaxBatch: maxBatch})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// event returns the body of test event i: JSON as the store writes it,
// of varying length.
func event(i int) []byte {
	pad := make([]byte, i%37)
	for j := range pad {
		pad[j] = 'a' + byte((i+j)%26)
	}
	return fmt.Appendf(nil, `{"id":"ev_%08d","time":"2026-01-02T03:04:05Z","type":"decision","run":"run_%d","details":{"pad":%q}}`, i, i%13, pad)
}

func events(from, to int) [][]byte {
	out := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, event(i))
	}
	return out
}

// refTree is the independent implementation: transparency-dev/merkle's
// RFC 6962 hasher and compact ranges, fed with the same bytes.
type refTree struct {
	r     *compact.Range
	roots []auditlog.Hash // roots[n] is the root of the first n leaves
}

func newRefTree() *refTree {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	t := &refTree{r: rf.NewEmptyRange(0)}
	t.roots = append(t.roots, toHash(rfc6962.DefaultHasher.EmptyRoot()))
	return t
}

func (t *refTree) add(bodies ...[]byte) {
	for _, b := range bodies {
		if err := t.r.Append(rfc6962.DefaultHasher.HashLeaf(b), nil); err != nil {
			panic(err)
		}
		root, err := t.r.GetRootHash(nil)
		if err != nil {
			panic(err)
		}
		t.roots = append(t.roots, toHash(root))
	}
}

func toHash(b []byte) auditlog.Hash {
	var h auditlog.Hash
	if len(b) != len(h) {
		panic(fmt.Sprintf("hash of %d bytes", len(b)))
	}
	copy(h[:], b)
	return h
}

func toBytes[T ~[]auditlog.Hash](p T) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// openAll opens every signed note with the test key.
func openAll(t testing.TB, notes [][]byte) []auditlog.Checkpoint {
	t.Helper()
	_, v := testKeys(t)
	out := make([]auditlog.Checkpoint, len(notes))
	for i, n := range notes {
		cp, err := auditlog.OpenCheckpoint(n, v, testOrigin)
		if err != nil {
			t.Fatalf("stored checkpoint %d: %v", i, err)
		}
		out[i] = cp
	}
	return out
}

// latest opens the log's latest checkpoint.
func latest(t testing.TB, l *auditlog.Log) auditlog.Checkpoint {
	t.Helper()
	_, v := testKeys(t)
	msg, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := auditlog.OpenCheckpoint(msg, v, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// verifyErr returns err as a *VerifyError, failing the test if it is not
// one.
func verifyErr(t testing.TB, err error) *auditlog.VerifyError {
	t.Helper()
	if err == nil {
		t.Fatal("verification passed; want it to fail")
	}
	var ve *auditlog.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *VerifyError", err, err)
	}
	return ve
}
