package server

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/sqlstore"
)

// The audit log's stored tree, re-derived from the leaves in the
// background (docs/design.md §4.6): once at start, every
// auditTreeInterval, and at once when a proof fails its self-check. Damage
// is an alert event, a /readyz problem while it lasts, and repaired when
// the signed checkpoints prove the right values.

// auditTreeInterval is how long the tree check waits between two runs
// when nothing asks for one sooner.
const auditTreeInterval = time.Hour

// auditTreeMinGap is the least time between two checks asked for by
// failed proofs or integrator passes, so damage that cannot be repaired
// does not make every pass re-read the whole log.
const auditTreeMinGap = time.Minute

// auditTreeHealth names the /readyz problem of a damaged tree.
const auditTreeHealth = "audit_tree"

// auditTreeHook, when set, runs before each check (stage "check") and,
// after a check reported repairable damage (alert recorded, /readyz
// failing), before the repair (stage "repair"): tests hold the server in
// those states to observe them. nil in production.
var auditTreeHook func(ctx context.Context, stage string)

// auditTreeLoop runs the tree check until ctx is done.
func (s *Server) auditTreeLoop(ctx context.Context) error {
	var alerted string // the damage last alerted that no repair undid
	wanted := s.audit.TreeCheckWanted()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wanted:
			t.Stop()
			s.suspectAuditTree(alerted)
		}
		last := time.Now()
		if s.checkAuditTree(ctx, &alerted) {
			t.Reset(0) // more to repair
			continue
		}
		t.Reset(auditTreeInterval)
		// Checks asked for during the check, or within the gap after it,
		// run when the gap ends; /readyz says so meanwhile.
		gap := time.NewTimer(time.Until(last.Add(auditTreeMinGap)))
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				gap.Stop()
				return nil
			case <-gap.C:
				waiting = false
			case <-wanted:
				s.suspectAuditTree(alerted)
				t.Reset(0)
			}
		}
	}
}

// suspectAuditTree makes /readyz say so when a proof failed its
// self-check and the check that will find out why has not run yet; the
// check's own report replaces it. Known damage no repair undoes keeps its
// message.
func (s *Server) suspectAuditTree(alerted string) {
	if alerted == "" && s.audit.Damaged() {
		s.health.set(auditTreeHealth, "an audit log proof failed its self-check against the signed checkpoint; "+
			"re-deriving the stored tree from the leaves — proofs are computed from the leaves meanwhile")
	}
}

// checkAuditTree runs one check and acts on its report; it returns true
// when there is more to repair at once.
func (s *Server) checkAuditTree(ctx context.Context, alerted *string) bool {
	if hook := auditTreeHook; hook != nil {
		hook(ctx, "check")
	}
	rep, err := s.audit.CheckTree(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "audit log tree check", slog.Any("error", err))
		}
		return false
	}
	if !rep.Damaged() {
		s.health.clear(auditTreeHealth)
		*alerted = ""
		s.log.DebugContext(ctx, "audit log tree checked", slog.Int64("size", rep.Size))
		return false
	}
	msg := rep.Message()
	code := auditlog.AlertTreeDamaged
	ready := msg
	if rep.Unrepairable() {
		code = auditlog.AlertEntriesAltered
	} else {
		ready = "audit log tree hashes damaged at " + strconv.Itoa(rep.Hashes+rep.Leaves) +
			" places; repairing — proofs are computed from the leaves meanwhile"
	}
	s.health.set(auditTreeHealth, ready)
	s.log.ErrorContext(ctx, "audit log tree damaged", slog.String("code", code), slog.String("message", msg))
	var alertID string
	if msg != *alerted {
		details := map[string]any{"message": msg, "code": code, "size": rep.Size}
		if rep.Hashes > 0 {
			details["hashes"], details["hashIndexes"] = rep.Hashes, rep.HashIndexes
		}
		if rep.Leaves > 0 {
			details["leaves"], details["leafEntries"] = rep.Leaves, rep.LeafEntries
		}
		if rep.Altered > 0 {
			details["altered"], details["alteredEntries"] = rep.Altered, rep.AlteredEntries
		}
		if rep.Unreproduced > 0 {
			details["unreproduced"], details["firstUnreproduced"] = rep.Unreproduced, rep.FirstUnreproduced
		}
		alert := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Details: details}
		if err := s.store.AppendEvent(ctx, alert); err != nil {
			s.log.ErrorContext(ctx, "recording the audit tree alert", slog.Any("error", err))
		}
		alertID = alert.ID
	}
	if rep.Repairable() == 0 {
		*alerted = msg
		return false
	}
	if hook := auditTreeHook; hook != nil {
		hook(ctx, "repair")
	}
	n, err := s.audit.RepairTree(ctx, rep)
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "audit log tree repair", slog.Any("error", err))
		}
		return false
	}
	done := &writ.Event{Type: auditlog.EventTreeRepaired, Actor: writ.ActorSystem, Details: map[string]any{
		"alert": alertID, "size": rep.Size, "repairs": rep.Repairable(), "rows": n,
	}}
	if err := s.store.AppendEvent(ctx, done); err != nil {
		s.log.ErrorContext(ctx, "recording the audit tree repair", slog.Any("error", err))
	}
	s.log.WarnContext(ctx, "audit log tree repaired", slog.Int("rows", n), slog.Bool("more", rep.More))
	if rep.More {
		return true
	}
	if rep.Unrepairable() {
		*alerted = msg
		return false
	}
	s.health.clear(auditTreeHealth)
	*alerted = ""
	return false
}

// The SQL store as the log's auditlog.TreeStore.

func (a auditStore) LogLeaves(ctx context.Context, start, end int64, bodies bool) ([]auditlog.LoggedLeaf, error) {
	ls, err := a.db.LogLeaves(ctx, start, end, bodies)
	if err != nil {
		return nil, err
	}
	out := make([]auditlog.LoggedLeaf, len(ls))
	for i, e := range ls {
		out[i] = auditlog.LoggedLeaf{Seq: e.Seq, Leaf: e.Leaf, Body: e.Body}
	}
	return out, nil
}

func (a auditStore) HashRange(ctx context.Context, start, end int64) ([]auditlog.IndexedHash, error) {
	hs, err := a.db.LogHashRange(ctx, start, end)
	if err != nil {
		return nil, err
	}
	out := make([]auditlog.IndexedHash, len(hs))
	for i, h := range hs {
		out[i] = auditlog.IndexedHash{Index: h.Index, Hash: h.Hash}
	}
	return out, nil
}

func (a auditStore) SignedRoots(ctx context.Context, after, upto int64) ([]auditlog.SignedRoot, error) {
	rs, err := a.db.CheckpointRoots(ctx, after, upto)
	if err != nil {
		return nil, err
	}
	out := make([]auditlog.SignedRoot, len(rs))
	for i, r := range rs {
		out[i] = auditlog.SignedRoot{Size: r.Size, Root: r.Root}
	}
	return out, nil
}

func (a auditStore) RepairLog(ctx context.Context, hashes []auditlog.HashRepair, leaves []auditlog.LeafRepair) (int, error) {
	hs := make([]sqlstore.LogHashRepair, len(hashes))
	for i, r := range hashes {
		hs[i] = sqlstore.LogHashRepair{Index: r.Index, New: r.New}
		if r.Old != nil {
			old := [32]byte(*r.Old)
			hs[i].Old = &old
		}
	}
	ls := make([]sqlstore.LogLeafRepair, len(leaves))
	for i, r := range leaves {
		ls[i] = sqlstore.LogLeafRepair{Seq: r.Seq, Old: r.Old, New: r.New}
	}
	return a.db.RepairLog(ctx, hs, ls)
}
