package hook

import (
	"path"
	"strings"
)

// Shell tool names by sensitivity: a command made of several parts is
// named for its most sensitive part.
var shellRank = map[string]int{
	"shell:test": 0, "shell:build": 1, "shell:other": 2, "shell:git": 3, "shell:pkg": 4, "shell:net": 5,
}

// Classify names a shell command in writ's tool grammar: shell:build,
// shell:test, shell:git, shell:net (reaches the network), shell:pkg
// (installs packages) or shell:other. A command with several parts
// (pipes, &&, ;, subshells, $(…), backticks) is named for its most
// sensitive part, so `go test ./... && curl x | sh` is shell:net. An empty
// or unparseable command is shell:other.
func Classify(cmd string) string {
	best := ""
	for _, part := range splitCommand(cmd) {
		c := classifyOne(part)
		if best == "" || shellRank[c] > shellRank[best] {
			best = c
		}
	}
	if best == "" {
		return "shell:other"
	}
	return best
}

// splitCommand cuts a command line into simple commands at the shell's
// control operators and substitutions, outside single quotes.
func splitCommand(cmd string) [][]string {
	var parts [][]string
	var words []string
	var cur strings.Builder
	inWord := false
	flushWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	flushPart := func() {
		flushWord()
		if len(words) > 0 {
			parts = append(parts, words)
			words = nil
		}
	}
	quote := byte(0)
	for i := 0; i < len(cmd); i++ {
		ch := cmd[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
			inWord = true
		case quote == '"' && ch == '"':
			quote = 0
			inWord = true
		case quote == '"' && ch == '$' && i+1 < len(cmd) && cmd[i+1] == '(':
			// A substitution inside double quotes runs a command too.
			flushPart()
			i++
		case quote == '"' && ch == '`':
			flushPart()
		case quote == '"':
			cur.WriteByte(ch)
			inWord = true
		case ch == '\'' || ch == '"':
			quote = ch
			inWord = true
		case ch == '\\' && i+1 < len(cmd):
			i++
			if cmd[i] != '\n' {
				cur.WriteByte(cmd[i])
				inWord = true
			}
		case ch == ' ' || ch == '\t':
			flushWord()
		case ch == ';' || ch == '|' || ch == '&' || ch == '\n' || ch == '(' || ch == ')' || ch == '`' || ch == '{' || ch == '}':
			flushPart()
		case ch == '$' && i+1 < len(cmd) && cmd[i+1] == '(':
			flushPart()
			i++
		case ch == '<' || ch == '>':
			// A redirection's target is not a command.
			flushWord()
			for i+1 < len(cmd) && (cmd[i+1] == '>' || cmd[i+1] == '&' || cmd[i+1] == '<') {
				i++
			}
			for i+1 < len(cmd) && (cmd[i+1] == ' ' || cmd[i+1] == '\t') {
				i++
			}
			for i+1 < len(cmd) && !strings.ContainsRune(" \t;|&\n()", rune(cmd[i+1])) {
				i++
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	flushPart()
	return parts
}

var (
	netCommands = set("curl", "wget", "nc", "ncat", "netcat", "ssh", "scp", "sftp", "rsync", "ftp", "telnet", "socat",
		"dig", "nslookup", "host", "http", "https", "xh", "aria2c", "ping", "traceroute")
	testCommands  = set("pytest", "jest", "vitest", "mocha", "rspec", "tox", "ctest", "phpunit")
	buildCommands = set("tsc", "cmake", "ninja", "gcc", "g++", "cc", "clang", "clang++", "javac", "rustc", "bazel", "buck", "meson", "esbuild", "webpack", "vite")
	// prefixes are words that run the command after them.
	prefixes = set("sudo", "env", "time", "nice", "nohup", "command", "exec", "xargs", "timeout", "stdbuf", "doas")
	shells   = set("sh", "bash", "zsh", "dash", "ksh", "fish", "eval", "source", ".")
	pkgVerbs = map[string]map[string]bool{
		"npm": set("install", "i", "ci", "add", "update", "exec", "x"), "npx": nil, "yarn": set("add", "install", "dlx"),
		"pnpm": set("add", "install", "i", "dlx"), "pip": set("install", "download"), "pip3": set("install", "download"),
		"pipx": set("install", "run"), "uv": set("add", "pip", "sync", "tool"), "poetry": set("add", "install"),
		"go": set("get", "install"), "apt": set("install"), "apt-get": set("install"), "apk": set("add"), "dnf": set("install"),
		"yum": set("install"), "brew": set("install"), "cargo": set("install", "add"), "gem": set("install"),
		"composer": set("require", "install"), "bundle": set("install", "add"), "conda": set("install"),
	}
)

func set(words ...string) map[string]bool {
	m := map[string]bool{}
	for _, w := range words {
		m[w] = true
	}
	return m
}

// classifyOne names one simple command.
func classifyOne(words []string) string {
	// Skip variable assignments and the words that only run what follows.
	for len(words) > 0 {
		w := words[0]
		if i := strings.IndexByte(w, '='); i > 0 && !strings.HasPrefix(w, "-") {
			words = words[1:]
			continue
		}
		if prefixes[w] {
			words = words[1:]
			for len(words) > 0 && strings.HasPrefix(words[0], "-") { // sudo -u x, timeout 10
				words = words[1:]
			}
			for len(words) > 0 && isNumber(words[0]) {
				words = words[1:]
			}
			continue
		}
		break
	}
	if len(words) == 0 {
		return ""
	}
	name := path.Base(words[0])
	args := words[1:]
	sub := ""
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			sub = a
			break
		}
	}
	switch {
	case netCommands[name]:
		return "shell:net"
	case shells[name]:
		// A shell running a script or -c: writ cannot see what it runs.
		if len(args) > 0 {
			return "shell:other"
		}
		return "shell:net" // a shell reading stdin: `curl … | sh`
	case name == "npx":
		return "shell:pkg"
	case pkgVerbs[name] != nil && pkgVerbs[name][sub]:
		return "shell:pkg"
	case name == "git":
		// Fetches and pushes go to writ's git gateway, which enforces the
		// branch and path rules itself.
		return "shell:git"
	case testCommands[name]:
		return "shell:test"
	case buildCommands[name]:
		return "shell:build"
	}
	switch name {
	case "go":
		switch sub {
		case "test":
			return "shell:test"
		case "build", "vet", "generate", "fmt", "mod", "env", "version", "list", "doc":
			if sub == "mod" && len(args) > 1 && (args[1] == "download" || args[1] == "tidy") {
				return "shell:pkg"
			}
			return "shell:build"
		case "run":
			return "shell:other"
		}
	case "make", "gmake":
		if sub == "test" || sub == "check" {
			return "shell:test"
		}
		return "shell:build"
	case "cargo":
		switch sub {
		case "test", "nextest":
			return "shell:test"
		case "build", "check", "clippy", "fmt", "doc":
			return "shell:build"
		}
	case "npm", "yarn", "pnpm", "bun":
		if sub == "test" || (sub == "run" && len(args) > 1 && strings.HasPrefix(args[1], "test")) {
			return "shell:test"
		}
		if sub == "run" && len(args) > 1 && (args[1] == "build" || args[1] == "lint" || args[1] == "typecheck") {
			return "shell:build"
		}
	case "python", "python3":
		if len(args) >= 2 && args[0] == "-m" {
			switch args[1] {
			case "pytest", "unittest":
				return "shell:test"
			case "pip":
				return "shell:pkg"
			case "http.server":
				return "shell:net"
			}
		}
	case "mvn", "gradle", "./gradlew", "gradlew":
		if sub == "test" || sub == "verify" {
			return "shell:test"
		}
		return "shell:build"
	}
	return "shell:other"
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' && c != 's' && c != 'm' {
			return false
		}
	}
	return true
}

// GitPushRef returns the destination branch of a command that is exactly
// one `git push REMOTE SRC:DST` (or `git push REMOTE BRANCH`), so the hook
// can ask about the push itself; ok is false for anything else.
func GitPushRef(cmd string) (ref string, ok bool) {
	parts := splitCommand(cmd)
	if len(parts) != 1 {
		return "", false
	}
	w := parts[0]
	if len(w) < 2 || path.Base(w[0]) != "git" || w[1] != "push" {
		return "", false
	}
	var pos []string
	for _, a := range w[2:] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		pos = append(pos, a)
	}
	if len(pos) != 2 {
		return "", false
	}
	spec := strings.TrimPrefix(pos[1], "+")
	if _, dst, found := strings.Cut(spec, ":"); found {
		spec = dst
	}
	spec = strings.TrimPrefix(spec, "refs/heads/")
	if spec == "" || spec == "HEAD" || strings.HasPrefix(spec, "refs/") {
		return "", false
	}
	return spec, true
}
