// Package vault is the broker source for HashiCorp Vault dynamic secrets:
// each lease reads one configured dynamic-secret path (a database role's
// creds, a cloud role's keys…) and hands the run the secret's data fields;
// revoking the lease revokes Vault's lease.
//
// # Identity
//
// With [Config.JWT] set, every issue logs in to Vault as the run itself:
// the server mints a JWT-SVID for the run ([Config.MintJWT]) and the source
// posts it to auth/<mount>/login, so Vault's audit log, policies and
// bound_claims see the run's SPIFFE ID, not writ's. The secret is read with
// the login token. Without JWT, the secret is read with writ's own token.
// Either way writ's own token revokes: sys/leases/revoke for the lease, and
// auth/token/revoke-accessor for the login token. In Vault a lease dies
// with the token that created it, so the login token is left alive until
// the lease is revoked and its lifetime caps the credential's.
//
// # Secrets
//
// writ's token, the login token and the secret's data never enter an
// error, a log line or [broker.Issued.Details]. The lease id and the path
// are recorded (lease ids are not secrets); the login token's accessor
// lives only in the handle, which the broker stores sealed.
//
// The source talks to Vault through github.com/hashicorp/vault/api with
// one attempt per call (no client-side retries: the broker retries
// revocation with backoff), no redirects followed, and none of the VAULT_*
// environment's token, namespace or headers: everything comes from
// [Config].
//
// Part of the writ server; no API stability.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/vault/api"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

const (
	// DefaultJWTMount is where Vault's JWT auth method is mounted unless
	// [JWTLogin.Mount] says otherwise.
	DefaultJWTMount = "jwt"

	// defaultTimeout bounds one Vault call when the caller's context does
	// not bound it sooner.
	defaultTimeout = 30 * time.Second
	// cleanupTimeout bounds the revocation an Issue that failed half-way
	// does before returning its error.
	cleanupTimeout = 10 * time.Second
	// maxErrText caps how much of Vault's error text goes into an error.
	maxErrText = 300
)

// Config configures a [Source].
type Config struct {
	// Address is Vault's URL, such as https://vault.example.org:8200. It
	// must be https, except on a loopback host (a dev server).
	Address string
	// Namespace is the Vault Enterprise or HCP namespace; empty for none.
	Namespace string

	// TokenFile names a file holding writ's own Vault token, as Vault
	// Agent's file sink writes it. It is read at every use, so a renewed or
	// rotated token is picked up without a restart. Exactly one of
	// TokenFile and TokenEnv is set: the token itself is never in config.
	TokenFile string
	// TokenEnv names an environment variable holding writ's own Vault
	// token. New reads it once.
	TokenEnv string

	// JWT, when set, makes every issue log in to Vault as the run (see the
	// package documentation). nil reads secrets with writ's own token.
	JWT *JWTLogin
	// MintJWT mints a JWT-SVID for run, with the audience the Vault role
	// binds (bound_audiences). Required when JWT is set; the server
	// supplies it.
	MintJWT func(ctx context.Context, run *writ.Run) (string, error)

	// Paths are the dynamic-secret paths a run may read, such as
	// database/creds/readonly, without a leading slash or "v1/". A
	// request's target must be one of them exactly.
	Paths []string

	// HTTPClient is the client Vault is called with. nil uses one with
	// connect, TLS-handshake and overall timeouts; a client without a
	// Timeout gets a 30 s one. Redirects are never followed.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// JWTLogin is Vault's JWT auth method, as a run logs in with it.
type JWTLogin struct {
	// Mount is the auth method's mount path; empty means "jwt".
	Mount string
	// Role is the Vault role the run logs in to. Its bound_audiences,
	// user_claim ("sub", the SPIFFE ID) and bound_claims decide which runs
	// it accepts, and its policies which paths they may read.
	Role string
}

// Source issues Vault dynamic secrets. It is safe for concurrent use.
type Source struct {
	addr      string
	namespace string
	tokenFile string
	envToken  secret // from TokenEnv, read once by New
	jwt       *JWTLogin
	mint      func(context.Context, *writ.Run) (string, error)
	paths     map[string]bool
	http      *http.Client
	timeout   time.Duration
	now       func() time.Time
	log       *slog.Logger
}

var _ broker.Source = (*Source)(nil)

// New returns a Source for cfg, or a *writ.Error (KindInvalid,
// vault_config_invalid) saying what in cfg is wrong.
func New(cfg Config) (*Source, error) {
	bad := func(format string, args ...any) error {
		return writ.Errorf(writ.KindInvalid, "vault_config_invalid", "vault: "+format, args...)
	}
	addr, err := checkAddress(cfg.Address)
	if err != nil {
		return nil, bad("address: %v", err)
	}
	s := &Source{
		addr:      addr,
		namespace: strings.Trim(cfg.Namespace, "/"),
		tokenFile: cfg.TokenFile,
		mint:      cfg.MintJWT,
		paths:     make(map[string]bool, len(cfg.Paths)),
		now:       cfg.Now,
		log:       cfg.Logger,
	}
	switch {
	case cfg.TokenFile == "" && cfg.TokenEnv == "":
		return nil, bad("set tokenFile or tokenEnv: writ's own Vault token revokes leases (and reads secrets when jwt is not set)")
	case cfg.TokenFile != "" && cfg.TokenEnv != "":
		return nil, bad("set only one of tokenFile and tokenEnv")
	case cfg.TokenFile != "":
		if _, err := s.writToken(); err != nil {
			return nil, err
		}
	default:
		v, ok := os.LookupEnv(cfg.TokenEnv)
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, bad("environment variable %s (tokenEnv) is unset or empty: it must hold writ's Vault token", cfg.TokenEnv)
		}
		if !printable(v) {
			return nil, bad("environment variable %s (tokenEnv) holds non-printable characters; a Vault token has none", cfg.TokenEnv)
		}
		s.envToken = secret(v)
	}

	if cfg.JWT != nil {
		j := *cfg.JWT
		j.Mount = strings.Trim(j.Mount, "/")
		if j.Mount == "" {
			j.Mount = DefaultJWTMount
		}
		if err := checkPath(j.Mount); err != nil {
			return nil, bad("jwt mount %q: %v", cfg.JWT.Mount, err)
		}
		if j.Role == "" || strings.ContainsAny(j.Role, "/ \t\r\n") {
			return nil, bad("jwt role %q: name the Vault JWT role runs log in to (no slashes or spaces)", j.Role)
		}
		if cfg.MintJWT == nil {
			return nil, bad("jwt login is configured but no MintJWT hook was given (a server wiring bug)")
		}
		s.jwt = &j
	}

	if len(cfg.Paths) == 0 {
		return nil, bad("paths is empty: list the dynamic-secret paths runs may read, such as database/creds/readonly")
	}
	for _, p := range cfg.Paths {
		if err := checkPath(p); err != nil {
			return nil, bad("path %q: %v", p, err)
		}
		if first, _, _ := strings.Cut(p, "/"); slices.Contains(reservedMounts, first) {
			return nil, bad("path %q: %s/ is not a secrets engine; list dynamic-secret paths such as database/creds/<role>", p, first)
		}
		s.paths[p] = true
	}

	s.http, s.timeout = httpClient(cfg.HTTPClient)
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With(slog.String("component", "broker/vault"))
	return s, nil
}

// reservedMounts are Vault's own paths: reading them returns tokens or
// configuration, never a dynamic secret, so they are refused as paths.
var reservedMounts = []string{"auth", "sys", "identity", "cubbyhole", "v1"}

// String describes the source without its token.
func (s *Source) String() string {
	return fmt.Sprintf("vault source %s (%d paths, jwt login %t)", s.addr, len(s.paths), s.jwt != nil)
}

// GoString is String, so %#v does not print the token either.
func (s *Source) GoString() string { return s.String() }

// LogValue describes the source for slog without its token.
func (s *Source) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("address", s.addr), slog.Int("paths", len(s.paths))}
	if s.jwt != nil {
		attrs = append(attrs, slog.String("jwt_mount", s.jwt.Mount), slog.String("jwt_role", s.jwt.Role))
	}
	return slog.GroupValue(attrs...)
}

// handle is what Revoke needs, as JSON. It is stored sealed: the accessor
// can revoke (and look up) the login token.
type handle struct {
	V        int    `json:"v"`
	LeaseID  string `json:"leaseId"`
	Accessor string `json:"accessor,omitempty"`
}

// Issue reads req.Target (one of Config.Paths) from Vault, logging in as
// the run first when JWT login is configured, and returns the secret's
// data as the credential.
func (s *Source) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	if req == nil {
		return nil, writ.Errorf(writ.KindInvalid, "vault_request_invalid", "vault: no issue request")
	}
	if !s.paths[req.Target] {
		return nil, writ.Errorf(writ.KindInvalid, "vault_path_not_configured",
			"vault: path %q is not one of the configured vault paths; add it to the vault source's paths or request a configured one", req.Target)
	}
	for _, p := range req.Permissions {
		if p != "read" {
			return nil, writ.Errorf(writ.KindInvalid, "vault_permission_unknown",
				"vault: permission %q is not known: a vault lease reads its path, so the only permission is \"read\"", p)
		}
	}
	now := s.now()
	if !req.ExpiresAt.After(now) {
		return nil, writ.Errorf(writ.KindInvalid, "vault_request_invalid", "vault: the lease would expire before it is issued")
	}
	if s.jwt != nil && req.Run == nil {
		return nil, writ.Errorf(writ.KindInvalid, "vault_request_invalid", "vault: jwt login needs the run the lease is for")
	}
	log := s.log.With(slog.String("lease", req.Lease), slog.String("path", req.Target))

	readToken, err := s.writToken()
	if err != nil {
		return nil, err
	}
	expires := req.ExpiresAt
	var h handle
	h.V = 1
	if s.jwt != nil {
		auth, err := s.login(ctx, req.Run)
		if err != nil {
			return nil, err
		}
		readToken, h.Accessor = auth.ClientToken, auth.Accessor
		if auth.LeaseDuration > 0 {
			expires = earlier(expires, now.Add(time.Duration(auth.LeaseDuration)*time.Second))
		}
	}

	sec, err := s.read(ctx, readToken, req.Target)
	if err == nil && sec != nil {
		h.LeaseID = sec.LeaseID
	}
	if err == nil {
		err = checkDynamic(sec, req.Target)
	}
	var cred writ.Credential
	if err == nil {
		cred, err = credential(sec.Data, req.Target)
	}
	if err != nil {
		// Leave nothing behind: revoke what was created (the lease, the
		// login token) before reporting the error.
		if h.LeaseID != "" || h.Accessor != "" {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			if rerr := s.revoke(cctx, h); rerr != nil {
				log.WarnContext(ctx, "vault: could not clean up after a failed issue; Vault ends it at its TTL",
					slog.String("lease_id", h.LeaseID), slog.Any("error", rerr))
			}
			cancel()
		}
		return nil, err
	}

	if sec.LeaseDuration > 0 {
		expires = earlier(expires, now.Add(time.Duration(sec.LeaseDuration)*time.Second))
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("vault: encode handle: %w", err)
	}
	out := &broker.Issued{
		Credential: cred,
		Handle:     hb,
		Details: map[string]string{
			"leaseId":   sec.LeaseID,
			"path":      req.Target,
			"renewable": fmt.Sprint(sec.Renewable),
		},
	}
	if expires.Before(req.ExpiresAt) {
		out.ExpiresAt = expires
	}
	log.DebugContext(ctx, "vault: issued", slog.String("lease_id", sec.LeaseID),
		slog.Int("lease_duration_s", sec.LeaseDuration), slog.Bool("jwt_login", s.jwt != nil))
	return out, nil
}

// Revoke revokes the Vault lease in handle with writ's token (sync, so
// the secrets engine has dropped the credential when it returns), then the
// login token by its accessor. A lease or token Vault no longer knows
// (expired, revoked before) counts as revoked. Any other failure is
// returned for the broker to retry.
func (s *Source) Revoke(ctx context.Context, lease *writ.Lease, hb []byte) error {
	var h handle
	if err := json.Unmarshal(hb, &h); err != nil || h.V != 1 || (h.LeaseID == "" && h.Accessor == "") {
		return writ.Errorf(writ.KindInvalid, "vault_handle_invalid", "vault: the lease's handle is not one this source wrote")
	}
	if err := s.revoke(ctx, h); err != nil {
		return err
	}
	id := ""
	if lease != nil {
		id = lease.ID
	}
	s.log.DebugContext(ctx, "vault: revoked", slog.String("lease", id), slog.String("lease_id", h.LeaseID))
	return nil
}

func (s *Source) revoke(ctx context.Context, h handle) error {
	tok, err := s.writToken()
	if err != nil {
		return err
	}
	c, err := s.client(tok)
	if err != nil {
		return err
	}
	if h.LeaseID != "" {
		_, err := c.Logical().WriteWithContext(ctx, "sys/leases/revoke", map[string]any{"lease_id": h.LeaseID, "sync": true})
		if err != nil && !gone(err, "invalid lease", "lease not found") {
			return s.callError("revoke lease "+h.LeaseID, err)
		}
	}
	if h.Accessor != "" {
		err := c.Auth().Token().RevokeAccessorWithContext(ctx, h.Accessor)
		if err != nil && !gone(err, "invalid accessor", "token not found") {
			return s.callError("revoke the run's login token", err)
		}
	}
	return nil
}

// login logs in to Vault as run and returns the login's auth block.
func (s *Source) login(ctx context.Context, run *writ.Run) (*api.SecretAuth, error) {
	jwt, err := s.mint(ctx, run)
	if err != nil {
		return nil, fmt.Errorf("vault: mint the run's JWT for vault login: %w", err)
	}
	c, err := s.client("") // a login carries no token
	if err != nil {
		return nil, err
	}
	path := "auth/" + s.jwt.Mount + "/login"
	sec, err := c.Logical().WriteWithContext(ctx, path, map[string]any{"role": s.jwt.Role, "jwt": jwt})
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("%w: %s", writ.Errorf(writ.KindDenied, "vault_login_refused",
				"vault refused the run's login to jwt role %q; check the role's bound_audiences and bound_claims and the auth method's oidc_discovery_url", s.jwt.Role), responseText(re))
		}
		return nil, s.callError("log in to "+path, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, writ.Errorf(writ.KindInternal, "vault_bad_response",
			"vault: the login to %s returned no client token (is an MFA requirement configured on the role?)", path)
	}
	if !printable(sec.Auth.ClientToken) || sec.Auth.Accessor == "" {
		// Without the accessor writ could not revoke the token later.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if c, err := s.client(sec.Auth.ClientToken); err == nil {
			_ = c.Auth().Token().RevokeSelfWithContext(cctx, "")
		}
		return nil, writ.Errorf(writ.KindInternal, "vault_bad_response",
			"vault: the login to %s returned a token without an accessor, which writ needs to revoke it", path)
	}
	return sec.Auth, nil
}

// read reads path with token.
func (s *Source) read(ctx context.Context, token, path string) (*api.Secret, error) {
	c, err := s.client(token)
	if err != nil {
		return nil, err
	}
	sec, err := c.Logical().ReadWithContext(ctx, path)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("%w: %s", writ.Errorf(writ.KindDenied, "vault_permission_denied",
				"vault denied reading %q; the reading token's policies must allow read on it", path), responseText(re))
		}
		return nil, s.callError("read "+path, err)
	}
	if sec == nil {
		return nil, writ.Errorf(writ.KindNotFound, "vault_path_not_found",
			"vault: nothing at %q; check the secrets engine's mount and role name", path)
	}
	return sec, nil
}

// checkDynamic refuses a response that is not a dynamic secret: one
// without a lease cannot be revoked, so it is not what this source hands
// out (a static secret belongs in the built-in secret source).
func checkDynamic(sec *api.Secret, path string) error {
	if sec.LeaseID == "" {
		return writ.Errorf(writ.KindInvalid, "vault_not_dynamic",
			"vault: %q returned no lease, so it is not a dynamic secret writ can revoke; configure a dynamic-secret path (such as database/creds/<role>)", path)
	}
	return nil
}

// credential turns a secret's data into the credential's fields.
func credential(data map[string]any, path string) (writ.Credential, error) {
	cred := make(writ.Credential, len(data))
	for k, v := range data {
		switch v := v.(type) {
		case nil:
		case string:
			cred[k] = v
		case json.Number:
			cred[k] = v.String()
		case bool:
			cred[k] = fmt.Sprint(v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, writ.Errorf(writ.KindInternal, "vault_bad_response", "vault: field %q of %q is not representable", k, path)
			}
			cred[k] = string(b)
		}
	}
	if len(cred) == 0 {
		return nil, writ.Errorf(writ.KindInternal, "vault_bad_response", "vault: %q returned a lease but no data", path)
	}
	return cred, nil
}

// client returns a Vault client calling with token ("" for none). A fresh
// client per call keeps tokens of concurrent issues apart.
func (s *Source) client(token string) (*api.Client, error) {
	c, err := api.NewClient(&api.Config{
		Address:          s.addr,
		HttpClient:       s.http,
		Timeout:          s.timeout,
		MaxRetries:       0, // the broker retries, with backoff
		DisableRedirects: true,
	})
	if err != nil {
		return nil, fmt.Errorf("vault: client: %w", err)
	}
	// NewClient takes VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from
	// the environment; writ's config is the only source of all three.
	h := http.Header{}
	h.Set(api.RequestHeaderName, "true")
	if s.namespace != "" {
		h.Set(api.NamespaceHeaderName, s.namespace)
	}
	c.SetHeaders(h)
	c.SetToken(token)
	return c, nil
}

// writToken returns writ's own Vault token.
func (s *Source) writToken() (string, error) {
	if s.tokenFile == "" {
		return string(s.envToken), nil
	}
	b, err := os.ReadFile(s.tokenFile)
	if err != nil {
		return "", writ.Errorf(writ.KindInvalid, "vault_config_invalid",
			"vault: cannot read writ's Vault token from %s (tokenFile): %v", s.tokenFile, pathErr(err))
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", writ.Errorf(writ.KindInvalid, "vault_config_invalid", "vault: %s (tokenFile) is empty: it must hold writ's Vault token", s.tokenFile)
	}
	if !printable(t) {
		return "", writ.Errorf(writ.KindInvalid, "vault_config_invalid", "vault: %s (tokenFile) holds non-printable characters; a Vault token has none", s.tokenFile)
	}
	return t, nil
}

// callError classifies a failed Vault call. Vault unreachable, 5xx and
// 429 are KindUnavailable (retry later); the rest are internal. The text
// carries the status and Vault's own error strings, which never hold a
// token.
func (s *Source) callError(op string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests {
			return fmt.Errorf("vault: %s: %w: %s", op, writ.Errorf(writ.KindUnavailable, "vault_unavailable",
				"vault answered %d; retry later", re.StatusCode), responseText(re))
		}
		return fmt.Errorf("vault: %s: %s", op, responseText(re))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vault: %s: %w", op, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is Vault's address and path: not worth repeating
	}
	return fmt.Errorf("vault: %s: %w: %v", op, writ.Errorf(writ.KindUnavailable, "vault_unavailable",
		"vault at %s did not answer; retry later", s.addr), err)
}

// responseText is a one-line summary of Vault's error response.
func responseText(re *api.ResponseError) string {
	msg := strings.Join(re.Errors, "; ")
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxErrText {
		msg = msg[:maxErrText] + "…"
	}
	return fmt.Sprintf("status %d from %s %s: %s", re.StatusCode, re.HTTPMethod, redactURL(re.URL), msg)
}

// gone reports whether err is Vault's 400 for a lease or token it no
// longer knows.
func gone(err error, phrases ...string) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, e := range re.Errors {
		for _, p := range phrases {
			if strings.Contains(strings.ToLower(e), p) {
				return true
			}
		}
	}
	return false
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// secret is a string that never prints.
type secret string

func (secret) String() string       { return "[redacted]" }
func (secret) GoString() string     { return "[redacted]" }
func (secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) })
}

// checkPath checks a Vault path as config names it: relative, clean, no
// "v1/" prefix.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty")
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		return errors.New("write it without leading or trailing slashes")
	case strings.HasPrefix(p, "v1/"):
		return errors.New(`write it without the "v1/" API prefix`)
	case strings.ContainsFunc(p, func(r rune) bool {
		return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '?' || r == '#' || r == '%'
	}):
		return errors.New("it holds spaces, control characters or URL syntax (?, #, %)")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("it holds an empty, . or .. segment")
		}
	}
	return nil
}

// checkAddress checks Vault's address and returns it without a trailing
// slash. Tokens travel to it, so it must be https unless it is a loopback
// dev server.
func checkAddress(a string) (string, error) {
	if a == "" {
		return "", errors.New("empty: set Vault's URL, such as https://vault.example.org:8200")
	}
	return broker.ServiceURL(a, "Vault", "https://vault.example.org:8200")
}

// redactURL drops any user info and query from a URL for an error text.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// pathErr is err without the *os.PathError's repetition of the path.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// httpClient returns the client Vault is called with and the timeout of
// one call.
func httpClient(c *http.Client) (*http.Client, time.Duration) {
	out := broker.HTTPClient(c, defaultTimeout)
	return out, out.Timeout
}
