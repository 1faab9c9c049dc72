// Package githubapp is the broker source for GitHub App installation
// tokens: each lease is a token scoped to one repository of the configured
// owner, with read permissions and at most issues and pull-request writes.
//
// # What a token may do
//
// Writes to code never go straight to GitHub: a run pushes to writ's own git
// gateway, which enforces ref and path rules and mirrors upstream. So this
// source grants at most: metadata, contents, checks, statuses, actions and
// discussions at read, and issues and pull_requests at read or write. Any
// other permission GitHub defines — contents:write, workflows,
// administration, secrets and the rest — is refused as KindDenied
// (github_permission_not_allowed), whatever policy said; a name GitHub does
// not define, or a level other than read or write, is KindInvalid. This is
// defence in depth: policy checks first. [ParsePermissions] applies these
// rules.
// The token GitHub returns is checked too: one repository, the one asked
// for, and no permission beyond those asked; a wider token is revoked at
// once and the issue fails.
//
// # How
//
// The source signs an App JWT (RS256 with the App's private key, iat 60 s
// in the past, exp 9 minutes ahead, iss the App's client or app ID) with
// the standard library, posts it to
// POST {APIURL}/app/installations/{id}/access_tokens with the repository
// and permissions, and revokes with DELETE {APIURL}/installation/token
// authenticated by the token itself. A token GitHub already ended (401)
// counts as revoked.
//
// The token is the credential and the handle (which the broker stores
// sealed); it never enters an error, a log line or the details. The App's
// private key stays in memory and never prints.
//
// Part of the writ server; no API stability.
package githubapp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

const (
	// DefaultAPIURL is GitHub's REST API. GitHub Enterprise Server's is
	// https://HOST/api/v3.
	DefaultAPIURL = "https://api.github.com"
	// APIVersion is the REST API version every request names.
	APIVersion = "2022-11-28"

	defaultTimeout = 30 * time.Second
	cleanupTimeout = 10 * time.Second
	// jwtBackdate and jwtLifetime follow GitHub's advice: iat 60 s in the
	// past against clock drift, exp at most 10 minutes ahead.
	jwtBackdate = 60 * time.Second
	jwtLifetime = 9 * time.Minute
	// maxBody caps what is read of a GitHub response.
	maxBody = 1 << 20
	// maxErrText caps how much of GitHub's error message goes into an error.
	maxErrText = 300
)

// Config configures a [Source].
type Config struct {
	// APIURL is GitHub's REST API root; empty means https://api.github.com.
	// It must be https, except on a loopback host.
	APIURL string
	// AppID is the App's client ID (recommended by GitHub, "Iv23…") or its
	// numeric app ID: the App JWT's iss.
	AppID string
	// InstallationID is the App's installation on Owner.
	InstallationID int64
	// PrivateKeyFile names the App's private key, the PEM file GitHub
	// generates (RSA, PKCS #1 or PKCS #8). New reads it once.
	PrivateKeyFile string
	// Owner is the account (organization or user) the installation is on.
	// A request's target must be Owner/<repo>.
	Owner string
	// Repos, when set, are the only repositories (names under Owner) a
	// token may be for; empty allows any repository the installation can
	// reach.
	Repos []string

	// HTTPClient is the client GitHub is called with. nil uses one with
	// connect, TLS-handshake and overall timeouts; a client without a
	// Timeout gets a 30 s one. Redirects are never followed.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// Source issues GitHub App installation tokens. It is safe for concurrent
// use.
type Source struct {
	api          string
	appID        string
	installation int64
	key          *rsa.PrivateKey
	owner        string
	repos        map[string]bool // lower-case names; nil allows any
	http         *http.Client
	now          func() time.Time
	log          *slog.Logger
}

var _ broker.Source = (*Source)(nil)

// New returns a Source for cfg, or a *writ.Error (KindInvalid,
// github_config_invalid) saying what in cfg is wrong.
func New(cfg Config) (*Source, error) {
	bad := func(format string, args ...any) error {
		return writ.Errorf(writ.KindInvalid, "github_config_invalid", "githubapp: "+format, args...)
	}
	s := &Source{installation: cfg.InstallationID, now: cfg.Now, log: cfg.Logger}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	var err error
	if s.api, err = checkAPIURL(apiURL); err != nil {
		return nil, bad("apiURL: %v", err)
	}
	s.appID = strings.TrimSpace(cfg.AppID)
	if s.appID == "" || strings.ContainsFunc(s.appID, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		return nil, bad("appId %q: set the App's client ID (Iv23…) or numeric app ID from its settings page", cfg.AppID)
	}
	if cfg.InstallationID <= 0 {
		return nil, bad("installationId must be the App installation's positive id (GET /orgs/{org}/installation shows it)")
	}
	if !validOwner(cfg.Owner) {
		return nil, bad("owner %q: set the GitHub account (organization or user) the App is installed on", cfg.Owner)
	}
	s.owner = cfg.Owner
	if len(cfg.Repos) > 0 {
		s.repos = make(map[string]bool, len(cfg.Repos))
		for _, r := range cfg.Repos {
			if !validRepo(r) {
				return nil, bad("repos: %q is not a repository name (write names under owner, without the owner/)", r)
			}
			s.repos[strings.ToLower(r)] = true
		}
	}
	if cfg.PrivateKeyFile == "" {
		return nil, bad("privateKeyFile is empty: name the App's private key PEM file")
	}
	if s.key, err = loadKey(cfg.PrivateKeyFile); err != nil {
		return nil, bad("privateKeyFile %s: %v", cfg.PrivateKeyFile, err)
	}
	s.http = broker.HTTPClient(cfg.HTTPClient, defaultTimeout)
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With(slog.String("component", "broker/githubapp"))
	return s, nil
}

// String describes the source without its key.
func (s *Source) String() string {
	return fmt.Sprintf("github app source %s (app %s, installation %d on %s)", s.api, s.appID, s.installation, s.owner)
}

// GoString is String, so %#v does not print the private key.
func (s *Source) GoString() string { return s.String() }

// LogValue describes the source for slog without its key.
func (s *Source) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api", s.api), slog.String("app", s.appID),
		slog.Int64("installation", s.installation), slog.String("owner", s.owner))
}

// Issue creates an installation token for the repository req.Target
// (owner/repo) with req.Permissions ("contents:read", "issues:write"…;
// none asked means contents:read and metadata:read).
func (s *Source) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	if req == nil {
		return nil, writ.Errorf(writ.KindInvalid, "github_request_invalid", "githubapp: no issue request")
	}
	repo, err := s.repository(req.Target)
	if err != nil {
		return nil, err
	}
	perms, err := ParsePermissions(req.Permissions)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !req.ExpiresAt.After(now) {
		return nil, writ.Errorf(writ.KindInvalid, "github_request_invalid", "githubapp: the lease would expire before it is issued")
	}
	full := s.owner + "/" + repo
	log := s.log.With(slog.String("lease", req.Lease), slog.String("repository", full))

	jwt, err := s.appJWT(now)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]any{"repositories": []string{repo}, "permissions": perms})
	if err != nil {
		return nil, fmt.Errorf("githubapp: encode token request: %w", err)
	}
	u := s.api + "/app/installations/" + strconv.FormatInt(s.installation, 10) + "/access_tokens"
	status, resp, err := s.call(ctx, http.MethodPost, u, jwt, body)
	if err != nil {
		return nil, fmt.Errorf("githubapp: create installation token for %s: %w", full, err)
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return nil, s.createError(status, resp, full)
	}
	var tok tokenResponse
	if err := json.Unmarshal(resp, &tok); err != nil || tok.Token == "" {
		return nil, writ.Errorf(writ.KindInternal, "github_bad_response", "githubapp: GitHub's answer to the token request for %s has no token", full)
	}
	if err := checkToken(&tok, full, perms); err != nil {
		// Never hand out, nor leave alive, a token wider than asked.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		if rerr := s.revoke(cctx, tok.Token); rerr != nil {
			log.WarnContext(ctx, "githubapp: could not revoke a refused token; GitHub ends it at its expiry",
				slog.Time("expires_at", tok.ExpiresAt), slog.Any("error", rerr))
		}
		cancel()
		return nil, err
	}

	out := &broker.Issued{
		Credential: writ.Credential{"token": tok.Token},
		Handle:     []byte(tok.Token),
		Details: map[string]string{
			"repository":  full,
			"permissions": FormatPermissions(tok.Permissions),
			"expiresAt":   tok.ExpiresAt.UTC().Format(time.RFC3339),
		},
	}
	if tok.ExpiresAt.Before(req.ExpiresAt) {
		out.ExpiresAt = tok.ExpiresAt
	}
	log.DebugContext(ctx, "githubapp: issued", slog.String("permissions", out.Details["permissions"]), slog.Time("expires_at", tok.ExpiresAt))
	return out, nil
}

// Revoke deletes the installation token in handle. A token GitHub no
// longer accepts (expired, revoked before) counts as revoked; any other
// failure is returned for the broker to retry.
func (s *Source) Revoke(ctx context.Context, lease *writ.Lease, handle []byte) error {
	tok := string(handle)
	if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		return writ.Errorf(writ.KindInvalid, "github_handle_invalid", "githubapp: the lease's handle is not a token this source issued")
	}
	if err := s.revoke(ctx, tok); err != nil {
		return err
	}
	id := ""
	if lease != nil {
		id = lease.ID
	}
	s.log.DebugContext(ctx, "githubapp: revoked", slog.String("lease", id))
	return nil
}

func (s *Source) revoke(ctx context.Context, tok string) error {
	status, resp, err := s.call(ctx, http.MethodDelete, s.api+"/installation/token", tok, nil)
	if err != nil {
		return fmt.Errorf("githubapp: revoke installation token: %w", err)
	}
	switch {
	case status == http.StatusNoContent || status == http.StatusOK:
		return nil
	case status == http.StatusUnauthorized:
		return nil // already expired or revoked
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusForbidden:
		return fmt.Errorf("githubapp: revoke installation token: %w: %s", writ.Errorf(writ.KindUnavailable, "github_unavailable",
			"GitHub answered %d; retry later", status), message(resp))
	default:
		return fmt.Errorf("githubapp: revoke installation token: status %d: %s", status, message(resp))
	}
}

// tokenResponse is GitHub's answer to a token request. It holds the token:
// it is never logged or formatted.
type tokenResponse struct {
	Token               string            `json:"token"`
	ExpiresAt           time.Time         `json:"expires_at"`
	Permissions         map[string]string `json:"permissions"`
	RepositorySelection string            `json:"repository_selection"`
	Repositories        []struct {
		Name     string `json:"name"`
		FullName string `json:"full_name"`
	} `json:"repositories"`
}

// checkToken checks GitHub gave what was asked: one repository, full, and
// no permission beyond those asked (metadata:read, which GitHub adds to
// every token, aside) nor beyond what this source allows.
func checkToken(tok *tokenResponse, full string, asked map[string]string) error {
	wider := func(format string, args ...any) error {
		return writ.Errorf(writ.KindInternal, "github_token_too_wide", "githubapp: GitHub returned a token "+format+"; it was revoked", args...)
	}
	if tok.ExpiresAt.IsZero() {
		return writ.Errorf(writ.KindInternal, "github_bad_response", "githubapp: GitHub's token for %s has no expiry; it was revoked", full)
	}
	if len(tok.Repositories) != 1 || !strings.EqualFold(tok.Repositories[0].FullName, full) {
		names := make([]string, len(tok.Repositories))
		for i, r := range tok.Repositories {
			names[i] = r.FullName
		}
		return wider("for repositories %v, not just %s", names, full)
	}
	if tok.RepositorySelection != "" && tok.RepositorySelection != "selected" {
		return wider("with repository_selection %q, not selected", tok.RepositorySelection)
	}
	for name, lv := range tok.Permissions {
		got, ok := levels[lv]
		if !ok {
			return wider("with permission %s:%s", name, lv)
		}
		if name == "metadata" && got == read {
			continue
		}
		if levels[asked[name]] < got || allowed[name] < got {
			return wider("with permission %s:%s beyond what was asked", name, lv)
		}
	}
	return nil
}

// repository checks target (owner/repo) and returns the repository name.
func (s *Source) repository(target string) (string, error) {
	owner, repo, ok := strings.Cut(target, "/")
	if !ok || !validOwner(owner) || !validRepo(repo) {
		return "", writ.Errorf(writ.KindInvalid, "github_target_invalid", "githubapp: target %q is not a GitHub repository owner/name", target)
	}
	if !strings.EqualFold(owner, s.owner) {
		return "", writ.Errorf(writ.KindInvalid, "github_owner_not_configured",
			"githubapp: %q is not under %s, the account the GitHub App installation is configured for", target, s.owner)
	}
	if s.repos != nil && !s.repos[strings.ToLower(repo)] {
		return "", writ.Errorf(writ.KindInvalid, "github_repo_not_configured",
			"githubapp: %s is not one of the github source's repos; add it to repos or request a configured one", target)
	}
	return repo, nil
}

// appJWT signs the App JWT for now: RS256 over
// base64url(header).base64url(claims), as RFC 7515 §5.1 builds a compact
// JWS.
func (s *Source) appJWT(now time.Time) (string, error) {
	header := `{"alg":"RS256","typ":"JWT"}`
	claims, err := json.Marshal(struct {
		IAT int64  `json:"iat"`
		EXP int64  `json:"exp"`
		ISS string `json:"iss"`
	}{now.Add(-jwtBackdate).Unix(), now.Add(jwtLifetime).Unix(), s.appID})
	if err != nil {
		return "", fmt.Errorf("githubapp: encode app JWT claims: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("githubapp: sign app JWT: %w", err)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// call makes one GitHub API request with bearer, returning the status and
// at most maxBody bytes of the body. The error, for a failed exchange,
// never holds bearer.
func (s *Source) call(ctx context.Context, method, u, bearer string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", APIVersion)
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("User-Agent", "writ")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, nil, fmt.Errorf("%s %s: %w", method, u, err)
		}
		return 0, nil, fmt.Errorf("%s %s: %w: %v", method, u, writ.Errorf(writ.KindUnavailable, "github_unavailable",
			"GitHub at %s did not answer; retry later", s.api), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read response: %w", method, u, err)
	}
	return resp.StatusCode, b, nil
}

// createError classifies GitHub's refusal of a token request.
func (s *Source) createError(status int, resp []byte, full string) error {
	var we *writ.Error
	switch {
	case status == http.StatusUnauthorized:
		we = writ.Errorf(writ.KindInternal, "github_app_auth_failed",
			"GitHub refused the App's JWT; check appId, the private key and this server's clock")
	case status == http.StatusNotFound:
		we = writ.Errorf(writ.KindInternal, "github_installation_not_found",
			"GitHub knows no installation %d of this App; check installationId", s.installation)
	case status == http.StatusUnprocessableEntity:
		we = writ.Errorf(writ.KindDenied, "github_token_refused",
			"GitHub refused a token for %s: is the App installed on it, with the permissions asked?", full)
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusForbidden:
		we = writ.Errorf(writ.KindUnavailable, "github_unavailable", "GitHub answered %d; retry later", status)
	default:
		return fmt.Errorf("githubapp: create installation token for %s: status %d: %s", full, status, message(resp))
	}
	return fmt.Errorf("githubapp: create installation token for %s: %w: status %d: %s", full, we, status, message(resp))
}

// message is GitHub's error message from a response body, one line,
// capped.
func message(b []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	msg := string(b)
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxErrText {
		msg = msg[:maxErrText] + "…"
	}
	if msg == "" {
		msg = "(no message)"
	}
	return msg
}

// loadKey reads an RSA private key from a PEM file.
func loadKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read it: %v", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block: use the .pem file GitHub generated for the App")
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted {
		return nil, errors.New("the key is encrypted; store it unencrypted, readable by writ only")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		var k any
		if k, err = x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			var ok bool
			if key, ok = k.(*rsa.PrivateKey); !ok {
				return nil, fmt.Errorf("the key is %T; a GitHub App key is RSA", k)
			}
		}
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want RSA PRIVATE KEY or PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, errors.New("the RSA private key does not parse")
	}
	if key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("the RSA key has %d bits; GitHub App keys have at least 2048", key.N.BitLen())
	}
	return key, nil
}

// validOwner reports whether s is a GitHub account name: alphanumerics and
// single inner hyphens, at most 39 characters.
func validOwner(s string) bool {
	if s == "" || len(s) > 39 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !(isAlnum(r) || r == '-') })
}

// validRepo reports whether s is a GitHub repository name: letters,
// digits, '.', '-' and '_', at most 100 characters, not "." or "..".
func validRepo(s string) bool {
	if s == "" || len(s) > 100 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !(isAlnum(r) || r == '.' || r == '-' || r == '_') })
}

func isAlnum(r rune) bool { return r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) }

// checkAPIURL checks the API root and returns it without a trailing slash.
// Tokens travel to it, so it must be https unless on a loopback host.
func checkAPIURL(a string) (string, error) {
	return broker.ServiceURL(a, "GitHub", DefaultAPIURL)
}

// HandleIsSecret reports that a lease's handle (the token, which revokes
// itself) is a secret: the broker seals it at rest.
func (s *Source) HandleIsSecret() bool { return true }
