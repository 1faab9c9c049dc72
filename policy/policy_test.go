package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/policy"
)

// testConfig is the writ.yaml data (data.writ.config) the default-bundle
// tests decide against, in the shape policy/CONTRACT.md fixes.
var testConfig = map[string]any{
	"profiles": map[string]any{
		"refactor": map[string]any{
			"tools": []string{"read", "edit", "shell:build", "shell:test", "shell:git"}, "hosts": []string{"proxy.golang.org"},
			"environments": []string{}, "secrets": false, "maxDuration": "1h0m0s",
			"budgets": map[string]any{"callsPerMinute": 120, "totalCalls": 2000, "children": 3},
		},
		"release": map[string]any{
			"tools": []string{"read", "shell:build"}, "hosts": []string{}, "environments": []string{"staging", "production"},
			"secrets": true, "maxDuration": "1h0m0s",
			"budgets": map[string]any{"callsPerMinute": 0, "totalCalls": 0, "children": 0},
		},
	},
	"environments": map[string]any{"production": map[string]any{"sensitive": true}, "staging": map[string]any{"sensitive": false}},
	"repos": map[string]any{"acme/api": map[string]any{
		"protected": []string{"main", "release/*"}, "protectedPaths": []string{".github/workflows/**", "CODEOWNERS"},
	}},
	"denials":   map[string]any{"max": 5, "window": "10m0s"},
	"approvers": "maintainers",
}

func loadDefault(t *testing.T) *policy.Bundle {
	t.Helper()
	b, err := policy.Load(context.Background(), policy.Default(), policy.LoadOptions{Source: "embedded", Config: testConfig, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Load(default) = %v", err)
	}
	return b
}

// TestDefaultBundle runs the default bundle's own Rego tests inside go
// test: Load refuses a bundle whose tests fail, and every test it ran must
// have passed.
func TestDefaultBundle(t *testing.T) {
	b, err := policy.Load(context.Background(), policy.Default(), policy.LoadOptions{Source: "embedded", Config: testConfig, Timeout: 10 * time.Second})
	if le := (*policy.LoadError)(nil); errors.As(err, &le) && le.Stage == "test" {
		for _, e := range le.Errs {
			t.Errorf("Rego test failed: %s", e)
		}
		t.FailNow()
	}
	if err != nil {
		t.Fatalf("Load(default) = %v", err)
	}
	if len(b.Tests) <= 100 {
		t.Errorf("Load(default) ran %d Rego tests; want more than 100", len(b.Tests))
	}
	for _, r := range b.Tests {
		if !r.Pass {
			t.Errorf("Rego test %s failed: %s (%s)", r.Name, r.Error, r.Location)
		}
		if !strings.HasPrefix(r.Name, "writ.test_") {
			t.Errorf("Rego test name %q; want writ.test_…", r.Name)
		}
	}
	if b.Source != "embedded" {
		t.Errorf("Source = %q; want embedded", b.Source)
	}
	var tests, policies int
	for _, f := range b.Files {
		if f.Test != strings.HasSuffix(f.Path, "_test.rego") {
			t.Errorf("file %s: Test = %v", f.Path, f.Test)
		}
		if f.Test {
			tests++
		} else {
			policies++
		}
	}
	if tests == 0 || policies == 0 {
		t.Errorf("Files = %+v; want policy and test files", b.Files)
	}
	cfg, _ := json.Marshal(testConfig)
	if want := digestOf(cfg); b.DataDigest != want {
		t.Errorf("DataDigest = %s; want %s (sha256 of the config JSON)", b.DataDigest, want)
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// sha256sumDigest computes a bundle digest the way the contract states it,
// independently of the policy package: the files are named explicitly.
func sha256sumDigest(t *testing.T, fsys fs.FS, paths ...string) string {
	t.Helper()
	paths = slices.Clone(paths)
	sort.Strings(paths)
	var manifest strings.Builder
	for _, p := range paths {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&manifest, "%x  %s\n", sum, p)
	}
	return digestOf([]byte(manifest.String()))
}

const minimalPolicy = `package writ

result := {"deny": set(), "approval": set(), "allow": true, "obligations": {"suspend": false}, "alerts": set()}
`

func TestDigest(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{
		"writ.rego":             {Data: []byte(minimalPolicy)},
		"lib/helpers.rego":      {Data: []byte("package writ.lib\n\nx := 1\n")},
		"lib/helpers_test.rego": {Data: []byte("package writ.lib\n\ntest_x if x == 1\n")},
		"data.json":             {Data: []byte(`{"extra": {"k": "v"}}`)},
		"README.md":             {Data: []byte("not part of the bundle")},
		".git/ignored.rego":     {Data: []byte("package hidden\n")},
	}
	want := sha256sumDigest(t, fsys, "writ.rego", "lib/helpers.rego", "lib/helpers_test.rego", "data.json")

	b, err := policy.Load(ctx, fsys, policy.LoadOptions{})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if b.Digest != want {
		t.Errorf("Bundle.Digest = %s; want %s", b.Digest, want)
	}
	got, err := policy.Digest(fsys)
	if err != nil {
		t.Fatalf("Digest() = %v", err)
	}
	if got != b.Digest {
		t.Errorf("Digest(fsys) = %s; want the loaded bundle's %s", got, b.Digest)
	}
	var paths []string
	for _, f := range b.Files {
		paths = append(paths, f.Path)
		data, _ := fs.ReadFile(fsys, f.Path)
		if sum := sha256.Sum256(data); f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("file %s: SHA256 = %s; want %x", f.Path, f.SHA256, sum)
		}
	}
	if diff := cmp.Diff([]string{"data.json", "lib/helpers.rego", "lib/helpers_test.rego", "writ.rego"}, paths); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}

	// The default bundle's digest, from the embedded files.
	def := loadDefault(t)
	var defPaths []string
	fs.WalkDir(policy.Default(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			defPaths = append(defPaths, p)
		}
		return err
	})
	if want := sha256sumDigest(t, policy.Default(), defPaths...); def.Digest != want {
		t.Errorf("default Bundle.Digest = %s; want %s", def.Digest, want)
	}
	if got, _ := policy.Digest(policy.Default()); got != def.Digest {
		t.Errorf("Digest(Default()) = %s; want %s", got, def.Digest)
	}

	// Any change to a bundle file changes the digest; a change elsewhere does not.
	changes := []struct {
		name   string
		change func(fstest.MapFS)
		same   bool
	}{
		{"one byte of a policy", func(m fstest.MapFS) {
			m["writ.rego"] = &fstest.MapFile{Data: []byte(strings.Replace(minimalPolicy, "true", "tru\u0065 ", 1))}
		}, false},
		{"one byte of data.json", func(m fstest.MapFS) { m["data.json"] = &fstest.MapFile{Data: []byte(`{"extra": {"k": "w"}}`)} }, false},
		{"a renamed file", func(m fstest.MapFS) {
			m["lib/helpers2.rego"] = m["lib/helpers.rego"]
			delete(m, "lib/helpers.rego")
		}, false},
		{"a new test file", func(m fstest.MapFS) { m["more_test.rego"] = &fstest.MapFile{Data: []byte("package writ\n")} }, false},
		{"a non-bundle file", func(m fstest.MapFS) { m["README.md"] = &fstest.MapFile{Data: []byte("changed")} }, true},
		{"a hidden directory", func(m fstest.MapFS) { m[".git/ignored.rego"] = &fstest.MapFile{Data: []byte("changed")} }, true},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			m := maps.Clone(fsys)
			c.change(m)
			got, err := policy.Digest(m)
			if err != nil {
				t.Fatalf("Digest() = %v", err)
			}
			if (got == b.Digest) != c.same {
				t.Errorf("Digest after %s = %s; before %s; want same = %v", c.name, got, b.Digest, c.same)
			}
		})
	}
	// A one-byte change loads as a different bundle, too.
	m := maps.Clone(fsys)
	m["writ.rego"] = &fstest.MapFile{Data: []byte(minimalPolicy + " ")}
	b2, err := policy.Load(ctx, m, policy.LoadOptions{})
	if err != nil {
		t.Fatalf("Load(changed) = %v", err)
	}
	if b2.Digest == b.Digest {
		t.Errorf("Bundle.Digest unchanged by a one-byte change: %s", b2.Digest)
	}
}

func TestLoadRefusals(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		stage string
		want  []string // substrings of the error
	}{
		{
			name:  "syntax error",
			files: map[string]string{"writ.rego": "package writ\n\nresult := {\n"},
			stage: "parse",
			want:  []string{"writ.rego"},
		},
		{
			name:  "unsafe variable",
			files: map[string]string{"writ.rego": "package writ\n\nresult := x if input.y == 1\n"},
			stage: "compile",
			want:  []string{"var x is unsafe"},
		},
		{
			name:  "undefined function",
			files: map[string]string{"writ.rego": minimalPolicy + "\nbad if no_such.fn(1)\n"},
			stage: "compile",
			want:  []string{"no_such.fn"},
		},
		{
			name: "own test fails",
			files: map[string]string{
				"writ.rego":      minimalPolicy,
				"writ_test.rego": "package writ\n\ntest_passes if result.allow == true\n\ntest_allow_is_false if result.allow == false\n",
			},
			stage: "test",
			want:  []string{"writ.test_allow_is_false"},
		},
		{
			name:  "test errors",
			files: map[string]string{"writ.rego": minimalPolicy, "writ_test.rego": "package writ\n\ntest_divides if 1 / input.zero == 1 with input as {\"zero\": 0}\n"},
			stage: "test",
			want:  []string{"writ.test_divides"},
		},
		{
			name:  "no result",
			files: map[string]string{"writ.rego": "package writ\n\nallow := true\n"},
			stage: "check",
			want:  []string{"data.writ.result"},
		},
		{
			name:  "result in another package",
			files: map[string]string{"writ.rego": strings.Replace(minimalPolicy, "package writ", "package other", 1)},
			stage: "check",
			want:  []string{"data.writ.result"},
		},
		{
			name:  "http.send",
			files: map[string]string{"writ.rego": minimalPolicy + "\nleak := http.send({\"method\": \"GET\", \"url\": \"https://example.org/\"})\n"},
			stage: "compile",
			want:  []string{"http.send"},
		},
		{
			name:  "net.lookup_ip_addr",
			files: map[string]string{"writ.rego": minimalPolicy + "\naddrs := net.lookup_ip_addr(\"example.org\")\n"},
			stage: "compile",
			want:  []string{"net.lookup_ip_addr"},
		},
		{
			name:  "opa.runtime",
			files: map[string]string{"writ.rego": minimalPolicy + "\nenv := opa.runtime().env\n"},
			stage: "compile",
			want:  []string{"opa.runtime"},
		},
		{
			name: "http.send in a test file",
			files: map[string]string{
				"writ.rego":      minimalPolicy,
				"writ_test.rego": "package writ\n\ntest_leak if http.send({\"method\": \"GET\", \"url\": \"https://example.org/\"})\n",
			},
			stage: "test",
			want:  []string{"http.send"},
		},
		{
			name:  "data.json defines writ.config",
			files: map[string]string{"writ.rego": minimalPolicy, "data.json": `{"writ": {"config": {"profiles": {}}}}`},
			stage: "read",
			want:  []string{"writ.config"},
		},
		{
			name:  "data.json not an object",
			files: map[string]string{"writ.rego": minimalPolicy, "data.json": `[1, 2]`},
			stage: "read",
			want:  []string{"data.json"},
		},
		{
			name:  "data.json below the root",
			files: map[string]string{"writ.rego": minimalPolicy, "lib/data.json": `{}`},
			stage: "read",
			want:  []string{"lib/data.json"},
		},
		{
			name:  "only test files",
			files: map[string]string{"writ_test.rego": "package writ\n\ntest_x if true\n"},
			stage: "read",
			want:  []string{"no .rego policy files"},
		},
		{
			name:  "empty directory",
			files: nil,
			stage: "read",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for p, data := range tt.files {
				if err := os.MkdirAll(path.Join(dir, path.Dir(p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path.Join(dir, p), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := policy.Load(context.Background(), os.DirFS(dir), policy.LoadOptions{Source: "fixture"})
			if err == nil {
				t.Fatalf("Load() = %+v, nil; want a LoadError at %s", b, tt.stage)
			}
			var le *policy.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load() = %v (%T); want *policy.LoadError", err, err)
			}
			if le.Stage != tt.stage || le.Source != "fixture" {
				t.Errorf("Load() refused at %s (source %q): %v; want stage %s (source fixture)", le.Stage, le.Source, err, tt.stage)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() = %v; want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadTests checks that a bundle's tests see its own data.json
// but not the configuration, and that SkipTests skips them.
func TestLoadTests(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{
		"writ.rego":      {Data: []byte(minimalPolicy)},
		"data.json":      {Data: []byte(`{"writ": {"limits": {"n": 3}}}`)},
		"writ_test.rego": {Data: []byte("package writ\n\ntest_own_data if data.writ.limits.n == 3\n\ntest_no_config if not data.writ.config\n")},
	}
	b, err := policy.Load(ctx, fsys, policy.LoadOptions{Config: map[string]any{"approvers": "x"}})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	var names []string
	for _, r := range b.Tests {
		names = append(names, r.Name)
		if !r.Pass {
			t.Errorf("test %s failed: %s", r.Name, r.Error)
		}
	}
	if diff := cmp.Diff([]string{"writ.test_no_config", "writ.test_own_data"}, names); diff != "" {
		t.Errorf("Tests (-want +got):\n%s", diff)
	}

	failing := maps.Clone(fsys)
	failing["writ_test.rego"] = &fstest.MapFile{Data: []byte("package writ\n\ntest_fails if false\n")}
	if _, err := policy.Load(ctx, failing, policy.LoadOptions{}); err == nil {
		t.Fatalf("Load(failing tests) = nil; want an error")
	}
	b, err = policy.Load(ctx, failing, policy.LoadOptions{SkipTests: true})
	if err != nil {
		t.Fatalf("Load(failing tests, SkipTests) = %v", err)
	}
	if len(b.Tests) != 0 {
		t.Errorf("Load(SkipTests) ran %d tests", len(b.Tests))
	}
}

func TestLoadConfig(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{"writ.rego": {Data: []byte(`package writ

result := {"deny": set(), "approval": set(), "allow": data.writ.config.open == true, "obligations": {}, "alerts": set()}
`)}}
	for _, open := range []bool{true, false} {
		b, err := policy.Load(ctx, fsys, policy.LoadOptions{Config: map[string]any{"open": open}})
		if err != nil {
			t.Fatalf("Load() = %v", err)
		}
		res, err := b.Eval(ctx, []byte(`{}`))
		if err != nil {
			t.Fatalf("Eval() = %v", err)
		}
		if res.Allow != open {
			t.Errorf("with config open=%v: Allow = %v", open, res.Allow)
		}
	}
	var le *policy.LoadError
	if _, err := policy.Load(ctx, fsys, policy.LoadOptions{Config: []int{1}}); !errors.As(err, &le) || le.Stage != "read" {
		t.Errorf("Load(config is an array) = %v; want a LoadError at read", err)
	}
}

// bundleWith loads a bundle whose data.writ.result is the Rego expression
// result, with extra rules.
func bundleWith(t *testing.T, result, extra string, o policy.LoadOptions) *policy.Bundle {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second // not the 100ms default: -race on a busy machine is slow
	}
	src := "package writ\n\nresult := " + result + "\n\n" + extra + "\n"
	b, err := policy.Load(context.Background(), fstest.MapFS{"writ.rego": {Data: []byte(src)}}, o)
	if err != nil {
		t.Fatalf("Load(%s) = %v", src, err)
	}
	return b
}

func TestEval(t *testing.T) {
	ctx := context.Background()
	// Arrays in reverse order: Go sorts reasons and alerts, so the same
	// answer is always recorded the same way.
	b := bundleWith(t, `{
	"deny": [{"code": "b_code", "message": "second"}, {"code": "a_code", "message": "first"}],
	"approval": [{"code": "gate", "message": "m", "group": "maintainers", "count": 2}, {"code": "another", "group": "g", "count": 1}],
	"allow": input.allow,
	"obligations": {"maxTTL": "90s", "suspend": true},
	"alerts": ["zulu", "alpha"],
}`, "", policy.LoadOptions{Config: map[string]any{"k": 1}})
	got, err := b.Eval(ctx, []byte(`{"allow": true}`))
	if err != nil {
		t.Fatalf("Eval() = %v", err)
	}
	cfg, _ := json.Marshal(map[string]any{"k": 1})
	want := &writ.PolicyResult{
		Deny: []writ.Reason{{Code: "a_code", Message: "first"}, {Code: "b_code", Message: "second"}},
		Approval: []writ.ApprovalReason{
			{Reason: writ.Reason{Code: "another"}, Group: "g", Count: 1},
			{Reason: writ.Reason{Code: "gate", Message: "m"}, Group: "maintainers", Count: 2},
		},
		Allow:        true,
		Obligations:  writ.Obligations{MaxTTL: writ.Duration(90 * time.Second), Suspend: true},
		Alerts:       []string{"alpha", "zulu"},
		PolicyDigest: b.Digest,
		DataDigest:   digestOf(cfg),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Eval() mismatch (-want +got):\n%s", diff)
	}
}

// TestEvalFailsClosed checks that every result Go cannot trust is an error.
func TestEvalFailsClosed(t *testing.T) {
	const (
		okDeny  = `"deny": set()`
		okAppr  = `"approval": set()`
		okAllow = `"allow": true`
		okObl   = `"obligations": {"suspend": false}`
		okAlert = `"alerts": set()`
	)
	obj := func(fields ...string) string { return "{" + strings.Join(fields, ", ") + "}" }
	tests := []struct {
		name   string
		result string
		extra  string
		input  string
		want   string // substring of the error; "" = must succeed
	}{
		{name: "well-formed", result: obj(okDeny, okAppr, okAllow, okObl, okAlert)},
		{name: "well-formed arrays", result: obj(`"deny": []`, `"approval": []`, okAllow, `"obligations": {}`, `"alerts": []`)},
		{name: "approval count 10", result: obj(okDeny, `"approval": {{"code": "c", "group": "g", "count": 10}}`, okAllow, okObl, okAlert)},
		{name: "undefined for this input", result: obj(okDeny, okAppr, okAllow, okObl, okAlert) + ` if input.action.kind == "tool"`,
			input: `{"action": {"kind": "egress"}}`, want: "undefined"},
		{name: "not an object", result: `"allow"`, want: "mistyped"},
		{name: "allow a string", result: obj(okDeny, okAppr, `"allow": "true"`, okObl, okAlert), want: "allow must be a boolean"},
		{name: "allow missing", result: obj(okDeny, okAppr, okObl, okAlert), want: "allow must be a boolean"},
		{name: "deny holds strings", result: obj(`"deny": {"nope"}`, okAppr, okAllow, okObl, okAlert), want: "deny holds"},
		{name: "deny an object", result: obj(`"deny": {"code": "x"}`, okAppr, okAllow, okObl, okAlert), want: "deny must be"},
		{name: "deny missing", result: obj(okAppr, okAllow, okObl, okAlert), want: "deny must be"},
		{name: "deny without code", result: obj(`"deny": {{"message": "m"}}`, okAppr, okAllow, okObl, okAlert), want: "deny.code"},
		{name: "deny code empty", result: obj(`"deny": {{"code": ""}}`, okAppr, okAllow, okObl, okAlert), want: "deny.code"},
		{name: "approval missing", result: obj(okDeny, okAllow, okObl, okAlert), want: "approval must be"},
		{name: "approval count 0", result: obj(okDeny, `"approval": {{"code": "c", "group": "g", "count": 0}}`, okAllow, okObl, okAlert), want: "approval.count"},
		{name: "approval count 11", result: obj(okDeny, `"approval": {{"code": "c", "group": "g", "count": 11}}`, okAllow, okObl, okAlert), want: "approval.count"},
		{name: "approval count 1.5", result: obj(okDeny, `"approval": {{"code": "c", "group": "g", "count": 1.5}}`, okAllow, okObl, okAlert), want: "approval.count"},
		{name: "approval count a string", result: obj(okDeny, `"approval": {{"code": "c", "group": "g", "count": "1"}}`, okAllow, okObl, okAlert), want: "approval.count"},
		{name: "approval count missing", result: obj(okDeny, `"approval": {{"code": "c", "group": "g"}}`, okAllow, okObl, okAlert), want: "approval.count"},
		{name: "approval without group", result: obj(okDeny, `"approval": {{"code": "c", "count": 1}}`, okAllow, okObl, okAlert), want: "approval.group"},
		{name: "approval without code", result: obj(okDeny, `"approval": {{"group": "g", "count": 1}}`, okAllow, okObl, okAlert), want: "approval.code"},
		{name: "obligations missing", result: obj(okDeny, okAppr, okAllow, okAlert), want: "obligations must be an object"},
		{name: "maxTTL soon", result: obj(okDeny, okAppr, okAllow, `"obligations": {"maxTTL": "soon"}`, okAlert), want: "maxTTL"},
		{name: "maxTTL a number", result: obj(okDeny, okAppr, okAllow, `"obligations": {"maxTTL": 300}`, okAlert), want: "maxTTL"},
		{name: "maxTTL negative", result: obj(okDeny, okAppr, okAllow, `"obligations": {"maxTTL": "-5m"}`, okAlert), want: "maxTTL"},
		{name: "maxTTL zero", result: obj(okDeny, okAppr, okAllow, `"obligations": {"maxTTL": "0s"}`, okAlert), want: "maxTTL"},
		{name: "suspend a string", result: obj(okDeny, okAppr, okAllow, `"obligations": {"suspend": "yes"}`, okAlert), want: "suspend"},
		{name: "unknown obligation", result: obj(okDeny, okAppr, okAllow, `"obligations": {"suspend": false, "notify": true}`, okAlert), want: "notify"},
		{name: "unknown field", result: obj(okDeny, okAppr, okAllow, okObl, okAlert, `"extra": 1`), want: `unknown field "extra"`},
		{name: "alerts missing", result: obj(okDeny, okAppr, okAllow, okObl), want: "alerts is missing"},
		{name: "alerts holds numbers", result: obj(okDeny, okAppr, okAllow, okObl, `"alerts": {1}`), want: "alerts must be"},
		{name: "alerts a string", result: obj(okDeny, okAppr, okAllow, okObl, `"alerts": "x"`), want: "alerts must be"},
		{name: "division by zero", result: obj(okDeny, okAppr, `"allow": ratio == 0`, okObl, okAlert),
			extra: "default ratio := 0\n\nratio := 1 / input.zero", input: `{"zero": 0}`, want: "divide by zero"},
		{name: "builtin error", result: obj(okDeny, okAppr, `"allow": n == 0`, okObl, okAlert),
			extra: "default n := 0\n\nn := to_number(input.s)", input: `{"s": "not a number"}`, want: "policy evaluation"},
		{name: "conflicting rules", result: `r`, extra: "r := {} if input.a\n\nr := {\"x\": 1} if input.b", input: `{"a": true, "b": true}`, want: "policy evaluation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bundleWith(t, tt.result, tt.extra, policy.LoadOptions{})
			input := tt.input
			if input == "" {
				input = `{"action": {"kind": "tool"}}`
			}
			res, err := b.Eval(context.Background(), []byte(input))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Eval() = %v; want a result", err)
				}
				if res.PolicyDigest != b.Digest {
					t.Errorf("PolicyDigest = %q; want %q", res.PolicyDigest, b.Digest)
				}
				return
			}
			if err == nil {
				t.Fatalf("Eval() = %+v, nil; want an error mentioning %q", res, tt.want)
			}
			if res != nil {
				t.Errorf("Eval() returned a result %+v with error %v", res, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Eval() = %v; want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEvalBadInput(t *testing.T) {
	b := bundleWith(t, `{"deny": set(), "approval": set(), "allow": true, "obligations": {}, "alerts": set()}`, "", policy.LoadOptions{})
	for _, in := range []string{``, `{`, `{"a": }`} {
		if res, err := b.Eval(context.Background(), []byte(in)); err == nil {
			t.Errorf("Eval(%q) = %+v; want an error", in, res)
		}
	}
}

func TestEvalTimeout(t *testing.T) {
	// A million iterations take far longer than 1ms; they depend on the
	// input so that nothing is computed ahead of time.
	b := bundleWith(t, `{"deny": set(), "approval": set(), "allow": slow, "obligations": {}, "alerts": set()}`,
		`slow if count([1 | some i in numbers.range(1, input.n); some j in numbers.range(1, input.n)]) > 0`,
		policy.LoadOptions{Timeout: time.Millisecond})
	res, err := b.Eval(context.Background(), []byte(`{"n": 1000}`))
	if err == nil {
		t.Fatalf("Eval() = %+v; want a timeout", res)
	}
	// A timeout is not an answer of the policy: unavailable (retry), never
	// a deny (docs/design.md §4.4).
	if writ.ErrorKind(err) != writ.KindUnavailable || writ.ErrorCode(err) != "policy_timeout" {
		t.Errorf("Eval() = %v; want unavailable policy_timeout", err)
	}
	// A caller that went away is neither a deny nor a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Eval(ctx, []byte(`{"n": 1000}`)); writ.ErrorCode(err) != "canceled" {
		t.Errorf("Eval(canceled) = %v; want canceled", err)
	}
	// The same policy answers a cheap input within the limit, so the
	// timeout is per evaluation, not a broken bundle.
	fast := bundleWith(t, `{"deny": set(), "approval": set(), "allow": slow, "obligations": {}, "alerts": set()}`,
		`slow if count([1 | some i in numbers.range(1, input.n); some j in numbers.range(1, input.n)]) > 0`,
		policy.LoadOptions{Timeout: 10 * time.Second})
	if res, err := fast.Eval(context.Background(), []byte(`{"n": 2}`)); err != nil || !res.Allow {
		t.Errorf("Eval(n=2) = %+v, %v; want allow", res, err)
	}
}

func TestEngine(t *testing.T) {
	ctx := context.Background()
	first := bundleWith(t, `{"deny": set(), "approval": set(), "allow": true, "obligations": {}, "alerts": set()}`, "", policy.LoadOptions{})
	second := bundleWith(t, `{"deny": {{"code": "second"}}, "approval": set(), "allow": false, "obligations": {}, "alerts": set()}`, "", policy.LoadOptions{})
	broken := bundleWith(t, `{"deny": set(), "approval": set(), "allow": true, "obligations": {}, "alerts": set()} if input.ok`, "",
		policy.LoadOptions{Config: map[string]any{"x": 1}})

	e := policy.NewEngine(first)
	if e.Bundle() != first {
		t.Fatalf("Bundle() is not the bundle the engine was made with")
	}
	res, err := e.Evaluate(ctx, []byte(`{}`))
	if err != nil || !res.Allow || res.PolicyDigest != first.Digest {
		t.Fatalf("Evaluate() = %+v, %v; want allow by %s", res, err, first.Digest)
	}
	if prev := e.Swap(second); prev != first {
		t.Errorf("Swap() returned %p; want the first bundle %p", prev, first)
	}
	if e.Bundle() != second {
		t.Errorf("Bundle() after Swap is not the new bundle")
	}
	res, err = e.Evaluate(ctx, []byte(`{}`))
	if err != nil {
		t.Fatalf("Evaluate() after Swap = %v", err)
	}
	if v, reasons, _ := res.Verdict(); v != writ.VerdictDeny || len(reasons) != 1 || reasons[0].Code != "second" || res.PolicyDigest != second.Digest {
		t.Errorf("Evaluate() after Swap = %+v (%s %v); want deny by the second bundle %s", res, v, reasons, second.Digest)
	}

	e.Swap(broken)
	res, err = e.Evaluate(ctx, []byte(`{"ok": false}`))
	if err == nil {
		t.Fatalf("Evaluate(broken) = %+v, nil; want an error", res)
	}
	if res == nil {
		t.Fatalf("Evaluate(broken) = nil result; want the digests of the bundle that failed")
	}
	if res.PolicyDigest != broken.Digest || res.DataDigest != broken.DataDigest || res.DataDigest == "" {
		t.Errorf("Evaluate(broken) digests = %q %q; want %q %q", res.PolicyDigest, res.DataDigest, broken.Digest, broken.DataDigest)
	}
	if res.Allow || len(res.Deny) != 0 || len(res.Approval) != 0 {
		t.Errorf("Evaluate(broken) = %+v; want nothing but the digests", res)
	}
}

// TestEngineConcurrentSwap evaluates while bundles are swapped (run with
// -race): every answer comes from one of the two bundles, whole.
func TestEngineConcurrentSwap(t *testing.T) {
	ctx := context.Background()
	a := bundleWith(t, `{"deny": set(), "approval": set(), "allow": true, "obligations": {}, "alerts": {"a"}}`, "", policy.LoadOptions{})
	b := bundleWith(t, `{"deny": set(), "approval": set(), "allow": false, "obligations": {}, "alerts": {"b"}}`, "", policy.LoadOptions{})
	e := policy.NewEngine(a)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if i%2 == 0 {
				e.Swap(b)
			} else {
				e.Swap(a)
			}
		}
	}()
	for range 200 {
		res, err := e.Evaluate(ctx, []byte(`{}`))
		if err != nil {
			t.Fatalf("Evaluate() = %v", err)
		}
		if (res.Allow && (res.PolicyDigest != a.Digest || res.Alerts[0] != "a")) || (!res.Allow && (res.PolicyDigest != b.Digest || res.Alerts[0] != "b")) {
			t.Fatalf("Evaluate() = %+v mixes the bundles", res)
		}
	}
	<-done
}

// ---------------------------------------------------------- the default bundle

const runID = "01JTESTRUN0000000000000000"

// baseInput is an enforced refactor run, in scope for acme/api src/**,
// editing a file; every decision test patches it.
func baseInput() map[string]any {
	return map[string]any{
		"action":   map[string]any{"kind": "tool", "name": "edit", "target": map[string]any{}},
		"via":      "api",
		"enforced": true,
		"run": map[string]any{
			"id": runID, "agent": "refactor-bot", "profile": "refactor", "issuer": "alice",
			"ticket": map[string]any{"system": "jira", "id": "ENG-1", "url": "https://jira.example.org/ENG-1"},
			"scope": map[string]any{
				"repos":        []any{map[string]any{"name": "acme/api", "base": "main", "write": true, "paths": []any{"src/**"}}},
				"tools":        []any{"read", "edit", "shell:build", "shell:test"},
				"hosts":        []any{"proxy.golang.org"},
				"environments": []any{},
				"secrets":      []any{},
				"maxDuration":  "30m0s",
			},
			"scopeDigest": "sha256:" + strings.Repeat("1", 64), "triggerDigest": "sha256:" + strings.Repeat("2", 64),
			"depth": 0, "parent": "", "deadline": "2026-11-25T20:25:00Z", "state": "active",
			"branchPrefix": "writ/" + runID + "/",
		},
		"history": map[string]any{
			"actions": []any{},
			"counts":  map[string]any{"total": 0, "lastMinute": 0, "denials": 0, "children": 0},
			"allowed": map[string]any{},
		},
		"context": map[string]any{
			"time": "2026-11-25T20:00:00Z", "hour": 20, "weekday": "Wednesday", "remainingSeconds": 1500,
			"toolInScope": true,
			"paths":       map[string]any{"changed": []any{}, "outsideScope": []any{}, "protected": []any{}},
		},
	}
}

// merge deep-merges patch into dst: objects merge, anything else replaces.
func merge(dst, patch map[string]any) map[string]any {
	for k, v := range patch {
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = merge(dm, pm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func repoContext(branch string, protected, runBranch bool) map[string]any {
	return map[string]any{"name": "acme/api", "inScope": true, "write": true, "base": "main",
		"branch": branch, "protected": protected, "runBranch": runBranch}
}

func TestDefaultDecisions(t *testing.T) {
	b := loadDefault(t)
	const artifact = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	runBranch := "writ/" + runID + "/fix"
	tests := []struct {
		name     string
		patch    map[string]any
		verdict  string
		codes    []string // reason codes the verdict must carry
		notCodes []string // reason codes it must not carry
		count    int      // approval count for approval_required
		suspend  bool
		maxTTL   time.Duration
		alert    bool // some alert is raised
	}{
		{
			name:    "tool in scope",
			patch:   map[string]any{},
			verdict: writ.VerdictAllow,
		},
		{
			name:    "tool not in scope",
			patch:   map[string]any{"action": map[string]any{"name": "shell:net"}, "context": map[string]any{"toolInScope": false}},
			verdict: writ.VerdictDeny,
			codes:   []string{"tool_not_in_scope"},
		},
		{
			name:    "mcp call not in scope",
			patch:   map[string]any{"action": map[string]any{"kind": "mcp.call", "name": "mcp:srv/echo"}, "context": map[string]any{"toolInScope": false}},
			verdict: writ.VerdictDeny,
			codes:   []string{"tool_not_in_scope"},
		},
		{
			name: "push to the run's branch",
			patch: map[string]any{
				"action":  map[string]any{"kind": "git.push", "name": "acme/api", "target": map[string]any{"repo": "acme/api", "ref": "refs/heads/" + runBranch, "paths": []any{"src/a.go"}}},
				"context": map[string]any{"repo": repoContext(runBranch, false, true), "paths": map[string]any{"changed": []any{"src/a.go"}}},
			},
			verdict: writ.VerdictAllow,
		},
		{
			name: "push to a protected branch",
			patch: map[string]any{
				"action":  map[string]any{"kind": "git.push", "name": "acme/api", "target": map[string]any{"repo": "acme/api", "ref": "refs/heads/main", "paths": []any{"src/a.go"}}},
				"context": map[string]any{"repo": repoContext("main", true, false), "paths": map[string]any{"changed": []any{"src/a.go"}}},
			},
			verdict: writ.VerdictDeny,
			codes:   []string{"protected_branch"},
		},
		{
			name: "push changing a protected path",
			patch: map[string]any{
				"run":    map[string]any{"scope": map[string]any{"repos": []any{map[string]any{"name": "acme/api", "base": "main", "write": true, "paths": []any{"src/**", ".github/**"}}}}},
				"action": map[string]any{"kind": "git.push", "name": "acme/api", "target": map[string]any{"repo": "acme/api", "ref": runBranch, "paths": []any{"src/a.go", ".github/workflows/ci.yml"}}},
				"context": map[string]any{"repo": repoContext(runBranch, false, true), "paths": map[string]any{
					"changed": []any{"src/a.go", ".github/workflows/ci.yml"}, "outsideScope": []any{}, "protected": []any{".github/workflows/ci.yml"}}},
			},
			verdict: writ.VerdictApprovalRequired,
			codes:   []string{"protected_path"},
			count:   1,
		},
		{
			name: "push changing a path outside scope",
			patch: map[string]any{
				"action": map[string]any{"kind": "git.push", "name": "acme/api", "target": map[string]any{"repo": "acme/api", "ref": runBranch, "paths": []any{"docs/x.md"}}},
				"context": map[string]any{"repo": repoContext(runBranch, false, true), "paths": map[string]any{
					"changed": []any{"docs/x.md"}, "outsideScope": []any{"docs/x.md"}}},
			},
			verdict: writ.VerdictDeny,
			codes:   []string{"path_not_in_scope"},
		},
		{
			name: "release by a refactor run",
			patch: map[string]any{
				"action":  map[string]any{"kind": "release", "name": "app", "target": map[string]any{"environment": "staging", "digest": artifact}},
				"context": map[string]any{"environment": map[string]any{"name": "staging", "inScope": false, "sensitive": false}},
			},
			verdict: writ.VerdictDeny,
			codes:   []string{"scope_creep", "release_not_allowed"},
			suspend: true,
			alert:   true,
		},
		{
			name: "release to a sensitive environment",
			patch: map[string]any{
				"run":     map[string]any{"profile": "release", "agent": "release-bot", "scope": map[string]any{"environments": []any{"production"}}},
				"action":  map[string]any{"kind": "release", "name": "app", "target": map[string]any{"environment": "production", "digest": artifact}},
				"context": map[string]any{"environment": map[string]any{"name": "production", "inScope": true, "sensitive": true}},
			},
			verdict: writ.VerdictApprovalRequired,
			codes:   []string{"sensitive_environment"},
			count:   2,
		},
		{
			name: "release to an ordinary environment",
			patch: map[string]any{
				"run":     map[string]any{"profile": "release", "scope": map[string]any{"environments": []any{"staging"}}},
				"action":  map[string]any{"kind": "release", "name": "app", "target": map[string]any{"environment": "staging", "digest": artifact}},
				"context": map[string]any{"environment": map[string]any{"name": "staging", "inScope": true, "sensitive": false}},
			},
			verdict: writ.VerdictApprovalRequired,
			codes:   []string{"release_requires_approval"},
			count:   1,
		},
		{
			name: "git credential",
			patch: map[string]any{
				"action":  map[string]any{"kind": "credential", "name": "git", "args": map[string]any{"permissions": "read"}, "target": map[string]any{"repo": "acme/api"}},
				"context": map[string]any{"repo": repoContext("", false, false)},
			},
			verdict: writ.VerdictAllow,
			maxTTL:  5 * time.Minute,
		},
		{
			name: "calls per minute budget reached",
			patch: map[string]any{
				"history": map[string]any{"counts": map[string]any{"total": 500, "lastMinute": 120}},
			},
			verdict: writ.VerdictDeny,
			codes:   []string{"budget_calls_per_minute"},
			suspend: true,
			alert:   true,
		},
		{
			name: "calls per minute budget reached, advisory",
			patch: map[string]any{
				"via":      "hook:claude-code",
				"enforced": false,
				"history":  map[string]any{"counts": map[string]any{"total": 500, "lastMinute": 120}},
			},
			verdict:  writ.VerdictAllow,
			notCodes: []string{"budget_calls_per_minute"},
		},
		{
			name: "calls per minute under budget",
			patch: map[string]any{
				"history": map[string]any{"counts": map[string]any{"total": 500, "lastMinute": 119}},
			},
			verdict: writ.VerdictAllow,
		},
		{
			name:    "suspended run",
			patch:   map[string]any{"run": map[string]any{"state": "suspended"}},
			verdict: writ.VerdictDeny,
			codes:   []string{"run_not_active"},
		},
		{
			name:    "no rule allows",
			patch:   map[string]any{"action": map[string]any{"kind": "build", "name": "go"}, "run": map[string]any{"profile": "unconfigured"}},
			verdict: writ.VerdictDeny,
			codes:   []string{"unknown_profile"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := json.Marshal(merge(baseInput(), tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			res, err := b.Eval(context.Background(), in)
			if err != nil {
				t.Fatalf("Eval() = %v", err)
			}
			verdict, reasons, appr := res.Verdict()
			codes := map[string]bool{}
			for _, r := range reasons {
				codes[r.Code] = true
			}
			if verdict != tt.verdict {
				t.Errorf("verdict = %s %v; want %s", verdict, reasons, tt.verdict)
			}
			for _, c := range tt.codes {
				if !codes[c] {
					t.Errorf("reasons = %v; want %s among them", reasons, c)
				}
			}
			for _, c := range tt.notCodes {
				if codes[c] {
					t.Errorf("reasons = %v; want no %s", reasons, c)
				}
			}
			if verdict == writ.VerdictApprovalRequired {
				if appr == nil || appr.Count != tt.count || appr.Group != "maintainers" {
					t.Errorf("approval = %+v; want %d of maintainers", appr, tt.count)
				}
			}
			if res.Obligations.Suspend != tt.suspend {
				t.Errorf("obligations.suspend = %v; want %v", res.Obligations.Suspend, tt.suspend)
			}
			if time.Duration(res.Obligations.MaxTTL) != tt.maxTTL {
				t.Errorf("obligations.maxTTL = %v; want %v", time.Duration(res.Obligations.MaxTTL), tt.maxTTL)
			}
			if (len(res.Alerts) > 0) != tt.alert {
				t.Errorf("alerts = %q; want alerts: %v", res.Alerts, tt.alert)
			}
			if res.PolicyDigest != b.Digest || res.DataDigest != b.DataDigest {
				t.Errorf("digests = %s %s; want %s %s", res.PolicyDigest, res.DataDigest, b.Digest, b.DataDigest)
			}
		})
	}
}
