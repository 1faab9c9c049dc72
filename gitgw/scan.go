package gitgw

import (
	"bytes"
	"math"
	"regexp"
)

// finding is a likely secret in a pushed blob. It never holds the secret.
type finding struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Kind string `json:"kind"`
}

// secretRules are token formats with a fixed shape: a match is a secret
// whatever surrounds it.
var secretRules = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"aws-access-key-id", regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b`)},
	{"aws-secret-access-key", regexp.MustCompile(`(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}\b`)},
	{"github-token", regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{80,})\b`)},
	{"gitlab-token", regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20,}\b`)},
	{"slack-token", regexp.MustCompile(`\bxox[baprs]-[0-9A-Za-z-]{10,}\b`)},
	{"stripe-key", regexp.MustCompile(`\b[sr]k_live_[0-9A-Za-z]{24,}\b`)},
	{"google-api-key", regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}\b`)},
	{"private-key", regexp.MustCompile(`-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----`)},
	{"writ-git-credential", regexp.MustCompile(`\bwrit_git_[0-9a-z]{26}_[A-Za-z0-9_-]{43}`)},
	{"writ-api-token", regexp.MustCompile(`\bwrit_[0-9a-z]{16}_[A-Za-z0-9_-]{43}`)},
}

// assignRE finds values assigned to names that say they are secrets
// (password = "…", api_key: …); such a value counts when it is long and
// random enough (high entropy), which keeps placeholders and words out.
var assignRE = regexp.MustCompile(`(?i)(?:secret|token|passw(?:or)?d|api_?key|access_?key|private_?key|credential)[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?([A-Za-z0-9+/=_\-.]{20,200})`)

// scanBlob reports the likely secrets in one blob of path. Binary blobs
// (a NUL in the first 8 KiB) are skipped.
func scanBlob(path string, data []byte) []finding {
	if bytes.IndexByte(data[:min(len(data), 8192)], 0) >= 0 {
		return nil
	}
	var out []finding
	seen := map[[2]int]bool{} // (line, rule) reported once
	lineOf := func(off int) int { return bytes.Count(data[:off], []byte{'\n'}) + 1 }
	for i, rule := range secretRules {
		for _, m := range rule.re.FindAllIndex(data, 20) {
			l := lineOf(m[0])
			if !seen[[2]int{l, i}] {
				seen[[2]int{l, i}] = true
				out = append(out, finding{Path: path, Line: l, Kind: rule.kind})
			}
		}
	}
	for _, m := range assignRE.FindAllSubmatchIndex(data, 50) {
		v := data[m[2]:m[3]]
		if highEntropy(v) {
			l := lineOf(m[0])
			if !seen[[2]int{l, -1}] && !seenLine(out, l) {
				seen[[2]int{l, -1}] = true
				out = append(out, finding{Path: path, Line: l, Kind: "high-entropy-secret"})
			}
		}
	}
	return out
}

func seenLine(fs []finding, line int) bool {
	for _, f := range fs {
		if f.Line == line {
			return true
		}
	}
	return false
}

// highEntropy reports whether v looks random: Shannon entropy over 4 bits
// per character, with digits and letters both present.
func highEntropy(v []byte) bool {
	if len(v) < 20 {
		return false
	}
	var counts [256]int
	var digit, alpha bool
	for _, c := range v {
		counts[c]++
		digit = digit || c >= '0' && c <= '9'
		alpha = alpha || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if !digit || !alpha {
		return false
	}
	h := 0.0
	for _, n := range counts {
		if n > 0 {
			p := float64(n) / float64(len(v))
			h -= p * math.Log2(p)
		}
	}
	return h > 4.0
}
