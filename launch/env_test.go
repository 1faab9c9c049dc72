package launch

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/writ-dev/writ"
)

// envMap turns a KEY=VALUE list into a map, failing on a name given twice.
func envMap(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("entry %q has no =", kv)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("%s is set twice", k)
		}
		m[k] = v
	}
	return m
}

// parentEnv is a launcher environment full of things CMD must not get.
var parentEnv = []string{
	"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "TERM=xterm", "USER=alice",
	"HOME=/home/alice", "TMPDIR=/home/alice/tmp",
	"AWS_ACCESS_KEY_ID=AKIAPARENT", "AWS_SECRET_ACCESS_KEY=parent-aws-secret", "GOOGLE_APPLICATION_CREDENTIALS=/home/alice/gcp.json",
	"AZURE_CLIENT_SECRET=parent-azure-secret", "GITHUB_TOKEN=ghp_parent", "GH_TOKEN=gho_parent",
	"WRIT_TOKEN=writ_parent_admin", "WRIT_RUN_DIR=/home/alice/.writ-parent-run", "SSH_AUTH_SOCK=/tmp/ssh-agent.sock",
	"GIT_DIR=/home/alice/other/.git", "GIT_CONFIG_GLOBAL=/home/alice/.gitconfig", "GIT_ASKPASS=/home/alice/askpass",
	"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=credential.helper", "GIT_CONFIG_VALUE_0=store",
	"HTTPS_PROXY=http://corp-proxy:3128", "https_proxy=http://corp-proxy:3128", "NO_PROXY=*",
	"LD_PRELOAD=/home/alice/evil.so", "PATH=/opt/last/bin:/usr/bin",
}

func egressInput() EnvInput {
	return EnvInput{
		Parent: parentEnv, URL: "http://127.0.0.1:7300", Run: "run01", RunDir: "/tmp/writ-run-1",
		Home: "/src/api/.writ/home", TmpDir: "/src/api/.writ/tmp", Self: "/opt/writ/bin/writ",
		ProxyUser: "run01", ProxyPass: "writ_egress_lease",
		Repos:          []writ.RepoScope{{Name: "acme/api"}, {Name: "acme/web"}},
		ClaudeSettings: "/tmp/writ-run-1/claude-settings.json", MCPConfig: "/tmp/writ-run-1/mcp.json",
	}
}

// TestBuildEnvScrubsTheParent: of the launcher's environment only the
// allowlisted variables reach CMD; credentials, git and proxy settings,
// HOME, TMPDIR and LD_PRELOAD stay behind, whatever their names.
func TestBuildEnvScrubsTheParent(t *testing.T) {
	env := BuildEnv(egressInput())
	if !slices.IsSorted(env) {
		t.Errorf("the environment is not sorted")
	}
	m := envMap(t, env)
	for k, v := range m {
		switch {
		case slices.Contains(passEnv, k):
		case strings.HasPrefix(k, "WRIT_") && k != "WRIT_TOKEN":
		case strings.HasPrefix(k, "GIT_"):
		case strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "all_proxy"), strings.EqualFold(k, "no_proxy"):
		case k == "HOME", k == "TMPDIR":
		default:
			t.Errorf("CMD gets %s=%s, which is neither allowlisted nor writ's", k, v)
		}
	}
	all := strings.Join(env, "\n")
	for _, secret := range []string{"AKIAPARENT", "parent-aws-secret", "gcp.json", "parent-azure-secret", "ghp_parent", "gho_parent",
		"writ_parent_admin", ".writ-parent-run", "ssh-agent", "other/.git", "/home/alice/.gitconfig", "askpass", "store",
		"corp-proxy", "evil.so", "/home/alice"} {
		if strings.Contains(all, secret) {
			t.Errorf("CMD's environment holds %q from the launcher's", secret)
		}
	}
	for k, want := range map[string]string{
		"PATH": "/opt/last/bin:/usr/bin", // the last of two, as a shell would
		"LANG": "C.UTF-8", "TERM": "xterm", "USER": "alice",
		"HOME": "/src/api/.writ/home", "TMPDIR": "/src/api/.writ/tmp",
		"WRIT_URL": "http://127.0.0.1:7300", "WRIT_RUN": "run01", "WRIT_RUN_DIR": "/tmp/writ-run-1",
		"WRIT_CLAUDE_SETTINGS": "/tmp/writ-run-1/claude-settings.json", "WRIT_MCP_CONFIG": "/tmp/writ-run-1/mcp.json",
	} {
		if m[k] != want {
			t.Errorf("%s = %q; want %q", k, m[k], want)
		}
	}
}

// TestBuildEnvDefaultPath: without a PATH in the launcher's environment
// CMD still gets a usable one.
func TestBuildEnvDefaultPath(t *testing.T) {
	m := envMap(t, BuildEnv(EnvInput{URL: "http://127.0.0.1:7300", Home: "/w/h", TmpDir: "/w/t"}))
	if m["PATH"] != "/usr/local/bin:/usr/bin:/bin" {
		t.Errorf("PATH = %q", m["PATH"])
	}
}

// TestBuildEnvProxy: every proxy variable, upper and lower case, carries
// the run's egress lease; writ itself is exempt (NO_PROXY), loopback in
// all its spellings when writ listens there. Without a lease CMD gets no
// proxy variable at all, not the launcher's.
func TestBuildEnvProxy(t *testing.T) {
	m := envMap(t, BuildEnv(egressInput()))
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"} {
		if want := "http://run01:writ_egress_lease@127.0.0.1:7300"; m[k] != want {
			t.Errorf("%s = %q; want %q", k, m[k], want)
		}
	}
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		if want := "127.0.0.1,localhost,::1"; m[k] != want {
			t.Errorf("%s = %q; want %q", k, m[k], want)
		}
	}

	in := egressInput()
	in.URL = "https://writ.example.com:8443/"
	m = envMap(t, BuildEnv(in))
	if want := "https://run01:writ_egress_lease@writ.example.com:8443"; m["HTTPS_PROXY"] != want {
		t.Errorf("HTTPS_PROXY = %q; want %q", m["HTTPS_PROXY"], want)
	}
	if m["NO_PROXY"] != "writ.example.com" {
		t.Errorf("NO_PROXY = %q; want writ.example.com", m["NO_PROXY"])
	}

	in.ProxyPass = ""
	for k := range envMap(t, BuildEnv(in)) {
		if strings.Contains(strings.ToLower(k), "proxy") {
			t.Errorf("without an egress lease CMD still gets %s", k)
		}
	}
}

// TestBuildEnvGitConfig: git is configured through GIT_CONFIG_* only: the
// credential helper list is reset and then names writ's, every usual
// GitHub URL of a repo in scope goes to writ's gateway, and no system or
// global config is read.
func TestBuildEnvGitConfig(t *testing.T) {
	m := envMap(t, BuildEnv(egressInput()))
	want := [][2]string{
		{"credential.helper", ""},
		{"credential.helper", "/opt/writ/bin/writ git-credential"},
		{"credential.useHttpPath", "true"},
	}
	for _, repo := range []string{"acme/api", "acme/web"} {
		to := "url.http://127.0.0.1:7300/git/" + repo + ".git.insteadOf"
		for _, from := range []string{"https://github.com/" + repo + ".git", "https://github.com/" + repo, "git@github.com:" + repo + ".git", "git@github.com:" + repo} {
			want = append(want, [2]string{to, from})
		}
	}
	var got [][2]string
	for i := 0; ; i++ {
		k, ok := m["GIT_CONFIG_KEY_"+strconv.Itoa(i)]
		if !ok {
			break
		}
		got = append(got, [2]string{k, m["GIT_CONFIG_VALUE_"+strconv.Itoa(i)]})
	}
	if !slices.Equal(got, want) {
		t.Errorf("GIT_CONFIG pairs:\n got %q\nwant %q", got, want)
	}
	if m["GIT_CONFIG_COUNT"] != strconv.Itoa(len(want)) {
		t.Errorf("GIT_CONFIG_COUNT = %q; want %d", m["GIT_CONFIG_COUNT"], len(want))
	}
	for k, v := range map[string]string{"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.DevNull, "GIT_TERMINAL_PROMPT": "0"} {
		if m[k] != v {
			t.Errorf("%s = %q; want %q", k, m[k], v)
		}
	}
}

// TestBuildEnvGitObeys runs the real git with CMD's environment, HOME
// holding a .gitconfig with a credential helper of its own: git sees only
// writ's helper and rewrites the repo's GitHub URLs to writ's gateway.
func TestBuildEnvGitObeys(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[credential]\n\thelper = store\n[url \"https://evil.example/\"]\n\tinsteadOf = https://github.com/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := egressInput()
	in.Parent = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + home}
	in.Home = home // the one a careless git would read ~/.gitconfig from
	env := BuildEnv(in)
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Env, cmd.Dir = env, home
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	if got, want := git("config", "--get-all", "credential.helper"), "\n/opt/writ/bin/writ git-credential\n"; got != want {
		t.Errorf("credential helpers = %q; want %q", got, want)
	}
	for _, from := range []string{"https://github.com/acme/api", "https://github.com/acme/api.git", "git@github.com:acme/api.git", "git@github.com:acme/api"} {
		if got, want := strings.TrimSpace(git("ls-remote", "--get-url", from)), "http://127.0.0.1:7300/git/acme/api.git"; got != want {
			t.Errorf("git resolves %s to %s; want %s", from, got, want)
		}
	}
	if got := strings.TrimSpace(git("ls-remote", "--get-url", "https://github.com/other/repo")); got != "https://github.com/other/repo" {
		t.Errorf("a repo out of scope resolves to %s; want it unchanged", got)
	}
}

// TestCheckWorkspace: the workspace, which CMD may read and write whole,
// is never the home directory, /, a system directory or a parent of the
// user's credentials — also when named through a symlink.
func TestCheckWorkspace(t *testing.T) {
	home := t.TempDir()
	project := filepath.Join(home, "src", "api")
	for _, d := range []string{project, filepath.Join(home, ".ssh"), filepath.Join(home, ".config", "writ")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(t.TempDir(), "home-link")
	if err := os.Symlink(home, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(project, "main.go")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home}
	for _, ws := range []string{home, filepath.Dir(home), "/", "/etc", "/usr", link, filepath.Join(home, ".ssh"), filepath.Join(home, ".config"),
		filepath.Join(home, "src", "..", ".config", "writ"), file, filepath.Join(home, "missing")} {
		if got, err := checkWorkspace(ws, env); err == nil {
			t.Errorf("workspace %s accepted (as %s)", ws, got)
		}
	}
	got, err := checkWorkspace(filepath.Join(project, "..", "api"), env)
	if err != nil {
		t.Fatalf("a project directory is refused: %v", err)
	}
	if want, _ := filepath.EvalSymlinks(project); got != want {
		t.Errorf("workspace = %s; want %s", got, want)
	}
}

// TestSandboxSpec: the sandbox grants write access to the workspace only,
// read access to the run dir, the writ binary (and its symlink target)
// and system directories — not /, /etc as a whole, /tmp, /proc or the
// home directory — and TCP to writ's port only.
func TestSandboxSpec(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "bin", "writ")
	real := filepath.Join(dir, "libexec", "writ-1.2")
	for _, p := range []string{filepath.Dir(self), filepath.Dir(real)} {
		os.MkdirAll(p, 0o700)
	}
	os.WriteFile(real, nil, 0o700)
	if err := os.Symlink(real, self); err != nil {
		t.Fatal(err)
	}
	ws, agentDir := filepath.Join(dir, "ws"), filepath.Join(dir, "writ-run-1")
	s := planFor(ws, agentDir, self, []string{"/opt/go"}, 7300).spec([]string{"claude", "-p", "x"}, []string{"PATH=/usr/bin"})

	if !slices.Equal(s.RW, []string{ws}) {
		t.Errorf("RW = %q; want the workspace only", s.RW)
	}
	if !slices.Equal(s.Ports, []uint16{7300}) {
		t.Errorf("Ports = %v; want writ's only", s.Ports)
	}
	if !slices.Contains(s.RO, agentDir) || !slices.Contains(s.RO, "/opt/go") || !slices.Contains(s.RO, "/usr") {
		t.Errorf("RO = %q; want the run dir, /opt/go and /usr among them", s.RO)
	}
	if !slices.Contains(s.ROFiles, self) || !slices.Contains(s.ROFiles, real) {
		t.Errorf("ROFiles = %q; want %s and %s", s.ROFiles, self, real)
	}
	home, _ := os.UserHomeDir()
	for _, p := range slices.Concat(s.RO, s.ROFiles, s.RWFiles) {
		if p == "/" || p == "/etc" || p == "/proc" || p == "/tmp" || p == "/sys" || p == os.TempDir() || (home != "" && p == home) {
			t.Errorf("the sandbox grants %s", p)
		}
	}
	for _, f := range s.RWFiles {
		if !strings.HasPrefix(f, "/dev/") {
			t.Errorf("RWFiles has %s, not a device", f)
		}
	}
	if !slices.Equal(s.Argv, []string{"claude", "-p", "x"}) || !slices.Equal(s.Env, []string{"PATH=/usr/bin"}) || s.Dir != ws {
		t.Errorf("argv %q, env %q, dir %s: not CMD's", s.Argv, s.Env, s.Dir)
	}

	s = planFor(ws, agentDir, self, []string{"/proc"}, 443).spec([]string{"true"}, nil)
	if !slices.Contains(s.RO, "/proc") {
		t.Errorf("--ro /proc is not granted")
	}
}

// TestSandboxCommand: a build runs through the sandbox helper with an
// empty environment of its own; the spec, with CMD's environment and the
// ports asked for, comes on file descriptor 3.
func TestSandboxCommand(t *testing.T) {
	ws := t.TempDir()
	cmd, started, err := SandboxCommand(t.Context(), "/opt/writ/bin/writ", []string{"make", "all"}, []string{"PATH=/usr/bin", "GOFLAGS=-mod=mod"}, ws, nil)
	if ABI() < MinABI {
		if err == nil {
			t.Fatalf("SandboxCommand without Landlock ABI %d returned a command", MinABI)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer started()
	if !slices.Equal(cmd.Args, []string{"writ", SandboxArg}) || cmd.Path != "/opt/writ/bin/writ" {
		t.Errorf("command = %s %q; want the writ binary with %s", cmd.Path, cmd.Args, SandboxArg)
	}
	if cmd.Env == nil || len(cmd.Env) != 0 {
		t.Errorf("helper environment = %q; want empty (not the builder's)", cmd.Env)
	}
	if len(cmd.ExtraFiles) != 1 {
		t.Fatalf("%d extra files; want the spec pipe", len(cmd.ExtraFiles))
	}
	data, err := io.ReadAll(cmd.ExtraFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Argv, []string{"make", "all"}) || !slices.Equal(s.Env, []string{"PATH=/usr/bin", "GOFLAGS=-mod=mod"}) || s.Dir != ws {
		t.Errorf("spec runs %q with %q in %s", s.Argv, s.Env, s.Dir)
	}
	if !slices.Equal(s.RW, []string{ws}) || len(s.Ports) != 0 {
		t.Errorf("spec grants RW %q and ports %v; want the build dir and no TCP", s.RW, s.Ports)
	}
}

// TestMCPServers: the MCP servers are those the scope's mcp: tools name,
// once each, sorted; a name that is not a valid one (a path) is dropped.
func TestMCPServers(t *testing.T) {
	got := mcpServers([]string{"mcp:linear/*", "git:push", "mcp:github/create_issue", "mcp:github/list_issues", "mcp:../etc/x", "mcp:", "mcp:Bad Name/x", "github/x"})
	if want := []string{"github", "linear"}; !slices.Equal(got, want) {
		t.Errorf("mcpServers = %q; want %q", got, want)
	}
}

// TestWriteFile: run-dir files are 0600 whatever the umask allows, replace
// the previous content whole and leave no temporary file behind.
func TestWriteFile(t *testing.T) {
	l := &launcher{agentDir: t.TempDir()}
	for _, tok := range []string{"first-token\n", "second\n"} {
		if err := l.writeFile("token", tok); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(l.agentDir, "token")
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v; want 0600", st.Mode().Perm())
		}
		if data, _ := os.ReadFile(p); string(data) != tok {
			t.Errorf("token file holds %q; want %q", data, tok)
		}
	}
	ents, _ := os.ReadDir(l.agentDir)
	if len(ents) != 1 {
		t.Errorf("run dir holds %d entries; want the token only", len(ents))
	}
}
