package archtest

// Reference checks (CONTRIBUTING.md §6, rule 2): every file cites only files
// the repository contains, sections those files have, and controls the
// threat model defines.

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// RefFile is one file of the repository as [CheckRefs] sees it: its path,
// slash-separated and relative to the repository root, and its content.
type RefFile struct {
	Path string
	Data []byte
}

// RefProblem is one broken reference.
type RefProblem struct {
	Path string // the citing file
	Line int    // 1-based
	Msg  string
}

func (p RefProblem) String() string { return fmt.Sprintf("%s:%d: %s", p.Path, p.Line, p.Msg) }

// ThreatModel is the file that defines the control ids (C-…) and
// invariants (INV-…) that code cites.
const ThreatModel = "docs/threat-model.md"

// The names of the notes that lived outside the repository before
// docs/design.md. They are built from parts so that this file does not
// itself cite them.
var (
	outsideDir   = ".." + "/shared"
	outsideNotes = []string{"DES" + "IGN", "THR" + "EATS", "STY" + "LE", "TO" + "OLS"}
)

var (
	// outsideNote matches one of outsideNotes + ".md" that is not part of a
	// longer path or name.
	outsideNote = regexp.MustCompile(`(^|[^\w./-])((?:` + strings.Join(outsideNotes, "|") + `)\.md)\b`)
	// mdLink is an inline Markdown link or image: [text](target).
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// citedMD is a path to a Markdown file with at least one directory, or
	// a root file named in capitals (README.md, CONTRIBUTING.md), as prose
	// cites it.
	citedMD = regexp.MustCompile(`(^|[^\w./:@-])((?:[\w.-]+/)+[\w.-]+\.md|[A-Z][A-Z_-]*\.md)\b`)
	// sectionCite is "<file>.md §N", optionally followed by more sections
	// ("§4.2–§4.5", "§4.5, §4.10"); the file and the first § may be split by
	// a line break inside a comment.
	sectionCite = regexp.MustCompile(`([\w./-]+\.md)\]?(?:\([^)\s]*\))?(?:[ \t]|\n[ \t]*(?://|--|#|\*)?[ \t]*)*§(\d+(?:\.\d+)*)((?:\s*(?:,|–|-|\.\.|and)\s*§\d+(?:\.\d+)*)*)`)
	sectionNum  = regexp.MustCompile(`§(\d+(?:\.\d+)*)`)
	controlID   = regexp.MustCompile(`\b(C-[A-Z]{2}\d+|INV-\d+)\b`)
	// heading is a Markdown ATX heading.
	heading = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$`)
	// numbered is the section number a heading starts with ("4.10 Config",
	// "5. Import rules").
	numbered = regexp.MustCompile(`^(\d+(?:\.\d+)*)\.?(?:\s|$)`)
)

// commentPrefixes start a comment line in the languages of the repository;
// cited paths are checked in comments and Markdown prose, not in string
// literals and test data, which may name files that do not exist on purpose.
var commentPrefixes = []string{"//", "#", "--", "*", "/*"}

// CheckRefs checks every file of files and returns the broken references,
// sorted by file and line:
//
//   - a reference to the old notes outside the repository (the shared
//     directory, or one of their file names not under a repository path);
//   - a relative Markdown link (in .md files) to a path the repository does
//     not contain, or to an anchor its target Markdown file does not have;
//   - a path to a Markdown file cited in a comment or in Markdown prose
//     ("docs/policy.md") that the repository does not contain;
//   - a "<file>.md §N" citation of a section the file has no heading
//     numbered N for;
//   - a control id or invariant (C-GT2, INV-6) that [ThreatModel] does not
//     contain.
//
// Cited paths resolve against the repository root, then against the citing
// file's directory; Markdown links only against the linking file's
// directory, as a renderer resolves them. paths lists every path of the repository (files of
// any kind); a directory exists when a path lies below it.
func CheckRefs(files []RefFile, paths []string) []RefProblem {
	exists := map[string]bool{".": true, "": true}
	for _, p := range paths {
		for q := p; q != "." && q != "/" && q != ""; q = path.Dir(q) {
			exists[q] = true
		}
	}
	md := map[string]*mdInfo{}
	var controls map[string]bool
	for _, f := range files {
		if strings.HasSuffix(f.Path, ".md") {
			md[f.Path] = parseMD(f.Data)
		}
		if f.Path == ThreatModel {
			controls = map[string]bool{}
			for _, m := range controlID.FindAllString(string(f.Data), -1) {
				controls[m] = true
			}
		}
	}
	resolve := func(from, target string) (string, bool) {
		target = strings.TrimPrefix(target, "./")
		if p := path.Clean(target); exists[p] && !strings.HasPrefix(target, "../") {
			return p, true
		}
		p := path.Clean(path.Join(path.Dir(from), target))
		return p, exists[p]
	}

	var out []RefProblem
	for _, f := range files {
		text := string(f.Data)
		add := func(off int, format string, args ...any) {
			out = append(out, RefProblem{Path: f.Path, Line: 1 + strings.Count(text[:off], "\n"), Msg: fmt.Sprintf(format, args...)})
		}
		isMD := strings.HasSuffix(f.Path, ".md")
		var fenced []bool
		if isMD {
			fenced = fencedLines(text)
		}
		lineOf := func(off int) int { return strings.Count(text[:off], "\n") }
		inComment := func(off int) bool {
			if isMD {
				return !fenced[lineOf(off)]
			}
			start := strings.LastIndexByte(text[:off], '\n') + 1
			line := strings.TrimSpace(text[start:off])
			for _, c := range commentPrefixes {
				if strings.HasPrefix(line, c) {
					return true
				}
			}
			// A trailing comment: "x := 1 // see docs/design.md".
			return strings.Contains(line, " // ") || strings.Contains(line, "\t// ") || strings.Contains(line, " # ")
		}

		// Rule 1: the notes outside the repository.
		for i := 0; ; {
			j := strings.Index(text[i:], outsideDir)
			if j < 0 {
				break
			}
			add(i+j, "cites %s, outside the repository: cite docs/design.md, docs/threat-model.md or CONTRIBUTING.md", outsideDir)
			i += j + len(outsideDir)
		}
		for _, m := range outsideNote.FindAllStringSubmatchIndex(text, -1) {
			add(m[4], "cites %s, a note outside the repository: cite docs/design.md §…, a control id of docs/threat-model.md or CONTRIBUTING.md §…", text[m[4]:m[5]])
		}

		// Rule 2: relative Markdown links.
		if isMD {
			for _, m := range mdLink.FindAllStringSubmatchIndex(text, -1) {
				if fenced[lineOf(m[0])] {
					continue
				}
				target := text[m[2]:m[3]]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.Contains(target, outsideDir) {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				if file == "" {
					if anchor != "" && !md[f.Path].anchors[anchor] {
						add(m[2], "links to #%s, which is not a heading of this file", anchor)
					}
					continue
				}
				// A link resolves as the renderer resolves it: relative
				// to the linking file.
				p := path.Clean(path.Join(path.Dir(f.Path), file))
				if !exists[p] {
					add(m[2], "links to %s, which the repository does not contain", target)
					continue
				}
				if t := md[p]; anchor != "" && t != nil && !t.anchors[anchor] {
					add(m[2], "links to %s, but %s has no heading with anchor #%s", target, p, anchor)
				}
			}
		}

		// Rule 3: cited Markdown paths in comments and prose.
		for _, m := range citedMD.FindAllStringSubmatchIndex(text, -1) {
			cited := text[m[4]:m[5]]
			if strings.Contains(cited, outsideDir) || outsideNote.MatchString(" "+cited) || !inComment(m[4]) {
				continue
			}
			if _, ok := resolve(f.Path, cited); !ok {
				add(m[4], "cites %s, which the repository does not contain", cited)
			}
		}

		// Rule 4: sections.
		for _, m := range sectionCite.FindAllStringSubmatchIndex(text, -1) {
			cited := text[m[2]:m[3]]
			if outsideNote.MatchString(" "+cited) || strings.Contains(cited, outsideDir) {
				continue // rule 1 has reported it
			}
			p, ok := resolve(f.Path, cited)
			t := md[p]
			if !ok || t == nil {
				continue // a missing file is rule 3's to report
			}
			secs := []string{text[m[4]:m[5]]}
			for _, s := range sectionNum.FindAllStringSubmatch(text[m[6]:m[7]], -1) {
				secs = append(secs, s[1])
			}
			for _, s := range secs {
				if !t.sections[s] {
					add(m[2], "cites %s §%s, but %s has no section %s", cited, s, p, s)
				}
			}
		}

		// Rule 5: control ids.
		if controls != nil && f.Path != ThreatModel {
			for _, m := range controlID.FindAllStringIndex(text, -1) {
				if id := text[m[0]:m[1]]; !controls[id] {
					add(m[0], "cites %s, which %s does not define", id, ThreatModel)
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// mdInfo is what references need of a Markdown file: its heading anchors
// (as GitHub renders them) and its numbered sections.
type mdInfo struct {
	anchors  map[string]bool
	sections map[string]bool
}

func parseMD(data []byte) *mdInfo {
	info := &mdInfo{anchors: map[string]bool{}, sections: map[string]bool{}}
	text := string(data)
	fenced := fencedLines(text)
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatchIndex(text, -1) {
		if fenced[strings.Count(text[:m[0]], "\n")] {
			continue
		}
		h := text[m[2]:m[3]]
		if n := numbered.FindStringSubmatch(h); n != nil {
			info.sections[n[1]] = true
		}
		a := Slug(h)
		if k := seen[a]; k > 0 {
			info.anchors[fmt.Sprintf("%s-%d", a, k)] = true
		} else {
			info.anchors[a] = true
		}
		seen[a]++
	}
	return info
}

// Slug returns the anchor GitHub gives a heading: lower case, Markdown
// punctuation and other symbols dropped, spaces turned into hyphens.
func Slug(h string) string {
	h = mdLinkText.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && isLetterOrDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

var mdLinkText = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// isLetterOrDigit: non-ASCII letters stay in GitHub's anchors; symbols
// such as "→", "⇄" and "—" do not.
func isLetterOrDigit(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// fencedLines reports, per line of a Markdown text, whether it lies inside
// (or is the fence of) a fenced code block.
func fencedLines(text string) []bool {
	lines := strings.Split(text, "\n")
	out := make([]bool, len(lines)+1)
	in := false
	fence := ""
	for i, l := range lines {
		t := strings.TrimLeft(l, " ")
		switch {
		case !in && (strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~")):
			in, fence = true, t[:3]
			out[i] = true
		case in && strings.HasPrefix(t, fence):
			in = false
			out[i] = true
		default:
			out[i] = in
		}
	}
	return out
}
