package gate

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/auditlog"
	"golang.org/x/mod/sumdb/tlog"
)

// Cursor is the outbox cursor of the run attestation queue: every run end
// event after it still has to be attested. It lives with the webhook
// cursors (a position in the outbox, moved forward only), so the queue is
// durable — a restart resumes where signing stopped — and needs no table
// of its own.
const Cursor = "attest:runs"

// Outboxed is an event of the outbox as the attester walks it.
type Outboxed struct {
	Pos  int64
	ID   string
	Type string
	Run  writ.RunID
}

// AttesterStore is what the run attester reads and writes (package
// sqlstore, through an adapter of server's).
type AttesterStore interface {
	NotifyCursor(ctx context.Context, name string) (int64, error)
	SetNotifyCursor(ctx context.Context, name string, pos int64) error
	Outbox(ctx context.Context, after int64, limit int) ([]Outboxed, error)
	EntryByID(ctx context.Context, id string) (*writ.LogEntry, error)
	GetRun(ctx context.Context, id writ.RunID) (*writ.Run, error)
	RunEntries(ctx context.Context, run writ.RunID) ([]writ.LogEntry, error)
	AppendEvent(ctx context.Context, ev *writ.Event) error
}

// Log is the audit log's read side: its latest signed checkpoint and
// inclusion proofs (package auditlog).
type Log interface {
	Latest(ctx context.Context) (auditlog.Checkpoint, []byte, error)
	InclusionProof(ctx context.Context, index, size int64) (tlog.RecordProof, error)
}

// AttesterConfig holds a run attester's dependencies.
type AttesterConfig struct {
	Store       AttesterStore
	Log         Log
	Key         *ecdsa.PrivateKey // the attest key
	TrustDomain string
	Logger      *slog.Logger
}

// Attester signs run attestations (docs/attestations.md): at each run end
// event it waits until the event is in a signed checkpoint, then signs the
// run's attestation with the checkpoint and the inclusion proof of that
// event and records it as an attestation.signed event. One replica runs it
// (the one that sequences).
type Attester struct {
	cfg AttesterConfig
	log *slog.Logger
}

// NewAttester returns an attester over cfg.
func NewAttester(cfg AttesterConfig) *Attester {
	a := &Attester{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a
}

var errNotYetLogged = errors.New("not yet in a signed checkpoint")

// Batch signs the attestations of the runs that ended in up to 200 outbox
// events after its cursor, and moves the cursor past them; busy reports a
// full batch (more may follow at once), pending a run end not yet in a
// signed checkpoint.
func (a *Attester) Batch(ctx context.Context) (busy, pending bool, err error) {
	pos, err := a.cfg.Store.NotifyCursor(ctx, Cursor)
	if err != nil {
		return false, false, err
	}
	evs, err := a.cfg.Store.Outbox(ctx, pos, 200)
	if err != nil {
		return false, false, err
	}
	done := pos
	defer func() {
		if done > pos {
			if e := a.cfg.Store.SetNotifyCursor(context.WithoutCancel(ctx), Cursor, done); e != nil && err == nil {
				err = e
			}
		}
	}()
	for _, e := range evs {
		switch e.Type {
		case writ.EventRunEnded, writ.EventRunKilled, writ.EventRunExpired:
			if e.Run == "" {
				break
			}
			if err := a.attestRun(ctx, e.Run, e.ID); err != nil {
				if errors.Is(err, errNotYetLogged) {
					return false, true, nil
				}
				return false, false, fmt.Errorf("run %s: %w", e.Run, err)
			}
		}
		done = e.Pos
	}
	return len(evs) == 200, false, nil
}

// attestRun signs the attestation of run, whose end event is endID, unless
// it is already signed.
func (a *Attester) attestRun(ctx context.Context, id writ.RunID, endID string) error {
	end, err := a.cfg.Store.EntryByID(ctx, endID)
	if err != nil {
		return err
	}
	if end.Seq < 0 {
		return errNotYetLogged
	}
	cp, note, err := a.cfg.Log.Latest(ctx)
	if err != nil {
		return err
	}
	if cp.Size <= end.Seq {
		return errNotYetLogged
	}
	run, err := a.cfg.Store.GetRun(ctx, id)
	if err != nil {
		return err
	}
	es, err := a.cfg.Store.RunEntries(ctx, id)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(es, func(e writ.LogEntry) bool { return e.Type == attest.EventSigned }) {
		return nil // signed before a restart, or by the previous sequencer
	}
	proof, err := a.cfg.Log.InclusionProof(ctx, end.Seq, cp.Size)
	if err != nil {
		return err
	}
	p := RunPredicate(run, es, a.cfg.TrustDomain)
	p.LogProof = attest.LogProof{Index: end.Seq, Size: cp.Size, Entry: end.Body, Checkpoint: string(note)}
	for _, h := range proof {
		p.LogProof.Proof = append(p.LogProof.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	st := &attest.Statement{Subject: attest.RunSubjects(p), PredicateType: attest.PredicateRun, Predicate: p}
	env, err := attest.Sign(st, a.cfg.Key)
	if err != nil {
		return err
	}
	subjects := make([]map[string]string, len(st.Subject))
	for i, sub := range st.Subject {
		subjects[i] = sub.Digest
	}
	ev := &writ.Event{Type: attest.EventSigned, Run: id, Actor: writ.ActorSystem, Subject: "run:" + string(id),
		Details: map[string]any{"predicateType": attest.PredicateRun, "subjects": subjects, "endEvent": endID,
			"endIndex": end.Seq, "envelope": json.RawMessage(env)}}
	if err := a.cfg.Store.AppendEvent(ctx, ev); err != nil {
		return err
	}
	a.log.InfoContext(ctx, "run attested", slog.String("run", string(id)), slog.Int("subjects", len(st.Subject)))
	return nil
}
