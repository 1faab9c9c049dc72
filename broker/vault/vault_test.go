package vault

// These tests run against a replay of Vault's documented HTTP API, not a
// Vault server (none can be installed where they run). The replay answers
// with the requests and responses Vault's API documentation shows for the
// calls this source makes:
//
//   - POST /v1/auth/jwt/login {role, jwt} → {"auth": {client_token, accessor,
//     policies, lease_duration, renewable}}   (api-docs/auth/jwt, "JWT login")
//   - GET /v1/database/creds/:name → {lease_id, lease_duration, renewable,
//     "data": {username, password}}          (api-docs/secret/databases,
//     "Generate credentials"; lease fields as every leased response has them)
//   - POST /v1/sys/leases/revoke {lease_id, sync} → 204
//     (api-docs/system/leases, "Revoke lease")
//   - POST /v1/auth/token/revoke-accessor {accessor} → 204; an unknown
//     accessor → 400 {"errors": ["invalid accessor"]}  (api-docs/auth/token)
//
// and checks each request's method, path, X-Vault-Token header and JSON
// body. Vault does not tell PUT from POST (both are its "update"
// operation); the vault/api client sends PUT for Logical().Write, so the
// replay expects exactly what the client sends for each call.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

const (
	writToken  = "hvs.WRITSERVERTOKEN0000000000"
	loginToken = "hvs.RUNLOGINTOKEN11111111111"
	accessor   = "0e9e354a-520f-df04-6867-ee81cae3d42d"
	runJWT     = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly93cml0In0.SIGNATURE-OF-THE-RUN"
	leaseID    = "database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6"
	dbPassword = "132ae3ef-5a64-7499-351e-bfe59f3a2a21"
)

var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

// exchange is one documented request and the response the replay gives.
type exchange struct {
	method, path string
	token        string         // the X-Vault-Token expected; "" means none
	body         map[string]any // the JSON body expected; nil means none
	status       int
	resp         string
}

// replay serves a script of exchanges in order and fails the test on any
// request that is not the next one.
type replay struct {
	t      *testing.T
	mu     sync.Mutex
	script []exchange
	n      int
	srv    *httptest.Server
}

func newReplay(t *testing.T, script ...exchange) *replay {
	t.Helper()
	r := &replay{t: t, script: script}
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

// add appends exchanges to the script.
func (r *replay) add(ex ...exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script, ex...)
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
		http.Error(w, `{"errors":["unexpected request"]}`, http.StatusInternalServerError)
		return
	}
	ex := r.script[r.n]
	r.n++
	if req.Method != ex.method || req.URL.Path != ex.path {
		t.Errorf("replay: request %d = %s %s; want %s %s", r.n, req.Method, req.URL.Path, ex.method, ex.path)
	}
	if got := req.Header.Get("X-Vault-Token"); got != ex.token {
		t.Errorf("replay: %s X-Vault-Token = %q; want %q", ex.path, got, ex.token)
	}
	if got := req.Header.Get("X-Vault-Request"); got != "true" {
		t.Errorf("replay: %s X-Vault-Request = %q; want true", ex.path, got)
	}
	if ns := req.Header.Get("X-Vault-Namespace"); ns != "" {
		t.Errorf("replay: %s X-Vault-Namespace = %q; want none", ex.path, ns)
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
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ex.status)
	io.WriteString(w, ex.resp)
}

// Documented exchanges.

func login(ttl int) exchange {
	return exchange{
		method: "PUT", path: "/v1/auth/jwt/login",
		body:   map[string]any{"role": "writ-run", "jwt": runJWT},
		status: 200,
		resp: fmt.Sprintf(`{"request_id":"c701169c-64f8-26cc-0315-078e8c3ce897","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,
		  "auth":{"client_token":%q,"accessor":%q,"policies":["default","db-readonly"],"token_policies":["default","db-readonly"],"metadata":{"role":"writ-run"},"lease_duration":%d,"renewable":true,"entity_id":"7d2e3179-f69b-450c-7179-ac8ee8bd8ca9","token_type":"service","orphan":true}}`,
			loginToken, accessor, ttl),
	}
}

func readCreds(token string, ttl int) exchange {
	return exchange{
		method: "GET", path: "/v1/database/creds/readonly", token: token,
		status: 200,
		resp: fmt.Sprintf(`{"request_id":"8b9b8f1b-2d2a-0b4e-5b3a-4b2d1b0a9c8d","lease_id":%q,"renewable":true,"lease_duration":%d,
		  "data":{"username":"root-1430158508-126","password":%q},"wrap_info":null,"warnings":null,"auth":null}`, leaseID, ttl, dbPassword),
	}
}

func revokeLease(status int, resp string) exchange {
	return exchange{
		method: "PUT", path: "/v1/sys/leases/revoke", token: writToken,
		body:   map[string]any{"lease_id": leaseID, "sync": true},
		status: status, resp: resp,
	}
}

func revokeAccessor(status int, resp string) exchange {
	return exchange{
		method: "POST", path: "/v1/auth/token/revoke-accessor", token: writToken,
		body:   map[string]any{"accessor": accessor},
		status: status, resp: resp,
	}
}

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

type fixture struct {
	cfg  Config
	logs *logBuffer
	runs []*writ.Run // runs MintJWT was called for
	mu   sync.Mutex
}

// newFixture returns a Config for the replay at url with writ's token in a
// file, a fixed clock and a captured debug log.
func newFixture(t *testing.T, url string, jwtLogin bool) *fixture {
	t.Helper()
	f := &fixture{logs: &logBuffer{}}
	tokenFile := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(tokenFile, []byte(writToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.cfg = Config{
		Address:   url,
		TokenFile: tokenFile,
		Paths:     []string{"database/creds/readonly"},
		Now:       func() time.Time { return t0 },
		Logger:    slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if jwtLogin {
		f.cfg.JWT = &JWTLogin{Role: "writ-run"}
		f.cfg.MintJWT = func(_ context.Context, run *writ.Run) (string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.runs = append(f.runs, run)
			return runJWT, nil
		}
	}
	return f
}

func (f *fixture) source(t *testing.T) *Source {
	t.Helper()
	s, err := New(f.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

var testRun = &writ.Run{ID: "run_01jd0000000000000000000000", Agent: "refactor-bot", Profile: "refactor"}

func issueReq(target string) *broker.IssueRequest {
	return &broker.IssueRequest{
		Lease:     "lse_01jd0000000000000000000001",
		Run:       testRun,
		Target:    target,
		ExpiresAt: t0.Add(5 * time.Minute),
	}
}

func leaseOf(req *broker.IssueRequest) *writ.Lease {
	return &writ.Lease{ID: req.Lease, Run: req.Run.ID, Kind: writ.CredentialVault, Target: req.Target, State: writ.LeaseActive, ExpiresAt: req.ExpiresAt}
}

// TestIssueRevokeRoundTrip: without JWT login the secret is read with
// writ's token; the credential is the secret's data, the details carry the
// lease id and path, the expiry is Vault's lease when that is shorter, and
// Revoke revokes the lease through sys/leases/revoke with writ's token.
func TestIssueRevokeRoundTrip(t *testing.T) {
	r := newReplay(t, readCreds(writToken, 120), revokeLease(http.StatusNoContent, ""))
	f := newFixture(t, r.srv.URL, false)
	s := f.source(t)
	req := issueReq("database/creds/readonly")

	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if diff := cmp.Diff(writ.Credential{"username": "root-1430158508-126", "password": dbPassword}, got.Credential); diff != "" {
		t.Errorf("Credential mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"leaseId": leaseID, "path": "database/creds/readonly", "renewable": "true"}, got.Details); diff != "" {
		t.Errorf("Details mismatch (-want +got):\n%s", diff)
	}
	if want := t0.Add(120 * time.Second); !got.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v; want %v (Vault's 120 s lease is shorter than the 5 min asked)", got.ExpiresAt, want)
	}
	if got.Static || got.Verifier != nil {
		t.Errorf("Static = %t, Verifier = %x; want a dynamic credential with no verifier", got.Static, got.Verifier)
	}
	if err := s.Revoke(context.Background(), leaseOf(req), got.Handle); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
}

// TestIssueLeaseOutlivesRequest: a Vault lease longer than asked leaves
// Issued.ExpiresAt unset; writ revokes at the lease's expiry.
func TestIssueLeaseOutlivesRequest(t *testing.T) {
	r := newReplay(t, readCreds(writToken, 3600))
	s := newFixture(t, r.srv.URL, false).source(t)
	got, err := s.Issue(context.Background(), issueReq("database/creds/readonly"))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if !got.ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt = %v; want zero (Vault's lease outlives the 5 min asked)", got.ExpiresAt)
	}
}

// TestJWTLogin: with JWT login the run's own JWT is posted to
// auth/jwt/login without any token, the returned client token reads the
// secret, the login token's TTL caps the expiry (leases die with their
// token), and Revoke revokes the lease and then the login token by
// accessor, both with writ's token.
func TestJWTLogin(t *testing.T) {
	r := newReplay(t,
		login(90),
		readCreds(loginToken, 3600),
		revokeLease(http.StatusNoContent, ""),
		revokeAccessor(http.StatusNoContent, ""),
	)
	f := newFixture(t, r.srv.URL, true)
	s := f.source(t)
	req := issueReq("database/creds/readonly")

	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if len(f.runs) != 1 || f.runs[0] != testRun {
		t.Errorf("MintJWT called for %v; want once, for the request's run", f.runs)
	}
	if want := t0.Add(90 * time.Second); !got.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v; want %v (the login token's 90 s TTL)", got.ExpiresAt, want)
	}
	if got.Credential["password"] != dbPassword {
		t.Errorf("Credential lacks the secret's password")
	}
	for _, s := range []string{loginToken, writToken} {
		if bytes.Contains(got.Handle, []byte(s)) {
			t.Errorf("the handle holds a token; it must hold only the lease id and the accessor")
		}
	}
	if !bytes.Contains(got.Handle, []byte(accessor)) {
		t.Errorf("the handle lacks the login token's accessor: %s", got.Handle)
	}
	if err := s.Revoke(context.Background(), leaseOf(req), got.Handle); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
}

// TestPathNotConfigured: a target outside Config.Paths is refused as
// invalid before any HTTP call and before a JWT is minted.
func TestPathNotConfigured(t *testing.T) {
	r := newReplay(t)
	f := newFixture(t, r.srv.URL, true)
	s := f.source(t)
	for _, target := range []string{"database/creds/admin", "database/creds/readonly/", "/database/creds/readonly", "auth/token/lookup-self", ""} {
		_, err := s.Issue(context.Background(), issueReq(target))
		if writ.ErrorKind(err) != writ.KindInvalid || writ.ErrorCode(err) != "vault_path_not_configured" {
			t.Errorf("Issue(%q) = %v; want invalid vault_path_not_configured", target, err)
		}
	}
	if n := r.calls(); n != 0 {
		t.Errorf("%d HTTP calls made; want none", n)
	}
	if len(f.runs) != 0 {
		t.Errorf("MintJWT called %d times; want none", len(f.runs))
	}
}

// TestUnknownPermissionRefused: the only permission a Vault lease knows is
// read.
func TestUnknownPermissionRefused(t *testing.T) {
	r := newReplay(t)
	s := newFixture(t, r.srv.URL, false).source(t)
	req := issueReq("database/creds/readonly")
	req.Permissions = []string{"write"}
	if _, err := s.Issue(context.Background(), req); writ.ErrorCode(err) != "vault_permission_unknown" {
		t.Errorf("Issue with write = %v; want vault_permission_unknown", err)
	}
}

// TestRevokeRetryAfter5xx: a sealed or failing Vault makes Revoke return a
// retryable (unavailable) error; a later attempt that succeeds revokes.
func TestRevokeRetryAfter5xx(t *testing.T) {
	r := newReplay(t,
		login(300), readCreds(loginToken, 300),
		revokeLease(http.StatusServiceUnavailable, `{"errors":["Vault is sealed"]}`),
		revokeLease(http.StatusNoContent, ""), revokeAccessor(http.StatusInternalServerError, `{"errors":["internal error"]}`),
		revokeLease(http.StatusNoContent, ""), revokeAccessor(http.StatusNoContent, ""),
	)
	s := newFixture(t, r.srv.URL, true).source(t)
	req := issueReq("database/creds/readonly")
	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	for i, want := range []string{"503", "500", ""} {
		err := s.Revoke(context.Background(), leaseOf(req), got.Handle)
		if want == "" {
			if err != nil {
				t.Fatalf("Revoke attempt %d: %v; want success", i+1, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("Revoke attempt %d succeeded; want an error for Vault's %s", i+1, want)
		}
		if writ.ErrorKind(err) != writ.KindUnavailable || writ.ErrorCode(err) != "vault_unavailable" || !strings.Contains(err.Error(), want) {
			t.Errorf("Revoke attempt %d = %v; want unavailable vault_unavailable naming status %s", i+1, err, want)
		}
	}
}

// TestRevokeNetworkError: Vault unreachable is a retryable error too.
func TestRevokeNetworkError(t *testing.T) {
	r := newReplay(t, readCreds(writToken, 300))
	s := newFixture(t, r.srv.URL, false).source(t)
	req := issueReq("database/creds/readonly")
	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	r.srv.Close()
	err = s.Revoke(context.Background(), leaseOf(req), got.Handle)
	if writ.ErrorKind(err) != writ.KindUnavailable {
		t.Errorf("Revoke with Vault down = %v; want an unavailable error", err)
	}
}

// TestRevokeAlreadyGone: a lease Vault no longer knows (Vault answers 204
// for it; a 400 "invalid lease" is accepted too) and a login token already
// expired (400 "invalid accessor") count as revoked.
func TestRevokeAlreadyGone(t *testing.T) {
	r := newReplay(t,
		login(300), readCreds(loginToken, 300),
		revokeLease(http.StatusBadRequest, `{"errors":["invalid lease ID"]}`),
		revokeAccessor(http.StatusBadRequest, `{"errors":["invalid accessor"]}`),
		revokeLease(http.StatusNoContent, ""),
		revokeAccessor(http.StatusBadRequest, `{"errors":["invalid accessor"]}`),
	)
	s := newFixture(t, r.srv.URL, true).source(t)
	req := issueReq("database/creds/readonly")
	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	for i := range 2 {
		if err := s.Revoke(context.Background(), leaseOf(req), got.Handle); err != nil {
			t.Errorf("Revoke %d of an already revoked lease: %v; want nil", i+1, err)
		}
	}
}

// TestRevokeOtherRefusal: a 400 that is not "gone" (a policy that does not
// allow writ's token to revoke) is an error, not silently "done".
func TestRevokeOtherRefusal(t *testing.T) {
	r := newReplay(t, readCreds(writToken, 300), revokeLease(http.StatusForbidden, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`))
	s := newFixture(t, r.srv.URL, false).source(t)
	req := issueReq("database/creds/readonly")
	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	err = s.Revoke(context.Background(), leaseOf(req), got.Handle)
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Revoke refused by policy = %v; want an error naming permission denied", err)
	}
}

// TestIssueFailureCleansUp: when the login succeeded but the read fails or
// is not a dynamic secret, Issue revokes the login token (and any lease)
// before returning its error, so nothing is left behind.
func TestIssueFailureCleansUp(t *testing.T) {
	t.Run("read denied", func(t *testing.T) {
		denied := readCreds(loginToken, 0)
		denied.status, denied.resp = http.StatusForbidden, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`
		r := newReplay(t, login(300), denied, revokeAccessor(http.StatusNoContent, ""))
		s := newFixture(t, r.srv.URL, true).source(t)
		_, err := s.Issue(context.Background(), issueReq("database/creds/readonly"))
		if writ.ErrorKind(err) != writ.KindDenied || writ.ErrorCode(err) != "vault_permission_denied" {
			t.Errorf("Issue = %v; want denied vault_permission_denied", err)
		}
	})
	t.Run("not dynamic", func(t *testing.T) {
		static := readCreds(loginToken, 0)
		static.resp = `{"request_id":"1","lease_id":"","renewable":false,"lease_duration":2764800,"data":{"password":"static-value"}}`
		r := newReplay(t, login(300), static, revokeAccessor(http.StatusNoContent, ""))
		s := newFixture(t, r.srv.URL, true).source(t)
		_, err := s.Issue(context.Background(), issueReq("database/creds/readonly"))
		if writ.ErrorCode(err) != "vault_not_dynamic" {
			t.Errorf("Issue = %v; want vault_not_dynamic", err)
		}
	})
	t.Run("lease without data", func(t *testing.T) {
		empty := readCreds(writToken, 300)
		empty.resp = fmt.Sprintf(`{"lease_id":%q,"renewable":true,"lease_duration":300,"data":{}}`, leaseID)
		r := newReplay(t, empty, revokeLease(http.StatusNoContent, ""))
		s := newFixture(t, r.srv.URL, false).source(t)
		if _, err := s.Issue(context.Background(), issueReq("database/creds/readonly")); err == nil {
			t.Errorf("Issue of a lease without data succeeded; want an error")
		}
	})
	t.Run("login refused", func(t *testing.T) {
		refused := login(0)
		refused.status, refused.resp = http.StatusBadRequest, `{"errors":["error validating claims: claim \"agent\" does not match any associated bound claim values"]}`
		r := newReplay(t, refused)
		s := newFixture(t, r.srv.URL, true).source(t)
		_, err := s.Issue(context.Background(), issueReq("database/creds/readonly"))
		if writ.ErrorKind(err) != writ.KindDenied || writ.ErrorCode(err) != "vault_login_refused" || !strings.Contains(err.Error(), "bound claim") {
			t.Errorf("Issue = %v; want denied vault_login_refused carrying Vault's reason", err)
		}
	})
}

// TestSecretsNeverLeak drives successes and failures with a debug-level
// JSON slog handler attached and checks that no token, JWT or secret value
// appears in any error string, in the logs, or in the Source's fmt and
// slog forms.
func TestSecretsNeverLeak(t *testing.T) {
	denied := readCreds(loginToken, 0)
	denied.status, denied.resp = http.StatusForbidden, `{"errors":["permission denied"]}`
	r := newReplay(t,
		login(300), readCreds(loginToken, 300), // success
		revokeLease(http.StatusServiceUnavailable, `{"errors":["Vault is sealed"]}`),
		revokeLease(http.StatusNoContent, ""), revokeAccessor(http.StatusNoContent, ""),
		login(300), denied, revokeAccessor(http.StatusInternalServerError, `{"errors":["internal error"]}`), // failed issue, failed cleanup
	)
	f := newFixture(t, r.srv.URL, true)
	s := f.source(t)
	var errs []error
	req := issueReq("database/creds/readonly")
	got, err := s.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	errs = append(errs, s.Revoke(context.Background(), leaseOf(req), got.Handle))
	errs = append(errs, s.Revoke(context.Background(), leaseOf(req), got.Handle))
	_, err = s.Issue(context.Background(), issueReq("database/creds/readonly"))
	errs = append(errs, err)
	_, err = s.Issue(context.Background(), issueReq("database/creds/other"))
	errs = append(errs, err)

	var texts []string
	for _, err := range errs {
		if err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	if len(texts) < 3 {
		t.Fatalf("only %d errors to inspect; the script should produce three", len(texts)/3)
	}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("source", slog.Any("source", s))
	texts = append(texts, f.logs.String(), fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), sb.String(), fmt.Sprint(got), fmt.Sprintf("%+v", *got))
	if !strings.Contains(f.logs.String(), "could not clean up") {
		t.Errorf("the failed cleanup was not logged; logs:\n%s", f.logs)
	}
	for _, text := range texts {
		for _, secret := range []string{writToken, loginToken, runJWT, dbPassword} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret (%.8s…) leaked into: %s", secret, text)
			}
		}
	}
}

// TestTokenFromEnv: TokenEnv names the variable New reads writ's token
// from; the env source never prints it either.
func TestTokenFromEnv(t *testing.T) {
	t.Setenv("WRIT_TEST_VAULT_TOKEN", writToken)
	r := newReplay(t, readCreds(writToken, 300))
	f := newFixture(t, r.srv.URL, false)
	f.cfg.TokenFile, f.cfg.TokenEnv = "", "WRIT_TEST_VAULT_TOKEN"
	s := f.source(t)
	if _, err := s.Issue(context.Background(), issueReq("database/creds/readonly")); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v", s, s, s), writToken) {
		t.Errorf("the Source prints writ's token")
	}
}

// TestNewRejectsBadConfig: each mistake is a KindInvalid error saying what
// is wrong.
func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(writToken), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mint := func(context.Context, *writ.Run) (string, error) { return "", nil }
	good := Config{Address: "https://vault.example.org:8200", TokenFile: tokenFile, Paths: []string{"database/creds/readonly"}}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no address", func(c *Config) { c.Address = "" }, "address"},
		{"plain http", func(c *Config) { c.Address = "http://vault.example.org:8200" }, "https"},
		{"address with user", func(c *Config) { c.Address = "https://u:p@vault.example.org" }, "not a URL"},
		{"no token", func(c *Config) { c.TokenFile = "" }, "tokenFile or tokenEnv"},
		{"both tokens", func(c *Config) { c.TokenEnv = "X" }, "only one"},
		{"token file missing", func(c *Config) { c.TokenFile = filepath.Join(dir, "nope") }, "cannot read"},
		{"token file empty", func(c *Config) { c.TokenFile = emptyFile }, "empty"},
		{"token env unset", func(c *Config) { c.TokenFile, c.TokenEnv = "", "WRIT_TEST_UNSET_VARIABLE" }, "unset or empty"},
		{"jwt without role", func(c *Config) { c.JWT, c.MintJWT = &JWTLogin{}, mint }, "jwt role"},
		{"jwt without hook", func(c *Config) { c.JWT = &JWTLogin{Role: "r"} }, "MintJWT"},
		{"jwt bad mount", func(c *Config) { c.JWT, c.MintJWT = &JWTLogin{Role: "r", Mount: "a/../b"}, mint }, "jwt mount"},
		{"no paths", func(c *Config) { c.Paths = nil }, "paths is empty"},
		{"leading slash", func(c *Config) { c.Paths = []string{"/database/creds/x"} }, "slashes"},
		{"v1 prefix", func(c *Config) { c.Paths = []string{"v1/database/creds/x"} }, "v1/"},
		{"dotdot", func(c *Config) { c.Paths = []string{"database/../sys/x"} }, ".."},
		{"query", func(c *Config) { c.Paths = []string{"database/creds/x?list=true"} }, "URL syntax"},
		{"auth path", func(c *Config) { c.Paths = []string{"auth/token/lookup-self"} }, "not a secrets engine"},
		{"sys path", func(c *Config) { c.Paths = []string{"sys/leases/lookup"} }, "not a secrets engine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			_, err := New(cfg)
			if writ.ErrorKind(err) != writ.KindInvalid || writ.ErrorCode(err) != "vault_config_invalid" || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v; want invalid vault_config_invalid mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := New(good); err != nil {
		t.Errorf("New(good) = %v", err)
	}
	loop := good
	loop.Address = "http://127.0.0.1:8200"
	if _, err := New(loop); err != nil {
		t.Errorf("New with a loopback http dev server = %v; want it accepted", err)
	}
}

// TestHTTPClientTimeouts: the client always has a timeout and never
// follows redirects (a redirect would carry X-Vault-Token elsewhere).
func TestHTTPClientTimeouts(t *testing.T) {
	for _, c := range []*http.Client{nil, {}, {Timeout: 5 * time.Second}} {
		cfg := newFixture(t, "https://vault.example.org", false).cfg
		cfg.HTTPClient = c
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.http.Timeout <= 0 || s.timeout != s.http.Timeout {
			t.Errorf("client timeout = %v (call timeout %v); want both set", s.http.Timeout, s.timeout)
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

// TestRevokeBadHandle: a handle this source did not write is refused.
func TestRevokeBadHandle(t *testing.T) {
	r := newReplay(t)
	s := newFixture(t, r.srv.URL, false).source(t)
	for _, h := range []string{"", "{}", `{"v":2,"leaseId":"x"}`, "not json"} {
		if err := s.Revoke(context.Background(), nil, []byte(h)); writ.ErrorCode(err) != "vault_handle_invalid" {
			t.Errorf("Revoke(%q) = %v; want vault_handle_invalid", h, err)
		}
	}
}
