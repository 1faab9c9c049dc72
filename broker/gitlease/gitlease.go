// Package gitlease is the broker's git backend: opaque credentials for
// writ's own git gateway (docs/design.md §4.2). The user is the run id; the
// password is "writ_git_" + the lease's ULID + "_" + 32 random bytes in
// base64url. Only the SHA-256 of the random part is stored (the lease's
// verifier), and the gateway checks a presented password against it with
// [broker.Broker.CheckGit]. Revoking needs no outside call: writ stops
// accepting the password the moment the lease is revoked.
//
// Part of the writ server; no API stability.
package gitlease

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

// Source issues git credentials.
type Source struct{}

var _ broker.Source = Source{}

// Issue makes a fresh random credential for one repository.
func (Source) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	ulid, ok := strings.CutPrefix(req.Lease, "lse_")
	if !ok || len(ulid) != 26 {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_lease", "lease id %q is not lse_<ulid>", req.Lease)
	}
	for _, p := range req.Permissions {
		if p != "read" && p != "write" {
			return nil, writ.Errorf(writ.KindInvalid, "invalid_permissions", "git credential permission %q: want read or write", p)
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return &broker.Issued{
		Credential: writ.Credential{
			"username":  string(req.Run.ID),
			"password":  "writ_git_" + ulid + "_" + secret,
			"expiresAt": req.ExpiresAt.UTC().Format(time.RFC3339),
		},
		Verifier: sum[:],
		Details:  map[string]string{"repo": req.Target},
	}, nil
}

// Revoke does nothing outside writ: the revoked lease is the revocation.
func (Source) Revoke(ctx context.Context, lease *writ.Lease, handle []byte) error { return nil }

// Local reports that issuing touches nothing outside writ.
func (Source) Local() bool { return true }
