// Package egresslease is the broker's backend for egress proxy leases
// (DESIGN.md §4.2): the broker issues them itself ([broker.Broker]
// handles kind "egress" without a backend call), and revoking needs no
// outside call either — the proxy stops accepting the credential the
// moment its lease is revoked. This source exists so the revoker knows
// the kind.
//
// Part of the writ server; no API stability.
package egresslease

import (
	"context"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

// Source revokes egress leases (a no-op outside writ).
type Source struct{}

var _ broker.Source = Source{}

// Issue is never called: the broker issues egress leases itself.
func (Source) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	return nil, writ.Errorf(writ.KindInvalid, "invalid_kind", "egress leases are issued by the broker itself")
}

// Revoke does nothing outside writ: the revoked lease is the revocation.
func (Source) Revoke(ctx context.Context, lease *writ.Lease, handle []byte) error { return nil }
