package writ

import (
	"fmt"
	"regexp"
	"strings"
)

// Patterns (docs/design.md §4.4) are implemented once, here, and handed to
// policy as data:
//
//   - paths, repos, environments, secrets, agent and profile names: "/"
//     separates segments; "*" matches any run of characters inside one
//     segment; a segment that is exactly "**" matches zero or more segments.
//   - hosts: exact, or "*.suffix" for any name under suffix (not suffix
//     itself).
//   - tools: exact, or ending in "/*" for every tool under that prefix
//     ("mcp:everything/*").
//
// A pattern p covers a pattern q when every name q matches, p matches too.

// MatchPath reports whether name matches the path pattern.
func MatchPath(pattern, name string) bool {
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"), false)
}

// PathCovers reports whether path pattern p covers path pattern q. It is
// sound (never true when q matches a name p does not) and errs on the side of
// false for exotic combinations.
func PathCovers(p, q string) bool {
	return matchSegments(strings.Split(p, "/"), strings.Split(q, "/"), true)
}

// matchSegments matches pattern segments against name segments. When
// literalStars is set, the name is itself a pattern: its "**" segments can be
// consumed only by a pattern "**", and its "*" characters only by a "*".
//
// It is a dynamic program over (pattern position, name position), so its
// cost is O(len(pat) × len(name)) segment matches however many "**" the
// pattern holds: names come from agents, and a backtracking matcher would
// let a crafted pattern/path pair take seconds.
func matchSegments(pat, name []string, literalStars bool) bool {
	// can[j] reports whether pat[i:] matches name[j:], for the current i,
	// computed from the last pattern segment backwards.
	can := make([]bool, len(name)+1)
	can[len(name)] = true // the empty pattern matches only the empty name
	for i := len(pat) - 1; i >= 0; i-- {
		next := can
		can = make([]bool, len(name)+1)
		if pat[i] == "**" {
			// "**" matches zero or more segments: pat[i:] matches name[j:]
			// when pat[i+1:] matches some suffix name[k:] with k >= j.
			seen := false
			for j := len(name); j >= 0; j-- {
				seen = seen || next[j]
				can[j] = seen
			}
			continue
		}
		for j := 0; j < len(name); j++ {
			if !next[j+1] || (literalStars && name[j] == "**") {
				continue
			}
			can[j] = matchSegment(pat[i], name[j])
		}
	}
	return can[0]
}

// matchSegment matches one segment pattern with "*" wildcards against s. A
// "*" in s (a pattern being covered) is an ordinary character here, which
// only a "*" in the pattern can consume.
func matchSegment(p, s string) bool {
	// Classic greedy wildcard match with backtracking to the last star.
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si] && s[si] != '*':
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// MatchHost reports whether host matches the host pattern, case-insensitively.
func MatchHost(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+suffix) && len(host) > len(suffix)+1
	}
	return pattern == host
}

// HostCovers reports whether host pattern p covers host pattern q.
func HostCovers(p, q string) bool {
	p, q = strings.ToLower(p), strings.ToLower(q)
	if suffix, ok := strings.CutPrefix(p, "*."); ok {
		if qs, ok := strings.CutPrefix(q, "*."); ok {
			return qs == suffix || strings.HasSuffix(qs, "."+suffix)
		}
		return MatchHost(p, q)
	}
	return p == q
}

// MatchTool reports whether tool matches the tool pattern.
func MatchTool(pattern, tool string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(tool, prefix+"/") && len(tool) > len(prefix)+1
	}
	return pattern == tool
}

// ToolCovers reports whether tool pattern p covers tool pattern q.
func ToolCovers(p, q string) bool {
	if prefix, ok := strings.CutSuffix(p, "/*"); ok {
		return strings.HasPrefix(q, prefix+"/") && len(q) > len(prefix)+1
	}
	return p == q
}

var (
	repoNameRE  = regexp.MustCompile(`^[a-z0-9_][a-z0-9._-]*/[a-z0-9_][a-z0-9._-]*$`)
	repoPatRE   = regexp.MustCompile(`^[a-z0-9_*][a-z0-9._*-]*/[a-z0-9_*][a-z0-9._*-]*$`)
	simpleToolR = regexp.MustCompile(`^(read|edit|shell:(build|test|git|net|pkg|other)|web:(fetch|search)|agent:task)$`)
	execToolRE  = regexp.MustCompile(`^exec:[a-z0-9][a-z0-9._-]*$`)
	mcpToolRE   = regexp.MustCompile(`^mcp:[a-z0-9][a-z0-9._-]*/([A-Za-z0-9_][A-Za-z0-9._-]*|\*)$`)
	hostRE      = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// ValidRepoName reports whether s is a repository name: owner/repo, each
// part of [a-z0-9._-], not starting with "-" or ".", and no "..".
func ValidRepoName(s string) bool {
	return repoNameRE.MatchString(s) && !strings.Contains(s, "..")
}

// ValidName reports whether s is a valid name for an agent, human, profile,
// environment or secret: lowercase, starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ValidatePathPattern checks a path pattern: relative, no empty, "." or ".."
// segments, and "**" only as a whole segment.
func ValidatePathPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty path pattern")
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("path pattern %q must be relative to the repository root", p)
	}
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return fmt.Errorf("path pattern %q has an empty, \".\" or \"..\" segment", p)
		case strings.Contains(seg, "**") && seg != "**":
			return fmt.Errorf("path pattern %q: \"**\" must be a whole segment", p)
		case strings.ContainsAny(seg, "\x00\\"):
			return fmt.Errorf("path pattern %q contains a NUL or backslash", p)
		}
	}
	return nil
}

// ValidateRepoPattern checks a repository pattern such as "acme/*".
func ValidateRepoPattern(p string) error {
	if !repoPatRE.MatchString(p) || strings.Contains(p, "..") {
		return fmt.Errorf("repo pattern %q: want owner/repo of [a-z0-9._-] with optional \"*\"", p)
	}
	return nil
}

// ValidateToolPattern checks a tool name or pattern against the one tool
// grammar: read, edit, shell:{build,test,git,net,pkg,other}, exec:<name>,
// mcp:<server>/<tool> (or mcp:<server>/*), web:fetch, web:search, agent:task.
func ValidateToolPattern(p string) error {
	if simpleToolR.MatchString(p) || execToolRE.MatchString(p) || mcpToolRE.MatchString(p) {
		return nil
	}
	return fmt.Errorf("tool %q is not in the tool grammar (read, edit, shell:build|test|git|net|pkg|other, exec:NAME, mcp:SERVER/TOOL, web:fetch|search, agent:task)", p)
}

// ValidateHostPattern checks a host name or "*.suffix" pattern.
func ValidateHostPattern(p string) error {
	if !hostRE.MatchString(p) || len(p) > 253 {
		return fmt.Errorf("host %q: want a lowercase DNS name or *.suffix", p)
	}
	return nil
}
