package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder/gate"
)

// attestCursor is the outbox cursor of the run attestation queue: every
// run end event after it still has to be attested. It lives with the
// webhook cursors (a position in the outbox, moved forward only), so the
// queue is durable — a restart resumes where signing stopped — and needs
// no table of its own.
const attestCursor = "attest:runs"

// attestLoop signs run attestations. It runs on the replica that holds the
// sequencer lock (as the webhook notifier does), so one replica signs. It
// walks the outbox after its cursor; at each run end event it waits until
// the event is in a signed checkpoint, then signs the run's attestation
// (with the checkpoint and the inclusion proof of that event), records it
// as an attestation.signed event and moves the cursor past it.
func (s *Server) attestLoop(ctx context.Context) {
	for {
		busy, pending, err := s.attestBatch(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "run attestations", slog.Any("error", err))
		}
		wait := time.Second
		switch {
		case busy && err == nil:
			wait = 0
		case pending:
			wait = 200 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

var errNotYetLogged = errors.New("not yet in a signed checkpoint")

// attestBatch handles up to 200 events after the cursor; busy reports a
// full batch (more may follow at once), pending a run end not yet in a
// signed checkpoint.
func (s *Server) attestBatch(ctx context.Context) (busy, pending bool, err error) {
	pos, err := s.store.NotifyCursor(ctx, attestCursor)
	if err != nil {
		return false, false, err
	}
	evs, err := s.store.Events(ctx, pos, 200)
	if err != nil {
		return false, false, err
	}
	done := pos
	defer func() {
		if done > pos {
			if e := s.store.SetNotifyCursor(context.WithoutCancel(ctx), attestCursor, done); e != nil && err == nil {
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
			if err := s.attestRun(ctx, e.Run, e.ID); err != nil {
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
func (s *Server) attestRun(ctx context.Context, id writ.RunID, endID string) error {
	end, err := s.store.EntryByID(ctx, endID)
	if err != nil {
		return err
	}
	if end.Seq < 0 {
		return errNotYetLogged
	}
	cp, note, err := s.audit.Latest(ctx)
	if err != nil {
		return err
	}
	if cp.Size <= end.Seq {
		return errNotYetLogged
	}
	run, err := s.store.GetRun(ctx, id)
	if err != nil {
		return err
	}
	es, err := s.store.RunEntries(ctx, id)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(es, func(e writ.LogEntry) bool { return e.Type == attest.EventSigned }) {
		return nil // signed before a restart, or by the previous sequencer
	}
	proof, err := s.audit.InclusionProof(ctx, end.Seq, cp.Size)
	if err != nil {
		return err
	}
	p := gate.RunPredicate(run, es, s.cfg.TrustDomain)
	p.LogProof = attest.LogProof{Index: end.Seq, Size: cp.Size, Entry: end.Body, Checkpoint: string(note)}
	for _, h := range proof {
		p.LogProof.Proof = append(p.LogProof.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	st := &attest.Statement{Subject: attest.RunSubjects(p), PredicateType: attest.PredicateRun, Predicate: p}
	env, err := attest.Sign(st, s.keys.Attest)
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
	if err := s.store.AppendEvent(ctx, ev); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "run attested", slog.String("run", string(id)), slog.Int("subjects", len(st.Subject)))
	return nil
}

// be encoded, which a loaded P-256 key always can).
func attestPublicPEM(k *Keys) []byte {
	b, _ := attest.MarshalPublicKey(&k.Attest.PublicKey)
	return b
}
