package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DevEnv is what `writ serve --dev` hands to the person (or test) trying it:
// the server URL, an admin API token for the dev human and that human's
// signing key.
type DevEnv struct {
	Dir     string
	URL     string
	Token   string
	Human   string
	KeyFile string
}

// EnvFile is the path of the env file DevEnv is written to.
func (d *DevEnv) EnvFile() string { return filepath.Join(d.Dir, "dev.env") }

// devPolicyTimeout is the policy timeout of a development server.
const devPolicyTimeout = time.Second

// PrepareDev creates a development installation in dir (a new temporary
// directory when dir is empty): config, keys and a "dev" human whose key
// pair is written out. listen may be "127.0.0.1:0".
func PrepareDev(dir, listen string) (Config, *DevEnv, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "writ-dev-")
		if err != nil {
			return Config{}, nil, err
		}
		dir = d
	}
	if listen == "" {
		listen = "127.0.0.1:7300"
	}
	res, err := Init(dir, InitOptions{TrustDomain: "writ.dev.local", Listen: listen, Human: "dev"})
	if err != nil {
		return Config{}, nil, err
	}
	cfg, err := LoadConfig(res.Config)
	if err != nil {
		return Config{}, nil, err
	}
	// A development machine is often loaded (a build, an agent, tests):
	// give policy a second, so a slow evaluation is rarely a 503.
	cfg.Policy.Timeout = max(cfg.Policy.Timeout, devPolicyTimeout)
	return cfg, &DevEnv{Dir: dir, Human: "dev", KeyFile: res.HumanKeyFile}, nil
}

// FinishDev is called once the dev server listens on url: it fixes the
// public URL, creates the dev human's admin token and writes dev.env.
func (s *Server) FinishDev(ctx context.Context, d *DevEnv, url string) error {
	d.URL = url
	tok, _, err := bootstrap(ctx, s.store, s.cfg, d.Human, s.now(), 24*time.Hour)
	if err != nil {
		return err
	}
	d.Token = tok
	env := fmt.Sprintf("WRIT_URL=%s\nWRIT_TOKEN=%s\nWRIT_DEV_KEY=%s\nWRIT_DEV_DIR=%s\n", d.URL, d.Token, d.KeyFile, d.Dir)
	tmp := d.EnvFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(env), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, d.EnvFile())
}

// NextSteps is the text `writ serve --dev` prints.
func (d *DevEnv) NextSteps() string {
	var b strings.Builder
	fmt.Fprintf(&b, "writ dev server on %s (data in %s)\n\n", d.URL, d.Dir)
	fmt.Fprintf(&b, "In another shell:\n")
	fmt.Fprintf(&b, "  export WRIT_URL=%s\n", d.URL)
	fmt.Fprintf(&b, "  export WRIT_TOKEN=$(grep ^WRIT_TOKEN= %s | cut -d= -f2-)   # admin token of human %q\n", d.EnvFile(), d.Human)
	fmt.Fprintf(&b, "  writ trigger new --issuer %s > t.json\n", d.Human)
	fmt.Fprintf(&b, "  writ trigger sign --key %s t.json > t.signed.json\n", d.KeyFile)
	fmt.Fprintf(&b, "  writ run start --trigger t.signed.json\n")
	fmt.Fprintf(&b, "  writ run list\n")
	return b.String()
}
