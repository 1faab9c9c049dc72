package writ_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/archtest"
)

// TestDocRefs holds the repository to citing only itself
// (CONTRIBUTING.md §6, rule 2; docs/design.md §0): every file — Go, Rego,
// SQL, scripts, Markdown — cites files the repository contains, sections
// docs/design.md and CONTRIBUTING.md have, and control ids
// docs/threat-model.md defines; nothing cites notes outside the
// repository. The checker's rules are tested in internal/archtest.
func TestDocRefs(t *testing.T) {
	paths, err := repoFiles(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []archtest.RefFile
	for _, p := range paths {
		data, err := os.ReadFile(filepath.FromSlash(p))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet in the index
			}
			t.Fatal(err)
		}
		if len(data) > 4<<20 || bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
			continue // binary or generated data
		}
		files = append(files, archtest.RefFile{Path: p, Data: data})
	}
	if len(files) < 100 {
		t.Fatalf("found only %d files to check: the walk is wrong", len(files))
	}
	for _, p := range archtest.CheckRefs(files, paths) {
		t.Error(p)
	}
}

// repoFiles lists the repository's files, slash-separated: what git
// tracks (with files added but not yet committed), or, outside a git
// checkout, every file below root but .git.
func repoFiles(root string) ([]string, error) {
	out, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err == nil {
		var paths []string
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" {
				paths = append(paths, l)
			}
		}
		return paths, nil
	}
	var paths []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	return paths, err
}
