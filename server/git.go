package server

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/gitgw"
	"github.com/writ-dev/writ/httpapi"
)

// fileGit is the git section of writ.yaml.
type fileGit struct {
	// Binary is the git executable (default: git on PATH).
	Binary string `json:"binary"`
	// Root holds the hosted repositories (default <dataDir>/repos).
	Root string `json:"root"`
	// MaxPackBytes caps one push (default 256 MiB); MaxObjects the objects
	// in its pack (default 200000).
	MaxPackBytes int64 `json:"maxPackBytes"`
	MaxObjects   int   `json:"maxObjects"`
	// MaxScanBytes: blobs over it are not secret-scanned, only listed
	// (default 1 MiB).
	MaxScanBytes int64 `json:"maxScanBytes"`
	// Timeout bounds one clone, fetch or push (default 10m).
	Timeout writ.Duration `json:"timeout"`
}

// GitConfig configures the git gateway (docs/git.md).
type GitConfig struct {
	Binary       string
	Root         string // empty: <dataDir>/repos
	MaxPackBytes int64
	MaxObjects   int
	MaxScanBytes int64
	Timeout      time.Duration
	// Upstreams are the push-mirrors by repository (repos[].upstream).
	Upstreams map[string]string
}

func (fg fileGit) config(repos []fileRepo) GitConfig {
	c := GitConfig{Binary: fg.Binary, Root: fg.Root, MaxPackBytes: fg.MaxPackBytes, MaxObjects: fg.MaxObjects,
		MaxScanBytes: fg.MaxScanBytes, Timeout: fg.Timeout.D(), Upstreams: map[string]string{}}
	for _, r := range repos {
		if r.Upstream != "" {
			c.Upstreams[r.Name] = r.Upstream
		}
	}
	return c
}

func (c *GitConfig) validate() error {
	if c.MaxPackBytes < 0 || c.MaxObjects < 0 || c.MaxScanBytes < 0 || c.Timeout < 0 {
		return fmt.Errorf("git: maxPackBytes, maxObjects, maxScanBytes and timeout must not be negative (0 means the default)")
	}
	for name, u := range c.Upstreams {
		if err := gitgw.ValidateUpstream(u); err != nil {
			return fmt.Errorf("repos %q upstream: %w", name, err)
		}
	}
	return nil
}

// newGit builds the git gateway, or nil (with a warning) when there is no
// git binary.
func (s *Server) newGit() (*gitgw.Gateway, error) {
	c := s.cfg.Git
	bin := c.Binary
	if bin == "" {
		bin = "git"
	}
	if _, err := exec.LookPath(bin); err != nil {
		s.log.Warn("no git binary: the git gateway is off", slog.String("git", bin))
		return nil, nil
	}
	root := c.Root
	switch {
	case root == "":
		root = filepath.Join(s.cfg.DataDir, "repos")
	case !filepath.IsAbs(root) && s.cfg.Path != "":
		root = filepath.Join(filepath.Dir(s.cfg.Path), root) // relative to writ.yaml, as other paths
	}
	var repos []gitgw.Repo
	for _, r := range s.cfg.Repos {
		repos = append(repos, gitgw.Repo{Name: r.Name, Protected: r.Protected, Upstream: c.Upstreams[r.Name]})
	}
	for name, u := range c.Upstreams {
		found := false
		for _, r := range repos {
			found = found || r.Name == name
		}
		if !found {
			repos = append(repos, gitgw.Repo{Name: name, Upstream: u})
		}
	}
	return gitgw.New(gitgw.Config{
		Root: root, Git: bin, Leases: s.broker.broker, Humans: s.runs, Runs: s.runs, Decider: s.decider, Events: s.store,
		Repos: repos, MaxPackBytes: c.MaxPackBytes, MaxObjects: c.MaxObjects, MaxScanBytes: c.MaxScanBytes, Timeout: c.Timeout,
		History: s.store, Fault: s.gitFault, Logger: s.log, Now: s.now,
	})
}

// reconcileGit compares every hosted repository's branches with the log
// (docs/git.md "Write-ahead and reconciliation"), once at start, before
// serving: a ref move writ made but did not record (it stopped between
// git and the log) is recorded now, on writ's behalf. On PostgreSQL
// another replica may be moving a ref right now, so the intents of the
// last git.timeout are looked at once that long has passed.
func (s *Server) reconcileGit(ctx context.Context, start time.Time) {
	if s.git == nil {
		return
	}
	settled := start
	if strings.HasPrefix(s.cfg.Store, "postgres") {
		settled = start.Add(-s.git.Timeout())
	}
	if err := s.git.Reconcile(ctx, settled); err != nil {
		s.log.ErrorContext(ctx, "reconciling the hosted repositories with the log", slog.Any("error", err))
	}
}

// reconcileGitLater reconciles, once git.timeout has passed since start,
// the intents that were too young at start (several replicas).
func (s *Server) reconcileGitLater(ctx context.Context, start time.Time) error {
	if s.git == nil || !strings.HasPrefix(s.cfg.Store, "postgres") {
		return nil
	}
	t := time.NewTimer(s.git.Timeout())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-t.C:
	}
	if err := s.git.Reconcile(ctx, start); err != nil {
		s.log.ErrorContext(ctx, "reconciling the hosted repositories with the log", slog.Any("error", err))
	}
	return nil
}

// gitHandler is the gateway as the API mounts it (nil when there is none).
func (s *Server) gitHandler() httpapi.Git {
	if s.git == nil {
		return nil
	}
	return s.git
}
