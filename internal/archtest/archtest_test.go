package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const mod = "github.com/writ-dev/writ"

// Third-party paths used by the fixtures.
const (
	opaRego     = "github.com/open-policy-agent/opa/v1/rego"
	opaTester   = "github.com/open-policy-agent/opa/v1/tester"
	opaV0Rego   = "github.com/open-policy-agent/opa/rego"
	sqlite      = "modernc.org/sqlite"
	pgxStdlib   = "github.com/jackc/pgx/v5/stdlib"
	pgx         = "github.com/jackc/pgx/v5"
	jose        = "github.com/go-jose/go-jose/v4"
	jwt         = "github.com/golang-jwt/jwt/v5"
	mcpSDK      = "github.com/modelcontextprotocol/go-sdk/mcp"
	tlog        = "golang.org/x/mod/sumdb/tlog"
	note        = "golang.org/x/mod/sumdb/note"
	goCmp       = "github.com/google/go-cmp/cmp"
	testscript  = "github.com/rogpeppe/go-internal/testscript"
	yaml        = "sigs.k8s.io/yaml"
	errgroup    = "golang.org/x/sync/errgroup"
	spiffeID    = "github.com/spiffe/go-spiffe/v2/spiffeid"
	prometheus  = "github.com/prometheus/client_golang/prometheus"
	unrelatedDB = "github.com/jackc/pgxlisten" // not the pgx driver: a sibling repository
)

// pkg is a fixture package: imports are written relative to the module
// ("sqlstore", "" for the root) unless they contain a dot.
type pkg struct {
	imports, testImports, xtestImports []string
	noDoc, testOnly                    bool
}

func abs(p string) string {
	switch {
	case p == "":
		return mod
	case strings.Contains(strings.SplitN(p, "/", 2)[0], "."):
		return p // third party
	case isStdFixture(p):
		return p
	}
	return mod + "/" + p
}

// isStdFixture lists the standard-library names the fixtures use, which
// would otherwise read as module packages.
func isStdFixture(p string) bool {
	switch p {
	case "fmt", "context", "net/http", "database/sql", "testing", "log/slog", "os", "crypto", "embed":
		return true
	}
	return false
}

func absAll(ps []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, abs(p))
	}
	return union(out, nil)
}

// cleanFixture is writ's intended layout (CONTRIBUTING.md §5) with the imports the
// dependency-direction diagram allows. It breaks no rule.
func cleanFixture() map[string]pkg {
	return map[string]pkg{
		"": {
			imports:      []string{"context", "fmt", "net/http"},
			xtestImports: []string{"", "internal/archtest", goCmp, "testing"},
		},
		"cmd/writ": {
			imports:      []string{"", "server", "client", "hook", "launch", "auditlog", "policy", "trigger", "attest", "sqlstore", "fmt"},
			xtestImports: []string{testscript, "internal/writtest", "server"},
		},
		"server": {
			imports: []string{"", "httpapi", "runs", "egress", "webui", "gitgw", "mcpgw", "sqlstore", "broker", "broker/gitlease", "broker/pgrole",
				"broker/secret", "approval", "builder", "auditlog", "policy", "token", "trigger", "attest", "internal/strictjson", yaml, errgroup},
			testImports: []string{"internal/writtest", goCmp},
		},
		"client":              {imports: []string{"", "api", "token", "net/http"}},
		"api":                 {imports: []string{"", "time"}},
		"runs":                {imports: []string{"", "api", "decision", "token", "trigger", prometheus}, xtestImports: []string{"sqlstore", "policy"}},
		"decision":            {imports: []string{"", "context"}},
		"egress":              {imports: []string{"", "broker", "decision", "net/http"}},
		"httpapi":             {imports: []string{"", "api", "runs", "broker", "approval", "auditlog", "policy", "token", "trigger", "attest", "internal/strictjson", prometheus}, xtestImports: []string{"internal/writtest", "server", "sqlstore"}},
		"webui":               {imports: []string{"", "approval", "embed"}},
		"gitgw":               {imports: []string{"", "broker", "policy", "auditlog", "token"}},
		"mcpgw":               {imports: []string{"", "policy", "token", mcpSDK}, testImports: []string{mcpSDK}},
		"trigger":             {imports: []string{"", "internal/strictjson", "crypto"}, testImports: []string{goCmp}},
		"token":               {imports: []string{"", jose, spiffeID}, testImports: []string{"internal/writtest"}},
		"broker":              {imports: []string{"", "context"}, testImports: []string{"sqlstore"}},
		"broker/gitlease":     {imports: []string{"", "broker"}},
		"broker/pgrole":       {imports: []string{"", "broker", pgx, pgxStdlib}},
		"broker/secret":       {imports: []string{"", "broker"}},
		"hook":                {imports: []string{"", "client"}},
		"launch":              {imports: []string{"", "client", "token"}},
		"builder":             {imports: []string{"", "attest"}},
		"policy":              {imports: []string{"", opaRego, "embed"}, xtestImports: []string{opaTester}},
		"policy/default":      {imports: []string{opaTester, "embed"}},
		"approval":            {imports: []string{"", "context"}},
		"auditlog":            {imports: []string{"", tlog, note}, testImports: []string{"sqlstore"}},
		"attest":              {imports: []string{"", "crypto"}},
		"sqlstore":            {imports: []string{"", "internal/strictjson", "database/sql", sqlite, pgxStdlib, tlog, unrelatedDB}, testImports: []string{"internal/writtest", "broker", "auditlog"}},
		"sqlstore/migrations": {imports: []string{"embed"}},
		"internal/strictjson": {imports: []string{"fmt"}},
		"internal/writtest":   {imports: []string{"", "server", "sqlstore", "client", "testing", "os"}},
		"internal/archtest":   {imports: []string{"fmt", "os"}, testImports: []string{goCmp, "testing"}},
		"e2e":                 {xtestImports: []string{"", "internal/writtest"}, noDoc: true, testOnly: true},
	}
}

func buildGraph(f map[string]pkg) Graph {
	g := Graph{}
	for rel, p := range f {
		path := abs(rel)
		doc := "Package " + rel + " does things."
		if p.noDoc {
			doc = ""
		}
		g[path] = &Package{
			ImportPath:   path,
			Name:         filepath.Base(path),
			Doc:          doc,
			HasGoFiles:   !p.testOnly,
			Imports:      absAll(p.imports),
			TestImports:  absAll(p.testImports),
			XTestImports: absAll(p.xtestImports),
		}
	}
	return g
}

func TestCheckClean(t *testing.T) {
	if got := Check(mod, buildGraph(cleanFixture())); len(got) != 0 {
		t.Errorf("Check(clean layout) = %d violations, want none:", len(got))
		for _, v := range got {
			t.Errorf("  %s", v.Msg)
		}
	}
}

// TestCheckRules breaks one rule at a time in the clean layout and checks
// that Check reports exactly the violations that break introduces.
func TestCheckRules(t *testing.T) {
	type V = Violation
	tests := []struct {
		name   string
		change func(f map[string]pkg)
		want   []Violation // Msg is not compared
	}{
		{
			name:   "1: root imports a third-party package",
			change: addImport("", "github.com/google/uuid"),
			want:   []V{{Rule: "1", Pkg: mod, Import: "github.com/google/uuid"}},
		},
		{
			name:   "1: root imports a module package",
			change: addImport("", "token"),
			want:   []V{{Rule: "1", Pkg: mod, Import: mod + "/token"}},
		},
		{
			name:   "2: a package other than policy imports OPA",
			change: addImport("httpapi", opaRego),
			want:   []V{{Rule: "2", Pkg: mod + "/httpapi", Import: opaRego}},
		},
		{
			name:   "2: policy imports an OPA v0 package",
			change: addImport("policy", opaV0Rego),
			want:   []V{{Rule: "2", Pkg: mod + "/policy", Import: opaV0Rego}},
		},
		{
			name: "2: a policy test imports an OPA v0 package",
			change: func(f map[string]pkg) {
				p := f["policy"]
				p.xtestImports = append(p.xtestImports, opaV0Rego)
				f["policy"] = p
			},
			want: []V{{Rule: "2", Pkg: mod + "/policy", Import: opaV0Rego}},
		},
		{
			name:   "3: an adapter imports the SQLite driver",
			change: addImport("httpapi", sqlite),
			want:   []V{{Rule: "3", Pkg: mod + "/httpapi", Import: sqlite}},
		},
		{
			name:   "3: broker imports pgx (only broker/pgrole may)",
			change: addImport("broker", pgx),
			want:   []V{{Rule: "3", Pkg: mod + "/broker", Import: pgx}},
		},
		{
			name:   "3: broker/pgrole imports the SQLite driver",
			change: addImport("broker/pgrole", sqlite+"/lib"),
			want:   []V{{Rule: "3", Pkg: mod + "/broker/pgrole", Import: sqlite + "/lib"}},
		},
		{
			name:   "4: gitgw imports the JOSE library",
			change: addImport("gitgw", jose),
			want:   []V{{Rule: "4", Pkg: mod + "/gitgw", Import: jose}},
		},
		{
			name:   "4: client imports another JWT library",
			change: addImport("client", jwt),
			want:   []V{{Rule: "4", Pkg: mod + "/client", Import: jwt}},
		},
		{
			name:   "4: httpapi imports the MCP SDK",
			change: addImport("httpapi", mcpSDK),
			want:   []V{{Rule: "4", Pkg: mod + "/httpapi", Import: mcpSDK}},
		},
		{
			name:   "4a: hook imports sqlstore",
			change: addImport("hook", "sqlstore"),
			want:   []V{{Rule: "4a", Pkg: mod + "/hook", Import: mod + "/sqlstore"}},
		},
		{
			name:   "4a and 5: launch imports server",
			change: addImport("launch", "server"),
			want: []V{
				{Rule: "4a", Pkg: mod + "/launch", Import: mod + "/server"},
				{Rule: "5", Pkg: mod + "/launch", Import: mod + "/server"},
			},
		},
		{
			name:   "5: httpapi imports server",
			change: addImport("httpapi", "server"),
			want:   []V{{Rule: "5", Pkg: mod + "/httpapi", Import: mod + "/server"}},
		},
		{
			name:   "6: an engine imports another engine",
			change: addImport("token", "trigger"),
			want:   []V{{Rule: "6", Pkg: mod + "/token", Import: mod + "/trigger"}},
		},
		{
			name:   "6: an engine imports sqlstore",
			change: addImport("auditlog", "sqlstore"),
			want:   []V{{Rule: "6", Pkg: mod + "/auditlog", Import: mod + "/sqlstore"}},
		},
		{
			name:   "5 and 6: an engine imports server",
			change: addImport("attest", "server"),
			want: []V{
				{Rule: "5", Pkg: mod + "/attest", Import: mod + "/server"},
				{Rule: "6", Pkg: mod + "/attest", Import: mod + "/server"},
			},
		},
		{
			name:   "7: sqlstore imports a module package other than writ",
			change: addImport("sqlstore", "broker"),
			want:   []V{{Rule: "7", Pkg: mod + "/sqlstore", Import: mod + "/broker"}},
		},
		{
			name:   "8: a non-test file imports internal/writtest",
			change: addImport("httpapi", "internal/writtest"),
			want:   []V{{Rule: "8", Pkg: mod + "/httpapi", Import: mod + "/internal/writtest"}},
		},
		{
			name:   "10: a package other than server imports httpapi",
			change: addImport("client", "httpapi"),
			want:   []V{{Rule: "10", Pkg: mod + "/client", Import: mod + "/httpapi"}},
		},
		{
			name:   "10+11: an edge reaches into httpapi",
			change: addImport("webui", "httpapi"),
			want:   []V{{Rule: "10", Pkg: mod + "/webui", Import: mod + "/httpapi"}, {Rule: "11", Pkg: mod + "/webui", Import: mod + "/httpapi"}},
		},
		{
			name:   "11: an edge reads runs from the store",
			change: addImport("egress", "sqlstore"),
			want:   []V{{Rule: "11", Pkg: mod + "/egress", Import: mod + "/sqlstore"}},
		},
		{
			name:   "11: gitgw imports the server",
			change: addImport("gitgw", "server"),
			want:   []V{{Rule: "11", Pkg: mod + "/gitgw", Import: mod + "/server"}, {Rule: "5", Pkg: mod + "/gitgw", Import: mod + "/server"}},
		},
		{
			name:   "12: runs imports net/http",
			change: addImport("runs", "net/http"),
			want:   []V{{Rule: "12", Pkg: mod + "/runs", Import: "net/http"}},
		},
		{
			name:   "12: runs imports an edge",
			change: addImport("runs", "mcpgw"),
			want:   []V{{Rule: "12", Pkg: mod + "/runs", Import: mod + "/mcpgw"}},
		},
		{
			name: "9: a package without a doc comment",
			change: func(f map[string]pkg) {
				p := f["approval"]
				p.noDoc = true
				f["approval"] = p
			},
			want: []V{{Rule: "9", Pkg: mod + "/approval"}},
		},
		{
			name: "9: cmd/writ needs a doc comment too",
			change: func(f map[string]pkg) {
				p := f["cmd/writ"]
				p.noDoc = true
				f["cmd/writ"] = p
			},
			want: []V{{Rule: "9", Pkg: mod + "/cmd/writ"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := cleanFixture()
			tt.change(f)
			got := Check(mod, buildGraph(f))
			for _, v := range got {
				if !strings.HasPrefix(v.Msg, "rule "+v.Rule+": ") || (v.Import != "" && !strings.Contains(v.Msg, strings.TrimPrefix(v.Import, mod+"/"))) {
					t.Errorf("Msg %q does not name its rule and import", v.Msg)
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Violation{}, "Msg")); diff != "" {
				t.Errorf("Check() mismatch (-want +got):\n%s\nmessages:\n%s", diff, msgs(got))
			}
		})
	}
}

func addImport(rel, imp string) func(map[string]pkg) {
	return func(f map[string]pkg) {
		p := f[rel]
		p.imports = append(p.imports, imp)
		f[rel] = p
	}
}

func msgs(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("  " + v.Msg + "\n")
	}
	return b.String()
}

func TestCheckIgnoresOtherModules(t *testing.T) {
	g := buildGraph(cleanFixture())
	g["example.com/other"] = &Package{ImportPath: "example.com/other", HasGoFiles: true, Imports: []string{opaV0Rego, sqlite}}
	// A module whose path merely starts with writ's is another module.
	g[mod+"x"] = &Package{ImportPath: mod + "x", HasGoFiles: true, Imports: []string{jose}}
	if got := Check(mod, g); len(got) != 0 {
		t.Errorf("Check() = %v, want no violations for packages outside %s", got, mod)
	}
}

func TestIsStd(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"fmt", true},
		{"net/http", true},
		{"C", true},
		{"unsafe", true},
		{"golang.org/x/mod/sumdb/tlog", false},
		{"github.com/writ-dev/writ", false},
		{"modernc.org/sqlite", false},
	}
	for _, tt := range tests {
		if got := isStd(tt.path); got != tt.want {
			t.Errorf("isStd(%q) = %v; want %v", tt.path, got, tt.want)
		}
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		path, root string
		want       bool
	}{
		{"github.com/jackc/pgx", "github.com/jackc/pgx", true},
		{"github.com/jackc/pgx/v5/stdlib", "github.com/jackc/pgx", true},
		{"github.com/jackc/pgxlisten", "github.com/jackc/pgx", false},
		{mod + "/serverless", mod + "/server", false},
		{mod + "/server/config", mod + "/server", true},
		{"gopkg.in/square/go-jose.v2", "gopkg.in/square/go-jose.", true},
		{"gopkg.in/square/go-jose.v2/jwt", "gopkg.in/square/go-jose.", true},
	}
	for _, tt := range tests {
		if got := within(tt.path, tt.root); got != tt.want {
			t.Errorf("within(%q, %q) = %v; want %v", tt.path, tt.root, got, tt.want)
		}
	}
}

// TestLoad runs Load on a small module written to a temporary directory.
func TestLoad(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.26\n",
		"m.go":   "// Package m is the root.\npackage m\n\nimport _ \"fmt\"\n",
		// A generator run by hand is not part of the package.
		"gen.go":                "//go:build ignore\n\npackage main\n\nimport _ \"os/exec\"\n",
		"m_test.go":             "package m\n\nimport _ \"testing\"\n",
		"x_test.go":             "package m_test\n\nimport _ \"example.com/m/sub\"\n",
		"sub/sub.go":            "package sub\n\nimport _ \"strings\"\n",
		"tagged/t.go":           "// Package tagged has a file for another build.\npackage tagged\n",
		"tagged/o.go":           "//go:build writnever\n\npackage tagged\n\nimport _ \"example.com/m/sub\"\n",
		"tagged/o_test.go":      "//go:build writnever\n\npackage tagged_test\n\nimport _ \"net/http\"\n",
		"testonly/a_test.go":    "package testonly\n\nimport _ \"testing\"\n",
		"testdata/skip/skip.go": "package skip\n",
		"broken/broken.go":      "// Package broken imports what does not exist.\npackage broken\n\nimport _ \"example.com/m/missing\"\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOWORK", "off")
	t.Setenv("GOPROXY", "off")

	g, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Dir and Error depend on the machine; compare them separately.
	if p := g["example.com/m/broken"]; p == nil || p.Error == "" {
		t.Errorf("Load: broken package = %+v, want a load error", p)
	}
	for _, p := range g {
		p.Dir, p.Error = "", ""
	}
	want := Graph{
		"example.com/m": {
			ImportPath: "example.com/m", Name: "m", Doc: "Package m is the root.", HasGoFiles: true,
			Imports: []string{"fmt"}, TestImports: []string{"testing"}, XTestImports: []string{"example.com/m/sub"},
		},
		"example.com/m/sub": {ImportPath: "example.com/m/sub", Name: "sub", HasGoFiles: true, Imports: []string{"strings"}},
		"example.com/m/tagged": {
			ImportPath: "example.com/m/tagged", Name: "tagged", Doc: "Package tagged has a file for another build.", HasGoFiles: true,
			Imports: []string{"example.com/m/sub"}, XTestImports: []string{"net/http"},
		},
		"example.com/m/testonly": {ImportPath: "example.com/m/testonly", Name: "testonly", TestImports: []string{"testing"}},
		"example.com/m/broken": {
			ImportPath: "example.com/m/broken", Name: "broken", Doc: "Package broken imports what does not exist.", HasGoFiles: true,
			Imports: []string{"example.com/m/missing"},
		},
	}
	if diff := cmp.Diff(want, g, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}

	// And the rules see what Load found: sub has no doc comment, testonly
	// needs none.
	got := Check("example.com/m", g)
	wantV := []Violation{{Rule: "9", Pkg: "example.com/m/sub"}}
	if diff := cmp.Diff(wantV, got, cmpopts.IgnoreFields(Violation{}, "Msg")); diff != "" {
		t.Errorf("Check(Load()) mismatch (-want +got):\n%s", diff)
	}
}

func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":          "module example.com/m\n\ngo 1.26\n",
		"cmd/m/main.go":   "// Command m.\npackage main\n\nimport (\n\t\"fmt\"\n\t_ \"example.com/m/lib\"\n)\n\nfunc main() { fmt.Println() }\n",
		"lib/lib.go":      "// Package lib.\npackage lib\n\nimport _ \"strings\"\n",
		"lib/lib_test.go": "package lib\n\nimport _ \"testing\"\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOWORK", "off")
	t.Setenv("GOPROXY", "off")
	got, err := Deps(dir, "./cmd/m")
	if err != nil {
		t.Fatal(err)
	}
	// Standard library and the module's own packages are left out.
	if len(got) != 0 {
		t.Errorf("Deps() = %q, want none", got)
	}
}
