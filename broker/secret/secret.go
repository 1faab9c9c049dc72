// Package secret is the broker's backend for static secrets: values an
// admin stores (writ secret put), sealed with the broker key before they
// reach the store (AES-256-GCM, bound to environment, name and version),
// and handed to a run only through a lease that a human approved. A
// static secret outlives the lease that handed it out, so revoking the
// lease cannot take it back: the lease and the run's record mark it
// static, and the remedy for a leak is rotating the secret.
//
// Part of the writ server; no API stability.
package secret

import (
	"context"
	"fmt"
	"strings"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

// Store keeps sealed secrets.
type Store interface {
	GetSecret(ctx context.Context, env, name string) (*writ.Secret, error)
	PutSecret(ctx context.Context, env, name, by string, sealFor func(version int) ([]byte, error), ev *writ.Event) (int, error)
	ListSecrets(ctx context.Context) ([]*writ.Secret, error)
	DeleteSecret(ctx context.Context, env, name string, ev *writ.Event) error
}

// MaxValue is the largest secret value.
const MaxValue = 64 << 10

// Source issues leases on static secrets and manages them.
type Source struct {
	store  Store
	sealer *broker.Sealer
}

var _ broker.Source = (*Source)(nil)

// New returns a source keeping secrets in store, sealed by sealer.
func New(store Store, sealer *broker.Sealer) (*Source, error) {
	if store == nil || sealer == nil {
		return nil, fmt.Errorf("secret: a store and a broker key are required")
	}
	return &Source{store: store, sealer: sealer}, nil
}

func binding(env, name string, version int) []byte {
	return fmt.Appendf(nil, "writ-secret\x00%s\x00%s\x00%d", env, name, version)
}

// Split parses a secret's full name, environment/name.
func Split(full string) (env, name string, err error) {
	env, name, ok := strings.Cut(full, "/")
	if !ok || !broker.ValidSecretName(env, name) {
		return "", "", writ.Errorf(writ.KindInvalid, "invalid_secret_name", "secret %q: want environment/name of lowercase letters, digits, '.', '_' and '-', such as production/stripe-key", full)
	}
	return env, name, nil
}

// Issue opens the secret named by the target (environment/name).
func (s *Source) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	env, name, err := Split(req.Target)
	if err != nil {
		return nil, err
	}
	for _, p := range req.Permissions {
		if p != "read" {
			return nil, writ.Errorf(writ.KindInvalid, "invalid_permissions", "a static secret can only be read, not %q", p)
		}
	}
	plain, version, err := s.open(ctx, env, name)
	if err != nil {
		return nil, err
	}
	return &broker.Issued{
		Credential: writ.Credential{"value": string(plain)},
		Static:     true,
		Details:    map[string]string{"secret": env + "/" + name, "version": fmt.Sprint(version)},
	}, nil
}

// Revoke has nothing to take back: the value is static.
func (s *Source) Revoke(ctx context.Context, lease *writ.Lease, handle []byte) error { return nil }

// Put stores value as secret env/name (a new version when it exists), by
// actor, and returns the version.
func (s *Source) Put(ctx context.Context, full string, value []byte, actor string) (int, error) {
	env, name, err := Split(full)
	if err != nil {
		return 0, err
	}
	if len(value) == 0 || len(value) > MaxValue {
		return 0, writ.Errorf(writ.KindInvalid, "invalid_secret_value", "a secret's value is 1 to %d bytes", MaxValue)
	}
	ev := &writ.Event{Type: writ.EventSecretChanged, Actor: actor, Subject: env + "/" + name,
		Details: map[string]any{"op": "put", "environment": env, "name": name}}
	return s.store.PutSecret(ctx, env, name, actor, func(version int) ([]byte, error) {
		return s.sealer.Seal(value, binding(env, name, version))
	}, ev)
}

// Delete removes secret env/name, by actor.
func (s *Source) Delete(ctx context.Context, full, actor string) error {
	env, name, err := Split(full)
	if err != nil {
		return err
	}
	ev := &writ.Event{Type: writ.EventSecretChanged, Actor: actor, Subject: env + "/" + name,
		Details: map[string]any{"op": "delete", "environment": env, "name": name}}
	return s.store.DeleteSecret(ctx, env, name, ev)
}

// List lists the secrets, names and versions only.
func (s *Source) List(ctx context.Context) ([]*writ.Secret, error) { return s.store.ListSecrets(ctx) }

// Local reports that issuing touches nothing outside writ (the value is
// unsealed from writ's own store).
func (s *Source) Local() bool { return true }

// Open unseals secret full (environment/name) for writ's own use — the
// credential writ itself presents to an upstream (an MCP server) — never
// for a run: runs get secrets only through approved leases.
func (s *Source) Open(ctx context.Context, full string) ([]byte, error) {
	env, name, err := Split(full)
	if err != nil {
		return nil, err
	}
	plain, _, err := s.open(ctx, env, name)
	return plain, err
}

// open unseals secret env/name and returns it with its version.
func (s *Source) open(ctx context.Context, env, name string) ([]byte, int, error) {
	sec, err := s.store.GetSecret(ctx, env, name)
	if err != nil {
		return nil, 0, err
	}
	plain, err := s.sealer.Open(sec.Sealed, binding(env, name, sec.Version))
	if err != nil {
		return nil, 0, fmt.Errorf("secret %s/%s: %w", env, name, err)
	}
	return plain, sec.Version, nil
}
