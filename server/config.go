package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/egress"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/internal/strictjson"
	"github.com/writ-dev/writ/notify"
)

// fileConfig is writ.yaml as written (docs/design.md §4.10). It is decoded
// strictly: an unknown, duplicate or case-variant key is an error that
// names the key. Each issue grows it without renaming what exists.
type fileConfig struct {
	PublicURL   string `json:"publicURL"`
	TrustDomain string `json:"trustDomain"`
	Listen      string `json:"listen"`
	DataDir     string `json:"dataDir"`
	Store       string `json:"store"`
	Durability  string `json:"durability"`
	// CheckpointPin is where the audit checkpoint pin lives
	// (docs/operations.md): default <dataDir>/checkpoint.pin, or
	// <git.root>/.writ-checkpoint.pin on PostgreSQL.
	CheckpointPin string            `json:"checkpointPin"`
	Keys          fileKeys          `json:"keys"`
	Signers       []fileSigner      `json:"signers"`
	Agents        []fileAgent       `json:"agents"`
	Profiles      []fileProfile     `json:"profiles"`
	Log           fileLog           `json:"log"`
	Triggers      fileTriggers      `json:"triggers"`
	Runs          fileRunsConfig    `json:"runs"`
	Identity      fileIdentity      `json:"identity"`
	Environments  []fileEnvironment `json:"environments"`
	Repos         []fileRepo        `json:"repos"`
	Policy        filePolicy        `json:"policy"`
	Notify        fileNotify        `json:"notify"`
	Broker        fileBroker        `json:"broker"`
	MCP           fileMCP           `json:"mcp"`
	Git           fileGit           `json:"git"`
	Egress        fileEgress        `json:"egress"`
	Builds        fileBuilds        `json:"builds"`
	Deployments   fileDeployments   `json:"deployments"`
	Limits        fileLimits        `json:"limits"`
}

type fileNotify struct {
	Webhooks []fileWebhook `json:"webhooks"`
}

type fileWebhook struct {
	URL    string   `json:"url"`    // http(s); may carry a secret, never logged
	Format string   `json:"format"` // json (default) or slack
	Events []string `json:"events"` // approval event types; empty: all of them
}

type fileEnvironment struct {
	Name      string `json:"name"`
	Sensitive bool   `json:"sensitive"`
}

type fileRepo struct {
	Name           string   `json:"name"`
	Protected      []string `json:"protected"`
	ProtectedPaths []string `json:"protectedPaths"`
	Upstream       string   `json:"upstream"` // push-mirror of protected branches; may carry a secret, never logged
}

type filePolicy struct {
	// Bundle is a directory of .rego files (and an optional data.json);
	// empty means the default bundle compiled into writ.
	Bundle  string        `json:"bundle"`
	Timeout writ.Duration `json:"timeout"` // one evaluation; default 100ms
	Reload  writ.Duration `json:"reload"`  // how often the bundle directory is checked; default 2s
	Denials struct {
		Max    *int          `json:"max"`    // enforced denials that suspend a run; default 5, 0 disables
		Window writ.Duration `json:"window"` // default 10m
	} `json:"denials"`
	Approvers    string        `json:"approvers"`    // the group approval requests name; default maintainers
	SelfApproval bool          `json:"selfApproval"` // may a trigger's issuer approve its own run's gates; default false
	ApprovalTTL  writ.Duration `json:"approvalTTL"`  // how long a request stays open; default 24h, never past the run's deadline
}

type fileIdentity struct {
	// Audiences are downstream relying parties (Vault's JWT auth, a cloud
	// STS) a run may get a ≤ 5-minute token for, besides writ's own API.
	Audiences []string `json:"audiences"`
}

type fileKeys struct {
	Identity string `json:"identity"`
	Log      string `json:"log"`
	Attest   string `json:"attest"`
}

type fileSigner struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Groups []string `json:"groups"`
	Keys   []string `json:"keys"`
	May    struct {
		Agents   []string `json:"agents"`
		Profiles []string `json:"profiles"`
	} `json:"may"`
}

type fileAgent struct {
	Name     string   `json:"name"`
	Owner    string   `json:"owner"`
	Profiles []string `json:"profiles"`
	Repos    []string `json:"repos"`
}

type fileProfile struct {
	Name         string        `json:"name"`
	MaxDuration  writ.Duration `json:"maxDuration"`
	Tools        []string      `json:"tools"`
	Hosts        []string      `json:"hosts"`
	Environments []string      `json:"environments"`
	Secrets      bool          `json:"secrets"`
	Budgets      writ.Budgets  `json:"budgets"`
}

type fileLog struct {
	Format string `json:"format"` // text (default) or json
	Level  string `json:"level"`  // debug, info (default), warn, error
}

type fileTriggers struct {
	Leeway      *writ.Duration `json:"leeway"`      // clock skew allowed; default and maximum 60s
	MaxLifetime writ.Duration  `json:"maxLifetime"` // expiresAt-issuedAt cap; default 24h
}

type fileRunsConfig struct {
	ExpiryInterval writ.Duration  `json:"expiryInterval"` // upper bound between expiry sweeps; default 1s
	MaxDepth       *int           `json:"maxDepth"`       // how deep delegation may go; default 3
	Heartbeat      *fileHeartbeat `json:"heartbeat"`      // launcher heartbeats; see heartbeat.go
}

// Config is the typed configuration of a writ server, built from a file by
// [LoadConfig] or by hand, and checked by [Config.Validate].
type Config struct {
	PublicURL   string
	TrustDomain string
	Listen      string
	DataDir     string
	Store       string // sqlite:///path or a file path
	Durability  string // normal or full
	// CheckpointPin is the checkpoint pin's path; empty: [PinPath]'s
	// default.
	CheckpointPin string
	Keys          KeyPaths

	Signers  []SignerConfig
	Agents   []*writ.Agent
	Profiles []*writ.Profile

	LogFormat string
	LogLevel  string

	Audiences []string

	Environments []decision.Environment
	Repos        []decision.RepoRules
	Policy       PolicyConfig
	Notify       []notify.Webhook // notify.webhooks
	Broker       BrokerConfig
	MCP          MCPConfig         // mcp
	Git          GitConfig         // git, and repos[].upstream
	Heartbeat    HeartbeatConfig   // runs.heartbeat
	Egress       egress.Config     // egress
	Builds       BuildsConfig      // builds
	Deployments  DeploymentsConfig // deployments
	Limits       httpapi.Limits    // limits

	TriggerLeeway      time.Duration
	TriggerMaxLifetime time.Duration
	ExpiryInterval     time.Duration
	MaxDepth           int

	// Path is the file the config was loaded from, if any.
	Path string
}

// PolicyConfig says which policy bundle decides and how.
type PolicyConfig struct {
	Bundle       string // a directory; empty: the embedded default
	Timeout      time.Duration
	Reload       time.Duration
	Denials      decision.Denials
	Approvers    string
	SelfApproval bool
	ApprovalTTL  time.Duration
}

// KeyPaths are the files of the three private keys (docs/design.md §4.7).
type KeyPaths struct {
	Identity string // ES256 PEM: signs JWT-SVIDs
	Log      string // Ed25519 note key: signs checkpoints
	Attest   string // ECDSA P-256 PEM: signs attestations
}

// SignerConfig is a signer with its public keys as configured.
type SignerConfig struct {
	writ.Signer
	Keys []string
}

// DefaultConfig returns the defaults every loaded config starts from.
func DefaultConfig() Config {
	return Config{
		PublicURL:          "http://127.0.0.1:7300",
		Listen:             "127.0.0.1:7300",
		DataDir:            "data",
		Durability:         "normal",
		Keys:               KeyPaths{Identity: "keys/identity.pem", Log: "keys/log.key", Attest: "keys/attest.pem"},
		LogFormat:          "text",
		LogLevel:           "info",
		TriggerLeeway:      60 * time.Second,
		TriggerMaxLifetime: 24 * time.Hour,
		ExpiryInterval:     time.Second,
		MaxDepth:           3,
		Heartbeat:          HeartbeatConfig{Interval: 10 * time.Second, Missed: 3},
		Egress:             egress.Config{MaxTunnels: 1024, MaxTunnelsPerRun: 64},
		Limits:             httpapi.DefaultLimits(),
		Policy: PolicyConfig{Timeout: 100 * time.Millisecond, Reload: 2 * time.Second,
			Denials: decision.Denials{Max: 5, Window: 10 * time.Minute}, Approvers: "maintainers", ApprovalTTL: 24 * time.Hour},
	}
}

// LoadConfig reads and validates a writ.yaml. Relative paths in it are
// relative to the file's directory.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(data, filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// ParseConfig decodes a writ.yaml strictly and validates it; relative paths
// are resolved against baseDir.
func ParseConfig(data []byte, baseDir string) (Config, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Config{}, fmt.Errorf("parse yaml: %w", err)
	}
	var fc fileConfig
	if err := strictjson.Decode(js, &fc); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) && se.Code == "unknown_field" {
			return Config{}, fmt.Errorf("unknown key: %s (see the config reference in docs/config.md)", se.Msg)
		}
		return Config{}, fmt.Errorf("decode: %w", err)
	}
	cfg := DefaultConfig()
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.PublicURL, fc.PublicURL)
	set(&cfg.TrustDomain, fc.TrustDomain)
	set(&cfg.Listen, fc.Listen)
	set(&cfg.DataDir, fc.DataDir)
	set(&cfg.Store, fc.Store)
	set(&cfg.Durability, fc.Durability)
	set(&cfg.CheckpointPin, fc.CheckpointPin)
	set(&cfg.Keys.Identity, fc.Keys.Identity)
	set(&cfg.Keys.Log, fc.Keys.Log)
	set(&cfg.Keys.Attest, fc.Keys.Attest)
	set(&cfg.LogFormat, fc.Log.Format)
	set(&cfg.LogLevel, fc.Log.Level)
	if fc.Triggers.Leeway != nil {
		cfg.TriggerLeeway = fc.Triggers.Leeway.D()
	}
	if fc.Triggers.MaxLifetime != 0 {
		cfg.TriggerMaxLifetime = fc.Triggers.MaxLifetime.D()
	}
	if fc.Runs.ExpiryInterval != 0 {
		cfg.ExpiryInterval = fc.Runs.ExpiryInterval.D()
	}
	if fc.Runs.MaxDepth != nil {
		cfg.MaxDepth = *fc.Runs.MaxDepth
	}
	cfg.Audiences = fc.Identity.Audiences
	for _, s := range fc.Signers {
		cfg.Signers = append(cfg.Signers, SignerConfig{
			Signer: writ.Signer{Name: s.Name, Kind: writ.SignerKind(s.Kind), Groups: s.Groups,
				MayAgents: s.May.Agents, MayProfiles: s.May.Profiles},
			Keys: s.Keys,
		})
	}
	for _, a := range fc.Agents {
		cfg.Agents = append(cfg.Agents, &writ.Agent{Name: a.Name, Owner: a.Owner, Profiles: a.Profiles, Repos: a.Repos})
	}
	for _, p := range fc.Profiles {
		cfg.Profiles = append(cfg.Profiles, &writ.Profile{Name: p.Name, MaxDuration: p.MaxDuration.D(),
			Tools: p.Tools, Hosts: p.Hosts, Environments: p.Environments, Secrets: p.Secrets, Budgets: p.Budgets})
	}
	for _, e := range fc.Environments {
		cfg.Environments = append(cfg.Environments, decision.Environment{Name: e.Name, Sensitive: e.Sensitive})
	}
	for _, r := range fc.Repos {
		cfg.Repos = append(cfg.Repos, decision.RepoRules{Name: r.Name, Protected: r.Protected, ProtectedPaths: r.ProtectedPaths})
	}
	set(&cfg.Policy.Bundle, fc.Policy.Bundle)
	set(&cfg.Policy.Approvers, fc.Policy.Approvers)
	if fc.Policy.Timeout != 0 {
		cfg.Policy.Timeout = fc.Policy.Timeout.D()
	}
	if fc.Policy.Reload != 0 {
		cfg.Policy.Reload = fc.Policy.Reload.D()
	}
	if fc.Policy.Denials.Max != nil {
		cfg.Policy.Denials.Max = *fc.Policy.Denials.Max
	}
	cfg.Policy.SelfApproval = fc.Policy.SelfApproval
	if fc.Policy.ApprovalTTL != 0 {
		cfg.Policy.ApprovalTTL = fc.Policy.ApprovalTTL.D()
	}
	if fc.Policy.Denials.Window != 0 {
		cfg.Policy.Denials.Window = fc.Policy.Denials.Window.D()
	}
	for _, w := range fc.Notify.Webhooks {
		cfg.Notify = append(cfg.Notify, notify.Webhook{URL: w.URL, Format: w.Format, Events: w.Events})
	}
	cfg.MCP = fc.MCP.config()
	cfg.Git = fc.Git.config(fc.Repos)
	cfg.Heartbeat.parse(fc.Runs.Heartbeat)
	parseEgress(&cfg.Egress, fc.Egress)
	cfg.Builds = fc.Builds.config()
	cfg.Deployments = DeploymentsConfig{Reporters: fc.Deployments.Reporters}
	parseLimits(cfg.Limits, fc.Limits)
	cfg.resolve(baseDir)
	cfg.Broker, err = parseBroker(fc.Broker, func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	})
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	cfg.normalize()
	return cfg, nil
}

// resolve makes relative paths absolute against dir and fills the store DSN.
func (c *Config) resolve(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.DataDir = abs(c.DataDir)
	c.CheckpointPin = abs(c.CheckpointPin)
	c.Keys.Identity = abs(c.Keys.Identity)
	c.Keys.Log = abs(c.Keys.Log)
	c.Keys.Attest = abs(c.Keys.Attest)
	c.Policy.Bundle = abs(c.Policy.Bundle)
	switch {
	case c.Store == "":
		c.Store = "sqlite://" + filepath.Join(c.DataDir, "writ.db")
	case strings.HasPrefix(c.Store, "sqlite://"):
		p := strings.TrimPrefix(c.Store, "sqlite://")
		c.Store = "sqlite://" + abs(p)
	}
}

// Validate checks the config as a whole and returns the first problem with
// the key it concerns. It does not change the config: normalize then puts
// a valid config's values in their one spelling.
//
// The sections are checked in a fixed order (that order decides which
// problem is reported first): the gateways' own sections, the server's
// address and logging, the trigger and run limits, the audiences, policy,
// and the named things (profiles, environments, repos, signers, agents).
func (c *Config) Validate() error {
	for _, check := range []func() error{
		func() error { return notify.CheckWebhooks(c.Notify) },
		c.Git.validate,
		c.MCP.validate,
		c.Heartbeat.validate,
		c.Egress.Validate,
		c.Builds.validate,
		c.validateDeployments,
		c.validateServer,
		c.validateLimits,
		c.validateRates,
		c.validateAudiences,
		c.validatePolicy,
		c.validateNames,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// normalize puts a valid config's values in their one spelling: publicURL
// without a trailing slash (token audiences and DPoP htu are built by
// appending paths to it). Call it once [Config.Validate] succeeds.
func (c *Config) normalize() {
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
}

// validateServer checks where the server is reached and listens, its
// durability and its logging.
func (c *Config) validateServer() error {
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") {
		return fmt.Errorf("publicURL %q: want an absolute http(s) URL without a path, such as https://writ.example.org", c.PublicURL)
	}
	if c.TrustDomain == "" {
		return fmt.Errorf("trustDomain is required (for example writ.example.org)")
	}
	if err := validTrustDomain(c.TrustDomain); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port such as 127.0.0.1:7300", c.Listen)
	}
	if c.Durability != "normal" && c.Durability != "full" {
		return fmt.Errorf("durability %q: want normal or full", c.Durability)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log.format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// validateLimits checks the triggers and runs sections' bounds.
func (c *Config) validateLimits() error {
	if c.TriggerLeeway < time.Second || c.TriggerLeeway > 60*time.Second {
		return fmt.Errorf("triggers.leeway %v: must be between 1s and 60s", c.TriggerLeeway)
	}
	if c.TriggerMaxLifetime <= 0 || c.TriggerMaxLifetime > 7*24*time.Hour {
		return fmt.Errorf("triggers.maxLifetime %v: must be positive and at most 168h", c.TriggerMaxLifetime)
	}
	if c.MaxDepth < 0 || c.MaxDepth > 16 {
		return fmt.Errorf("runs.maxDepth %d: must be between 0 (no delegation) and 16", c.MaxDepth)
	}
	if c.ExpiryInterval <= 0 || c.ExpiryInterval > time.Minute {
		return fmt.Errorf("runs.expiryInterval %v: must be positive and at most 1m", c.ExpiryInterval)
	}
	return nil
}

// validateAudiences checks identity.audiences: downstream audiences only,
// never writ's own API.
func (c *Config) validateAudiences() error {
	for i, aud := range c.Audiences {
		if aud == "" || strings.ContainsAny(aud, " \t\n") || len(aud) > 512 {
			return fmt.Errorf("identity.audiences[%d] %q: want a non-empty audience without spaces, such as https://vault.example.org", i, aud)
		}
		if aud == strings.TrimRight(c.PublicURL, "/")+"/v1" {
			return fmt.Errorf("identity.audiences[%d]: %q is writ's own API audience; list only downstream audiences", i, aud)
		}
	}
	return nil
}

// validatePolicy checks the policy section's bounds and approvers group.
func (c *Config) validatePolicy() error {
	p := c.Policy
	if p.Timeout < time.Millisecond || p.Timeout > 10*time.Second {
		return fmt.Errorf("policy.timeout %v: must be between 1ms and 10s", p.Timeout)
	}
	if p.Reload < 100*time.Millisecond || p.Reload > time.Hour {
		return fmt.Errorf("policy.reload %v: must be between 100ms and 1h", p.Reload)
	}
	if p.Denials.Max < 0 || p.Denials.Max > 10000 {
		return fmt.Errorf("policy.denials.max %d: must be between 0 (no threshold) and 10000", p.Denials.Max)
	}
	if p.Denials.Window < time.Minute || p.Denials.Window > 24*time.Hour {
		return fmt.Errorf("policy.denials.window %v: must be between 1m and 24h", p.Denials.Window)
	}
	if p.ApprovalTTL < time.Minute || p.ApprovalTTL > 30*24*time.Hour {
		return fmt.Errorf("policy.approvalTTL %v: must be between 1m and 720h", p.ApprovalTTL)
	}
	if !writ.ValidName(p.Approvers) {
		return fmt.Errorf("policy.approvers %q: want a group name such as maintainers", p.Approvers)
	}
	return nil
}

// validateNames checks the named things — profiles, environments, repos,
// signers and agents — each name unique within its kind, and the
// references between them: a signer's may.profiles and an agent's
// profiles name configured profiles, an agent's owner a human signer.
func (c *Config) validateNames() error {
	names := configNames{}
	profiles, err := c.validateProfiles(names)
	if err != nil {
		return err
	}
	if err := c.validateEnvironments(names); err != nil {
		return err
	}
	if err := c.validateRepos(names); err != nil {
		return err
	}
	humans, err := c.validateSigners(names, profiles)
	if err != nil {
		return err
	}
	return c.validateAgents(names, profiles, humans)
}

// configNames are the names taken so far, by "kind/name".
type configNames map[string]string

// claim takes name for kind: a valid name, not yet taken for that kind.
func (names configNames) claim(kind, name string) error {
	if !writ.ValidName(name) {
		return fmt.Errorf("%s name %q: want lowercase letters, digits, '.', '_' or '-'", kind, name)
	}
	if prev, ok := names[kind+"/"+name]; ok {
		return fmt.Errorf("%s %q is defined twice (%s)", kind, name, prev)
	}
	names[kind+"/"+name] = kind
	return nil
}

// validateProfiles checks the profiles and returns their names.
func (c *Config) validateProfiles(names configNames) (map[string]bool, error) {
	profiles := map[string]bool{}
	for i, p := range c.Profiles {
		if err := names.claim("profile", p.Name); err != nil {
			return nil, fmt.Errorf("profiles[%d]: %w", i, err)
		}
		profiles[p.Name] = true
		if p.MaxDuration <= 0 {
			return nil, fmt.Errorf("profiles[%d] %q: maxDuration must be a positive duration such as \"1h\"", i, p.Name)
		}
		for _, t := range p.Tools {
			if err := writ.ValidateToolPattern(t); err != nil {
				return nil, fmt.Errorf("profiles[%d] %q: %w", i, p.Name, err)
			}
		}
		for _, h := range p.Hosts {
			if err := writ.ValidateHostPattern(h); err != nil {
				return nil, fmt.Errorf("profiles[%d] %q: %w", i, p.Name, err)
			}
		}
		if b := p.Budgets; b.CallsPerMinute < 0 || b.TotalCalls < 0 || b.Children < 0 {
			return nil, fmt.Errorf("profiles[%d] %q: budgets must not be negative (0 means unlimited)", i, p.Name)
		}
	}
	return profiles, nil
}

// validateEnvironments checks the environments' names.
func (c *Config) validateEnvironments(names configNames) error {
	for i, e := range c.Environments {
		if err := names.claim("environment", e.Name); err != nil {
			return fmt.Errorf("environments[%d]: %w", i, err)
		}
	}
	return nil
}

// validateRepos checks the repos: owner/repo names, each once, and their
// protected branch and path patterns.
func (c *Config) validateRepos(names configNames) error {
	for i, r := range c.Repos {
		if !writ.ValidRepoName(r.Name) {
			return fmt.Errorf("repos[%d] %q: want owner/repo of [a-z0-9._-]", i, r.Name)
		}
		if _, dup := names["repo/"+r.Name]; dup {
			return fmt.Errorf("repos[%d]: repo %q is defined twice", i, r.Name)
		}
		names["repo/"+r.Name] = "repo"
		for _, b := range r.Protected {
			if err := writ.ValidatePathPattern(b); err != nil {
				return fmt.Errorf("repos[%d] %q protected: %w", i, r.Name, err)
			}
		}
		for _, p := range r.ProtectedPaths {
			if err := writ.ValidatePathPattern(p); err != nil {
				return fmt.Errorf("repos[%d] %q protectedPaths: %w", i, r.Name, err)
			}
		}
	}
	return nil
}

// validateSigners checks the signers against the profiles and returns the
// names of the human ones.
func (c *Config) validateSigners(names configNames, profiles map[string]bool) (map[string]bool, error) {
	humans := map[string]bool{}
	for i, s := range c.Signers {
		if err := names.claim("signer", s.Name); err != nil {
			return nil, fmt.Errorf("signers[%d]: %w", i, err)
		}
		if s.Kind != writ.SignerHuman && s.Kind != writ.SignerSystem {
			return nil, fmt.Errorf("signers[%d] %q: kind %q: want human or system", i, s.Name, s.Kind)
		}
		if s.Kind == writ.SignerHuman {
			humans[s.Name] = true
		}
		if len(s.Keys) == 0 {
			return nil, fmt.Errorf("signers[%d] %q: at least one public key is required", i, s.Name)
		}
		for _, p := range s.MayProfiles {
			if !strings.Contains(p, "*") && !profiles[p] {
				return nil, fmt.Errorf("signers[%d] %q: may.profiles names unknown profile %q", i, s.Name, p)
			}
		}
	}
	return humans, nil
}

// validateAgents checks the agents against the profiles and the human
// signers that own them.
func (c *Config) validateAgents(names configNames, profiles, humans map[string]bool) error {
	for i, a := range c.Agents {
		if err := names.claim("agent", a.Name); err != nil {
			return fmt.Errorf("agents[%d]: %w", i, err)
		}
		if !humans[a.Owner] {
			return fmt.Errorf("agents[%d] %q: owner %q must be a configured human signer", i, a.Name, a.Owner)
		}
		for _, p := range a.Profiles {
			if !profiles[p] {
				return fmt.Errorf("agents[%d] %q: unknown profile %q", i, a.Name, p)
			}
		}
		for _, r := range a.Repos {
			if err := writ.ValidateRepoPattern(r); err != nil {
				return fmt.Errorf("agents[%d] %q: %w", i, a.Name, err)
			}
		}
	}
	return nil
}

func validTrustDomain(td string) error {
	if len(td) > 255 || td != strings.ToLower(td) || strings.ContainsAny(td, "/:@ ") {
		return fmt.Errorf("trustDomain %q: want a lowercase DNS-like name such as writ.example.org", td)
	}
	for _, c := range td {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("trustDomain %q: character %q is not allowed in a SPIFFE trust domain", td, c)
		}
	}
	return nil
}
