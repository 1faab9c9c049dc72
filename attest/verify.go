package attest

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/writ-dev/writ"
)

// LogChecker checks a [LogProof] against writ's audit log key (for
// instance with auditlog.CheckEntryProof) and returns an error when the
// entry is not in the log its signed checkpoint commits to.
type LogChecker func(p *LogProof) error

// VerifyRun checks a run attestation: the DSSE signature with the attest
// key pub, the statement and predicate types, that the log proof is of
// the run's end event (run.ended, run.killed or run.expired of this run)
// and verifies with checkLog, and that the subjects are exactly the
// commits the predicate says the run pushed (or, for a run that pushed
// none, the SHA-256 of its end event).
func VerifyRun(env []byte, pub *ecdsa.PublicKey, checkLog LogChecker) (*Statement, *RunPredicate, error) {
	st, payload, err := Verify(env, pub)
	if err != nil {
		return nil, nil, err
	}
	if st.PredicateType != PredicateRun {
		return nil, nil, fmt.Errorf("attest: predicate type %q, want %s", st.PredicateType, PredicateRun)
	}
	var raw struct {
		Predicate json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, nil, fmt.Errorf("attest: %w", err)
	}
	var p RunPredicate
	dec := json.NewDecoder(bytes.NewReader(raw.Predicate))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, nil, fmt.Errorf("attest: run predicate: %w", err)
	}
	if checkLog == nil {
		return nil, nil, errors.New("attest: no log checker: the end event's inclusion proof must be verified")
	}
	if err := checkLog(&p.LogProof); err != nil {
		return nil, nil, err
	}
	var ev writ.Event
	if err := json.Unmarshal(p.LogProof.Entry, &ev); err != nil {
		return nil, nil, fmt.Errorf("attest: the logged entry is not an event: %w", err)
	}
	switch ev.Type {
	case writ.EventRunEnded, writ.EventRunKilled, writ.EventRunExpired:
	default:
		return nil, nil, fmt.Errorf("attest: the logged entry is a %q event, not the run's end", ev.Type)
	}
	if string(ev.Run) != p.Run {
		return nil, nil, fmt.Errorf("attest: the logged end event is of run %q, not %q", ev.Run, p.Run)
	}
	if ev.Type != writ.RunState(p.Witnessed.EndState).EventType() {
		return nil, nil, fmt.Errorf("attest: the logged end event is %s but the predicate says the run %s", ev.Type, p.Witnessed.EndState)
	}
	want := RunSubjects(&p)
	if !slices.EqualFunc(st.Subject, want, func(a, b Subject) bool {
		return a.Name == b.Name && len(a.Digest) == len(b.Digest) && a.Digest[DigestGitCommit] == b.Digest[DigestGitCommit] && a.Digest["sha256"] == b.Digest["sha256"]
	}) {
		return nil, nil, errors.New("attest: the subjects are not the commits the run pushed")
	}
	return st, &p, nil
}

// RunSubjects returns the subjects of a run attestation: every commit the
// run pushed, once, in push order, named repo@commit; a run that pushed
// nothing is attested under the SHA-256 of its logged end event.
func RunSubjects(p *RunPredicate) []Subject {
	var out []Subject
	seen := map[string]bool{}
	for _, push := range p.Witnessed.Pushes {
		for _, c := range push.Commits {
			if seen[push.Repo+"@"+c] {
				continue
			}
			seen[push.Repo+"@"+c] = true
			out = append(out, Subject{Name: push.Repo + "@" + c, Digest: map[string]string{DigestGitCommit: c}})
		}
	}
	if len(out) == 0 {
		out = []Subject{{Name: "run:" + p.Run, Digest: map[string]string{"sha256": sha256Hex(p.LogProof.Entry)}}}
	}
	return out
}
