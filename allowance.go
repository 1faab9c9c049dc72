package writ

import (
	"fmt"
	"strings"
	"time"
)

// SignerKind says whether a signer is a person or a system with its own key
// (a ticketing bridge, a CI pipeline).
type SignerKind string

// Signer kinds.
const (
	SignerHuman  SignerKind = "human"
	SignerSystem SignerKind = "system"
)

// Signer is who may sign triggers: a human or a system. Its keys are held by
// the trigger package's key ring; here is what it may do.
type Signer struct {
	Name   string
	Kind   SignerKind
	Groups []string
	// MayAgents and MayProfiles are name patterns ("*" for all) of the agents
	// and profiles this signer may trigger.
	MayAgents   []string
	MayProfiles []string
}

// InGroup reports whether the signer is a member of group g.
func (s *Signer) InGroup(g string) bool {
	for _, x := range s.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// Agent is a registered non-human identity template.
type Agent struct {
	Name     string
	Owner    string   // a human
	Profiles []string // profile names it may run under
	Repos    []string // repo patterns it may be scoped to
	Disabled bool
}

// Profile is a named risk class. Its fields bound what a trigger under it
// may ask for.
type Profile struct {
	Name         string
	MaxDuration  time.Duration
	Tools        []string // tool patterns
	Hosts        []string // host patterns
	Environments []string // environment patterns
	Secrets      bool     // whether a trigger may name secrets at all
	Budgets      Budgets
}

// Budgets bound how much a run under a profile may do. They are counted
// server-side and enforced by policy; zero means unlimited.
type Budgets struct {
	CallsPerMinute int `json:"callsPerMinute"`
	TotalCalls     int `json:"totalCalls"`
	Children       int `json:"children"`
}

// Outside lists every item of s that lies outside what agent a under
// profile p allows, each as "kind:item" (for example "tool:shell:net" or
// "repo:other/x"). An empty result means s fits. The duration cap is checked
// separately, because it is its own refusal.
func (s *Scope) Outside(a *Agent, p *Profile) []string {
	var out []string
	for _, r := range s.Repos {
		if !anyCovers(a.Repos, r.Name, PathCovers) {
			out = append(out, "repo:"+r.Name)
		}
	}
	out = uncovered(out, "tool", s.Tools, p.Tools, ToolCovers)
	out = uncovered(out, "host", s.Hosts, p.Hosts, HostCovers)
	out = uncovered(out, "environment", s.Environments, p.Environments, PathCovers)
	if !p.Secrets {
		for _, sec := range s.Secrets {
			out = append(out, "secret:"+sec)
		}
	}
	return out
}

// Validate checks the syntax of every pattern in s and that it names a
// positive duration. It does not check s against any allowance.
func (s *Scope) Validate() error {
	if s.MaxDuration < Duration(time.Second) {
		return fmt.Errorf("scope.maxDuration must be at least 1s, such as \"30m\"")
	}
	seen := map[string]bool{}
	for i, r := range s.Repos {
		if !ValidRepoName(r.Name) {
			return fmt.Errorf("scope.repos[%d].name %q: want owner/repo of [a-z0-9._-], not starting with \"-\" or \".\"", i, r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("scope.repos[%d]: repo %q is listed twice", i, r.Name)
		}
		seen[r.Name] = true
		if r.Base == "" {
			return fmt.Errorf("scope.repos[%d].base: the base branch is required", i)
		}
		if err := ValidateRefName(r.Base); err != nil {
			return fmt.Errorf("scope.repos[%d].base: %w", i, err)
		}
		for _, p := range r.Paths {
			if err := ValidatePathPattern(p); err != nil {
				return fmt.Errorf("scope.repos[%d].paths: %w", i, err)
			}
		}
	}
	for _, t := range s.Tools {
		if err := ValidateToolPattern(t); err != nil {
			return fmt.Errorf("scope.tools: %w", err)
		}
	}
	for _, h := range s.Hosts {
		if err := ValidateHostPattern(h); err != nil {
			return fmt.Errorf("scope.hosts: %w", err)
		}
	}
	for _, e := range s.Environments {
		if !ValidName(e) {
			return fmt.Errorf("scope.environments: %q is not a valid environment name", e)
		}
	}
	for _, sec := range s.Secrets {
		if err := ValidatePathPattern(sec); err != nil {
			return fmt.Errorf("scope.secrets: %w", err)
		}
	}
	return nil
}

// ValidateRefName checks a branch name by the rules of git check-ref-format
// that matter for scopes: no "..", no control characters, spaces, "~^:?*[\",
// no leading "-" or "/", no trailing "/" or ".lock", no "@{", no "//".
func ValidateRefName(s string) error {
	bad := len(s) == 0 || len(s) > 200 || s[0] == '-' || s[0] == '/' || s[len(s)-1] == '/' || s[len(s)-1] == '.'
	for _, frag := range []string{"..", "@{", "//", "/.", ".lock/"} {
		if strings.Contains(s, frag) {
			bad = true
		}
	}
	if strings.HasSuffix(s, ".lock") {
		bad = true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[' || c == '\\' {
			bad = true
		}
	}
	if bad || s[0] == '.' || s == "HEAD" {
		return fmt.Errorf("%q is not a valid branch name", s)
	}
	return nil
}

func anyCovers(pats []string, q string, covers func(p, q string) bool) bool {
	for _, p := range pats {
		if covers(p, q) {
			return true
		}
	}
	return false
}

// MatchAnyName reports whether name matches one of the name patterns.
func MatchAnyName(pats []string, name string) bool {
	for _, p := range pats {
		if MatchPath(p, name) {
			return true
		}
	}
	return false
}

// Within lists every item of s that lies outside parent, each as
// "kind:item", for a child run's scope (docs/design.md §4.4: a child's scope is
// a subset of its parent's). A repo must be one the parent names, with the
// same base branch, writable only if the parent's is, and every path
// covered by the parent's paths for it (no paths means the whole repo).
// The duration is checked separately, as a deadline.
func (s *Scope) Within(parent *Scope) []string {
	var out []string
	for _, r := range s.Repos {
		var p *RepoScope
		for i := range parent.Repos {
			if parent.Repos[i].Name == r.Name {
				p = &parent.Repos[i]
			}
		}
		switch {
		case p == nil:
			out = append(out, "repo:"+r.Name)
			continue
		case r.Base != p.Base:
			out = append(out, "repo:"+r.Name+"@"+r.Base)
		case r.Write && !p.Write:
			out = append(out, "repo:"+r.Name+":write")
		}
		if len(p.Paths) == 0 {
			continue
		}
		if len(r.Paths) == 0 {
			out = append(out, "path:"+r.Name+":**")
		}
		for _, path := range r.Paths {
			if !anyCovers(p.Paths, path, PathCovers) {
				out = append(out, "path:"+r.Name+":"+path)
			}
		}
	}
	out = uncovered(out, "tool", s.Tools, parent.Tools, ToolCovers)
	out = uncovered(out, "host", s.Hosts, parent.Hosts, HostCovers)
	out = uncovered(out, "environment", s.Environments, parent.Environments, PathCovers)
	return uncovered(out, "secret", s.Secrets, parent.Secrets, PathCovers)
}

// uncovered appends "kind:item" to out for every item no pattern of pats
// covers.
func uncovered(out []string, kind string, items, pats []string, covers func(p, q string) bool) []string {
	for _, it := range items {
		if !anyCovers(pats, it, covers) {
			out = append(out, kind+":"+it)
		}
	}
	return out
}
