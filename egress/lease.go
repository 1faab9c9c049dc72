package egress

import (
	"context"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

// LeaseSource is the broker's backend for egress leases: the broker
// issues them itself ([broker.Broker] handles kind "egress" without a
// backend call), and revoking needs no outside call either — the proxy
// stops accepting the credential the moment its lease is revoked. The
// source exists so the revoker knows the kind.
type LeaseSource struct{}

var _ broker.Source = LeaseSource{}

// Issue is never called: the broker issues egress leases itself.
func (LeaseSource) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	return nil, writ.Errorf(writ.KindInvalid, "invalid_kind", "egress leases are issued by the broker itself")
}

// Revoke does nothing outside writ: the revoked lease is the revocation.
func (LeaseSource) Revoke(ctx context.Context, lease *writ.Lease, handle []byte) error { return nil }
