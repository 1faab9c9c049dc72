package approval_test

// Security review of the approval service (docs/design.md §4.5, docs/threat-model.md
// C-AP2): regressions for the checks a signed verdict must pass, against an
// in-memory store.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/trigger"
)

type reviewStore struct {
	mu        sync.Mutex
	approvals map[string]*writ.ApprovalRequest
	runs      map[writ.RunID]*writ.Run
	events    []*writ.Event
}

func (s *reviewStore) GetApproval(_ context.Context, id string) (*writ.ApprovalRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.approvals[id]
	if a == nil {
		return nil, writ.Errorf(writ.KindNotFound, "approval_not_found", "approval %s not found", id)
	}
	// As the SQL store does: the body goes through JSON.
	b, _ := json.Marshal(a)
	var out writ.ApprovalRequest
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *reviewStore) GetRun(_ context.Context, id writ.RunID) (*writ.Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.runs[id]
	if r == nil {
		return nil, writ.Errorf(writ.KindNotFound, "run_not_found", "run %s not found", id)
	}
	return r, nil
}

func (s *reviewStore) RecordGrant(_ context.Context, id string, g *writ.ApprovalGrant, expect int, state string, evs ...*writ.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.approvals[id]
	if a.State != writ.ApprovalPending || len(a.Grants) != expect {
		return writ.Errorf(writ.KindConflict, "approval_changed", "changed")
	}
	for _, x := range a.Grants {
		if x.Human == g.Human {
			return writ.Errorf(writ.KindConflict, "already_signed", "already signed")
		}
	}
	a.Grants = append(a.Grants, *g)
	a.State = state
	s.events = append(s.events, evs...)
	return nil
}

func (s *reviewStore) VoidApproval(_ context.Context, v writ.ApprovalVoid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.approvals[v.ID]; a != nil && (a.State == writ.ApprovalPending || a.State == writ.ApprovalApproved) {
		a.State = v.State
		s.events = append(s.events, v.Event)
	}
	return nil
}

func (s *reviewStore) ExpiredApprovals(context.Context, time.Time, int) ([]*writ.ApprovalRequest, error) {
	return nil, nil
}

func (s *reviewStore) AppendEvent(_ context.Context, ev *writ.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

type reviewRig struct {
	svc   *approval.Service
	store *reviewStore
	keys  map[string][]ed25519.PrivateKey
	apr   *writ.ApprovalRequest
}

// newReviewRig: run issued by alice; bob has two keys; carol one; all
// three are maintainers. The request needs count approvals.
func newReviewRig(t *testing.T, count int) *reviewRig {
	t.Helper()
	ring := trigger.NewKeyRing()
	rig := &reviewRig{keys: map[string][]ed25519.PrivateKey{}}
	humans := map[string]*writ.Signer{}
	for name, n := range map[string]int{"alice": 1, "bob": 2, "carol": 1} {
		humans[name] = &writ.Signer{Name: name, Kind: writ.SignerHuman, Groups: []string{"maintainers"}}
		for range n {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := ssh.NewPublicKey(k.Public())
			if _, err := ring.Add(name, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))); err != nil {
				t.Fatal(err)
			}
			rig.keys[name] = append(rig.keys[name], k)
		}
	}
	attestKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	run := &writ.Run{ID: "01m8apcax82vypz1psse843jm0", Issuer: "alice", State: writ.RunActive, Deadline: time.Now().Add(time.Hour)}
	rig.apr = &writ.ApprovalRequest{ID: "apr_01m8apcax82vypz1psse843jm1", Run: run.ID, SubjectKind: writ.SubjectCommit,
		SubjectDigest: "sha256:" + strings.Repeat("ab", 32),
		Subject:       map[string]any{"repo": "acme/api", "ref": "main", "base": "b", "head": "h", "diffDigest": "", "paths": []string{"a", "b"}},
		Group:         "maintainers", Count: count, State: writ.ApprovalPending, TriggerDigest: "sha256:t", PolicyDigest: "sha256:p",
		ExpiresAt: time.Now().Add(time.Hour).Round(0)}
	rig.store = &reviewStore{approvals: map[string]*writ.ApprovalRequest{rig.apr.ID: rig.apr}, runs: map[writ.RunID]*writ.Run{run.ID: run}}
	rig.svc = approval.New(approval.Config{Store: rig.store, Ring: ring, Humans: humans, Attest: attestKey,
		PolicyDigest: func() string { return "sha256:p" }})
	return rig
}

func human(name string) *writ.Principal {
	return &writ.Principal{Kind: writ.PrincipalHuman, Name: name, Groups: []string{"maintainers"}}
}

// submit signs name's statement with key i and submits it.
func (r *reviewRig) submit(t *testing.T, name string, i int, verdict string) (*writ.ApprovalRequest, error) {
	t.Helper()
	st, err := r.svc.Statement(context.Background(), human(name), r.apr.ID, verdict)
	if err != nil {
		t.Fatal(err)
	}
	env, err := trigger.SignDSSE(st, approval.PayloadType, r.keys[name][i])
	if err != nil {
		t.Fatal(err)
	}
	return r.svc.Submit(context.Background(), human(name), r.apr.ID, verdict, env)
}

// TestReviewSameHumanTwoKeys: a human with two configured keys counts
// once toward a two-of-M approval (regression, C-AP2).
func TestReviewSameHumanTwoKeys(t *testing.T) {
	r := newReviewRig(t, 2)
	if a, err := r.submit(t, "bob", 0, approval.Approve); err != nil || a.State != writ.ApprovalPending {
		t.Fatalf("bob, key 1: %+v %v", a, err)
	}
	if _, err := r.submit(t, "bob", 1, approval.Approve); writ.ErrorCode(err) != "already_signed" {
		t.Fatalf("bob, key 2: %v", err)
	}
	if a, err := r.submit(t, "carol", 0, approval.Approve); err != nil || a.State != writ.ApprovalApproved {
		t.Fatalf("carol: %+v %v", a, err)
	}
}

// TestReviewIssuerCannotDeny: separation of duties also holds for a
// denial, and for an issuer who is in the group (regression).
func TestReviewIssuerCannotApproveOrDeny(t *testing.T) {
	r := newReviewRig(t, 1)
	for _, v := range []string{approval.Approve, approval.Deny} {
		if _, err := r.submit(t, "alice", 0, v); writ.ErrorCode(err) != "separation_of_duties" {
			t.Fatalf("the issuer's %s: %v", v, err)
		}
	}
	if r.store.approvals[r.apr.ID].State != writ.ApprovalPending {
		t.Fatal("the request changed")
	}
}

// TestReviewCrossProtocolSignature: the statement bytes signed as another
// kind of document (a trigger's payload type, or an SSH signature in the
// trigger namespace) are refused: a signature a human made for one
// purpose is never an approval (regression).
func TestReviewCrossProtocolSignature(t *testing.T) {
	r := newReviewRig(t, 1)
	ctx := context.Background()
	st, err := r.svc.Statement(ctx, human("bob"), r.apr.ID, approval.Approve)
	if err != nil {
		t.Fatal(err)
	}
	dsse, err := trigger.SignDSSE(st, "application/vnd.writ.trigger.v1+json", r.keys["bob"][0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Submit(ctx, human("bob"), r.apr.ID, approval.Approve, dsse); err == nil {
		t.Fatal("a DSSE envelope of another payload type was accepted as an approval")
	}
	sshsig, err := trigger.SignSSH(st, "writ-trigger", r.keys["bob"][0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Submit(ctx, human("bob"), r.apr.ID, approval.Approve, sshsig); err == nil {
		t.Fatal("an SSH signature in another namespace was accepted as an approval")
	}
	good, err := trigger.SignSSH(st, approval.SSHNamespace, r.keys["bob"][0])
	if err != nil {
		t.Fatal(err)
	}
	if a, err := r.svc.Submit(ctx, human("bob"), r.apr.ID, approval.Approve, good); err != nil || a.State != writ.ApprovalApproved {
		t.Fatalf("the SSH form in the approval namespace: %+v %v", a, err)
	}
}

// TestReviewStatementStable: the statement of a request read back from
// the store (its subject through JSON) is the same bytes as the one built
// from the request as it was created, so a human's signature made on one
// replica verifies on another (regression).
func TestReviewStatementStable(t *testing.T) {
	r := newReviewRig(t, 1)
	direct, err := approval.StatementBytes(r.apr, approval.Approve, "bob")
	if err != nil {
		t.Fatal(err)
	}
	read, err := r.svc.Statement(context.Background(), human("bob"), r.apr.ID, approval.Approve)
	if err != nil {
		t.Fatal(err)
	}
	if string(direct) != string(read) {
		t.Fatalf("statement bytes differ:\n%s\n%s", direct, read)
	}
	if _, err := r.svc.Statement(context.Background(), &writ.Principal{Kind: writ.PrincipalRun, Run: "x"}, r.apr.ID, approval.Approve); writ.ErrorCode(err) != "human_only" {
		t.Fatalf("a run asks for a statement: %v", err)
	}
}
