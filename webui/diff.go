package webui

import (
	"strconv"
	"strings"
)

// diffFile is one file of a parsed unified diff.
type diffFile struct {
	Path     string
	Old      string // the old path when it differs (a deletion: Path is the old path)
	Status   string // added, deleted, modified, binary
	Added    int
	Removed  int
	Hunks    []hunk
	Binary   bool
	OutScope bool // outside the run's scope paths for the repository
}

type hunk struct {
	Header string
	Lines  []diffLine
}

type diffLine struct {
	Kind string // add, del, ctx, note
	Text string
}

// parseDiff splits git's unified diff (as `git diff --full-index
// --binary` prints it) into files and hunks. It reads; it never trusts:
// every string ends up escaped by html/template.
func parseDiff(text string) []diffFile {
	var files []diffFile
	var f *diffFile
	var h *hunk
	for line := range strings.SplitSeq(text, "\n") {
		switch {
		case strings.HasPrefix(line, "diff --git "):
			files = append(files, diffFile{Status: "modified"})
			f, h = &files[len(files)-1], nil
			f.Path = gitPathFromHeader(strings.TrimPrefix(line, "diff --git "))
		case f == nil:
		case h == nil && strings.HasPrefix(line, "new file mode"):
			f.Status = "added"
		case h == nil && strings.HasPrefix(line, "deleted file mode"):
			f.Status = "deleted"
		case h == nil && strings.HasPrefix(line, "--- "):
			if p := gitPath(strings.TrimPrefix(line, "--- ")); p != "" {
				f.Old = p
				if f.Path == "" {
					f.Path = p
				}
			}
		case h == nil && strings.HasPrefix(line, "+++ "):
			if p := gitPath(strings.TrimPrefix(line, "+++ ")); p != "" {
				f.Path = p
			}
		case strings.HasPrefix(line, "GIT binary patch"), strings.HasPrefix(line, "Binary files "):
			f.Binary, f.Status = true, "binary"
			h = nil
		case f.Binary:
		case strings.HasPrefix(line, "@@"):
			f.Hunks = append(f.Hunks, hunk{Header: line})
			h = &f.Hunks[len(f.Hunks)-1]
		case h == nil:
		case strings.HasPrefix(line, "+"):
			f.Added++
			h.Lines = append(h.Lines, diffLine{Kind: "add", Text: line})
		case strings.HasPrefix(line, "-"):
			f.Removed++
			h.Lines = append(h.Lines, diffLine{Kind: "del", Text: line})
		case strings.HasPrefix(line, "\\"):
			h.Lines = append(h.Lines, diffLine{Kind: "note", Text: line})
		case line == "":
		default:
			h.Lines = append(h.Lines, diffLine{Kind: "ctx", Text: line})
		}
	}
	for i := range files {
		if files[i].Old == files[i].Path {
			files[i].Old = ""
		}
	}
	return files
}

// gitPath reads a path of a ---/+++ line: "a/x", "b/x", a C-quoted
// "\"b/x\"", or /dev/null ("").
func gitPath(s string) string {
	s = strings.TrimSuffix(s, "\t")
	if s == "/dev/null" {
		return ""
	}
	if strings.HasPrefix(s, `"`) {
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
	}
	if len(s) > 2 && (s[:2] == "a/" || s[:2] == "b/") {
		return s[2:]
	}
	return s
}

// gitPathFromHeader takes the b/ path of a "diff --git a/x b/x" line, for
// a file with no ---/+++ lines (a binary or mode-only change).
func gitPathFromHeader(s string) string {
	if strings.HasSuffix(s, `"`) {
		if i := strings.LastIndex(s[:len(s)-1], ` "`); i >= 0 {
			return gitPath(s[i+1:])
		}
	}
	if i := strings.LastIndex(s, " b/"); i >= 0 {
		return s[i+3:]
	}
	return s
}
