package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
)

// TestEveryCommandHasHelpWithExample holds the CLI contract of docs/design.md
// §4.9: every command answers -h with its usage and an example, exit 0.
func TestEveryCommandHasHelpWithExample(t *testing.T) {
	if len(commands) < 15 {
		t.Fatalf("only %d commands registered; the dispatch table lost some", len(commands))
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
			code := runMain(context.Background(), e, append(strings.Fields(c.name), "-h"))
			if code != exitOK {
				t.Fatalf("writ %s -h: exit %d, stderr %q", c.name, code, errb.String())
			}
			if !strings.Contains(out.String(), "Usage: writ "+c.name) {
				t.Errorf("writ %s -h: no usage line in %q", c.name, out.String())
			}
			if c.example == "" || !strings.Contains(out.String(), "Example:\n  "+strings.SplitN(c.example, "\n", 2)[0]) {
				t.Errorf("writ %s -h: no example in %q", c.name, out.String())
			}
		})
	}
}

// TestParseInterleaved checks flags after positional arguments and the
// "--" terminator.
func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantPos    string
		wantReason string
	}{
		{[]string{"RUN", "--reason", "done"}, "RUN", "done"},
		{[]string{"--reason", "done", "RUN"}, "RUN", "done"},
		{[]string{"RUN", "--", "--reason", "x"}, "RUN --reason x", ""},
		{[]string{"A", "B"}, "A B", ""},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		reason := fs.String("reason", "", "")
		pos, err := parseInterleaved(fs, tc.args)
		if err != nil {
			t.Fatalf("parseInterleaved(%q): %v", tc.args, err)
		}
		if got := strings.Join(pos, " "); got != tc.wantPos || *reason != tc.wantReason {
			t.Errorf("parseInterleaved(%q) = %q, reason %q; want %q, reason %q", tc.args, got, *reason, tc.wantPos, tc.wantReason)
		}
	}
}
