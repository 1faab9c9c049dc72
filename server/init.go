package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/trigger"
)

// InitOptions shape the files `writ init` writes.
type InitOptions struct {
	TrustDomain string // default writ.example.org
	PublicURL   string // default http://<listen>
	Listen      string // default 127.0.0.1:7300
	Human       string // the first human signer and admin; default alice
	HumanKey    string // the human's public key line; empty: generate a key pair in DIR
}

// InitResult says what `writ init` wrote.
type InitResult struct {
	Config       string // path of writ.yaml
	HumanKeyFile string // private key written for the human, if one was generated
	Trigger      string // path of the example trigger
}

var configTemplate = template.Must(template.New("writ.yaml").Parse(`# writ.yaml — configuration of one writ installation (one trust domain).
# Decoded strictly: an unknown or misspelled key is an error naming the key.
# Relative paths are relative to this file's directory.

# The URL agents and relying parties reach this server at; it is the issuer
# of run identities and the audience root of their tokens.
publicURL: {{.PublicURL}}
# SPIFFE trust domain: run identities are spiffe://<trustDomain>/agent/<agent>/run/<run-id>.
trustDomain: {{.TrustDomain}}
listen: {{.Listen}}
dataDir: data
# store: sqlite://data/writ.db        # the default; postgres://… for several replicas
# durability: normal                  # normal survives kill -9; full also survives power loss
keys:                                 # private keys, mode 0600, never reachable by runs
  identity: keys/identity.pem         # ES256: signs run identities (JWT-SVIDs)
  log: keys/log.key                   # Ed25519: signs audit log checkpoints
  attest: keys/attest.pem             # ECDSA P-256: signs attestations, countersigns approvals

# The credential broker (docs/credentials.md): runs get short leases, revoked
# when they stop. key (or WRIT_BROKER_KEY) seals static secrets and revocation
# handles at rest; git credentials need nothing else.
broker:
  key: keys/broker.key                # AES-256, mode 0600, never in the database
  # postgres:                         # dynamic roles; the admin DSN from a file or env
  #   - {name: app, dsnFile: /etc/writ/app-admin.dsn, allow: ["read:public"]}

# Who may sign triggers. Keys are SSH authorized_keys lines or PEM public
# keys (Ed25519 or ECDSA P-256). may: which agents and profiles they may start.
signers:
  - name: {{.Human}}
    kind: human
    groups: [maintainers, admins]
    keys: ["{{.HumanKey}}"]
    may: {agents: ["*"], profiles: [refactor, review, release]}
  # - name: tickets
  #   kind: system
  #   keys: ["-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----"]
  #   may: {agents: [refactor-bot], profiles: [refactor]}

# Registered agent identities: an owner (a human), the profiles they may run
# under, and the repositories a trigger may scope them to.
agents:
  - name: refactor-bot
    owner: {{.Human}}
    profiles: [refactor]
    repos: ["acme/*"]
  - name: review-bot
    owner: {{.Human}}
    profiles: [review]
    repos: ["acme/*"]
  - name: release-bot
    owner: {{.Human}}
    profiles: [release]
    repos: ["acme/*"]

# Risk classes. A trigger's scope must fit its profile: tools, hosts,
# environments, whether secrets may be named, and the longest run.
profiles:
  - name: refactor
    maxDuration: 1h
    tools: [read, edit, "shell:build", "shell:test", "shell:git", "exec:test", "exec:build", "mcp:everything/*"]
    hosts: [proxy.golang.org, sum.golang.org, registry.npmjs.org]
    secrets: false
    # Counted by writ, enforced by policy; exceeding one suspends the run. 0: unlimited.
    budgets: {callsPerMinute: 300, totalCalls: 5000, children: 3}
  - name: review
    maxDuration: 30m
    tools: [read, "web:fetch"]
    secrets: false
    budgets: {callsPerMinute: 300, totalCalls: 2000, children: 0}
  - name: release
    maxDuration: 1h
    tools: [read, "shell:build", "shell:test"]
    environments: [staging, production]
    secrets: true
    budgets: {callsPerMinute: 120, totalCalls: 1000, children: 0}

# Deployment environments. A sensitive one needs two approvers to release to.
environments:
  - {name: staging, sensitive: false}
  - {name: production, sensitive: true}

# Repository rules policy reads: protected branches change only by an
# approved merge; a change to a protected path needs approval.
repos:
  - name: acme/api
    protected: [main, "release/*"]
    protectedPaths: [".github/workflows/**", CODEOWNERS, "policy/**"]

# Policy-as-code. bundle: a directory of .rego files (and data.json), checked
# every reload interval and on SIGHUP; a bundle that fails to compile or its
# own tests never replaces the working one. Empty: the default bundle built
# into writ ("writ policy test" runs its tests, "writ policy eval" explains).
# policy:
#   bundle: ""
#   timeout: 100ms
#   reload: 2s
#   denials: {max: 5, window: 10m}      # enforced denials that suspend a run
#   approvers: maintainers              # the group approval requests name

# log: {format: text, level: info}    # format text or json
# triggers: {leeway: 60s, maxLifetime: 24h}
# runs: {expiryInterval: 1s}
`))

// Init writes a commented writ.yaml, the three key files (0600), a key
// pair for the first human when none is given, and an example trigger into
// dir. It refuses to overwrite an existing config or key.
func Init(dir string, o InitOptions) (*InitResult, error) {
	if o.TrustDomain == "" {
		o.TrustDomain = "writ.example.org"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:7300"
	}
	if o.PublicURL == "" {
		o.PublicURL = "http://" + o.Listen
	}
	if o.Human == "" {
		o.Human = "alice"
	}
	if !writ.ValidName(o.Human) {
		return nil, fmt.Errorf("human name %q: want lowercase letters, digits, '.', '_' or '-'", o.Human)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &InitResult{Config: filepath.Join(dir, "writ.yaml"), Trigger: filepath.Join(dir, "trigger.example.json")}
	// Refuse before writing anything, so that a refused init changes
	// nothing and can be retried once the cause is gone. The key paths are
	// those the template writes (the defaults). The exclusive creates below
	// still guard against a file appearing meanwhile.
	keys := DefaultConfig().Keys
	existing := []string{res.Config, res.Trigger, filepath.Join(dir, keys.Identity), filepath.Join(dir, keys.Log), filepath.Join(dir, keys.Attest),
		filepath.Join(dir, "keys", "broker.key")}
	if o.HumanKey == "" {
		k := filepath.Join(dir, o.Human+".key")
		existing = append(existing, k, k+".pub")
	}
	for _, p := range existing {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s already exists; refusing to overwrite it", p)
		}
	}
	if o.HumanKey == "" {
		res.HumanKeyFile = filepath.Join(dir, o.Human+".key")
		line, err := GenerateHumanKey(res.HumanKeyFile, o.Human+"@writ")
		if err != nil {
			return nil, fmt.Errorf("generate %s's key: %w", o.Human, err)
		}
		o.HumanKey = line
	} else if _, err := trigger.ParsePublicKey(o.HumanKey); err != nil {
		return nil, fmt.Errorf("human key: %w", err)
	}
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, o); err != nil {
		return nil, err
	}
	// Check that what we write is a valid config before writing anything.
	cfg, err := ParseConfig(buf.Bytes(), dir)
	if err != nil {
		return nil, fmt.Errorf("generated config is invalid (a bug): %w", err)
	}
	if err := GenerateKeys(cfg.Keys, cfg.TrustDomain); err != nil {
		return nil, err
	}
	if err := GenerateBrokerKey(cfg.Broker.KeyFile); err != nil {
		return nil, err
	}
	if err := writeNewFile(res.Config, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	t := trigger.Template(time.Now(), o.Human)
	tj, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeNewFile(res.Trigger, append(tj, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite it", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BootstrapToken opens the store directly and creates the first API token,
// for a configured human. It is refused once any token exists: further
// tokens come from `writ token create` through the API.
func BootstrapToken(ctx context.Context, cfg Config, human string, ttl time.Duration) (string, *writ.HumanToken, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", nil, fmt.Errorf("data dir: %w", err)
	}
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: cfg.Store, Durability: cfg.Durability})
	if err != nil {
		return "", nil, err
	}
	defer store.Close()
	return bootstrap(ctx, store, cfg, human, time.Now(), ttl)
}

func bootstrap(ctx context.Context, store *sqlstore.DB, cfg Config, human string, now time.Time, ttl time.Duration) (string, *writ.HumanToken, error) {
	ok := false
	for _, s := range cfg.Signers {
		if s.Name == human && s.Kind == writ.SignerHuman {
			ok = true
		}
	}
	if !ok {
		return "", nil, writ.Errorf(writ.KindInvalid, "unknown_human", "%q is not a configured human signer", human)
	}
	secret, tok := writ.NewHumanToken(human, "bootstrap", now, ttl)
	ev := &writ.Event{Type: writ.EventTokenIssued, Actor: "bootstrap", Subject: writ.HumanActor(human),
		Details: map[string]any{"kind": "human", "tokenId": tok.ID, "expiresAt": tok.ExpiresAt, "bootstrap": true}}
	if err := store.BootstrapToken(ctx, tok, ev); err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

// Migrate opens the store, which applies every pending migration.
func Migrate(ctx context.Context, cfg Config) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: cfg.Store, Durability: cfg.Durability})
	if err != nil {
		return err
	}
	return store.Close()
}
