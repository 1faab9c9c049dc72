package writ_test

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/archtest"
)

// module is this module's path; the rules in internal/archtest are written
// relative to it.
const module = "github.com/writ-dev/writ"

var update = flag.Bool("update", false, "rewrite deps.txt from go list -deps ./cmd/writ")

// TestArch enforces the import rules of CONTRIBUTING.md §5
// and the package-doc rule on the whole module. The rules
// themselves are tested in internal/archtest.
func TestArch(t *testing.T) {
	g, err := archtest.Load(".")
	if err != nil {
		t.Fatal(err)
	}
	if g[module] == nil {
		t.Fatalf("go list ./... did not report the root package %s", module)
	}
	for _, path := range slices.Sorted(maps.Keys(g)) {
		if p := g[path]; p.Error != "" {
			// A package that does not load is the compiler's to report; the
			// imports go list could read are still checked.
			t.Logf("note: %s does not load (its imports may be incomplete): %s", path, firstLine(p.Error))
		}
	}
	for _, v := range archtest.Check(module, g) {
		t.Error(v.Msg)
	}
}

// depsFile is the checked-in dependency snapshot (CONTRIBUTING.md §5).
const depsFile = "deps.txt"

const depsHeader = `# deps.txt: the packages outside the standard library and outside this
# module that the writ binary links, one per line, sorted; computed as
# GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go list -deps ./cmd/writ.
# A change here is a change in what writ ships: say why in the commit.
# Regenerate with: go test -run TestDeps -update .
`

// TestDeps compares deps.txt with what ./cmd/writ links now, so that
// dependency growth shows in review.
func TestDeps(t *testing.T) {
	if !hasGoFiles(filepath.Join("cmd", "writ")) {
		t.Skip("./cmd/writ does not exist yet; nothing to snapshot")
	}
	deps, err := archtest.Deps(".", "./cmd/writ")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte(depsHeader + strings.Join(deps, "\n") + "\n")
	if len(deps) == 0 {
		want = []byte(depsHeader)
	}

	if *update {
		if err := os.WriteFile(depsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d packages)", depsFile, len(deps))
		return
	}

	got, err := os.ReadFile(depsFile)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s is missing; run `go test -run TestDeps -update .` to refresh deps.txt", depsFile)
	} else if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	added, removed := diffLines(depsLines(got), deps)
	var b strings.Builder
	b.WriteString(depsFile + " is out of date")
	for _, p := range added {
		b.WriteString("\n  + " + p + " (now linked)")
	}
	for _, p := range removed {
		b.WriteString("\n  - " + p + " (no longer linked)")
	}
	if len(added)+len(removed) == 0 {
		b.WriteString(" (only its header or layout differs)")
	}
	b.WriteString("\nrun `go test -run TestDeps -update .` to refresh deps.txt")
	t.Error(b.String())
}

func hasGoFiles(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			return true
		}
	}
	return false
}

// depsLines returns the package lines of a deps.txt, without comments and
// blank lines.
func depsLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// diffLines returns the lines of now missing from was, and those of was
// missing from now.
func diffLines(was, now []string) (added, removed []string) {
	in := func(list []string) map[string]bool {
		m := make(map[string]bool, len(list))
		for _, s := range list {
			m[s] = true
		}
		return m
	}
	wasSet, nowSet := in(was), in(now)
	for _, s := range now {
		if !wasSet[s] {
			added = append(added, s)
		}
	}
	for _, s := range was {
		if !nowSet[s] {
			removed = append(removed, s)
		}
	}
	return added, removed
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
