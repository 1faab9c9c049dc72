package githubapp

// These tests run against a replay of GitHub's documented REST API, not
// GitHub itself. The replay answers as GitHub's documentation says the two
// endpoints this source calls answer (REST API version 2022-11-28):
//
//   - POST /app/installations/{installation_id}/access_tokens, authenticated
//     by an App JWT (RS256; iat, exp at most 10 minutes ahead, iss), body
//     {"repositories": [names], "permissions": {name: level}} → 201
//     {token, expires_at, permissions, repository_selection, repositories}
//     ("Create an installation access token for an app"; "Generating a JSON
//     Web Token (JWT) for a GitHub App")
//   - DELETE /installation/token, authenticated by the installation token →
//     204; an expired or revoked token → 401 ("Revoke an installation access
//     token"; the Apps docs: "Using an expired token produces a status code of
//     401")
//
// The replay parses and verifies the App JWT with crypto/rsa against the
// test key's public half, and checks each request's method, path, headers
// and JSON body.

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
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

const (
	appID          = "Iv23liTESTCLIENTID"
	installationID = 42
	instToken      = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
)

var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

// testKey is the App's key, generated once per test binary.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func writeKey(t *testing.T, pkcs8 bool) string {
	t.Helper()
	var block *pem.Block
	if pkcs8 {
		der, err := x509.MarshalPKCS8PrivateKey(testKey())
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	} else {
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKey())}
	}
	path := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exchange is one documented request and the response the replay gives.
type exchange struct {
	method, path string
	auth         string         // "jwt": a valid App JWT; otherwise the exact bearer expected
	body         map[string]any // the JSON body expected; nil means none
	status       int
	resp         string
}

type replay struct {
	t      *testing.T
	mu     sync.Mutex
	script []exchange
	n      int
	srv    *httptest.Server
	now    time.Time
}

func newReplay(t *testing.T, script ...exchange) *replay {
	t.Helper()
	r := &replay{t: t, script: script, now: t0}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.n != len(r.script) {
			t.Errorf("replay: %d of %d documented requests were made; next expected: %s %s", r.n, len(r.script), r.script[r.n].method, r.script[r.n].path)
		}
	})
	return r
}

func (r *replay) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *replay) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.t
	if r.n >= len(r.script) {
		t.Errorf("replay: unexpected request %s %s", req.Method, req.URL.Path)
		http.Error(w, `{"message":"unexpected"}`, http.StatusInternalServerError)
		return
	}
	ex := r.script[r.n]
	r.n++
	if req.Method != ex.method || req.URL.Path != ex.path {
		t.Errorf("replay: request %d = %s %s; want %s %s", r.n, req.Method, req.URL.Path, ex.method, ex.path)
	}
	if got := req.Header.Get("Accept"); got != "application/vnd.github+json" {
		t.Errorf("replay: %s Accept = %q; want application/vnd.github+json", ex.path, got)
	}
	if got := req.Header.Get("X-GitHub-Api-Version"); got != "2022-11-28" {
		t.Errorf("replay: %s X-GitHub-Api-Version = %q; want 2022-11-28", ex.path, got)
	}
	bearer, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok:
		t.Errorf("replay: %s has no bearer Authorization", ex.path)
	case ex.auth == "jwt":
		if err := verifyAppJWT(bearer, r.now); err != nil {
			t.Errorf("replay: %s App JWT: %v", ex.path, err)
		}
	case bearer != ex.auth:
		t.Errorf("replay: %s bearer = %.10s…; want %.10s…", ex.path, bearer, ex.auth)
	}
	raw, _ := io.ReadAll(req.Body)
	var body map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("replay: %s body is not JSON: %v", ex.path, err)
		}
	}
	if diff := cmp.Diff(ex.body, body); diff != "" {
		t.Errorf("replay: %s body mismatch (-want +got):\n%s", ex.path, diff)
	}
	if ex.resp != "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(ex.status)
	io.WriteString(w, ex.resp)
}

// verifyAppJWT checks a GitHub App JWT as GitHub documents it: RS256 over
// base64url(header).base64url(claims), signed by the App's key, with iss
// the App's id, iat no later than now and exp at most 10 minutes ahead.
func verifyAppJWT(tok string, now time.Time) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts; want 3", len(parts))
	}
	enc := base64.RawURLEncoding
	var header struct{ Alg, Typ string }
	hb, err := enc.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &header) != nil {
		return fmt.Errorf("header does not decode")
	}
	if header.Alg != "RS256" {
		return fmt.Errorf("alg = %q; want RS256", header.Alg)
	}
	var claims map[string]any
	cb, err := enc.DecodeString(parts[1])
	if err != nil || json.Unmarshal(cb, &claims) != nil {
		return fmt.Errorf("claims do not decode")
	}
	if claims["iss"] != appID {
		return fmt.Errorf("iss = %v; want %s", claims["iss"], appID)
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if int64(iat) != now.Add(-60*time.Second).Unix() {
		return fmt.Errorf("iat = %v; want now-60s (%d)", iat, now.Add(-60*time.Second).Unix())
	}
	if int64(exp) <= now.Unix() || int64(exp) > now.Add(10*time.Minute).Unix() {
		return fmt.Errorf("exp = %v; want after now and at most now+10min", exp)
	}
	if len(claims) != 3 {
		return fmt.Errorf("claims %v; want exactly iat, exp, iss", claims)
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature does not decode")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&testKey().PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	return nil
}

// Documented exchanges.

func createToken(prefix string, repo string, asked, granted map[string]string, expires time.Time) exchange {
	perms := map[string]any{}
	for k, v := range asked {
		perms[k] = v
	}
	g, _ := json.Marshal(granted)
	return exchange{
		method: "POST", path: fmt.Sprintf("%s/app/installations/%d/access_tokens", prefix, installationID), auth: "jwt",
		body:   map[string]any{"repositories": []any{repo}, "permissions": perms},
		status: http.StatusCreated,
		resp: fmt.Sprintf(`{"token":%q,"expires_at":%q,"permissions":%s,"repository_selection":"selected",
		  "repositories":[{"id":1296269,"node_id":"MDEwOlJlcG9zaXRvcnkxMjk2MjY5","name":%q,"full_name":"acme/%s","owner":{"login":"acme","id":1,"type":"Organization"},"private":true}]}`,
			instToken, expires.Format(time.RFC3339), g, repo, repo),
	}
}

func deleteToken(prefix string, status int, resp string) exchange {
	return exchange{method: "DELETE", path: prefix + "/installation/token", auth: instToken, status: status, resp: resp}
}

var defaultPerms = map[string]string{"contents": "read", "metadata": "read"}

// logBuffer is a slog handler's output, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testConfig(t *testing.T, apiURL string, logs *logBuffer) Config {
	t.Helper()
	if logs == nil {
		logs = &logBuffer{}
	}
	return Config{
		APIURL:         apiURL,
		AppID:          appID,
		InstallationID: installationID,
		PrivateKeyFile: writeKey(t, false),
		Owner:          "acme",
		Now:            func() time.Time { return t0 },
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func issueReq(target string, perms ...string) *broker.IssueRequest {
	return &broker.IssueRequest{
		Lease:       "lse_01jd0000000000000000000001",
		Run:         &writ.Run{ID: "run_01jd0000000000000000000000", Agent: "refactor-bot"},
		Target:      target,
		Permissions: perms,
		ExpiresAt:   t0.Add(5 * time.Minute),
	}
}

func leaseOf(req *broker.IssueRequest) *writ.Lease {
	return &writ.Lease{ID: req.Lease, Run: req.Run.ID, Kind: writ.CredentialGitHub, Target: req.Target, State: writ.LeaseActive, ExpiresAt: req.ExpiresAt}
}

// TestIssueRevokeRoundTrip: with no permissions asked the token is for
// the one repository, by name, with contents:read and metadata:read; the
// App JWT verifies; the credential and handle are the token; the details
// name the repository, permissions and expiry; Revoke deletes the token
// with the token itself.
func TestIssueRevokeRoundTrip(t *testing.T) {
	r := newReplay(t,
		createToken("", "api", defaultPerms, defaultPerms, t0.Add(time.Hour)),
		deleteToken("", http.StatusNoContent, ""),
	)
	s := newSource(t, testConfig(t, r.srv.URL, nil))
	req := issueReq("acme/api")
	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if diff := cmp.Diff(writ.Credential{"token": instToken}, got.Credential); diff != "" {
		t.Errorf("Credential mismatch (-want +got):\n%s", diff)
	}
	if string(got.Handle) != instToken {
		t.Errorf("Handle is not the token")
	}
	want := map[string]string{"repository": "acme/api", "permissions": "contents:read,metadata:read", "expiresAt": "2026-11-25T21:00:00Z"}
	if diff := cmp.Diff(want, got.Details); diff != "" {
		t.Errorf("Details mismatch (-want +got):\n%s", diff)
	}
	if !got.ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt = %v; want zero (GitHub's hour outlives the 5 min asked)", got.ExpiresAt)
	}
	if err := s.Revoke(context.Background(), leaseOf(req), got.Handle); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
}

// TestIssueAskedPermissions: asked permissions go to GitHub as asked (the
// higher level of a name asked twice); the metadata:read GitHub adds is
// accepted; an expiry earlier than asked is reported.
func TestIssueAskedPermissions(t *testing.T) {
	asked := map[string]string{"contents": "read", "issues": "write", "pull_requests": "write"}
	granted := map[string]string{"contents": "read", "issues": "write", "pull_requests": "write", "metadata": "read"}
	r := newReplay(t, createToken("/api/v3", "api", asked, granted, t0.Add(2*time.Minute)))
	s := newSource(t, testConfig(t, r.srv.URL+"/api/v3/", nil)) // GitHub Enterprise Server's API root
	got, err := s.Issue(context.Background(), issueReq("ACME/api", "contents:read", "issues:read", "issues:write", "pull_requests:write"))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if p := got.Details["permissions"]; p != "contents:read,issues:write,metadata:read,pull_requests:write" {
		t.Errorf("Details permissions = %q", p)
	}
	if want := t0.Add(2 * time.Minute); !got.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v; want GitHub's earlier %v", got.ExpiresAt, want)
	}
}

// TestWiderPermissionsRefused: anything beyond read and issue/PR writes
// is denied, unknown names and levels are invalid, every offending item is
// listed, and no HTTP call is made.
func TestWiderPermissionsRefused(t *testing.T) {
	r := newReplay(t)
	s := newSource(t, testConfig(t, r.srv.URL, nil))
	tests := []struct {
		perms []string
		kind  writ.Kind
		code  string
		items []string
	}{
		{[]string{"contents:write"}, writ.KindDenied, "github_permission_not_allowed", []string{"contents:write"}},
		{[]string{"issues:write", "workflows:write"}, writ.KindDenied, "github_permission_not_allowed", []string{"workflows:write"}},
		{[]string{"administration:read", "administration:write"}, writ.KindDenied, "github_permission_not_allowed", []string{"administration:read", "administration:write"}},
		{[]string{"secrets:read"}, writ.KindDenied, "github_permission_not_allowed", []string{"secrets:read"}},
		{[]string{"actions:write"}, writ.KindDenied, "github_permission_not_allowed", []string{"actions:write"}},
		{[]string{"organization_administration:write"}, writ.KindDenied, "github_permission_not_allowed", []string{"organization_administration:write"}},
		{[]string{"repository_hooks:write"}, writ.KindDenied, "github_permission_not_allowed", []string{"repository_hooks:write"}},
		{[]string{"contents:admin"}, writ.KindInvalid, "github_permission_unknown", []string{"contents:admin"}},
		{[]string{"teleport:read"}, writ.KindInvalid, "github_permission_unknown", []string{"teleport:read"}},
		{[]string{"contents"}, writ.KindInvalid, "github_permission_unknown", []string{"contents"}},
		{[]string{"Contents:read"}, writ.KindInvalid, "github_permission_unknown", []string{"Contents:read"}},
	}
	for _, tt := range tests {
		_, err := s.Issue(context.Background(), issueReq("acme/api", tt.perms...))
		var we *writ.Error
		if !errors.As(err, &we) || we.Kind != tt.kind || we.Code != tt.code || !slices.Equal(we.Items, tt.items) {
			t.Errorf("Issue(%v) = %#v; want %v %s listing %v", tt.perms, err, tt.kind, tt.code, tt.items)
		}
	}
	if n := r.calls(); n != 0 {
		t.Errorf("%d HTTP calls made; want none", n)
	}
}

// TestTargetRefused: a target outside the configured owner or repos, or
// not a repository name, is invalid before any HTTP call.
func TestTargetRefused(t *testing.T) {
	r := newReplay(t)
	cfg := testConfig(t, r.srv.URL, nil)
	cfg.Repos = []string{"api", "web"}
	s := newSource(t, cfg)
	tests := map[string]string{
		"other/api":      "github_owner_not_configured",
		"acme/docs":      "github_repo_not_configured",
		"acme":           "github_target_invalid",
		"acme/api/extra": "github_target_invalid",
		"acme/..":        "github_target_invalid",
		"acme/a b":       "github_target_invalid",
		"-acme/api":      "github_target_invalid",
		"":               "github_target_invalid",
	}
	for target, code := range tests {
		_, err := s.Issue(context.Background(), issueReq(target))
		if writ.ErrorKind(err) != writ.KindInvalid || writ.ErrorCode(err) != code {
			t.Errorf("Issue(%q) = %v; want invalid %s", target, err, code)
		}
	}
	if n := r.calls(); n != 0 {
		t.Errorf("%d HTTP calls made; want none", n)
	}
}

// TestRevoke401IsDone: a token GitHub already ended answers 401; that
// counts as revoked.
func TestRevoke401IsDone(t *testing.T) {
	r := newReplay(t, deleteToken("", http.StatusUnauthorized, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}`))
	s := newSource(t, testConfig(t, r.srv.URL, nil))
	if err := s.Revoke(context.Background(), nil, []byte(instToken)); err != nil {
		t.Errorf("Revoke of an expired token = %v; want nil", err)
	}
}

// TestRevoke5xxIsError: GitHub failing is a retryable error; a later
// attempt succeeds. GitHub unreachable is retryable too.
func TestRevoke5xxIsError(t *testing.T) {
	r := newReplay(t,
		deleteToken("", http.StatusServiceUnavailable, `{"message":"Service Unavailable"}`),
		deleteToken("", http.StatusNoContent, ""),
	)
	s := newSource(t, testConfig(t, r.srv.URL, nil))
	err := s.Revoke(context.Background(), nil, []byte(instToken))
	if writ.ErrorKind(err) != writ.KindUnavailable || writ.ErrorCode(err) != "github_unavailable" || !strings.Contains(err.Error(), "503") {
		t.Errorf("Revoke on 503 = %v; want unavailable github_unavailable naming 503", err)
	}
	if err := s.Revoke(context.Background(), nil, []byte(instToken)); err != nil {
		t.Errorf("second Revoke = %v; want nil", err)
	}
	r.srv.Close()
	if err := s.Revoke(context.Background(), nil, []byte(instToken)); writ.ErrorKind(err) != writ.KindUnavailable {
		t.Errorf("Revoke with GitHub down = %v; want unavailable", err)
	}
}

// TestTokenWiderThanAskedRevoked: a token GitHub returns wider than asked
// (a permission not asked, more repositories) is revoked at once and the
// issue fails.
func TestTokenWiderThanAskedRevoked(t *testing.T) {
	t.Run("permission", func(t *testing.T) {
		wide := map[string]string{"contents": "write", "metadata": "read"}
		r := newReplay(t, createToken("", "api", defaultPerms, wide, t0.Add(time.Hour)), deleteToken("", http.StatusNoContent, ""))
		s := newSource(t, testConfig(t, r.srv.URL, nil))
		_, err := s.Issue(context.Background(), issueReq("acme/api"))
		if writ.ErrorCode(err) != "github_token_too_wide" {
			t.Errorf("Issue = %v; want github_token_too_wide", err)
		}
	})
	t.Run("repositories", func(t *testing.T) {
		ex := createToken("", "api", defaultPerms, defaultPerms, t0.Add(time.Hour))
		ex.resp = strings.Replace(ex.resp, `"repositories":[`, `"repositories":[{"name":"web","full_name":"acme/web"},`, 1)
		r := newReplay(t, ex, deleteToken("", http.StatusNoContent, ""))
		s := newSource(t, testConfig(t, r.srv.URL, nil))
		_, err := s.Issue(context.Background(), issueReq("acme/api"))
		if writ.ErrorCode(err) != "github_token_too_wide" {
			t.Errorf("Issue = %v; want github_token_too_wide", err)
		}
	})
}

// TestCreateRefusals: GitHub's refusals map to kinds a caller can act on.
func TestCreateRefusals(t *testing.T) {
	tests := []struct {
		status int
		resp   string
		kind   writ.Kind
		code   string
	}{
		{http.StatusUnprocessableEntity, `{"message":"There is at least one repository that does not exist or is not accessible to the parent installation.","documentation_url":"https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app","status":"422"}`, writ.KindDenied, "github_token_refused"},
		{http.StatusUnauthorized, `{"message":"'Expiration time' claim ('exp') is too far in the future","documentation_url":"https://docs.github.com/rest","status":"401"}`, writ.KindInternal, "github_app_auth_failed"},
		{http.StatusNotFound, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}`, writ.KindInternal, "github_installation_not_found"},
		{http.StatusBadGateway, `<html>bad gateway</html>`, writ.KindUnavailable, "github_unavailable"},
	}
	for _, tt := range tests {
		ex := createToken("", "api", defaultPerms, defaultPerms, t0.Add(time.Hour))
		ex.status, ex.resp = tt.status, tt.resp
		r := newReplay(t, ex)
		s := newSource(t, testConfig(t, r.srv.URL, nil))
		_, err := s.Issue(context.Background(), issueReq("acme/api"))
		if writ.ErrorKind(err) != tt.kind || writ.ErrorCode(err) != tt.code {
			t.Errorf("Issue on %d = %v; want %v %s", tt.status, err, tt.kind, tt.code)
		}
	}
}

// TestSecretsNeverLeak drives successes and failures with a debug-level
// JSON slog handler attached and checks that neither the token nor the
// App's private key appears in any error string, in the logs, or in the
// Source's fmt and slog forms.
func TestSecretsNeverLeak(t *testing.T) {
	logs := &logBuffer{}
	wide := map[string]string{"contents": "write", "metadata": "read"}
	r := newReplay(t,
		createToken("", "api", defaultPerms, defaultPerms, t0.Add(time.Hour)),
		deleteToken("", http.StatusInternalServerError, `{"message":"Server Error"}`),
		deleteToken("", http.StatusNoContent, ""),
		createToken("", "api", defaultPerms, wide, t0.Add(time.Hour)),
		deleteToken("", http.StatusBadGateway, `{"message":"bad gateway"}`), // the cleanup fails: logged
	)
	s := newSource(t, testConfig(t, r.srv.URL, logs))
	req := issueReq("acme/api")
	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	var errs []error
	errs = append(errs, s.Revoke(context.Background(), leaseOf(req), got.Handle))
	errs = append(errs, s.Revoke(context.Background(), leaseOf(req), got.Handle))
	_, err = s.Issue(context.Background(), issueReq("acme/api"))
	errs = append(errs, err)
	_, err = s.Issue(context.Background(), issueReq("acme/api", "contents:write"))
	errs = append(errs, err)

	var texts []string
	for _, err := range errs {
		if err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	if len(texts) != 9 {
		t.Fatalf("%d errors to inspect; the script should produce three", len(texts)/3)
	}
	if !strings.Contains(logs.String(), "could not revoke a refused token") {
		t.Errorf("the failed cleanup was not logged; logs:\n%s", logs)
	}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("source", slog.Any("source", s))
	texts = append(texts, logs.String(), fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), sb.String(), fmt.Sprint(got.Credential), fmt.Sprintf("%#v", got.Credential))

	key := testKey()
	der := x509.MarshalPKCS1PrivateKey(key)
	secrets := []string{instToken, key.D.String(), key.Primes[0].String(), base64.StdEncoding.EncodeToString(der)[:40], fmt.Sprintf("%x", key.D.Bytes())[:40]}
	for _, text := range texts {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("a secret (%.8s…) leaked into: %.300s", secret, text)
			}
		}
	}
}

// TestNewRejectsBadConfig: each mistake is a KindInvalid error saying what
// is wrong; PKCS #8 keys and numeric app IDs are accepted.
func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallFile := filepath.Join(dir, "small.pem")
	os.WriteFile(smallFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), 0o600)
	certFile := filepath.Join(dir, "cert.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), 0o600)
	junkFile := filepath.Join(dir, "junk.pem")
	os.WriteFile(junkFile, []byte("not pem"), 0o600)

	good := testConfig(t, "", nil)
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"plain http", func(c *Config) { c.APIURL = "http://api.github.com" }, "https"},
		{"bad url", func(c *Config) { c.APIURL = "api.github.com" }, "not a URL"},
		{"no app id", func(c *Config) { c.AppID = "" }, "appId"},
		{"no installation", func(c *Config) { c.InstallationID = 0 }, "installationId"},
		{"no owner", func(c *Config) { c.Owner = "" }, "owner"},
		{"bad owner", func(c *Config) { c.Owner = "acme/x" }, "owner"},
		{"bad repo", func(c *Config) { c.Repos = []string{"acme/api"} }, "repos"},
		{"no key", func(c *Config) { c.PrivateKeyFile = "" }, "privateKeyFile"},
		{"missing key", func(c *Config) { c.PrivateKeyFile = filepath.Join(dir, "nope.pem") }, "cannot read"},
		{"junk key", func(c *Config) { c.PrivateKeyFile = junkFile }, "no PEM block"},
		{"cert not key", func(c *Config) { c.PrivateKeyFile = certFile }, "not a private key"},
		{"small key", func(c *Config) { c.PrivateKeyFile = smallFile }, "1024 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			_, err := New(cfg)
			if writ.ErrorKind(err) != writ.KindInvalid || writ.ErrorCode(err) != "github_config_invalid" || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v; want invalid github_config_invalid mentioning %q", err, tt.want)
			}
		})
	}
	s, err := New(good)
	if err != nil {
		t.Fatalf("New(good) = %v", err)
	}
	if s.api != DefaultAPIURL {
		t.Errorf("default API URL = %q; want %s", s.api, DefaultAPIURL)
	}
	pk8 := good
	pk8.PrivateKeyFile, pk8.AppID = writeKey(t, true), "123456"
	if _, err := New(pk8); err != nil {
		t.Errorf("New with a PKCS #8 key and a numeric app id = %v", err)
	}
}

// TestHTTPClientTimeouts: the client always has a timeout and never
// follows redirects (a redirect would carry the bearer elsewhere).
func TestHTTPClientTimeouts(t *testing.T) {
	for _, c := range []*http.Client{nil, {}, {Timeout: 5 * time.Second}} {
		cfg := testConfig(t, "", nil)
		cfg.HTTPClient = c
		s := newSource(t, cfg)
		if s.http.Timeout <= 0 {
			t.Errorf("client timeout = %v; want one set", s.http.Timeout)
		}
		if c != nil && c.Timeout > 0 && s.http.Timeout != c.Timeout {
			t.Errorf("client timeout = %v; want the caller's %v", s.http.Timeout, c.Timeout)
		}
		if s.http.CheckRedirect == nil || s.http.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
			t.Errorf("the client follows redirects")
		}
		if c != nil && c.CheckRedirect != nil {
			t.Errorf("New changed the caller's client")
		}
	}
}

// TestParsePermissions: the default, merging, and the error lists.
func TestParsePermissions(t *testing.T) {
	got, err := ParsePermissions(nil)
	if err != nil || FormatPermissions(got) != "contents:read,metadata:read" {
		t.Errorf("ParsePermissions(nil) = %v, %v; want contents:read,metadata:read", got, err)
	}
	got, err = ParsePermissions([]string{"issues:write", "issues:read", " checks:read "})
	if err != nil || FormatPermissions(got) != "checks:read,issues:write" {
		t.Errorf("ParsePermissions = %v, %v; want checks:read,issues:write", got, err)
	}
}
