package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/writ-dev/writ/client"
)

// The clients commands talk to writ with: a human's (WRIT_URL and
// WRIT_TOKEN, or the client config file), or a run's (its credentials in
// a run directory, WRIT_RUN_DIR).

// clientConfig is $XDG_CONFIG_HOME/writ/config.yaml; WRIT_URL and
// WRIT_TOKEN override it.
type clientConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// newClient builds an API client from WRIT_URL/WRIT_TOKEN or the client
// config file.
func newClient(e *env) (*client.Client, error) {
	var cc clientConfig
	dir := e.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		if home := e.getenv("HOME"); home != "" {
			dir = filepath.Join(home, ".config")
		}
	}
	if dir != "" {
		path := filepath.Join(dir, "writ", "config.yaml")
		if data, err := os.ReadFile(path); err == nil {
			if err := yaml.UnmarshalStrict(data, &cc); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	if v := e.getenv("WRIT_URL"); v != "" {
		cc.URL = v
	}
	if v := e.getenv("WRIT_TOKEN"); v != "" {
		cc.Token = v
	}
	if cc.URL == "" {
		return nil, fmt.Errorf("no writ server: set WRIT_URL (for example http://127.0.0.1:7300) or url in $XDG_CONFIG_HOME/writ/config.yaml")
	}
	return client.New(cc.URL, cc.Token), nil
}

// runDir returns WRIT_RUN_DIR or a usage error naming the command.
func runDir(e *env, what string) (string, error) {
	dir := e.getenv("WRIT_RUN_DIR")
	if dir == "" {
		return "", usagef("%s acts as a run: set WRIT_RUN_DIR to its directory (writ run sets it beside the agent)", what)
	}
	return dir, nil
}

// saveRunDir keeps a run's credentials where the commands acting as the
// run find them: token and dpop.key (0600), url and run id.
func saveRunDir(e *env, dir, baseURL string, run *client.Run, key *ecdsa.PrivateKey) (string, error) {
	if dir == "" {
		state := e.getenv("XDG_STATE_HOME")
		if state == "" {
			home := e.getenv("HOME")
			if home == "" {
				return "", fmt.Errorf("set --run-dir, XDG_STATE_HOME or HOME")
			}
			state = filepath.Join(home, ".local", "state")
		}
		dir = filepath.Join(state, "writ", "runs", string(run.ID))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"dpop.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
		{"token", []byte(run.Token + "\n")},
		{"url", []byte(baseURL + "\n")},
		{"run", []byte(string(run.ID) + "\n")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// runClient is a client acting as the run whose credentials are in dir
// (WRIT_RUN_DIR): its bound token and DPoP key.
func runClient(e *env, dir string) (*client.Client, string, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b)), err
	}
	id, err := read("run")
	if err != nil {
		return nil, "", fmt.Errorf("run credentials in %s: %w", dir, err)
	}
	tok, err := read("token")
	if err != nil {
		return nil, "", err
	}
	u, err := read("url")
	if err != nil {
		return nil, "", err
	}
	if v := e.getenv("WRIT_URL"); v != "" {
		u = v
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "dpop.key"))
	if errors.Is(err, fs.ErrNotExist) {
		// Beside an agent the launcher keeps only an unbound short-lived
		// token here; its DPoP key stays with the launcher.
		return client.New(u, tok), id, nil
	}
	if err != nil {
		return nil, "", err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, "", fmt.Errorf("%s/dpop.key is not PEM", dir)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, "", err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, "", fmt.Errorf("%s/dpop.key is not an ECDSA key", dir)
	}
	return client.NewRun(u, tok, ek), id, nil
}

// clientFor returns a human's client, or — when no human token is set and
// WRIT_RUN_DIR names a run's credentials — that run's own client.
func clientFor(e *env) (*client.Client, error) {
	if e.getenv("WRIT_TOKEN") == "" {
		if dir := e.getenv("WRIT_RUN_DIR"); dir != "" {
			c, _, err := runClient(e, dir)
			return c, err
		}
	}
	return newClient(e)
}
