package server

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
	"github.com/writ-dev/writ/broker/gitlease"
	"github.com/writ-dev/writ/broker/pgrole"
	"github.com/writ-dev/writ/broker/secret"
	"github.com/writ-dev/writ/egress"
)

// fileBroker is writ.yaml's broker section: the credential backends.
type fileBroker struct {
	// Key is a file holding the broker key (32 bytes, base64; mode 0600)
	// that seals static secrets and revocation handles. WRIT_BROKER_KEY,
	// when set, is used instead. Without a key there are no static secrets.
	Key      string             `json:"key"`
	Postgres []filePGDatabase   `json:"postgres"`
	Vault    *fileVault         `json:"vault"`
	GitHub   *fileGitHubApp     `json:"github"`
	Defaults *fileBrokerDefault `json:"defaults"`
}

type fileBrokerDefault struct {
	TTL writ.Duration `json:"ttl"` // a lease's life when the request names none; default 5m
}

type filePGDatabase struct {
	Name string `json:"name"` // what runs ask for (the credential target)
	// The admin connection string comes from a file or an environment
	// variable, never from writ.yaml: it holds a password.
	DSNFile   string   `json:"dsnFile"`
	DSNEnv    string   `json:"dsnEnv"`
	Allow     []string `json:"allow"`     // read:<schema>, write:<schema>
	ConnLimit int      `json:"connLimit"` // per role; default 5
}

// BrokerConfig is the typed broker section.
type BrokerConfig struct {
	KeyFile    string
	DefaultTTL writ.Duration
	Postgres   []PGDatabase
	Vault      *VaultConfig
	GitHub     *GitHubAppConfig
}

// PGDatabase is a PostgreSQL database runs may get roles on.
type PGDatabase struct {
	Name      string
	DSNFile   string
	DSNEnv    string
	Allow     []string
	ConnLimit int
}

// EnvBrokerKey names the environment variable that holds the broker key
// (it wins over broker.key).
const EnvBrokerKey = "WRIT_BROKER_KEY"

func parseBroker(fb fileBroker, abs func(string) string) (BrokerConfig, error) {
	bc := BrokerConfig{KeyFile: abs(fb.Key)}
	if fb.Defaults != nil {
		bc.DefaultTTL = fb.Defaults.TTL
	}
	seen := map[string]bool{}
	for i, p := range fb.Postgres {
		switch {
		case !writ.ValidName(p.Name):
			return bc, fmt.Errorf("broker.postgres[%d].name %q: want a short lowercase name", i, p.Name)
		case seen[p.Name]:
			return bc, fmt.Errorf("broker.postgres[%d].name %q: configured twice", i, p.Name)
		case (p.DSNFile == "") == (p.DSNEnv == ""):
			return bc, fmt.Errorf("broker.postgres[%d] (%s): set exactly one of dsnFile and dsnEnv (the admin connection string holds a password, so it never sits in writ.yaml)", i, p.Name)
		case len(p.Allow) == 0:
			return bc, fmt.Errorf("broker.postgres[%d] (%s): allow lists the permissions a lease may have, such as [read:public]", i, p.Name)
		}
		seen[p.Name] = true
		bc.Postgres = append(bc.Postgres, PGDatabase{Name: p.Name, DSNFile: abs(p.DSNFile), DSNEnv: p.DSNEnv, Allow: p.Allow, ConnLimit: p.ConnLimit})
	}
	var err error
	if bc.Vault, err = parseVault(fb.Vault, abs); err != nil {
		return bc, err
	}
	if bc.GitHub, err = parseGitHubApp(fb.GitHub, abs); err != nil {
		return bc, err
	}
	return bc, nil
}

// brokerKinds are the credential kinds the configuration provides, for
// policy data (data.writ.config.credentials.kinds).
func (bc BrokerConfig) kinds() []string {
	k := []string{writ.CredentialGit}
	if bc.KeyFile != "" || os.Getenv(EnvBrokerKey) != "" {
		k = append(k, writ.CredentialSecret)
	}
	if len(bc.Postgres) > 0 {
		k = append(k, writ.CredentialPostgres)
	}
	if bc.Vault != nil {
		k = append(k, writ.CredentialVault)
	}
	if bc.GitHub != nil {
		k = append(k, writ.CredentialGitHub)
	}
	slices.Sort(k)
	return k
}

// policyData is data.writ.config.credentials.
func (bc BrokerConfig) policyData() map[string]any {
	pg := map[string]any{}
	for _, d := range bc.Postgres {
		pg[d.Name] = d.Allow
	}
	vault := []string{}
	if bc.Vault != nil {
		vault = bc.Vault.Paths
	}
	return map[string]any{"kinds": bc.kinds(), "postgres": pg, "vault": vault}
}

// GenerateBrokerKey writes a new broker key file (0600), refusing to
// overwrite one.
func GenerateBrokerKey(path string) error {
	var k [broker.KeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return err
	}
	return writeSecretFile(path, []byte(base64.StdEncoding.EncodeToString(k[:])+"\n"))
}

// loadBrokerKey returns the broker key's sealer, or nil when none is
// configured.
func loadBrokerKey(path string) (*broker.Sealer, error) {
	text := os.Getenv(EnvBrokerKey)
	what := "$" + EnvBrokerKey
	if text == "" {
		if path == "" {
			return nil, nil
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("broker key: %w (create one with: head -c 32 /dev/urandom | base64 > %s; chmod 600 %s)", err, path, path)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("broker key %s: permissions %#o are too open; run chmod 600 %s", path, st.Mode().Perm(), path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		text, what = string(data), path
	}
	k, err := broker.ParseKey(text)
	if err != nil {
		return nil, fmt.Errorf("broker key %s: %w", what, err)
	}
	return broker.NewSealer(k)
}

// readSecretSetting reads a secret setting from a file or an environment
// variable, trimmed.
func readSecretSetting(what, file, env string) (string, error) {
	if env != "" {
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is empty or unset", what, env)
		}
		return v, nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s %s: permissions %#o are too open; run chmod 600 %s", what, file, st.Mode().Perm(), file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// brokerParts are the broker and the parts the API needs besides it.
type brokerParts struct {
	broker  *broker.Broker
	secrets *secret.Source // nil without a broker key
	closers []func()
}

func (bp *brokerParts) close() {
	for _, c := range bp.closers {
		c()
	}
}

// newBroker builds the credential broker from the configuration.
func newBroker(cfg Config, store broker.Store, secretStore secret.Store, decider broker.Decider, mint jwtMinter, log *slog.Logger, now func() time.Time) (*brokerParts, error) {
	bp := &brokerParts{}
	sealer, err := loadBrokerKey(cfg.Broker.KeyFile)
	if err != nil {
		return nil, err
	}
	sources := map[string]broker.Source{writ.CredentialGit: gitlease.Source{}, writ.CredentialEgress: egress.LeaseSource{}}
	if sealer != nil {
		bp.secrets, err = secret.New(secretStore, sealer)
		if err != nil {
			return nil, err
		}
		sources[writ.CredentialSecret] = bp.secrets
	}
	if len(cfg.Broker.Postgres) > 0 {
		var dbs []pgrole.Database
		for _, d := range cfg.Broker.Postgres {
			dsn, err := readSecretSetting("broker.postgres "+d.Name+" DSN", d.DSNFile, d.DSNEnv)
			if err != nil {
				return nil, err
			}
			dbs = append(dbs, pgrole.Database{Name: d.Name, DSN: dsn, Allow: d.Allow, ConnLimit: d.ConnLimit, Owner: cfg.TrustDomain})
		}
		pg, err := pgrole.New(dbs)
		if err != nil {
			return nil, err
		}
		bp.closers = append(bp.closers, pg.Close)
		sources[writ.CredentialPostgres] = pg
	}
	if cfg.Broker.Vault != nil {
		if a := cfg.Broker.Vault.JWTAudience; a != "" && !slices.Contains(cfg.Audiences, a) {
			bp.close()
			return nil, fmt.Errorf("broker.vault.jwt.audience %q: add it to identity.audiences, the audiences writ mints run tokens for", a)
		}
		v, err := newVaultSource(cfg.Broker.Vault, mint, log)
		if err != nil {
			bp.close()
			return nil, err
		}
		sources[writ.CredentialVault] = v
	}
	if cfg.Broker.GitHub != nil {
		g, err := newGitHubSource(cfg.Broker.GitHub, log)
		if err != nil {
			bp.close()
			return nil, err
		}
		sources[writ.CredentialGitHub] = g
	}
	bp.broker, err = broker.New(broker.Config{Store: store, Decider: decider, Sources: sources, Sealer: sealer, Logger: log,
		Now: now, DefaultTTL: cfg.Broker.DefaultTTL.D()})
	if err != nil {
		bp.close()
		return nil, err
	}
	return bp, nil
}
