package launch

import (
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/writ-dev/writ"
)

// passEnv are the variables CMD inherits from the launcher, when set.
// Everything else — cloud keys (AWS_*, GOOGLE_*, AZURE_*), GITHUB_TOKEN,
// GIT_*, SSH_AUTH_SOCK, WRIT_TOKEN, proxies — stays behind.
var passEnv = []string{"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TERM", "COLORTERM", "TZ", "USER", "LOGNAME", "SHELL",
	"NO_COLOR", "COLUMNS", "LINES"}

// EnvInput is what CMD's environment is built from.
type EnvInput struct {
	Parent                    []string
	URL, Run, RunDir          string
	Home, TmpDir              string
	Self                      string
	ProxyUser, ProxyPass      string
	Repos                     []writ.RepoScope
	ClaudeSettings, MCPConfig string
}

// BuildEnv builds CMD's environment from scratch (sorted, one value per
// name):
//
//   - the allowlisted variables of the launcher's (passEnv);
//   - HOME and TMPDIR inside the workspace;
//   - WRIT_URL, WRIT_RUN, WRIT_RUN_DIR (the run dir with the unbound token);
//   - HTTPS_PROXY/HTTP_PROXY (and lowercase) = http://RUN:EGRESS-LEASE@writ,
//     NO_PROXY = writ's host (so git and the MCP proxy reach writ directly);
//   - git configured through GIT_CONFIG_COUNT/KEY_n/VALUE_n only:
//     credential.helper = the absolute writ binary's git-credential,
//     credential.useHttpPath = true, and for each repo in scope
//     url.<writ>/git/OWNER/REPO.git.insteadOf = https://github.com/OWNER/REPO(.git)
//     and git@github.com:OWNER/REPO(.git), so the usual clone URLs go to
//     writ's gateway; no global or system git config is read
//     (GIT_CONFIG_NOSYSTEM=1, GIT_CONFIG_GLOBAL=/dev/null);
//   - WRIT_CLAUDE_SETTINGS and WRIT_MCP_CONFIG: the hook settings and MCP
//     config written for Claude Code (`claude --settings … --mcp-config …`).
func BuildEnv(in EnvInput) []string {
	m := map[string]string{}
	for _, k := range passEnv {
		if v := getenv(in.Parent, k); v != "" {
			m[k] = v
		}
	}
	if m["PATH"] == "" {
		m["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	m["HOME"] = in.Home
	m["TMPDIR"] = in.TmpDir
	m["WRIT_URL"] = in.URL
	m["WRIT_RUN"] = in.Run
	m["WRIT_RUN_DIR"] = in.RunDir
	if in.ClaudeSettings != "" {
		m["WRIT_CLAUDE_SETTINGS"] = in.ClaudeSettings
		m["WRIT_MCP_CONFIG"] = in.MCPConfig
	}
	u, _ := url.Parse(in.URL)
	if in.ProxyPass != "" && u != nil {
		p := url.URL{Scheme: u.Scheme, User: url.UserPassword(in.ProxyUser, in.ProxyPass), Host: u.Host}
		for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"} {
			m[k] = p.String()
		}
		host, _ := hostPort(in.URL)
		np := host
		if host == "127.0.0.1" || host == "localhost" || host == "::1" {
			np = "127.0.0.1,localhost,::1"
		}
		m["NO_PROXY"], m["no_proxy"] = np, np
	}
	git := [][2]string{
		{"credential.helper", ""}, // reset any helper a config file could add
		{"credential.helper", in.Self + " git-credential"},
		{"credential.useHttpPath", "true"},
	}
	base := strings.TrimSuffix(in.URL, "/")
	for _, r := range in.Repos {
		to := base + "/git/" + r.Name + ".git"
		for _, from := range []string{"https://github.com/" + r.Name + ".git", "https://github.com/" + r.Name, "git@github.com:" + r.Name + ".git", "git@github.com:" + r.Name} {
			git = append(git, [2]string{"url." + to + ".insteadOf", from})
		}
	}
	m["GIT_CONFIG_COUNT"] = strconv.Itoa(len(git))
	for i, kv := range git {
		m["GIT_CONFIG_KEY_"+strconv.Itoa(i)] = kv[0]
		m["GIT_CONFIG_VALUE_"+strconv.Itoa(i)] = kv[1]
	}
	m["GIT_CONFIG_NOSYSTEM"] = "1"
	m["GIT_CONFIG_GLOBAL"] = os.DevNull
	m["GIT_TERMINAL_PROMPT"] = "0"
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
