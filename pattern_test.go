package writ_test

import (
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/writ-dev/writ"
)

func TestMatchPath(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		// exact
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b", "a", false},
		{"a/b", "a/b/", false},
		{"SRC/a", "src/a", false}, // case-sensitive
		// "*" within one segment
		{"*", "a", true},
		{"*", "a/b", false},
		{"*.go", "main.go", true},
		{"*.go", "cmd/main.go", false},
		{"a*c", "ac", true},
		{"a*c", "abbc", true},
		{"a*c", "abcd", false},
		{"*a*", "bab", true},
		{"*a*", "bbb", false},
		{"src/*", "src/a", true},
		{"src/*", "src/a/b", false},
		{"src/*", "src", false},
		// "**" at the end: zero or more segments
		{"src/**", "src/a", true},
		{"src/**", "src/a/b/c", true},
		{"src/**", "src", true},
		{"src/**", "srcx/a", false},
		{"src/**", "other/src/a", false},
		// "**" at the start
		{"**/*.go", "main.go", true},
		{"**/*.go", "a/b/main.go", true},
		{"**/*.go", "a/main.go/x", false},
		{"**/testdata", "testdata", true},
		{"**/testdata", "x/testdata", true},
		{"**/testdata", "x/testdata/y", false},
		// "**" in the middle
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/b/b", true},
		{"a/**/b", "a/bb", false},
		{"a/**/b", "a/x/b/c", false},
		{"a/**/b", "b", false},
		{"a/**/b", "x/a/b", false},
		{"docs/**/*.md", "docs/README.md", true},
		{"docs/**/*.md", "docs/a/b/c.md", true},
		{"docs/**/*.md", "docs/a/b/c.txt", false},
		{"a/**/b/**/c", "a/b/c", true},
		{"a/**/b/**/c", "a/x/b/y/z/c", true},
		{"a/**/b/**/c", "a/x/c/b", false},
		// "**" alone, and twice
		{"**", "", true},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**/**", "a/b", true},
		// a "*" inside a segment never crosses "/"
		{"a*", "ab/c", false},
		{"*/*", "a/b", true},
		{"*/*", "a/b/c", false},
	}
	for _, tt := range tests {
		if got := writ.MatchPath(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchPath(%q, %q) = %v; want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestPathCovers(t *testing.T) {
	tests := []struct {
		p, q string
		want bool
	}{
		{"src/**", "src/*", true},
		{"src/*", "src/**", false}, // src/** reaches src/a/b
		{"src/**", "src/a/**", true},
		{"src/a/**", "src/**", false},
		{"src/*", "src/a", true},
		{"src/*", "src/a/b", false},
		{"src/*", "src/*.go", true},
		{"src/*.go", "src/*", false},
		{"src/*.go", "src/a.go", true},
		{"**", "a/b/c", true},
		{"**", "**", true},
		{"**", "*/**/x*", true},
		{"*", "**", false},
		{"*", "*", true},
		{"a/**/b", "a/x/**/b", true},
		{"a/**/b", "a/**/b", true},
		{"a/**/b", "a/**", false},
		{"a/**/b", "a/b", true},
		{"**/b", "b", true},
		{"*/b", "**/b", false},
		{"a/**", "a", true},
		{"a/*", "a", false},
		{"x/**", "**/x", false},
		{"*a*", "*a", true},
		{"*a", "*a*", false},
		{"a*", "*a", false},
		{"*ab", "*b", false},
		{"acme/*", "acme/api", true},
		{"acme/*", "other/api", false},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
	}
	for _, tt := range tests {
		if got := writ.PathCovers(tt.p, tt.q); got != tt.want {
			t.Errorf("PathCovers(%q, %q) = %v; want %v", tt.p, tt.q, got, tt.want)
		}
	}
}

// pathGen makes small random path patterns and names from a tiny alphabet,
// so that random pairs overlap often.
type pathGen struct{ r *rand.Rand }

var (
	patSegs  = []string{"a", "b", "ab", "*", "**", "a*", "*b", "*a*", "a*b"}
	nameSegs = []string{"a", "b", "ab", "ba", "aab", "abb", "x"}
	starFill = []string{"", "a", "b", "ab", "ba", "x"}
)

func (g pathGen) pattern() string {
	n := 1 + g.r.IntN(4)
	segs := make([]string, n)
	for i := range segs {
		segs[i] = patSegs[g.r.IntN(len(patSegs))]
	}
	return strings.Join(segs, "/")
}

func (g pathGen) name() string {
	n := 1 + g.r.IntN(5)
	segs := make([]string, n)
	for i := range segs {
		segs[i] = nameSegs[g.r.IntN(len(nameSegs))]
	}
	return strings.Join(segs, "/")
}

// instance returns a random name that pattern q matches: each "**" becomes
// zero to two segments, each "*" a short string.
func (g pathGen) instance(q string) string {
	var out []string
	for _, seg := range strings.Split(q, "/") {
		if seg == "**" {
			for range g.r.IntN(3) {
				out = append(out, nameSegs[g.r.IntN(len(nameSegs))])
			}
			continue
		}
		var b strings.Builder
		for _, c := range seg {
			if c == '*' {
				b.WriteString(starFill[g.r.IntN(len(starFill))])
			} else {
				b.WriteRune(c)
			}
		}
		out = append(out, b.String())
	}
	return strings.Join(out, "/")
}

// TestPathCoversSound is a property test: PathCovers(p, q) must never be
// true when q matches a name p does not. It also checks that every valid
// pattern covers itself, so that a scope equal to its allowance fits.
func TestPathCoversSound(t *testing.T) {
	g := pathGen{rand.New(rand.NewPCG(19, 4))}
	covered, failures := 0, 0
	for i := 0; i < 100_000 && failures < 10; i++ {
		p, q := g.pattern(), g.pattern()
		if !writ.PathCovers(p, p) && writ.ValidatePathPattern(p) == nil {
			t.Errorf("PathCovers(%q, %q) = false: a valid pattern must cover itself", p, p)
			failures++
		}
		if inst := g.instance(q); !writ.MatchPath(q, inst) {
			t.Errorf("MatchPath(%q, %q) = false; the name is an instance of the pattern", q, inst)
			failures++
		}
		if !writ.PathCovers(p, q) {
			continue
		}
		covered++
		for _, name := range []string{g.name(), g.instance(q), g.instance(q)} {
			if writ.MatchPath(q, name) && !writ.MatchPath(p, name) {
				t.Errorf("PathCovers(%q, %q) = true, but MatchPath(%q, %q) = true and MatchPath(%q, %q) = false", p, q, q, name, p, name)
				failures++
			}
		}
	}
	// Guard against a generator that never produces covering pairs.
	if covered < 1000 {
		t.Errorf("only %d covering pairs generated; the property test checks too little", covered)
	}
}

func TestMatchHost(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"example.org", "example.org", true},
		{"example.org", "EXAMPLE.org", true},
		{"example.org", "a.example.org", false},
		{"*.example.org", "a.example.org", true},
		{"*.example.org", "a.b.example.org", true},
		{"*.example.org", "example.org", false}, // the apex is not under itself
		{"*.example.org", ".example.org", false},
		{"*.example.org", "aexample.org", false},
		{"*.example.org", "example.org.evil.com", false},
		{"*.Example.ORG", "A.example.org", true},
		{"*", "a", false}, // not a pattern: exact "*"
		{"proxy.golang.org", "proxy.golang.org.", false},
	}
	for _, tt := range tests {
		if got := writ.MatchHost(tt.pattern, tt.host); got != tt.want {
			t.Errorf("MatchHost(%q, %q) = %v; want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}

func TestHostCovers(t *testing.T) {
	tests := []struct {
		p, q string
		want bool
	}{
		{"x.org", "x.org", true},
		{"x.org", "y.org", false},
		{"x.org", "*.x.org", false},
		{"*.x.org", "*.x.org", true},
		{"*.x.org", "*.a.x.org", true},
		{"*.x.org", "a.x.org", true},
		{"*.x.org", "a.b.x.org", true},
		{"*.x.org", "x.org", false},
		{"*.x.org", "*.ax.org", false},
		{"*.a.x.org", "*.x.org", false},
		{"a.x.org", "*.x.org", false},
		{"*.X.org", "A.x.ORG", true},
	}
	for _, tt := range tests {
		if got := writ.HostCovers(tt.p, tt.q); got != tt.want {
			t.Errorf("HostCovers(%q, %q) = %v; want %v", tt.p, tt.q, got, tt.want)
		}
	}
}

// TestHostCoversSound is the property test of TestPathCoversSound for
// hosts.
func TestHostCoversSound(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	labels := []string{"a", "b", "x", "ab"}
	host := func(min int) string {
		n := min + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = labels[r.IntN(len(labels))]
		}
		return strings.Join(parts, ".")
	}
	pattern := func() string {
		if r.IntN(2) == 0 {
			return "*." + host(1)
		}
		return host(1)
	}
	instance := func(q string) string {
		if s, ok := strings.CutPrefix(q, "*."); ok {
			return host(1) + "." + s
		}
		return q
	}
	covered := 0
	for range 50_000 {
		p, q := pattern(), pattern()
		if !writ.HostCovers(p, p) {
			t.Fatalf("HostCovers(%q, %q) = false: a pattern must cover itself", p, p)
		}
		if inst := instance(q); !writ.MatchHost(q, inst) {
			t.Fatalf("MatchHost(%q, %q) = false; the host is an instance of the pattern", q, inst)
		}
		if !writ.HostCovers(p, q) {
			continue
		}
		covered++
		for _, h := range []string{host(1), instance(q)} {
			if writ.MatchHost(q, h) && !writ.MatchHost(p, h) {
				t.Fatalf("HostCovers(%q, %q) = true, but %q matches %q and not %q", p, q, h, q, p)
			}
		}
	}
	if covered < 1000 {
		t.Errorf("only %d covering pairs generated", covered)
	}
}

func TestMatchTool(t *testing.T) {
	tests := []struct {
		pattern, tool string
		want          bool
	}{
		{"read", "read", true},
		{"read", "edit", false},
		{"read", "read:x", false},
		{"shell:test", "shell:test", true},
		{"shell:*", "shell:test", false}, // "*" is a wildcard only after "/"
		{"mcp:everything/echo", "mcp:everything/echo", true},
		{"mcp:everything/echo", "mcp:everything/Echo", false},
		{"mcp:everything/*", "mcp:everything/echo", true},
		{"mcp:everything/*", "mcp:everything/", false},
		{"mcp:everything/*", "mcp:everything", false},
		{"mcp:everything/*", "mcp:everything2/echo", false},
		{"mcp:everything/*", "mcp:every/echo", false},
	}
	for _, tt := range tests {
		if got := writ.MatchTool(tt.pattern, tt.tool); got != tt.want {
			t.Errorf("MatchTool(%q, %q) = %v; want %v", tt.pattern, tt.tool, got, tt.want)
		}
	}
}

func TestToolCovers(t *testing.T) {
	tests := []struct {
		p, q string
		want bool
	}{
		{"read", "read", true},
		{"read", "edit", false},
		{"mcp:e/*", "mcp:e/*", true},
		{"mcp:e/*", "mcp:e/echo", true},
		{"mcp:e/echo", "mcp:e/*", false},
		{"mcp:e/echo", "mcp:e/echo", true},
		{"mcp:e/*", "mcp:f/*", false},
		{"mcp:e/*", "mcp:f/echo", false},
		{"mcp:e/*", "mcp:ee/echo", false},
		// q matches only the name "mcp:e/", which p does not match
		// (MatchTool wants a non-empty tool after the prefix).
		{"mcp:e/*", "mcp:e/", false},
	}
	for _, tt := range tests {
		if got := writ.ToolCovers(tt.p, tt.q); got != tt.want {
			t.Errorf("ToolCovers(%q, %q) = %v; want %v", tt.p, tt.q, got, tt.want)
		}
	}
}

// TestToolCoversSound is the property test for tools, over the names of
// the tool grammar.
func TestToolCoversSound(t *testing.T) {
	pats := []string{"read", "edit", "shell:test", "exec:x", "mcp:s/a", "mcp:s/b", "mcp:s/*", "mcp:t/a", "mcp:t/*"}
	names := []string{"read", "edit", "shell:test", "exec:x", "mcp:s/a", "mcp:s/b", "mcp:s/c", "mcp:t/a", "mcp:st/a", "mcp:s", "mcp:s/*"}
	for _, p := range pats {
		if !writ.ToolCovers(p, p) {
			t.Errorf("ToolCovers(%q, %q) = false: a pattern must cover itself", p, p)
		}
		for _, q := range pats {
			if !writ.ToolCovers(p, q) {
				continue
			}
			for _, n := range names {
				if writ.MatchTool(q, n) && !writ.MatchTool(p, n) {
					t.Errorf("ToolCovers(%q, %q) = true, but %q matches %q and not %q", p, q, n, q, p)
				}
			}
		}
	}
}

func TestValidRepoName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"acme/api", true},
		{"a/b", true},
		{"0/1", true},
		{"a-b/c-d", true},
		{"a_b/c.d", true},
		{"_x/y", true},
		{"acme/api.go", true},
		{"acme/api-", true},
		{"", false},
		{"acme", false},
		{"acme/", false},
		{"/api", false},
		{"acme/api/x", false},
		{"Acme/api", false},
		{"acme/API", false},
		{"acme/..", false},
		{"../api", false},
		{"acme/a..b", false},
		{"a..b/c", false},
		{"-acme/api", false},
		{"acme/-api", false},
		{".acme/api", false},
		{"acme/.api", false},
		{"acme/.", false},
		{"acme/api ", false},
		{"acme/*", false},
		{`acme\api`, false},
		{"acme/api\n", false},
		{"acme/ápi", false},
	}
	for _, tt := range tests {
		if got := writ.ValidRepoName(tt.in); got != tt.want {
			t.Errorf("ValidRepoName(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidateRepoPattern(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"acme/*", true},
		{"acme/api", true},
		{"*/*", true},
		{"acme/api-*", true},
		{"acme", false},
		{"acme/**/x", false},
		{"acme/..", false},
		{"-acme/*", false},
		{"Acme/*", false},
	}
	for _, tt := range tests {
		if err := writ.ValidateRepoPattern(tt.in); (err == nil) != tt.ok {
			t.Errorf("ValidateRepoPattern(%q) = %v; want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func TestValidateToolPattern(t *testing.T) {
	valid := []string{
		"read", "edit",
		"shell:build", "shell:test", "shell:git", "shell:net", "shell:pkg", "shell:other",
		"exec:test", "exec:go-build", "exec:a.b_c", "exec:0",
		"mcp:everything/echo", "mcp:everything/*", "mcp:e/Echo_1", "mcp:my-server.v2/get.thing",
		"web:fetch", "web:search", "agent:task",
	}
	invalid := []string{
		"", "*", "Read", "read ", " read", "read\n", "write",
		"shell:", "shell:foo", "shell:*", "shell:Test",
		"exec:", "exec:*", "exec:Test", "exec:-x", "exec:a/b",
		"mcp:", "mcp:e", "mcp:e/", "mcp:/echo", "mcp:e/echo/x", "mcp:E/echo", "mcp:e/*x", "mcp:e/**", "mcp:*/echo", "mcp:e/-x",
		"web:*", "web:post", "agent:*", "agent:spawn",
	}
	for _, p := range valid {
		if err := writ.ValidateToolPattern(p); err != nil {
			t.Errorf("ValidateToolPattern(%q) = %v; want nil", p, err)
		}
	}
	for _, p := range invalid {
		if err := writ.ValidateToolPattern(p); err == nil {
			t.Errorf("ValidateToolPattern(%q) = nil; want an error", p)
		}
	}
}

func TestValidatePathPattern(t *testing.T) {
	valid := []string{"src/**", "**", "*.go", "a/b/c", "docs/**/*.md", ".github/workflows/**", "CODEOWNERS", "a/**/b", "..a", "a..b"}
	invalid := []string{"", "/src", "src/", "a//b", "./a", "a/./b", "a/../b", "..", "a/..", "a**", "**a/b", "a/b**", "a/***", `a\b`, "a\x00b"}
	for _, p := range valid {
		if err := writ.ValidatePathPattern(p); err != nil {
			t.Errorf("ValidatePathPattern(%q) = %v; want nil", p, err)
		}
	}
	for _, p := range invalid {
		if err := writ.ValidatePathPattern(p); err == nil {
			t.Errorf("ValidatePathPattern(%q) = nil; want an error", p)
		}
	}
}

func TestValidateHostPattern(t *testing.T) {
	valid := []string{"proxy.golang.org", "*.example.org", "localhost", "a-b.c", "xn--80ak6aa92e.com", "127.0.0.1", "*.a"}
	invalid := []string{"", "*", "*.", ".x.org", "x.org.", "a..x", "-a.x", "a-.x", "A.x", "a.*.x", "*x.org", "**.x.org", "x.org:443", "a_b.x", strings.Repeat("a.", 127) + "ab"}
	for _, p := range valid {
		if err := writ.ValidateHostPattern(p); err != nil {
			t.Errorf("ValidateHostPattern(%q) = %v; want nil", p, err)
		}
	}
	for _, p := range invalid {
		if err := writ.ValidateHostPattern(p); err == nil {
			t.Errorf("ValidateHostPattern(%q) = nil; want an error", p)
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"alice", true},
		{"refactor-bot", true},
		{"a.b_c-d", true},
		{"0", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Alice", false},
		{"-a", false},
		{".a", false},
		{"_a", false},
		{"a b", false},
		{"a/b", false},
		{"*", false},
	}
	for _, tt := range tests {
		if got := writ.ValidName(tt.in); got != tt.want {
			t.Errorf("ValidName(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidateRefName(t *testing.T) {
	valid := []string{"main", "release/1.2", "feature/x-y_z", "a/-b", "v1.0", "a@b", "é", "refs-x", "a.b/c.d"}
	invalid := []string{
		"", "-a", "/a", "a/", "a.", ".a", "a/.b", "a..b", "a//b", "a.lock", "a/b.lock", "a.lock/b",
		"a b", "a~1", "a^", "a:b", "a?", "a*", "a[b", `a\b`, "a@{b", "a\x00", "a\x7f", "a\tb",
		strings.Repeat("a", 201),
		"HEAD", // git refuses it as a branch name: `git check-ref-format --branch HEAD` fails
	}
	for _, s := range valid {
		if err := writ.ValidateRefName(s); err != nil {
			t.Errorf("ValidateRefName(%q) = %v; want nil", s, err)
		}
	}
	for _, s := range invalid {
		if err := writ.ValidateRefName(s); err == nil {
			t.Errorf("ValidateRefName(%q) = nil; want an error", s)
		}
	}
}

// TestValidateRefNameAgainstGit checks ValidateRefName against git itself:
// every name it accepts must be a branch name git accepts. (It may refuse
// more than git does.)
func TestValidateRefNameAgainstGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	r := rand.New(rand.NewPCG(3, 11))
	const alphabet = "ab/.-_@{}~^:?*[\\ \x01\x7féHEAD"
	candidates := []string{"main", "@", "HEAD", "a/HEAD", "FETCH_HEAD", "@@", "a/@", "-", "a/-", "x.lock.y", "a/b/c", "é/ü"}
	for range 300 {
		n := 1 + r.IntN(6)
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		candidates = append(candidates, b.String())
	}
	dir := t.TempDir() // outside any repository: "--branch" then checks the name alone
	for _, s := range candidates {
		if writ.ValidateRefName(s) != nil {
			continue
		}
		cmd := exec.Command(git, "check-ref-format", "--branch", s)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ValidateRefName(%q) = nil, but git refuses it: %s", s, strings.TrimSpace(string(out)))
		}
	}
}

// TestMatchPathManyDoubleStars is an attack test: a pattern with many "**"
// against a long, almost-matching path. A backtracking matcher takes
// seconds to minutes here (the test run's timeout then fails it); the
// dynamic program answers at once.
func TestMatchPathManyDoubleStars(t *testing.T) {
	name := strings.Repeat("a/", 400) + "c"
	for _, pat := range []string{
		"**/a/**/a/**/a/**/a/**/b",
		"**/**/**/**/**/**/**/**/b",
	} {
		if writ.MatchPath(pat, name) {
			t.Errorf("writ.MatchPath(%q, 400 segments ending in c) = true; want false", pat)
		}
		if !writ.MatchPath(pat[:len(pat)-1]+"c", name) {
			t.Errorf("writ.MatchPath(%q, …) = false; want true", pat[:len(pat)-1]+"c")
		}
	}
}
