package server

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/policy"
)

// policyState loads the configured bundle, keeps the engine deciding with
// the last good one, and reloads the bundle directory when it changes.
type policyState struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	engine *policy.Engine
	events func(ctx context.Context, ev *writ.Event) error

	mu         sync.Mutex // one reload at a time
	lastDigest string     // of the files last tried (loaded or refused)
}

// PolicyData is the configuration handed to Rego as data.writ.config.
func PolicyData(cfg Config) map[string]any {
	d := decision.PolicyData(cfg.Profiles, cfg.Environments, cfg.Repos, cfg.Policy.Denials, cfg.Policy.Approvers)
	d["credentials"] = cfg.Broker.policyData()
	return d
}

// LoadPolicy loads the bundle cfg names (the embedded default when none),
// with cfg's data, running the bundle's own tests.
func LoadPolicy(ctx context.Context, cfg Config, now func() time.Time) (*policy.Bundle, error) {
	fsys, source, err := PolicyBundle(cfg)
	if err != nil {
		return nil, err
	}
	return policy.Load(ctx, fsys, policy.LoadOptions{Source: source, Config: PolicyData(cfg), Timeout: cfg.Policy.Timeout, Now: now})
}

// PolicyBundle returns the files of the bundle cfg names and where they
// come from: the directory policy.bundle, or the embedded default.
func PolicyBundle(cfg Config) (fs.FS, string, error) {
	if cfg.Policy.Bundle == "" {
		return policy.Default(), "embedded", nil
	}
	st, err := os.Stat(cfg.Policy.Bundle)
	if err != nil {
		return nil, "", fmt.Errorf("policy.bundle: %w", err)
	}
	if !st.IsDir() {
		return nil, "", fmt.Errorf("policy.bundle %s: want a directory of .rego files", cfg.Policy.Bundle)
	}
	return os.DirFS(cfg.Policy.Bundle), cfg.Policy.Bundle, nil
}

func newPolicyState(ctx context.Context, cfg Config, log *slog.Logger, now func() time.Time) (*policyState, error) {
	b, err := LoadPolicy(ctx, cfg, now)
	if err != nil {
		return nil, err
	}
	return &policyState{cfg: cfg, log: log, now: now, engine: policy.NewEngine(b), lastDigest: b.Digest}, nil
}

// loadedEvent is the policy.loaded event of b.
func loadedEvent(b *policy.Bundle, actor string) *writ.Event {
	tests := len(b.Tests)
	files := make([]string, 0, len(b.Files))
	for _, f := range b.Files {
		files = append(files, f.Path)
	}
	return &writ.Event{Type: writ.EventPolicyLoaded, Actor: actor, Subject: b.Digest,
		Details: map[string]any{"digest": b.Digest, "dataDigest": b.DataDigest, "source": b.Source, "files": files, "tests": tests}}
}

// reload loads the bundle directory again if its files changed. A bundle
// that fails to compile or fails its tests is refused (one alert event per
// refused digest) and the working one keeps deciding.
func (p *policyState) reload(ctx context.Context, force bool) error {
	if p.cfg.Policy.Bundle == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	digest, err := policy.Digest(os.DirFS(p.cfg.Policy.Bundle))
	if err != nil {
		digest = "unreadable: " + err.Error()
	}
	if digest == p.lastDigest && !force {
		return nil
	}
	p.lastDigest = digest
	b, err := LoadPolicy(ctx, p.cfg, p.now)
	if err != nil {
		cur := p.engine.Bundle()
		p.log.ErrorContext(ctx, "policy bundle refused; the previous bundle keeps deciding", slog.String("refused", digest),
			slog.String("in_force", cur.Digest), slog.Any("error", err))
		ev := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: "policy:" + digest,
			Details: map[string]any{"message": "policy bundle refused on reload; the previous bundle keeps deciding",
				"refused": digest, "inForce": cur.Digest, "error": truncate(err.Error(), 2000)}}
		if e := p.events(ctx, ev); e != nil {
			p.log.ErrorContext(ctx, "record policy refusal", slog.Any("error", e))
		}
		return err
	}
	if b.Digest == p.engine.Bundle().Digest && !force {
		return nil
	}
	if err := p.events(ctx, loadedEvent(b, writ.ActorSystem)); err != nil {
		// Not on record, not in force: the next check tries again.
		p.lastDigest = ""
		return err
	}
	p.engine.Swap(b)
	p.log.InfoContext(ctx, "policy bundle loaded", slog.String("digest", b.Digest), slog.String("source", b.Source), slog.Int("tests", len(b.Tests)))
	return nil
}

func (p *policyState) loop(ctx context.Context) error {
	if p.cfg.Policy.Bundle == "" {
		return nil
	}
	t := time.NewTicker(p.cfg.Policy.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_ = p.reload(ctx, false)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
