package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/writ-dev/writ"
)

// Lister is implemented by sources whose credentials can be listed where
// they live (PostgreSQL roles by writ's name prefix). After a rollback
// or a restore the store may have forgotten leases the outside system
// still honours; [Broker.SweepOrphans] finds them by listing.
type Lister interface {
	// Outstanding returns every credential the source made that still
	// exists, with the lease it was made for and the handle Revoke needs.
	Outstanding(ctx context.Context) ([]Outstanding, error)
}

// Outstanding is one credential a [Lister] found.
type Outstanding struct {
	Lease  string // the lease id the credential was made for
	Handle []byte // what Revoke needs
	Where  string // where it lives, for the record (a database, a role)
}

// SweepOrphans revokes every listed credential whose lease the store does
// not know: record is called first (the alert is written before the
// credential is dropped), then the source's Revoke. Credentials of leases
// the store knows are left to the revoker. It returns how many it
// revoked; a source that cannot be listed now is logged and skipped.
func (b *Broker) SweepOrphans(ctx context.Context, record func(ctx context.Context, ev *writ.Event) error) (int, error) {
	kinds := b.Kinds()
	n := 0
	var errs []error
	for _, kind := range kinds {
		l, ok := b.cfg.Sources[kind].(Lister)
		if !ok {
			continue
		}
		found, err := l.Outstanding(ctx)
		if err != nil {
			b.log.WarnContext(ctx, "cannot list outstanding credentials", slog.String("kind", kind), slog.Any("error", err))
			errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			continue
		}
		slices.SortFunc(found, func(a, b Outstanding) int { return strings.Compare(a.Lease, b.Lease) })
		for _, o := range found {
			_, err := b.cfg.Store.GetLease(ctx, o.Lease)
			if err == nil {
				continue
			}
			if writ.ErrorKind(err) != writ.KindNotFound {
				return n, fmt.Errorf("broker: sweep: lease %s: %w", o.Lease, err)
			}
			ev := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: o.Lease, Details: map[string]any{
				"code": "orphan_credential_revoked", "kind": kind, "lease": o.Lease, "where": o.Where,
				"message": fmt.Sprintf("a %s credential (%s) of lease %s exists but the store does not know the lease (a rollback or a restore forgot it): revoked", kind, o.Where, o.Lease)}}
			if err := record(ctx, ev); err != nil {
				return n, fmt.Errorf("broker: sweep: record the orphan %s: %w", o.Lease, err)
			}
			if err := b.cfg.Sources[kind].Revoke(ctx, &writ.Lease{ID: o.Lease, Kind: kind}, o.Handle); err != nil {
				errs = append(errs, fmt.Errorf("%s: revoke the orphan %s: %w", kind, o.Lease, err))
				continue
			}
			b.log.WarnContext(ctx, "revoked a credential the store does not know", slog.String("kind", kind), slog.String("lease", o.Lease), slog.String("where", o.Where))
			n++
		}
	}
	return n, errors.Join(errs...)
}
