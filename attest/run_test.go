package attest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/writ-dev/writ/attest"
)

func runPredicate(t testing.TB, entry string) *attest.RunPredicate {
	t.Helper()
	return &attest.RunPredicate{
		Run: "01jdaaaaaaaaaaaaaaaaaaaaaa",
		Witnessed: attest.RunWitnessed{EndState: "ended",
			Pushes: []attest.PushRef{{Repo: "acme/api", Commits: []string{strings.Repeat("c", 40), strings.Repeat("d", 40)}}}},
		LogProof: attest.LogProof{Index: 3, Size: 4, Entry: []byte(entry), Proof: []string{}, Checkpoint: "x"},
	}
}

const endEntry = `{"id":"e","time":"2026-01-01T00:00:00Z","type":"run.ended","run":"01jdaaaaaaaaaaaaaaaaaaaaaa"}`

// TestVerifyRun: VerifyRun accepts a well-formed run attestation and
// refuses one whose proof is of another event or run, whose end state
// disagrees with the logged event, whose subjects are not the pushed
// commits, whose log proof fails, or whose predicate type is another.
func TestVerifyRun(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ok := func(*attest.LogProof) error { return nil }
	sign := func(p *attest.RunPredicate, subj []attest.Subject, pt string) []byte {
		if subj == nil {
			subj = attest.RunSubjects(p)
		}
		env, err := attest.Sign(&attest.Statement{Subject: subj, PredicateType: pt, Predicate: p}, k)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	good := runPredicate(t, endEntry)
	st, p, err := attest.VerifyRun(sign(good, nil, attest.PredicateRun), &k.PublicKey, ok)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Subject) != 2 || st.Subject[1].Digest[attest.DigestGitCommit] != strings.Repeat("d", 40) || p.Run != good.Run {
		t.Fatalf("statement %+v", st)
	}
	otherRun := runPredicate(t, strings.Replace(endEntry, "01jdaaaaaaaaaaaaaaaaaaaaaa", "01jdbbbbbbbbbbbbbbbbbbbbbb", 1))
	notEnd := runPredicate(t, strings.Replace(endEntry, "run.ended", "run.started", 1))
	killed := runPredicate(t, endEntry)
	killed.Witnessed.EndState = "killed"
	for name, c := range map[string]struct {
		env   []byte
		check attest.LogChecker
		want  string
	}{
		"proof of another run":     {sign(otherRun, nil, attest.PredicateRun), ok, "not"},
		"proof of a non-end event": {sign(notEnd, nil, attest.PredicateRun), ok, "not the run's end"},
		"end state disagrees":      {sign(killed, nil, attest.PredicateRun), ok, "says the run killed"},
		"subjects not the pushes":  {sign(good, []attest.Subject{{Name: "x", Digest: map[string]string{"gitCommit": strings.Repeat("e", 40)}}}, attest.PredicateRun), ok, "subjects"},
		"one subject missing":      {sign(good, attest.RunSubjects(good)[:1], attest.PredicateRun), ok, "subjects"},
		"log proof fails":          {sign(good, nil, attest.PredicateRun), func(*attest.LogProof) error { return errors.New("bad proof") }, "bad proof"},
		"no log checker":           {sign(good, nil, attest.PredicateRun), nil, "no log checker"},
		"another predicate type":   {sign(good, nil, attest.PredicateApproval), ok, "predicate type"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := attest.VerifyRun(c.env, &k.PublicKey, c.check)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("VerifyRun: %v; want an error containing %q", err, c.want)
			}
		})
	}
}

// BenchmarkRunAttestation measures signing and verifying a run
// attestation (without the log proof check, which auditlog measures).
func BenchmarkRunAttestation(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := runPredicate(b, endEntry)
	st := &attest.Statement{Subject: attest.RunSubjects(p), PredicateType: attest.PredicateRun, Predicate: p}
	env, _ := attest.Sign(st, k)
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := attest.Sign(st, k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := attest.VerifyRun(env, &k.PublicKey, func(*attest.LogProof) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
