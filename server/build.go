package server

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/builder/gate"
)

// fileBuilds is the builds section of writ.yaml (docs/design.md §4.10).
type fileBuilds struct {
	Recipes []fileRecipe `json:"recipes"`
	// WorkDir is where builds check out and run (default <dataDir>/builds;
	// each build's own directory is all its sandbox may write).
	WorkDir string `json:"workDir"`
	// UnsandboxedUnsafe runs recipes without the Landlock sandbox. For
	// tests on hosts without Landlock only: the code built is agent-written.
	UnsandboxedUnsafe bool `json:"unsandboxedUnsafe"`
}

type fileRecipe struct {
	Name    string        `json:"name"`
	Command []string      `json:"command"`
	Outputs []string      `json:"outputs"`
	Hosts   []string      `json:"hosts"`
	Timeout writ.Duration `json:"timeout"`
}

// BuildsConfig configures writ's builder.
type BuildsConfig struct {
	Recipes           []builder.Recipe
	WorkDir           string
	UnsandboxedUnsafe bool
}

func (fb fileBuilds) config() BuildsConfig {
	c := BuildsConfig{WorkDir: fb.WorkDir, UnsandboxedUnsafe: fb.UnsandboxedUnsafe}
	for _, r := range fb.Recipes {
		c.Recipes = append(c.Recipes, builder.Recipe{Name: r.Name, Command: r.Command, Outputs: r.Outputs, Hosts: r.Hosts, Timeout: r.Timeout.D()})
	}
	return c
}

func (c BuildsConfig) validate() error {
	seen := map[string]bool{}
	for i, r := range c.Recipes {
		switch {
		case r.Name == "" || seen[r.Name]:
			return fmt.Errorf("builds.recipes[%d]: want a unique name", i)
		case len(r.Command) == 0 || r.Command[0] == "":
			return fmt.Errorf("builds.recipes[%d] %q: command is required (an argv list)", i, r.Name)
		case len(r.Outputs) == 0:
			return fmt.Errorf("builds.recipes[%d] %q: outputs is required (the files the command produces)", i, r.Name)
		case r.Timeout < 0 || r.Timeout > time.Hour:
			return fmt.Errorf("builds.recipes[%d] %q: timeout %v: want at most 1h (default 10m)", i, r.Name, r.Timeout)
		}
		for _, o := range r.Outputs {
			if c := filepath.Clean(o); filepath.IsAbs(c) || c == "." || c == ".." || len(c) > 2 && c[:3] == "../" {
				return fmt.Errorf("builds.recipes[%d] %q: output %q must be a path inside the checkout", i, r.Name, o)
			}
		}
		seen[r.Name] = true
	}
	return nil
}

// builderID is the SLSA builder id of this installation's builder.

// newGates builds the build, release and deployment gates over the
// builder (none when no recipe is configured or there is no git gateway).
func (s *Server) newGates(sandbox builder.Sandbox) (*gate.Gates, error) {
	b, err := s.newBuilder(sandbox)
	if err != nil {
		return nil, err
	}
	reporters, err := s.deployRing()
	if err != nil {
		return nil, err
	}
	cfg := gate.Config{Store: s.store, Decider: s.decider, Builder: b, Recipes: s.cfg.Builds.Recipes,
		AttestKey: s.keys.Attest, BuilderID: gate.BuilderID(s.cfg.TrustDomain), PolicyDigest: s.PolicyDigest,
		Reporters: reporters, Leeway: s.cfg.TriggerLeeway, Logger: s.log, Now: s.now}
	if s.git != nil {
		cfg.Repos = s.git
	}
	return gate.New(cfg), nil
}

// newBuilder builds the builder (nil when no recipe is configured or
// there is no git gateway).
func (s *Server) newBuilder(sandbox builder.Sandbox) (*builder.Builder, error) {
	if len(s.cfg.Builds.Recipes) == 0 || s.git == nil {
		return nil, nil
	}
	work := s.cfg.Builds.WorkDir
	if work == "" {
		work = filepath.Join(s.cfg.DataDir, "builds")
	}
	return builder.New(builder.Config{
		WorkRoot: work, ArtifactDir: filepath.Join(s.cfg.DataDir, "artifacts"), Git: s.git.Binary(),
		Sandbox: sandbox, Unsandboxed: s.cfg.Builds.UnsandboxedUnsafe, Key: s.keys.Attest, BuilderID: gate.BuilderID(s.cfg.TrustDomain), Now: s.now,
	})
}
