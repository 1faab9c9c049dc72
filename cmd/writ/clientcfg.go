package main

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/writ-dev/writ/client"
)

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
