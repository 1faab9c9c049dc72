package server

import (
	"context"
	"errors"
	"log/slog"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

// jwtMinter mints a downstream JWT-SVID for a run (Vault's JWT login).
type jwtMinter func(ctx context.Context, run *writ.Run, audience string) (string, error)

type fileVault struct{}

type fileGitHubApp struct{}

// VaultConfig configures the Vault backend.
type VaultConfig struct{ Paths []string }

// GitHubAppConfig configures the GitHub App backend.
type GitHubAppConfig struct{}

func parseVault(f *fileVault, abs func(string) string) (*VaultConfig, error) {
	if f == nil {
		return nil, nil
	}
	return nil, errors.New("broker.vault: not wired yet")
}

func parseGitHubApp(f *fileGitHubApp, abs func(string) string) (*GitHubAppConfig, error) {
	if f == nil {
		return nil, nil
	}
	return nil, errors.New("broker.github: not wired yet")
}

func newVaultSource(c *VaultConfig, mint jwtMinter, log *slog.Logger) (broker.Source, error) {
	return nil, errors.New("broker.vault: not wired yet")
}

func newGitHubSource(c *GitHubAppConfig, log *slog.Logger) (broker.Source, error) {
	return nil, errors.New("broker.github: not wired yet")
}
