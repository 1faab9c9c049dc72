package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// SandboxArg is the hidden first argument with which the launcher re-runs
// the writ binary as the sandbox helper: the helper restricts itself with
// Landlock and then execs CMD, so the restriction covers CMD and all its
// children but never the launcher.
const SandboxArg = "__sandbox-exec"

// MinABI is the lowest Landlock ABI the sandbox accepts: ABI 4 is the
// first that restricts TCP connect.
const MinABI = 4

// maxABI is the highest ABI the sandbox asks for. Higher ABIs restrict more
// (pathname UNIX sockets at 9, UDP at 10) and need rules this launcher
// does not write yet, so it stays at 7 and says so in the explanation.
const maxABI = 7

// Spec is what the helper enforces and runs; the launcher sends it as JSON
// on file descriptor 3, so none of it shows in CMD's environment.
type Spec struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// RW are directories CMD may read and write (the workspace); RO
	// directories and ROFiles files it may read and execute; RWFiles
	// files it may read and write (/dev/null, …).
	RW      []string `json:"rw"`
	RO      []string `json:"ro"`
	ROFiles []string `json:"roFiles"`
	RWFiles []string `json:"rwFiles"`
	// Ports are the only TCP ports CMD may connect to.
	Ports []uint16 `json:"ports"`
}

// ABI returns the kernel's Landlock ABI version (0 when Landlock is
// unavailable).
func ABI() int {
	v, err := llsyscall.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}

// landlockConfig is the preset for abi, capped at maxABI.
func landlockConfig(abi int) (landlock.Config, int) {
	switch v := min(abi, maxABI); v {
	case 4:
		return landlock.V4, v
	case 5:
		return landlock.V5, v
	case 6:
		return landlock.V6, v
	default:
		return landlock.V7, maxABI
	}
}

// SandboxMain is the helper's main: read the spec from fd 3, restrict this
// process with Landlock, exec CMD. It returns only on failure, with the
// exit status to use (126: CMD could not be run, 127: not found, 125: the
// sandbox could not be set up).
func SandboxMain(stderr io.Writer) int {
	f := os.NewFile(3, "spec")
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	f.Close()
	var s Spec
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	if err != nil || len(s.Argv) == 0 {
		fmt.Fprintf(stderr, "writ run: sandbox: no valid spec on fd 3 (this command is internal to writ run)\n")
		return ExitSandbox
	}
	path, err := lookPath(s.Argv[0], s.Env)
	if err != nil {
		fmt.Fprintf(stderr, "writ run: %v\n", err)
		return ExitNotFound
	}
	abi := ABI()
	if abi < MinABI {
		fmt.Fprintf(stderr, "writ run: sandbox: Landlock ABI %d is below %d; refusing to run unsandboxed (use --sandbox=false)\n", abi, MinABI)
		return ExitSandbox
	}
	cfg, _ := landlockConfig(abi)
	rules := []landlock.Rule{
		landlock.RWDirs(s.RW...).WithRefer(),
		landlock.RODirs(s.RO...).IgnoreIfMissing(),
		landlock.ROFiles(s.ROFiles...).IgnoreIfMissing(),
		landlock.RWFiles(s.RWFiles...).IgnoreIfMissing(),
	}
	for _, p := range s.Ports {
		rules = append(rules, landlock.ConnectTCP(p))
	}
	if err := os.Chdir(s.Dir); err != nil {
		fmt.Fprintf(stderr, "writ run: sandbox: workspace: %v\n", err)
		return ExitSandbox
	}
	// Restrict applies to every thread of this process (and sets
	// no_new_privs); exec keeps it, for CMD and everything it starts.
	if err := cfg.Restrict(rules...); err != nil {
		fmt.Fprintf(stderr, "writ run: sandbox: landlock: %v\n", err)
		return ExitSandbox
	}
	err = syscall.Exec(path, s.Argv, s.Env)
	fmt.Fprintf(stderr, "writ run: exec %s: %v\n", s.Argv[0], err)
	return ExitCannotRun
}

// lookPath finds file in the PATH of env (not the launcher's own).
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w in PATH=%s", file, exec.ErrNotFound, path)
}

// systemRO are the system directories CMD may read and execute. /proc is
// not among them: Landlock on these kernels does not stop a sandboxed
// process of the same user from reading another's /proc/PID/environ (the
// launcher's holds whatever its caller exported), so /proc is readable
// only when asked for with --ro /proc.
var systemRO = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"}

// etcRO are the files and directories under /etc CMD may read: what
// programs need to run, resolve names and check TLS, not all of /etc.
var etcRO = []string{"/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf",
	"/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/localtime", "/etc/timezone", "/etc/ld.so.cache", "/etc/ld.so.conf",
	"/etc/ld.so.conf.d", "/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives", "/etc/gitconfig", "/etc/mime.types",
	"/etc/os-release", "/etc/debian_version", "/etc/inputrc", "/etc/bash.bashrc", "/etc/profile", "/etc/profile.d", "/etc/terminfo",
	"/etc/magic", "/etc/npmrc", "/etc/claude-code"}

// devRW are the device files CMD may read and write.
var devRW = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}

// SandboxPlan is what the sandbox will grant, for the spec and for
// --explain-sandbox.
type SandboxPlan struct {
	Workspace string
	AgentDir  string   // the agent's run dir: read-only
	ExtraRO   []string // --ro directories
	Binaries  []string // the writ binary (for writ git-credential, mcp proxy, hooks)
	Port      uint16
}

func (p SandboxPlan) spec(argv, env []string) Spec {
	s := Spec{Argv: argv, Env: env, Dir: p.Workspace, RW: []string{p.Workspace}, Ports: []uint16{p.Port}, RWFiles: devRW}
	s.RO = append(slices.Clone(systemRO), p.ExtraRO...)
	var dirs, files []string
	for _, e := range etcRO {
		if st, err := os.Stat(e); err == nil && st.IsDir() {
			dirs = append(dirs, e)
		} else {
			files = append(files, e)
		}
	}
	s.RO = append(s.RO, dirs...)
	s.RO = append(s.RO, p.AgentDir)
	s.ROFiles = append(files, p.Binaries...)
	return s
}

// Explain writes what the sandbox enforces and what it does not, plainly.
func Explain(w io.Writer, p SandboxPlan) {
	abi := ABI()
	_, used := landlockConfig(abi)
	pr := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	if abi < MinABI {
		pr("sandbox: NOT AVAILABLE — Landlock ABI %d on this kernel (writ needs %d or later, for TCP connect rules).", abi, MinABI)
		pr("`writ run` refuses to start with --sandbox=true here; with --sandbox=false CMD runs with the launcher's full access")
		pr("(only the environment is scrubbed and the egress proxy set; nothing stops CMD from ignoring HTTPS_PROXY).")
		return
	}
	pr("sandbox: Landlock (kernel ABI %d, enforcing the ABI %d rule set), applied by a helper process just before it execs CMD;", abi, used)
	pr("it covers CMD and every process CMD starts, and cannot be lifted by them. The launcher itself is not sandboxed.")
	pr("")
	pr("ENFORCED")
	pr("  files   read-write: the workspace %s (HOME and TMPDIR are inside it)", p.Workspace)
	pr("          read-only:  %s", strings.Join(append(slices.Clone(systemRO), p.ExtraRO...), " "))
	pr("                      selected /etc files (passwd, hosts, resolv.conf, ssl, alternatives, …), not all of /etc")
	pr("                      the run dir %s (the unbound ≤5-min token writ refreshes; no DPoP key)", p.AgentDir)
	pr("                      the writ binary %s", strings.Join(p.Binaries, " "))
	pr("          read-write devices: %s", strings.Join(devRW, " "))
	pr("          everything else is unreadable and unwritable: other home directories and the user's credential")
	pr("          files (~/.ssh, ~/.aws, ~/.config/gcloud, ~/.docker, ~/.netrc, ~/.git-credentials, ~/.config/writ),")
	pr("          writ's data dir and keys, the launcher's DPoP key (held in the launcher's memory only), /tmp, /sys")
	pr("  network TCP connect only to port %d (writ: API, git and MCP gateways, egress proxy); TCP bind/listen denied", p.Port)
	pr("          HTTPS_PROXY points at writ's egress proxy: only the run's scope hosts and egress.modelHosts, each")
	pr("          connection a policy decision; direct TCP to anything else fails")
	if slices.Contains(p.ExtraRO, "/proc") {
		pr("  /proc   readable (--ro /proc): CMD CAN read other processes' /proc/PID/environ and cmdline, the")
		pr("          launcher's and writ's included (measured on this kernel: Landlock does not stop it) —")
		pr("          start the launcher with a clean environment (env -i) if you grant it")
	} else {
		pr("  /proc   not readable (grant with --ro /proc): CMD cannot read other processes' environment or")
		pr("          command lines; tools that need /proc/self fail")
	}
	pr("  ptrace  Landlock denies ptrace of processes outside the sandbox")
	if used >= 6 {
		pr("  signals CMD cannot signal processes outside its sandbox (Landlock signal scoping, ABI 6): not writ, not the launcher")
		pr("  sockets CMD cannot connect to abstract UNIX sockets outside its sandbox (ABI 6 scoping)")
	} else {
		pr("  signals NOT scoped at this ABI (needs 6): CMD can signal any process of the same user, writ included")
	}
	pr("  environment built from scratch: PATH, LANG, TERM, … only; no cloud, git or SSH credentials inherited")
	pr("  time    the watchdog sends SIGTERM to CMD's process group at the run's deadline, SIGKILL after the grace period")
	pr("")
	pr("NOT ENFORCED (know these before you trust it)")
	pr("  - no container or VM: same kernel, same user id (uid %d), same PID and network namespaces as the launcher", os.Getuid())
	if os.Geteuid() == 0 {
		pr("  - CMD runs as ROOT here: it keeps root's capabilities (raw sockets, …); Landlock still applies, but run agents as an unprivileged user")
	}
	pr("  - no UDP or ICMP restriction at this ABI: DNS (UDP 53) and other datagrams leave directly — a channel for exfiltration")
	pr("  - no restriction on pathname UNIX sockets below ABI 9: a socket CMD can name (e.g. /var/run/docker.sock) can be connected to")
	pr("  - no seccomp filter: every system call is available")
	pr("  - other processes of the same user are not hidden: with /proc granted their environment is readable,")
	pr("    and without it CMD can still signal them below ABI 6")
	pr("  - no CPU, memory, disk or process-count limits")
	pr("  - the token file is readable by CMD by design; anyone CMD leaks it to can act as the run for ≤5 minutes")
	pr("  - if the launcher is killed with SIGKILL, CMD keeps running; writ kills the run after missed heartbeats, so its")
	pr("    tokens and leases stop working, but the process must be stopped by you")
}
