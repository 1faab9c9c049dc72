package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
	"github.com/writ-dev/writ/broker/githubapp"
	"github.com/writ-dev/writ/broker/vault"
)

// jwtMinter mints a downstream JWT-SVID of a run for an audience (Vault's
// JWT login), recording it.
type jwtMinter func(ctx context.Context, run *writ.Run, audience string) (string, error)

// fileVault is broker.vault in writ.yaml (docs/broker-backends.md).
type fileVault struct {
	Address   string   `json:"address"`
	Namespace string   `json:"namespace"`
	TokenFile string   `json:"tokenFile"` // writ's own token (revocation; reads without jwt)
	TokenEnv  string   `json:"tokenEnv"`
	Paths     []string `json:"paths"` // dynamic-secret paths runs may read
	JWT       *struct {
		Mount    string `json:"mount"`    // default jwt
		Role     string `json:"role"`     // the Vault role runs log in to
		Audience string `json:"audience"` // the JWT-SVID's audience (the role's bound_audiences); must be in identity.audiences
	} `json:"jwt"`
}

// fileGitHubApp is broker.github in writ.yaml.
type fileGitHubApp struct {
	APIURL         string   `json:"apiURL"`
	AppID          string   `json:"appID"`
	InstallationID int64    `json:"installationID"`
	PrivateKeyFile string   `json:"privateKeyFile"`
	Owner          string   `json:"owner"`
	Repos          []string `json:"repos"`
}

// VaultConfig configures the Vault backend.
type VaultConfig struct {
	Address, Namespace, TokenFile, TokenEnv string
	Paths                                   []string
	JWTMount, JWTRole, JWTAudience          string
}

// GitHubAppConfig configures the GitHub App backend.
type GitHubAppConfig struct {
	APIURL, AppID, PrivateKeyFile, Owner string
	InstallationID                       int64
	Repos                                []string
}

func parseVault(f *fileVault, abs func(string) string) (*VaultConfig, error) {
	if f == nil {
		return nil, nil
	}
	c := &VaultConfig{Address: f.Address, Namespace: f.Namespace, TokenFile: abs(f.TokenFile), TokenEnv: f.TokenEnv, Paths: f.Paths}
	if f.JWT != nil {
		if f.JWT.Role == "" || f.JWT.Audience == "" {
			return nil, fmt.Errorf("broker.vault.jwt: set role (the Vault role runs log in to) and audience (its bound_audiences)")
		}
		c.JWTMount, c.JWTRole, c.JWTAudience = f.JWT.Mount, f.JWT.Role, f.JWT.Audience
	}
	if len(c.Paths) == 0 {
		return nil, fmt.Errorf("broker.vault.paths: list the dynamic-secret paths runs may read, such as database/creds/readonly")
	}
	return c, nil
}

func parseGitHubApp(f *fileGitHubApp, abs func(string) string) (*GitHubAppConfig, error) {
	if f == nil {
		return nil, nil
	}
	return &GitHubAppConfig{APIURL: f.APIURL, AppID: f.AppID, InstallationID: f.InstallationID, PrivateKeyFile: abs(f.PrivateKeyFile),
		Owner: f.Owner, Repos: f.Repos}, nil
}

func newVaultSource(c *VaultConfig, mint jwtMinter, log *slog.Logger) (broker.Source, error) {
	vc := vault.Config{Address: c.Address, Namespace: c.Namespace, TokenFile: c.TokenFile, TokenEnv: c.TokenEnv, Paths: c.Paths, Logger: log}
	if c.JWTRole != "" {
		if mint == nil {
			return nil, fmt.Errorf("broker.vault.jwt: no way to mint run tokens")
		}
		aud := c.JWTAudience
		vc.JWT = &vault.JWTLogin{Mount: c.JWTMount, Role: c.JWTRole}
		vc.MintJWT = func(ctx context.Context, run *writ.Run) (string, error) { return mint(ctx, run, aud) }
	}
	s, err := vault.New(vc)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newGitHubSource(c *GitHubAppConfig, log *slog.Logger) (broker.Source, error) {
	s, err := githubapp.New(githubapp.Config{APIURL: c.APIURL, AppID: c.AppID, InstallationID: c.InstallationID,
		PrivateKeyFile: c.PrivateKeyFile, Owner: c.Owner, Repos: c.Repos, Logger: log})
	if err != nil {
		return nil, err
	}
	return s, nil
}
