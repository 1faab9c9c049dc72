// Package builder is writ's server-side builder: it checks out an
// approved, merged commit from writ's own repository into a fresh
// directory outside every run's reach, runs a configured recipe's command
// (never one an agent chose) in a sandbox — the code is agent-written —
// hashes the outputs and signs SLSA Provenance v1 for them with the attest
// key. Only builds made here satisfy the release gate.
//
// The sandbox itself is the caller's (writ's Landlock helper, the one
// `writ run` uses): this package runs whatever [Sandbox] returns.
package builder

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/writ-dev/writ/attest"
)

// Recipe is a configured build: a name, the argv to run in the checkout,
// the files it must produce (relative to the checkout), and the hosts
// (host:port) it may reach — none by default.
type Recipe struct {
	Name    string        `yaml:"name" json:"name"`
	Command []string      `yaml:"command" json:"command"`
	Outputs []string      `yaml:"outputs" json:"outputs"`
	Hosts   []string      `yaml:"hosts" json:"hosts,omitempty"`
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Sandbox returns a command that runs argv (with env, in dir) confined
// to dir, TCP connect allowed only to ports; started is called once the
// command has started (or failed to).
type Sandbox func(ctx context.Context, argv, env []string, dir string, ports []uint16) (cmd *exec.Cmd, started func(), err error)

// Config configures a Builder.
type Config struct {
	// WorkRoot is where fresh build directories are made (and removed).
	// It must be outside writ's data dir and every run's workspace.
	WorkRoot string
	// ArtifactDir, when set, keeps each output under its SHA-256 hex.
	ArtifactDir string
	Git         string            // the git binary
	Sandbox     Sandbox           // nil: refuse to build, unless Unsandboxed
	Unsandboxed bool              // run recipes with no sandbox (tests on hosts without Landlock only)
	Key         *ecdsa.PrivateKey // the attest key
	BuilderID   string            // the SLSA builder id
	Path        string            // PATH of the recipe's command
	Now         func() time.Time
}

// Builder runs recipes.
type Builder struct{ cfg Config }

// New returns a Builder.
func New(cfg Config) (*Builder, error) {
	if cfg.Key == nil || cfg.BuilderID == "" || cfg.WorkRoot == "" {
		return nil, errors.New("builder: needs the attest key, a builder id and a work root")
	}
	if cfg.Git == "" {
		cfg.Git = "git"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Path == "" {
		cfg.Path = "/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin"
	}
	return &Builder{cfg: cfg}, nil
}

// BuilderID is the id written into provenance.
func (b *Builder) BuilderID() string { return b.cfg.BuilderID }

// Request is one build: a recipe on a commit of a repository (RepoDir is
// its bare repository), with what writ knows of how the commit got there.
type Request struct {
	ID       string // invocation id
	Recipe   Recipe
	Repo     string
	RepoDir  string
	Commit   string
	Internal attest.BuildInternal
}

// Output is one built file.
type Output struct {
	Name   string `json:"name"`
	Digest string `json:"digest"` // sha256:<hex>
	Size   int64  `json:"size"`
}

// Result is a finished build. Failure is set when the build failed (the
// command exited non-zero, timed out, or an output is missing); then
// there is no provenance.
type Result struct {
	Outputs    []Output  `json:"outputs"`
	Provenance []byte    `json:"-"` // the signed DSSE envelope
	Failure    string    `json:"failure,omitempty"`
	Log        string    `json:"log,omitempty"` // the tail of the command's output
	StartedOn  time.Time `json:"startedOn"`
	FinishedOn time.Time `json:"finishedOn"`
}

const maxLog = 8 << 10

// Build runs req. An error means writ could not build at all (no sandbox,
// the checkout failed); a failed build is a Result with Failure.
func (b *Builder) Build(ctx context.Context, req *Request) (*Result, error) {
	r := req.Recipe
	if len(r.Command) == 0 || len(r.Outputs) == 0 {
		return nil, fmt.Errorf("builder: recipe %q needs a command and outputs", r.Name)
	}
	if b.cfg.Sandbox == nil && !b.cfg.Unsandboxed {
		return nil, errors.New("builder: no sandbox: refusing to run agent-written code unconfined")
	}
	ports, err := hostPorts(r.Hosts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.cfg.WorkRoot, 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(b.cfg.WorkRoot, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	if err := b.checkout(ctx, req.RepoDir, req.Commit, src); err != nil {
		return nil, err
	}
	for _, d := range []string{"home", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	res := &Result{StartedOn: b.cfg.Now().UTC()}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := []string{"PATH=" + b.cfg.Path, "HOME=" + filepath.Join(dir, "home"), "TMPDIR=" + filepath.Join(dir, "tmp"),
		"LANG=C.UTF-8", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "CGO_ENABLED=0"}
	var cmd *exec.Cmd
	started := func() {}
	if b.cfg.Sandbox != nil {
		if cmd, started, err = b.cfg.Sandbox(cctx, r.Command, env, src, ports); err != nil {
			return nil, err
		}
	} else {
		cmd = exec.CommandContext(cctx, r.Command[0], r.Command[1:]...)
		cmd.Env, cmd.Dir = env, src
	}
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	started()
	if err == nil {
		err = cmd.Wait()
	}
	res.FinishedOn = b.cfg.Now().UTC()
	res.Log = out.String()
	if err != nil {
		res.Failure = "the recipe's command failed: " + err.Error()
		if cctx.Err() != nil && ctx.Err() == nil {
			res.Failure = fmt.Sprintf("the recipe's command ran past its timeout of %v", timeout)
		}
		return res, nil
	}
	var subjects []attest.Subject
	for _, name := range r.Outputs {
		o, err := b.output(src, name)
		if err != nil {
			res.Failure = err.Error()
			res.Outputs = nil
			return res, nil
		}
		res.Outputs = append(res.Outputs, *o)
		subjects = append(subjects, attest.Subject{Name: name, Digest: map[string]string{"sha256": strings.TrimPrefix(o.Digest, "sha256:")}})
	}
	sandbox := "landlock"
	if b.cfg.Sandbox == nil {
		sandbox = "none"
	}
	in := req.Internal
	in.Sandbox = sandbox
	p := attest.Provenance{
		BuildDefinition: attest.BuildDefinition{
			BuildType: attest.BuildTypeRecipe,
			ExternalParameters: attest.BuildExternal{
				Recipe: attest.RecipeRef{Name: r.Name, Command: r.Command, Outputs: r.Outputs, Hosts: r.Hosts},
				Source: attest.SourceRef{Repo: req.Repo, Commit: req.Commit},
			},
			InternalParameters: in,
			ResolvedDependencies: []attest.ResourceDescriptor{{URI: "git+writ:" + req.Repo + "@" + req.Commit,
				Digest: map[string]string{attest.DigestGitCommit: req.Commit}}},
		},
		RunDetails: attest.RunDetails{Builder: attest.BuilderRef{ID: b.cfg.BuilderID},
			Metadata: attest.BuildMetadata{InvocationID: req.ID, StartedOn: res.StartedOn, FinishedOn: res.FinishedOn}},
	}
	env2, err := attest.Sign(&attest.Statement{Subject: subjects, PredicateType: attest.PredicateSLSAProvenance, Predicate: p}, b.cfg.Key)
	if err != nil {
		return nil, err
	}
	res.Provenance = env2
	return res, nil
}

// checkout clones repoDir into dst and checks out commit, detached.
func (b *Builder) checkout(ctx context.Context, repoDir, commit, dst string) error {
	if len(commit) != 40 && len(commit) != 64 {
		return fmt.Errorf("builder: %q is not a full commit id", commit)
	}
	if _, err := b.git(ctx, "", "clone", "-q", "--no-checkout", "--no-hardlinks", "--", repoDir, dst); err != nil {
		return err
	}
	if _, err := b.git(ctx, dst, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit); err != nil {
		return err
	}
	head, err := b.git(ctx, dst, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if strings.TrimSpace(head) != commit {
		return fmt.Errorf("builder: checked out %s, not %s", strings.TrimSpace(head), commit)
	}
	return nil
}

func (b *Builder) git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.cfg.Git, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + b.cfg.Path, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "HOME=/nonexistent"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("builder: git %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// output hashes one output: a regular file inside the checkout (a symlink
// could point anywhere writ can read, its keys included, and is refused).
func (b *Builder) output(src, name string) (*Output, error) {
	clean := filepath.Clean(name)
	if filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "..") {
		return nil, fmt.Errorf("output %q is not a path inside the checkout", name)
	}
	p := filepath.Join(src, clean)
	// The output's directory, symlinks resolved, must still be inside the
	// checkout (itself resolved: the work root may sit under a symlink).
	rsrc, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil, err
	}
	if rp, err := filepath.EvalSymlinks(filepath.Dir(p)); err != nil || rp != rsrc && !strings.HasPrefix(rp, rsrc+string(filepath.Separator)) {
		return nil, fmt.Errorf("output %q is not inside the checkout", name)
	}
	st, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("the recipe produced no %s", name)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("output %s is not a regular file (a symlink or a directory)", name)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	var keep *os.File
	var keepPath string
	if b.cfg.ArtifactDir != "" {
		if err := os.MkdirAll(b.cfg.ArtifactDir, 0o700); err != nil {
			return nil, err
		}
		if keep, err = os.CreateTemp(b.cfg.ArtifactDir, ".tmp-"); err != nil {
			return nil, err
		}
		keepPath = keep.Name()
		defer os.Remove(keepPath)
		defer keep.Close()
	}
	var w io.Writer = h
	if keep != nil {
		w = io.MultiWriter(h, keep)
	}
	n, err := io.Copy(w, f)
	if err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if keep != nil {
		if err := keep.Close(); err != nil {
			return nil, err
		}
		if err := os.Rename(keepPath, filepath.Join(b.cfg.ArtifactDir, sum)); err != nil {
			return nil, err
		}
	}
	return &Output{Name: name, Digest: "sha256:" + sum, Size: n}, nil
}

// hostPorts returns the TCP ports of hosts (host:port). Landlock enforces
// ports, not host names: a recipe naming proxy.golang.org:443 may connect
// to any host on 443.
func hostPorts(hosts []string) ([]uint16, error) {
	var out []uint16
	for _, h := range hosts {
		i := strings.LastIndexByte(h, ':')
		var p uint16
		if i < 0 {
			return nil, fmt.Errorf("builder: host %q: want host:port", h)
		}
		if _, err := fmt.Sscanf(h[i+1:], "%d", &p); err != nil || p == 0 {
			return nil, fmt.Errorf("builder: host %q: want host:port", h)
		}
		out = append(out, p)
	}
	return out, nil
}

// tail keeps the last maxLog bytes written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > maxLog {
		t.b = append(t.b[:0], t.b[len(t.b)-maxLog:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }
