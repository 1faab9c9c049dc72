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

// splitCommand cuts a command line into simple commands (lists of words)
// at the shell's control operators. Command substitutions — $(…),
// backquotes, <(…) and >(…), inside double quotes and in unquoted
// here-document bodies too — are commands of their own and are split
// recursively. Comments, here-document bodies, redirection targets and the
// file descriptors of redirections are not words of any command. Quoting
// follows the POSIX shell: '…' is literal, "…" keeps \ for " \ $ ` and
// newline, and bash's $'…' lets \ escape anything.
func splitCommand(cmd string) [][]string {
	sp := &splitter{src: cmd}
	sp.run(0)
	return sp.parts
}

type splitter struct {
	src      string
	parts    [][]string
	words    []string
	cur      strings.Builder
	inWord   bool
	dropNext bool // the next word is a redirection's target
	heredocs []heredoc
	depth    int
}

type heredoc struct {
	delim  string
	strip  bool // <<- strips leading tabs
	quoted bool // a quoted delimiter: the body is literal
}

// sub marks a substitution's place in a word.
const sub = "$SUB"

func (sp *splitter) flushWord() {
	if sp.inWord {
		w := sp.cur.String()
		if sp.dropNext {
			sp.dropNext = false
		} else {
			sp.words = append(sp.words, w)
		}
		sp.cur.Reset()
		sp.inWord = false
	}
}

func (sp *splitter) flushPart() {
	sp.flushWord()
	if len(sp.words) > 0 {
		sp.parts = append(sp.parts, sp.words)
		sp.words = nil
	}
}

// nested splits inner as a command of its own.
func (sp *splitter) nested(inner string) {
	if sp.depth > 16 {
		sp.parts = append(sp.parts, []string{"sh", "-c", inner}) // too deep to look into: shell:other
		return
	}
	n := &splitter{src: inner, depth: sp.depth + 1}
	n.run(0)
	sp.parts = append(sp.parts, n.parts...)
	sp.cur.WriteString(sub)
	sp.inWord = true
}

// matching returns the index just past the ')' that closes the '(' before
// i, skipping quoted text; len(src) when there is none.
func matching(src string, i int) int {
	depth := 1
	for i < len(src) {
		switch src[i] {
		case '\\':
			i++
		case '\'':
			if j := strings.IndexByte(src[i+1:], '\''); j >= 0 {
				i += j + 1
			} else {
				return len(src)
			}
		case '"':
			for i++; i < len(src) && src[i] != '"'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return len(src)
}

// backquoted returns the text of a `…` starting after its opening
// backquote, and the index just past the closing one.
func backquoted(src string, i int) (string, int) {
	var b strings.Builder
	for ; i < len(src); i++ {
		switch src[i] {
		case '\\':
			if i+1 < len(src) {
				i++
				b.WriteByte(src[i])
			}
		case '`':
			return b.String(), i + 1
		default:
			b.WriteByte(src[i])
		}
	}
	return b.String(), len(src)
}

func (sp *splitter) run(i int) {
	src := sp.src
	for i < len(src) {
		ch := src[i]
		next := byte(0)
		if i+1 < len(src) {
			next = src[i+1]
		}
		switch {
		case ch == '\\':
			if next == '\n' {
				i += 2 // a line continuation
				continue
			}
			if next != 0 {
				sp.cur.WriteByte(next)
				sp.inWord = true
			}
			i += 2
		case ch == '\'':
			j := strings.IndexByte(src[i+1:], '\'')
			if j < 0 {
				j = len(src) - i - 1
			}
			sp.cur.WriteString(src[i+1 : i+1+j])
			sp.inWord = true
			i += j + 2
		case ch == '$' && next == '\'':
			// $'…': \ escapes anything, up to an unescaped quote.
			i += 2
			for i < len(src) && src[i] != '\'' {
				if src[i] == '\\' && i+1 < len(src) {
					i++
				}
				sp.cur.WriteByte(src[i])
				i++
			}
			sp.inWord = true
			i++
		case ch == '"':
			i = sp.doubleQuoted(i + 1)
		case ch == '$' && next == '(':
			end := matching(src, i+2)
			sp.nested(src[i+2 : max(end-1, i+2)])
			i = end
		case ch == '$' && next == '{':
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				end = len(src) - i - 1
			}
			sp.cur.WriteString(src[i : i+end+1])
			sp.inWord = true
			i += end + 1
		case ch == '`':
			inner, end := backquoted(src, i+1)
			sp.nested(inner)
			i = end
		case (ch == '<' || ch == '>') && next == '(':
			end := matching(src, i+2)
			sp.nested(src[i+2 : max(end-1, i+2)])
			i = end
		case ch == '#' && !sp.inWord:
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case ch == '<' && next == '<' && i+2 < len(src) && src[i+2] == '<':
			// A here-string: its word is data.
			sp.fdWord()
			sp.flushWord()
			sp.dropNext = true
			i += 3
		case ch == '<' && next == '<':
			sp.fdWord()
			sp.flushWord()
			i = sp.heredocStart(i + 2)
		case ch == '<' || ch == '>' || (ch == '&' && next == '>'):
			sp.fdWord()
			sp.flushWord()
			for i+1 < len(src) && strings.IndexByte("<>&|", src[i+1]) >= 0 {
				i++
			}
			sp.dropNext = true
			i++
		case ch == '\n':
			sp.flushPart()
			i++
			if len(sp.heredocs) > 0 {
				i = sp.heredocBodies(i)
			}
		case ch == ';' || ch == '|' || ch == '&' || ch == '(' || ch == ')':
			sp.flushPart()
			i++
		case ch == ' ' || ch == '\t' || ch == '\r':
			sp.flushWord()
			i++
		default:
			sp.cur.WriteByte(ch)
			sp.inWord = true
			i++
		}
	}
	sp.flushPart()
}

// fdWord drops the word being read when it is a redirection's file
// descriptor (the 2 of 2>&1).
func (sp *splitter) fdWord() {
	w := sp.cur.String()
	if !sp.inWord || w == "" {
		return
	}
	for _, c := range w {
		if c < '0' || c > '9' {
			return
		}
	}
	sp.cur.Reset()
	sp.inWord = false
}

// doubleQuoted reads a "…" whose opening quote is before i and returns the
// index past its closing quote.
func (sp *splitter) doubleQuoted(i int) int {
	src := sp.src
	sp.inWord = true
	for i < len(src) {
		ch := src[i]
		switch {
		case ch == '"':
			return i + 1
		case ch == '\\' && i+1 < len(src) && strings.IndexByte("\"\\$`\n", src[i+1]) >= 0:
			if src[i+1] != '\n' {
				sp.cur.WriteByte(src[i+1])
			}
			i += 2
		case ch == '$' && i+1 < len(src) && src[i+1] == '(':
			end := matching(src, i+2)
			sp.nested(src[i+2 : max(end-1, i+2)])
			i = end
		case ch == '`':
			inner, end := backquoted(src, i+1)
			sp.nested(inner)
			i = end
		default:
			sp.cur.WriteByte(ch)
			i++
		}
	}
	return i
}

// heredocStart reads the delimiter after << (or <<-) and remembers it;
// the body starts at the next newline.
func (sp *splitter) heredocStart(i int) int {
	src := sp.src
	h := heredoc{}
	if i < len(src) && src[i] == '-' {
		h.strip = true
		i++
	}
	for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	var d strings.Builder
	for i < len(src) && strings.IndexByte(" \t\n;|&<>()", src[i]) < 0 {
		switch src[i] {
		case '\'', '"':
			h.quoted = true
		case '\\':
			h.quoted = true
			i++
			if i < len(src) {
				d.WriteByte(src[i])
			}
		default:
			d.WriteByte(src[i])
		}
		i++
	}
	h.delim = d.String()
	sp.heredocs = append(sp.heredocs, h)
	return i
}

// heredocBodies skips the bodies of the pending here-documents, which
// start at i, and returns the index after the last delimiter line. An
// unquoted body's substitutions are commands and are split.
func (sp *splitter) heredocBodies(i int) int {
	src := sp.src
	for _, h := range sp.heredocs {
		for i < len(src) {
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			line := src[i : i+end]
			i += end + 1
			if h.strip {
				line = strings.TrimLeft(line, "\t")
			}
			if line == h.delim {
				break
			}
			if !h.quoted {
				body := &splitter{src: line, depth: sp.depth + 1}
				body.doubleQuoted(0) // as in double quotes: only substitutions run
				sp.parts = append(sp.parts, body.parts...)
			}
		}
	}
	sp.heredocs = nil
	return min(i, len(src))
}

var (
	netCommands = set("curl", "wget", "nc", "ncat", "netcat", "ssh", "scp", "sftp", "rsync", "ftp", "telnet", "socat",
		"dig", "nslookup", "host", "http", "https", "xh", "aria2c", "ping", "traceroute")
	testCommands  = set("pytest", "jest", "vitest", "mocha", "rspec", "tox", "ctest", "phpunit")
	buildCommands = set("tsc", "cmake", "ninja", "gcc", "g++", "cc", "clang", "clang++", "javac", "rustc", "bazel", "buck", "meson", "esbuild", "webpack", "vite")
	// prefixes are words that run the command after them, with their
	// options that take a value.
	prefixes = map[string]map[string]bool{
		"sudo": set("-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T"), "doas": set("-u", "-C"),
		"env": set("-u", "-C", "-S"), "time": set("-f", "-o"), "nice": set("-n"), "nohup": set(), "command": set(),
		"exec": set("-a"), "xargs": set("-I", "-i", "-n", "-P", "-d", "-a", "-L", "-l", "-s", "-E", "-e"),
		"timeout": set("-s", "-k"), "stdbuf": set("-i", "-o", "-e"), "builtin": set(), "caffeinate": set(),
	}
	// reserved words before a command; words that start no command.
	reserved  = set("!", "if", "then", "elif", "else", "while", "until", "do", "{", "time")
	noCommand = set("for", "case", "select", "function", "fi", "done", "esac", "}", "in")
	shells    = set("sh", "bash", "zsh", "dash", "ksh", "fish", "eval", "source", ".")
	pkgVerbs  = map[string]map[string]bool{
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
	words = commandWords(words)
	if len(words) == 0 {
		return ""
	}
	if words[0] == "" || strings.HasPrefix(words[0], sub) {
		return "shell:other" // the command's name is computed at run time
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
	w := commandWords(parts[0])
	if len(w) < 2 || path.Base(w[0]) != "git" {
		return "", false
	}
	// git's global options before the subcommand (-C DIR, -c K=V, …).
	w = w[1:]
	for len(w) > 0 && strings.HasPrefix(w[0], "-") {
		if (w[0] == "-C" || w[0] == "-c") && len(w) > 1 {
			w = w[1:]
		}
		w = w[1:]
	}
	if len(w) < 1 || w[0] != "push" {
		return "", false
	}
	var pos []string
	for _, a := range w[1:] {
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

// commandWords skips what comes before a command's name: variable
// assignments, reserved words (!, if, do, …) and prefixes that run the
// command after them (sudo -u root, env -i, timeout 10, …) with their
// options. A part that starts no command (for i in …, case …) is empty.
func commandWords(words []string) []string {
	for len(words) > 0 {
		w := words[0]
		switch {
		case noCommand[w]:
			return nil
		case reserved[w]:
			words = words[1:]
		case strings.IndexByte(w, '=') > 0 && !strings.HasPrefix(w, "-") && validName(w[:strings.IndexByte(w, '=')]):
			words = words[1:]
		case prefixes[path.Base(w)] != nil:
			withValue := prefixes[path.Base(w)]
			name := path.Base(w)
			words = words[1:]
			for len(words) > 0 && strings.HasPrefix(words[0], "-") && words[0] != "-" {
				opt := words[0]
				words = words[1:]
				if opt == "--" {
					break
				}
				if withValue[opt] && len(words) > 0 {
					words = words[1:]
				}
			}
			if name == "env" {
				for len(words) > 0 && strings.IndexByte(words[0], '=') > 0 {
					words = words[1:]
				}
			}
			if name == "timeout" && len(words) > 0 && isNumber(words[0]) {
				words = words[1:]
			}
		default:
			return words
		}
	}
	return words
}

// validName reports whether s can be a shell variable name.
func validName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}
