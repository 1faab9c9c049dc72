package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestReadmeSnippets runs the shell block of README.md's "Try it by hand"
// section against a real `writ serve --dev`, so the README cannot drift
// from the CLI. The block is turned into a testscript:
//
//   - `go build -o writ ./cmd/writ` is skipped: the test binary is `writ`
//     (TestMain registers it), and `./writ` is rewritten to `writ`;
//   - the `writ serve` line is started in the background with
//     `--listen 127.0.0.1:0` added (so tests never fight over port 7300),
//     and the script waits for the dev.env file it writes;
//   - every other line runs, in order, in one `bash -eu -o pipefail`
//     script, so a command that fails (or an unset variable) fails the
//     test. Comment lines, including the commented OpenSSH alternative,
//     are not run.
func TestReadmeSnippets(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := readmeScript(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "readme.txtar"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: dir,
		Setup: func(e *testscript.Env) error {
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/.config")
			e.Setenv("HOME", e.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitfile FILE waits up to 60 s for FILE to appear.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: waitfile FILE")
				}
				path := ts.MkAbs(args[0])
				for i := 0; ; i++ {
					if _, err := os.Stat(path); err == nil {
						return
					}
					if i > 3000 {
						ts.Fatalf("waitfile: %s did not appear within 60s", path)
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
		},
	})
}

// readmeSection returns the text of the "## title" section of a Markdown
// document, up to the next "## " heading.
func readmeSection(doc, title string) (string, error) {
	start := strings.Index(doc, "\n## "+title+"\n")
	if start < 0 {
		return "", fmt.Errorf("README.md has no %q section", "## "+title)
	}
	rest := doc[start+len("\n## "+title+"\n"):]
	if end := strings.Index(rest, "\n## "); end >= 0 {
		rest = rest[:end]
	}
	return rest, nil
}

// shellBlocks returns the lines of the ```sh fenced blocks of a section,
// with backslash continuations joined.
func shellBlocks(section string) []string {
	var lines []string
	in := false
	pending := ""
	for _, l := range strings.Split(section, "\n") {
		switch {
		case !in && (strings.TrimSpace(l) == "```sh" || strings.TrimSpace(l) == "```shell" || strings.TrimSpace(l) == "```bash"):
			in = true
		case in && strings.TrimSpace(l) == "```":
			in = false
		case in:
			if strings.HasSuffix(l, "\\") {
				pending += strings.TrimSuffix(l, "\\") + " "
				continue
			}
			lines = append(lines, pending+l)
			pending = ""
		}
	}
	return lines
}

// readmeScript turns the "Try it by hand" block into a testscript.
func readmeScript(readme string) (string, error) {
	section, err := readmeSection(readme, "Try it by hand")
	if err != nil {
		return "", err
	}
	lines := shellBlocks(section)
	if len(lines) == 0 {
		return "", fmt.Errorf("README.md's \"Try it by hand\" has no ```sh block")
	}
	var serve string
	var body []string
	for _, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case strings.HasPrefix(trimmed, "go build ") && strings.Contains(trimmed, "./cmd/writ"):
			continue // the test binary is writ
		case strings.HasPrefix(trimmed, "./writ serve ") || strings.HasPrefix(trimmed, "writ serve "):
			if serve != "" {
				return "", fmt.Errorf("README.md's \"Try it by hand\" starts two servers")
			}
			serve = trimmed
		default:
			body = append(body, strings.ReplaceAll(l, "./writ ", "writ "))
		}
	}
	if serve == "" {
		return "", fmt.Errorf("README.md's \"Try it by hand\" starts no `writ serve --dev`")
	}
	if i := strings.Index(serve, " #"); i >= 0 {
		serve = strings.TrimSpace(serve[:i])
	}
	serve = strings.TrimPrefix(serve, "./")
	devDir := "dev"
	fields := strings.Fields(serve)
	for i, f := range fields {
		if f == "--dev-dir" && i+1 < len(fields) {
			devDir = fields[i+1]
		}
		if strings.HasPrefix(f, "--dev-dir=") {
			devDir = strings.TrimPrefix(f, "--dev-dir=")
		}
	}
	if !strings.Contains(serve, "--dev-dir") {
		return "", fmt.Errorf("README.md's `writ serve --dev` needs --dev-dir so the next lines can find dev.env")
	}
	var b strings.Builder
	b.WriteString("# generated from README.md's \"Try it by hand\" by TestReadmeSnippets\n")
	fmt.Fprintf(&b, "exec %s --listen 127.0.0.1:0 &srv&\n", serve)
	fmt.Fprintf(&b, "waitfile %s/dev.env\n", devDir)
	b.WriteString("exec bash -eu -o pipefail -x snippet.sh\n")
	b.WriteString("kill -INT srv\nwait srv\n")
	b.WriteString("-- snippet.sh --\n")
	for _, l := range body {
		b.WriteString(l + "\n")
	}
	return b.String(), nil
}

// TestReadmeLinksResolve checks that every relative link of README.md
// (the docs list included) names a file that exists.
func TestReadmeLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range readmeLink.FindAllStringSubmatch(string(readme), -1) {
		target, _, _ := strings.Cut(m[1], "#")
		if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		n++
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(target))); err != nil {
			t.Errorf("README.md links to %s, which does not exist", m[1])
		}
	}
	if n == 0 {
		t.Fatal("README.md has no relative links: the pattern is wrong")
	}
}

var readmeLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
