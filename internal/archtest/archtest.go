// Package archtest checks writ's import rules: the "Dependency direction"
// rules of CONTRIBUTING.md §5 and the package-doc rule of CONTRIBUTING.md §6 (rule 1).
//
// The checker is split in two so that the rules themselves can be tested
// without a module on disk:
//
//   - [Check] is a pure function from a [Graph] (each package of the
//     module and its direct imports) to the list of [Violation]s.
//   - [Load] builds the Graph of a real module by running
//     "go list -e -json ./...", and [Deps] lists what a binary links, for the
//     deps.txt snapshot.
//
// # What counts as an import
//
// The rules apply to the imports of non-test files ([Package.Imports]),
// which is what ends up in the writ binary. Test files may import what they
// need (go-cmp, the server, a driver for a throwaway database); only rule 2's
// "OPA v1 paths only" also applies to them, and rule 8 exists to keep
// internal/writtest out of non-test files. Files excluded from the current
// build by build constraints ("//go:build integration", "_windows.go") are
// parsed as well, so a constraint cannot hide a forbidden import; files
// marked "//go:build ignore" (generators run by hand) are not part of any
// package and are skipped.
//
// A rule that names a package ("only policy imports OPA") also covers the
// packages below it (policy/default).
//
// # Rules
//
// M is the module path; "family" means a library's module root and every
// package below it.
//
//  1. M imports only the standard library (a path whose first element has
//     no dot).
//  2. Only M/policy imports OPA, and only below github.com/open-policy-agent/opa/v1.
//  3. Only M/sqlstore imports SQL drivers (modernc.org/sqlite,
//     mattn/go-sqlite3, the jackc/pgx family, lib/pq, go-sql-driver/mysql);
//     M/broker/pgrole may import the PostgreSQL ones.
//  4. Only M/token imports a JOSE/JWT library (go-jose, golang-jwt, jwx);
//     only M/mcpgw imports an MCP SDK. Rule 4a: M/hook and M/launch import
//     neither M/server nor M/sqlstore.
//  5. Nothing imports M/server except M/cmd/writ and tests (M/internal/writtest
//     counts as test code: rule 8 keeps it out of the binary).
//  6. The engines M/token, M/trigger, M/policy, M/auditlog and M/attest
//     import neither each other nor M/sqlstore nor M/server.
//  7. M/sqlstore imports no package of M but M itself and M/internal/strictjson.
//  8. Only _test.go files import M/internal/writtest.
//  9. Every package with non-test Go files has a package doc comment,
//     package main under cmd/ included.
//  10. Nothing imports M/httpapi except M/server and M/cmd/writ: the HTTP
//     adapter is wired, never reached into.
//  11. The edges M/gitgw, M/mcpgw, M/egress and M/webui reach runs only
//     through M/runs (as a value wired by server): they import neither
//     M/sqlstore nor M/httpapi nor M/server.
//  12. M/runs imports no HTTP server package: neither net/http (and
//     below) nor M/httpapi, M/webui, M/gitgw, M/mcpgw, M/egress, M/server.
//
// archtest imports only the standard library.
package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Package is one package of the module as the rules see it.
type Package struct {
	ImportPath string
	Name       string
	Dir        string
	// Doc is the first sentence of the package comment, empty when the
	// package has none.
	Doc string
	// HasGoFiles reports whether the package has non-test Go files. A
	// directory holding only _test.go files has nothing to document.
	HasGoFiles bool
	// Imports are the direct imports of the package's non-test files,
	// TestImports those of its in-package _test.go files and XTestImports
	// those of its external (package x_test) test files. Each is sorted and
	// free of duplicates.
	Imports      []string
	TestImports  []string
	XTestImports []string
	// Error is what go list reported about the package ("Error") or about
	// loading its dependencies ("DepsErrors"), one per line; empty when the
	// package loads. With an error of its own, the imports may be incomplete.
	Error string
}

// Graph maps the import path of every package of a module to the package.
type Graph map[string]*Package

// Violation is one broken rule.
type Violation struct {
	Rule   string // "1" … "12", "4a"
	Pkg    string // the offending package's import path
	Import string // the offending import, "" for rule 9
	Msg    string // a readable explanation
}

func (v Violation) String() string { return v.Msg }

// Third-party library families the rules confine to one package. A path
// belongs to a family when it is one of its roots or below one.
var (
	opaRoot   = "github.com/open-policy-agent/opa"
	opaV1Root = "github.com/open-policy-agent/opa/v1"

	// sqlDrivers are database/sql drivers and the client libraries they are
	// built on. The postgres family is what broker/pgrole may use.
	sqliteDrivers   = []string{"modernc.org/sqlite", "github.com/mattn/go-sqlite3"}
	postgresDrivers = []string{"github.com/jackc/pgx", "github.com/jackc/pgconn", "github.com/jackc/pgproto3", "github.com/lib/pq"}
	otherDrivers    = []string{"github.com/go-sql-driver/mysql"}

	// joseLibs is the JOSE/JWT family: go-jose and the libraries that would
	// duplicate it.
	joseLibs = []string{"github.com/go-jose", "gopkg.in/square/go-jose.", "gopkg.in/go-jose/go-jose.", "github.com/golang-jwt", "github.com/lestrrat-go/jwx"}

	// mcpLibs are MCP SDKs.
	mcpLibs = []string{"github.com/modelcontextprotocol/go-sdk", "github.com/mark3labs/mcp-go"}

	// engines are the packages (relative to the module) that must not
	// import each other (rule 6).
	engines = []string{"token", "trigger", "policy", "auditlog", "attest"}

	// sqlstoreMayImport lists the module packages, besides the root, that
	// sqlstore may import (rule 7): standard-library-only helpers.
	sqlstoreMayImport = []string{"internal/strictjson"}
)

// Check applies the rules to g, whose packages belong to the module with
// path mod, and returns every violation, sorted by package, rule and
// import. Packages outside mod are ignored.
func Check(mod string, g Graph) []Violation {
	m := func(rel string) string { return mod + "/" + rel }
	var (
		policy   = m("policy")
		sqlstore = m("sqlstore")
		pgrole   = m("broker/pgrole")
		tokenPkg = m("token")
		mcpgw    = m("mcpgw")
		hook     = m("hook")
		launch   = m("launch")
		server   = m("server")
		cmdWrit  = m("cmd/writ")
		writtest = m("internal/writtest")
		httpapi  = m("httpapi")
		runsPkg  = m("runs")
		edges    = prefixed(mod, []string{"gitgw", "mcpgw", "egress", "webui"})
		// httpServers are what runs must not import (rule 12).
		httpServers = append([]string{"net/http", httpapi, server}, edges...)
	)
	engineOf := func(path string) string {
		for _, e := range engines {
			if within(path, m(e)) {
				return e
			}
		}
		return ""
	}
	name := func(path string) string {
		if path == mod {
			return "writ (the root package)"
		}
		if r, ok := strings.CutPrefix(path, mod+"/"); ok {
			return r
		}
		return path
	}

	var out []Violation
	for _, path := range sortedKeys(g) {
		p := g[path]
		if p == nil || !within(path, mod) {
			continue
		}
		pn := name(path)
		add := func(rule, imp, format string, args ...any) {
			out = append(out, Violation{
				Rule:   rule,
				Pkg:    path,
				Import: imp,
				Msg:    fmt.Sprintf("rule %s: %s: ", rule, pn) + fmt.Sprintf(format, args...),
			})
		}

		for _, imp := range p.Imports {
			// 1. The root package imports only the standard library.
			if path == mod && !isStd(imp) {
				add("1", imp, "imports %s; the root package may import only the standard library", imp)
			}

			// 2. Only policy imports OPA, and only its v1 packages.
			if within(imp, opaRoot) {
				switch {
				case !within(path, policy):
					add("2", imp, "imports %s; only policy may import OPA", imp)
				case !within(imp, opaV1Root):
					add("2", imp, "imports %s; OPA is imported through its v1 packages only (%s/...)", imp, opaV1Root)
				}
			}

			// 3. Only sqlstore imports SQL drivers; broker/pgrole may use the
			// PostgreSQL ones, because it manages a target database.
			if isDriver(imp) && !within(path, sqlstore) {
				if !within(path, pgrole) || !withinAny(imp, postgresDrivers) {
					add("3", imp, "imports SQL driver %s; only sqlstore may import SQL drivers (broker/pgrole: PostgreSQL only)", imp)
				}
			}

			// 4. Only token imports JOSE; only mcpgw imports an MCP SDK.
			if withinAny(imp, joseLibs) && !within(path, tokenPkg) {
				add("4", imp, "imports JOSE/JWT library %s; only token may", imp)
			}
			if withinAny(imp, mcpLibs) && !within(path, mcpgw) {
				add("4", imp, "imports MCP SDK %s; only mcpgw may", imp)
			}

			// 4a. hook and launch reach writ over HTTP only.
			if (within(path, hook) || within(path, launch)) && (within(imp, server) || within(imp, sqlstore)) {
				add("4a", imp, "imports %s; hook and launch run beside the agent and reach writ over HTTP (client) only", name(imp))
			}

			// 5. Nothing imports server except cmd/writ (and tests;
			// internal/writtest is test code, see rule 8).
			if within(imp, server) && !within(path, server) && !within(path, cmdWrit) && !within(path, writtest) {
				add("5", imp, "imports %s; only cmd/writ (and tests) may import server, the composition root", name(imp))
			}

			// 6. Engines import neither each other, nor sqlstore, nor server.
			if e := engineOf(path); e != "" {
				if e2 := engineOf(imp); e2 != "" && e2 != e {
					add("6", imp, "imports engine %s; engines (%s) do not import each other", name(imp), strings.Join(engines, ", "))
				}
				if within(imp, sqlstore) || within(imp, server) {
					add("6", imp, "imports %s; engines take consumer interfaces, not the store or the server", name(imp))
				}
			}

			// 7. sqlstore imports no module package but the root (and
			// standard-library-only internal helpers).
			if within(path, sqlstore) && within(imp, mod) && imp != mod && !within(imp, sqlstore) && !withinAny(imp, prefixed(mod, sqlstoreMayImport)) {
				add("7", imp, "imports %s; sqlstore may import only the root package writ and %s from this module", name(imp), strings.Join(sqlstoreMayImport, ", "))
			}

			// 10. Only server and cmd/writ import httpapi.
			if within(imp, httpapi) && !within(path, httpapi) && !within(path, server) && !within(path, cmdWrit) {
				add("10", imp, "imports %s; only server (and cmd/writ) may: other packages take package runs, not the HTTP adapter", name(imp))
			}

			// 11. The edges reach runs through package runs only.
			if withinAny(path, edges) && (within(imp, sqlstore) || within(imp, httpapi) || within(imp, server)) {
				add("11", imp, "imports %s; gitgw, mcpgw, egress and webui reach runs only through package runs", name(imp))
			}

			// 12. runs imports no HTTP server package.
			if within(path, runsPkg) && withinAny(imp, httpServers) {
				add("12", imp, "imports %s; package runs serves every transport and imports none", name(imp))
			}

			// 8. Only _test.go files import internal/writtest.
			if within(imp, writtest) && !within(path, writtest) {
				add("8", imp, "imports %s from a non-test file; only _test.go files may", name(imp))
			}
		}

		// Rule 2's "v1 only" holds for test files too: the v0 packages are
		// deprecated shims.
		for _, imp := range union(p.TestImports, p.XTestImports) {
			if within(imp, opaRoot) && !within(imp, opaV1Root) {
				add("2", imp, "test imports %s; OPA is imported through its v1 packages only (%s/...)", imp, opaV1Root)
			}
		}

		// 9. Every package has a package doc comment.
		if p.HasGoFiles && strings.TrimSpace(p.Doc) == "" {
			add("9", "", "has no package doc comment (// Package %s …, in doc.go when it is long)", p.Name)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Pkg != b.Pkg {
			return a.Pkg < b.Pkg
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Import < b.Import
	})
	return out
}

// isStd reports whether path is a standard-library package: its first
// element has no dot ("C" and "unsafe" included).
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func isDriver(path string) bool {
	return withinAny(path, sqliteDrivers) || withinAny(path, postgresDrivers) || withinAny(path, otherDrivers)
}

// within reports whether path is root or a package below it. A root ending
// in "." (gopkg.in/x/y.) matches any version suffix.
func within(path, root string) bool {
	if strings.HasSuffix(root, ".") {
		return strings.HasPrefix(path, root)
	}
	return path == root || strings.HasPrefix(path, root+"/")
}

func withinAny(path string, roots []string) bool {
	for _, r := range roots {
		if within(path, r) {
			return true
		}
	}
	return false
}

func prefixed(mod string, rels []string) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = mod + "/" + r
	}
	return out
}

func sortedKeys(g Graph) []string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func union(a, b []string) []string {
	out := append(append([]string(nil), a...), b...)
	sort.Strings(out)
	return slices.Compact(out)
}

// listedPackage is the part of go list's JSON output Load reads.
type listedPackage struct {
	ImportPath     string
	Name           string
	Dir            string
	Doc            string
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string
	Imports        []string
	TestImports    []string
	XTestImports   []string
	Error          *struct{ Err string }
	DepsErrors     []struct{ Err string }
}

// Load builds the Graph of the packages matched by "./..." in dir, which
// must be inside a module. Packages that fail to load are still listed,
// with their error in [Package.Error], so that one broken package does not
// hide the rest of the graph.
//
// The go command runs as a child process, so go test's result cache cannot
// see which files it read. Load therefore also stats every Go file, go.mod
// and go.sum under dir, which makes a cached test result go stale when any
// of them changes.
func Load(dir string) (Graph, error) {
	if err := touchInputs(dir); err != nil {
		return nil, err
	}
	fields := "ImportPath,Name,Dir,Doc,GoFiles,CgoFiles,IgnoredGoFiles,Imports,TestImports,XTestImports,Error,DepsErrors"
	out, err := goCmd(dir, nil, "list", "-e", "-json="+fields, "./...")
	if err != nil {
		return nil, err
	}
	g := Graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var lp listedPackage
		if err := dec.Decode(&lp); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("archtest: decoding go list output: %w", err)
		}
		p := &Package{
			ImportPath:   lp.ImportPath,
			Name:         lp.Name,
			Dir:          lp.Dir,
			Doc:          lp.Doc,
			HasGoFiles:   len(lp.GoFiles)+len(lp.CgoFiles) > 0,
			Imports:      lp.Imports,
			TestImports:  lp.TestImports,
			XTestImports: lp.XTestImports,
		}
		var errs []string
		if lp.Error != nil {
			errs = append(errs, lp.Error.Err)
		}
		for _, e := range lp.DepsErrors {
			errs = append(errs, e.Err)
		}
		p.Error = strings.Join(errs, "\n")
		if err := addIgnoredImports(p, lp.IgnoredGoFiles); err != nil {
			return nil, err
		}
		p.Imports = union(p.Imports, nil)
		p.TestImports = union(p.TestImports, nil)
		p.XTestImports = union(p.XTestImports, nil)
		g[p.ImportPath] = p
	}
	return g, nil
}

// addIgnoredImports adds the imports of files excluded by build
// constraints to p, skipping "//go:build ignore" files and files of another
// package.
func addIgnoredImports(p *Package, files []string) error {
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			continue // the go command reports unparsable files itself
		}
		if hasIgnoreTag(f.Comments, f.Package) {
			continue
		}
		pkgName := f.Name.Name
		isTest := strings.HasSuffix(name, "_test.go")
		var dst *[]string
		switch {
		case isTest && p.Name != "" && pkgName == p.Name+"_test":
			dst = &p.XTestImports
		case p.Name != "" && pkgName != p.Name:
			continue
		case isTest:
			dst = &p.TestImports
		default:
			dst = &p.Imports
		}
		if p.Name == "" {
			p.Name = pkgName // every file of the package is excluded
		}
		for _, is := range f.Imports {
			path := strings.Trim(is.Path.Value, "`\"")
			*dst = append(*dst, path)
		}
	}
	return nil
}

// hasIgnoreTag reports whether a build constraint before the package clause
// mentions the tag "ignore".
func hasIgnoreTag(groups []*ast.CommentGroup, pkgPos token.Pos) bool {
	for _, cg := range groups {
		if cg.Pos() >= pkgPos {
			break
		}
		for _, c := range cg.List {
			if !constraint.IsGoBuild(c.Text) && !constraint.IsPlusBuild(c.Text) {
				continue
			}
			expr, err := constraint.Parse(c.Text)
			if err != nil {
				continue
			}
			if mentionsTag(expr, "ignore") {
				return true
			}
		}
	}
	return false
}

func mentionsTag(x constraint.Expr, tag string) bool {
	switch x := x.(type) {
	case *constraint.TagExpr:
		return x.Tag == tag
	case *constraint.NotExpr:
		return mentionsTag(x.X, tag)
	case *constraint.AndExpr:
		return mentionsTag(x.X, tag) || mentionsTag(x.Y, tag)
	case *constraint.OrExpr:
		return mentionsTag(x.X, tag) || mentionsTag(x.Y, tag)
	}
	return false
}

// Deps returns the packages linked into the binaries built from pkgs (run
// in the module at dir) that are neither in the standard library nor in the
// main module, sorted. The build is pinned to GOOS=linux, GOARCH=amd64 and
// CGO_ENABLED=0 so that the list does not depend on the machine running it.
func Deps(dir string, pkgs ...string) ([]string, error) {
	if err := touchInputs(dir); err != nil {
		return nil, err
	}
	env := []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}
	tmpl := `{{if and (not .Standard) .Module (not .Module.Main)}}{{.ImportPath}}{{end}}`
	args := append([]string{"list", "-deps", "-f", tmpl}, pkgs...)
	out, err := goCmd(dir, env, args...)
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			deps = append(deps, line)
		}
	}
	sort.Strings(deps)
	return slices.Compact(deps), nil
}

func goCmd(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("archtest: go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// touchInputs stats every file under dir that can change what go list
// reports, skipping the directories the go command skips (testdata and names
// starting with "." or "_").
func touchInputs(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" || name == "go.work" {
			if _, err := os.Stat(path); err != nil {
				return err
			}
		}
		return nil
	})
}
