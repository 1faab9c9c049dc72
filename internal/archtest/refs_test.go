package archtest

import (
	"strings"
	"testing"
)

// The old notes' names, built from parts so that this file does not cite
// them itself.
var (
	shared  = ".." + "/shared"
	oldNote = "DES" + "IGN.md"
	oldThr  = "THR" + "EATS.md"
	oldSty  = "STY" + "LE.md"

	// Ids docs/threat-model.md does not define, built from parts so the
	// repository-wide check does not report this file.
	unknownControl   = "C-GT" + "9"
	unknownInvariant = "INV-" + "42"
)

// refRepo is a small clean repository: every reference in it resolves.
func refRepo() map[string]string {
	return map[string]string{
		"README.md":       "# writ\n\nSee [the design](docs/design.md#41-trigger), [contributing](CONTRIBUTING.md#5-import-rules-and-why).\n",
		"CONTRIBUTING.md": "# Contributing\n\n## 5. Import rules and why\n\nText.\n",
		"docs/design.md": "# Design\n\n## 0. Changing the contract\n\n## 4. Contracts\n\n### 4.1 Trigger\n\n### 4.10 Config (`writ.yaml`, strict)\n\n" +
			"Back to [the top](#design) and the [threat model](threat-model.md#controls).\n\n```\n# not a heading\n[not a link](nowhere.md)\n```\n",
		"docs/threat-model.md": "# Threat model\n\n## Controls\n\n| C-GT2 content policy |\n| INV-6 approvals |\n",
		"trigger/verify.go": "package trigger\n\n// validate checks t by docs/design.md §4.1 and §4.10 (C-GT2, INV-6).\n" +
			"// See docs/design.md\n// §4.10 across a line break, and CONTRIBUTING.md §5.\nvar x = \"docs/missing.md is only test data\"\n",
		"policy/default/common.rego":               "package writ\n\n# Protected branches (docs/design.md §4.1–§4.10, C-GT2).\n",
		"sqlstore/migrations/sqlite/0001_init.sql": "-- The outbox (docs/design.md\n-- §4.1).\n",
		"scripts/test.sh":                          "#!/bin/sh\n# The one test command (CONTRIBUTING.md §5).\n",
	}
}

func checkRepo(repo map[string]string) []RefProblem {
	var files []RefFile
	var paths []string
	for p, s := range repo {
		files = append(files, RefFile{Path: p, Data: []byte(s)})
		paths = append(paths, p)
	}
	return CheckRefs(files, paths)
}

func TestCheckRefsClean(t *testing.T) {
	for _, p := range checkRepo(refRepo()) {
		t.Errorf("clean repository: %s", p)
	}
}

// TestCheckRefsBreaks breaks one rule per case and expects exactly the
// problems named.
func TestCheckRefsBreaks(t *testing.T) {
	tests := []struct {
		name string
		path string // the file to add or replace
		text string
		want []string // substrings of the problems, in order
	}{
		{"shared dir in Go", "server/keys.go", "package server\n\n// Keys (see " + shared + "/" + oldNote + " §4.7).\n",
			[]string{"server/keys.go:3: cites " + shared}},
		{"shared dir in Markdown", "README.md", "Design: `" + shared + "/" + oldNote + "`.\n",
			[]string{"README.md:1: cites " + shared}},
		{"old design note", "run.go", "package writ\n\n// RunState (" + oldNote + " §4.3).\n",
			[]string{"run.go:3: cites " + oldNote}},
		{"old threats note in Rego", "policy/default/writ.rego", "package writ\n\n# at most 5 minutes (" + oldThr + " §8).\n",
			[]string{"policy/default/writ.rego:3: cites " + oldThr}},
		{"old style note in a script", "scripts/test.sh", "#!/bin/sh\n# rules of " + oldSty + " §4\n",
			[]string{"scripts/test.sh:2: cites " + oldSty}},
		{"old note split across a line in SQL", "sqlstore/migrations/sqlite/0003_auditlog.sql", "-- The audit log (" + oldNote + "\n-- §4.6).\n",
			[]string{"0003_auditlog.sql:1: cites " + oldNote}},
		{"missing Markdown link target", "docs/guide.md", "# Guide\n\nSee [hooks](hooks.md).\n",
			[]string{"docs/guide.md:3: links to hooks.md, which the repository does not contain"}},
		{"link resolves only from the root", "docs/guide.md", "# Guide\n\nSee [design](docs/design.md).\n",
			[]string{"docs/guide.md:3: links to docs/design.md, which the repository does not contain"}},
		{"missing anchor", "docs/guide.md", "# Guide\n\nSee [trigger](design.md#42-identity).\n",
			[]string{"docs/guide.md:3: links to design.md#42-identity, but docs/design.md has no heading with anchor #42-identity"}},
		{"missing local anchor", "docs/guide.md", "# Guide\n\nSee [below](#nowhere).\n",
			[]string{"docs/guide.md:3: links to #nowhere"}},
		{"missing cited path in a Go comment", "token/doc.go", "package token\n\n// Lifetimes: docs/tokens.md.\n",
			[]string{"token/doc.go:3: cites docs/tokens.md, which the repository does not contain"}},
		{"missing cited root file in a script", "bench/run.sh", "#!/bin/sh\n# see TOOLING.md\n",
			[]string{"bench/run.sh:2: cites TOOLING.md, which the repository does not contain"}},
		{"missing section", "httpapi/api.go", "package httpapi\n\n// ErrorBody is the envelope of docs/design.md §4.8.\n",
			[]string{"httpapi/api.go:3: cites docs/design.md §4.8, but docs/design.md has no section 4.8"}},
		{"missing second section of a range", "server/review_test.go", "package server\n\n// delegation (docs/design.md §4.1–§4.5).\n",
			[]string{"server/review_test.go:3: cites docs/design.md §4.5"}},
		{"missing section across a line break", "httpapi/fixture_test.go", "package httpapi\n\n// the envelope of docs/design.md\n// §4.8.\n",
			[]string{"httpapi/fixture_test.go:3: cites docs/design.md §4.8"}},
		{"missing section in a Markdown link", "docs/guide.md", "# Guide\n\nSee [design.md §3](design.md#4-contracts).\n",
			[]string{"docs/guide.md:3: cites design.md §3, but docs/design.md has no section 3"}},
		{"section of a file without numbered sections", "broker/broker.go", "package broker\n\n// whatever policy says (docs/threat-model.md " + "§8).\n",
			[]string{"broker/broker.go:3: cites docs/threat-model.md " + "§8"}},
		{"missing section of CONTRIBUTING.md", "arch_test.go", "package writ_test\n\n// the import rules of CONTRIBUTING.md §4.\n",
			[]string{"arch_test.go:3: cites CONTRIBUTING.md §4"}},
		{"unknown control id", "gitgw/push.go", "package gitgw\n\n// ref policy (" + unknownControl + ", INV-6).\n",
			[]string{"gitgw/push.go:3: cites " + unknownControl}},
		{"unknown invariant", "approval/review_test.go", "package approval\n\n// " + unknownInvariant + ".\n",
			[]string{"approval/review_test.go:3: cites " + unknownInvariant}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := refRepo()
			repo[tt.path] = tt.text
			got := checkRepo(repo)
			if len(got) != len(tt.want) {
				t.Fatalf("CheckRefs = %d problems %v; want %d matching %q", len(got), got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("problem %d = %q; want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"4.10 Config (`writ.yaml`, strict)": "410-config-writyaml-strict",
		"6. What \"done\" means here":       "6-what-done-means-here",
		"Hardening (C-GT3)":                 "hardening-c-gt3",
		"Kill switches":                     "kill-switches",
		"Run states: active ⇄ suspended":    "run-states-active--suspended",
		"See [hooks](hooks.md)":             "see-hooks",
	} {
		if got := Slug(h); got != want {
			t.Errorf("Slug(%q) = %q; want %q", h, got, want)
		}
	}
}
