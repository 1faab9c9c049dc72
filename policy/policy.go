// Package policy is writ's embedded policy engine: it loads a Rego bundle
// (the default one compiled into the binary, or a directory), refuses a
// bundle that does not compile or fails its own tests, prepares the one
// query every decision runs (data.writ.result) and evaluates it.
//
// It is the only package that imports OPA, and only its v1 packages. The
// input is JSON bytes built by the decision point; the Rego contract is in
// CONTRACT.md beside this file. The engine fails closed: an evaluation
// error, a timeout, an undefined or mistyped result is an error, which the
// caller turns into deny.
//
// Policies run in a sandbox: the network builtins (http.send,
// net.lookup_ip_addr) and opa.runtime (which exposes the process
// environment) are not available to any bundle.
package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/writ-dev/writ"
)

// Query is the one query a bundle must answer.
const Query = "data.writ.result"

//go:embed default/*.rego
var defaultFS embed.FS

// Default returns the embedded default bundle's files.
func Default() fs.FS {
	sub, err := fs.Sub(defaultFS, "default")
	if err != nil {
		panic(err)
	}
	return sub
}

// Limits on a bundle.
const (
	maxBundleBytes = 8 << 20
	maxBundleFiles = 500
)

// File is one file of a bundle.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Test   bool   `json:"test,omitempty"`
}

// TestResult is the outcome of one Rego test of a bundle.
type TestResult struct {
	Name     string        `json:"name"` // package.rule
	Pass     bool          `json:"pass"`
	Error    string        `json:"error,omitempty"`
	Location string        `json:"location,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Bundle is a compiled, tested and prepared policy bundle. It is immutable
// once loaded; evaluation is safe from many goroutines.
type Bundle struct {
	// Digest is the content digest of the bundle: "sha256:" + the SHA-256
	// of its manifest, the lines "<sha256 hex>  <path>\n" of every .rego
	// and data.json file sorted by path (what `sha256sum` prints).
	Digest string
	// DataDigest is the digest of the configuration data the bundle was
	// loaded with (data.writ.config).
	DataDigest string
	Source     string // "embedded" or the directory it was read from
	Files      []File
	Tests      []TestResult
	LoadedAt   time.Time

	query   rego.PreparedEvalQuery
	timeout time.Duration
}

// LoadOptions say how a bundle is loaded.
type LoadOptions struct {
	// Source names where the files came from, for events and errors.
	Source string
	// Config is the configuration data handed to Rego as data.writ.config
	// (profiles, environments, repos, limits). It must marshal to a JSON
	// object.
	Config any
	// Timeout bounds one evaluation; 0 means 100 ms.
	Timeout time.Duration
	// SkipTests loads without running the bundle's tests. Only `writ policy
	// eval` uses it, to explain a decision of a bundle under development.
	SkipTests bool
	// Now is the clock for LoadedAt.
	Now func() time.Time
}

// LoadError is a bundle refused at load: it does not parse or compile, or
// one of its own tests fails. The old bundle, if any, stays in force.
type LoadError struct {
	Source string
	Stage  string // "read", "parse", "compile", "test" or "check"
	Errs   []string
}

func (e *LoadError) Error() string {
	msg := fmt.Sprintf("policy bundle %s refused at %s", e.Source, e.Stage)
	if len(e.Errs) > 0 {
		n := min(len(e.Errs), 10)
		msg += ":\n  " + strings.Join(e.Errs[:n], "\n  ")
		if len(e.Errs) > n {
			msg += fmt.Sprintf("\n  … and %d more", len(e.Errs)-n)
		}
	}
	return msg
}

// Load reads every .rego file and an optional data.json from fsys, parses
// them as Rego v1, compiles them, runs the bundle's own tests (the test_*
// rules, in *_test.rego files) and prepares the decision query.
func Load(ctx context.Context, fsys fs.FS, o LoadOptions) (*Bundle, error) {
	if o.Timeout == 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Source == "" {
		o.Source = "bundle"
	}
	fail := func(stage string, errs ...string) error {
		return &LoadError{Source: o.Source, Stage: stage, Errs: errs}
	}
	files, err := readBundle(fsys)
	if err != nil {
		return nil, fail("read", err.Error())
	}
	b := &Bundle{Source: o.Source, timeout: o.Timeout, LoadedAt: o.Now().UTC()}
	b.Digest, b.Files = manifest(files)

	// data: the bundle's own data.json, with the configuration under
	// writ.config. A bundle may not define writ.config itself.
	data := map[string]any{}
	for _, f := range files {
		if path.Base(f.path) != "data.json" {
			continue
		}
		if f.path != "data.json" {
			return nil, fail("read", f.path+": only a data.json at the bundle root is read")
		}
		if err := json.Unmarshal(f.data, &data); err != nil || data == nil {
			return nil, fail("read", "data.json: not a JSON object")
		}
	}
	cfgJSON, err := json.Marshal(o.Config)
	if err != nil {
		return nil, fail("read", "config data: "+err.Error())
	}
	var cfg map[string]any
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fail("read", "config data is not a JSON object")
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	dsum := sha256.Sum256(cfgJSON)
	b.DataDigest = "sha256:" + hex.EncodeToString(dsum[:])
	w, _ := data["writ"].(map[string]any)
	if w == nil {
		if _, ok := data["writ"]; ok {
			return nil, fail("read", "data.json: data.writ must be an object")
		}
		w = map[string]any{}
		data["writ"] = w
	}
	if _, ok := w["config"]; ok {
		return nil, fail("read", "data.json defines writ.config, which writ fills from writ.yaml")
	}
	// The bundle's tests see only the bundle's own data, as `opa test`
	// would: they mock data.writ.config themselves, so a configuration
	// change never makes a tested bundle fail to load.
	testData, err := deepCopy(data)
	if err != nil {
		return nil, fail("read", err.Error())
	}
	w["config"] = cfg

	popts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	all := map[string]*ast.Module{}
	prod := map[string]*ast.Module{}
	var perrs []string
	for _, f := range files {
		if !strings.HasSuffix(f.path, ".rego") {
			continue
		}
		m, err := ast.ParseModuleWithOpts(f.path, string(f.data), popts)
		if err != nil {
			perrs = append(perrs, err.Error())
			continue
		}
		all[f.path] = m
		if !strings.HasSuffix(f.path, "_test.rego") {
			prod[f.path] = m
		}
	}
	if len(perrs) > 0 {
		return nil, fail("parse", perrs...)
	}
	if len(prod) == 0 {
		return nil, fail("read", "the bundle has no .rego policy files")
	}
	caps := capabilities()
	compiler := ast.NewCompiler().WithCapabilities(caps)
	compiler.Compile(prod)
	if compiler.Failed() {
		return nil, fail("compile", astErrors(compiler.Errors)...)
	}
	store := inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(false))

	if !o.SkipTests {
		res, err := runTests(ctx, all, inmem.NewFromObjectWithOpts(testData, inmem.OptRoundTripOnWrite(false)), caps)
		if err != nil {
			return nil, fail("test", err.Error())
		}
		b.Tests = res
		var failed []string
		for _, r := range res {
			if !r.Pass {
				msg := r.Name + " failed"
				if r.Error != "" {
					msg = r.Name + ": " + r.Error
				}
				if r.Location != "" {
					msg += " (" + r.Location + ")"
				}
				failed = append(failed, msg)
			}
		}
		if len(failed) > 0 {
			return nil, fail("test", failed...)
		}
	}

	pq, err := rego.New(
		rego.Query(Query),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.Capabilities(caps),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fail("compile", err.Error())
	}
	b.query = pq
	if len(compiler.GetRulesExact(ast.MustParseRef(Query))) == 0 {
		return nil, fail("check", "the bundle does not define "+Query+" (see policy/CONTRACT.md)")
	}
	return b, nil
}

func deepCopy(m map[string]any) (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(b, &out)
}

type bundleFile struct {
	path string
	data []byte
}

// readBundle returns the .rego files and data.json of fsys, sorted by
// path; hidden directories are skipped.
func readBundle(fsys fs.FS) ([]bundleFile, error) {
	var files []bundleFile
	total := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".rego") && path.Base(p) != "data.json" {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		if len(files) >= maxBundleFiles {
			return fmt.Errorf("more than %d files", maxBundleFiles)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		total += len(data)
		if total > maxBundleBytes {
			return fmt.Errorf("over %d bytes", maxBundleBytes)
		}
		files = append(files, bundleFile{path: p, data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, nil
}

// capabilities are OPA's builtins minus those that reach outside the
// process or read its environment.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	banned := map[string]bool{"http.send": true, "net.lookup_ip_addr": true, "opa.runtime": true}
	caps.Builtins = slices.DeleteFunc(slices.Clone(caps.Builtins), func(b *ast.Builtin) bool { return banned[b.Name] })
	return caps
}

func astErrors(errs ast.Errors) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func runTests(ctx context.Context, modules map[string]*ast.Module, store storage.Store, caps *ast.Capabilities) ([]TestResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ch, err := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithCapabilities(caps)).
		SetStore(store).
		SetTimeout(10*time.Second).
		RaiseBuiltinErrors(true).
		Run(ctx, modules)
	if err != nil {
		return nil, err
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{Name: strings.TrimPrefix(r.Package, "data.") + "." + r.Name, Pass: r.Pass(), Duration: r.Duration}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		if r.Location != nil {
			tr.Location = r.Location.String()
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Eval evaluates the decision query on input, the JSON bytes of the input
// document. Every failure — bad input, an evaluation error, a timeout, an
// undefined or mistyped result — is an error: the caller denies.
func (b *Bundle) Eval(ctx context.Context, input []byte) (*writ.PolicyResult, error) {
	v, err := parseInput(input)
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	rs, err := b.query.Eval(ctx, rego.EvalParsedInput(v))
	if err != nil {
		var te *topdown.Error
		if errors.As(err, &te) && te.Code == topdown.CancelErr || ctx.Err() != nil {
			// Not an answer of the policy: the evaluation ran out of time
			// (on a loaded machine, a slice of CPU too short) or the caller
			// went away. Overload is shed, never turned into a deny
			// (docs/design.md §4.4): the caller is told to retry.
			if parent.Err() != nil {
				return nil, fmt.Errorf("%w: %w", errCanceled, parent.Err())
			}
			return nil, &writ.Error{Kind: writ.KindUnavailable, Code: "policy_timeout", RetryAfter: time.Second,
				Message: fmt.Sprintf("the policy could not be evaluated within %v (the server is overloaded or the policy too slow); nothing was decided, retry shortly", b.timeout)}
		}
		return nil, fmt.Errorf("policy evaluation: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, errors.New("policy result is undefined: the bundle defines no " + Query + " for this input")
	}
	if len(rs) > 1 {
		return nil, errors.New("policy result is not unique")
	}
	res, err := parseResult(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, err
	}
	res.PolicyDigest = b.Digest
	res.DataDigest = b.DataDigest
	return res, nil
}

// parseResult checks the shape of data.writ.result strictly.
func parseResult(v any) (*writ.PolicyResult, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("policy result is mistyped: "+format, args...)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, bad("want an object, got %T", v)
	}
	for k := range m {
		switch k {
		case "deny", "approval", "allow", "obligations", "alerts":
		default:
			return nil, bad("unknown field %q", k)
		}
	}
	res := &writ.PolicyResult{}
	allow, ok := m["allow"].(bool)
	if !ok {
		return nil, bad("allow must be a boolean")
	}
	res.Allow = allow
	list := func(name string) ([]map[string]any, error) {
		raw, ok := m[name].([]any)
		if !ok {
			return nil, bad("%s must be a set or array", name)
		}
		out := make([]map[string]any, 0, len(raw))
		for _, x := range raw {
			o, ok := x.(map[string]any)
			if !ok {
				return nil, bad("%s holds %T, want objects", name, x)
			}
			out = append(out, o)
		}
		return out, nil
	}
	str := func(o map[string]any, field, of string) (string, error) {
		s, ok := o[field].(string)
		if !ok || s == "" {
			return "", bad("%s.%s must be a non-empty string", of, field)
		}
		return s, nil
	}
	denies, err := list("deny")
	if err != nil {
		return nil, err
	}
	for _, o := range denies {
		code, err := str(o, "code", "deny")
		if err != nil {
			return nil, err
		}
		msg, _ := o["message"].(string)
		res.Deny = append(res.Deny, writ.Reason{Code: code, Message: msg})
	}
	approvals, err := list("approval")
	if err != nil {
		return nil, err
	}
	for _, o := range approvals {
		code, err := str(o, "code", "approval")
		if err != nil {
			return nil, err
		}
		group, err := str(o, "group", "approval")
		if err != nil {
			return nil, err
		}
		n, ok := o["count"].(json.Number)
		cnt, cerr := n.Int64()
		if !ok || cerr != nil || cnt < 1 || cnt > 10 {
			return nil, bad("approval.count must be an integer from 1 to 10")
		}
		msg, _ := o["message"].(string)
		res.Approval = append(res.Approval, writ.ApprovalReason{Reason: writ.Reason{Code: code, Message: msg}, Group: group, Count: int(cnt)})
	}
	ob, ok := m["obligations"].(map[string]any)
	if !ok {
		return nil, bad("obligations must be an object")
	}
	for k := range ob {
		if k != "maxTTL" && k != "suspend" {
			return nil, bad("unknown obligation %q", k)
		}
	}
	if s, ok := ob["suspend"]; ok {
		b, ok := s.(bool)
		if !ok {
			return nil, bad("obligations.suspend must be a boolean")
		}
		res.Obligations.Suspend = b
	}
	if t, ok := ob["maxTTL"]; ok {
		s, ok := t.(string)
		d, err := time.ParseDuration(s)
		if !ok || err != nil || d <= 0 {
			return nil, bad("obligations.maxTTL must be a positive duration string such as \"5m\"")
		}
		res.Obligations.MaxTTL = writ.Duration(d)
	}
	if a, ok := m["alerts"]; ok {
		raw, ok := a.([]any)
		if !ok {
			return nil, bad("alerts must be a set of strings")
		}
		for _, x := range raw {
			s, ok := x.(string)
			if !ok {
				return nil, bad("alerts must be a set of strings")
			}
			res.Alerts = append(res.Alerts, s)
		}
	} else {
		return nil, bad("alerts is missing")
	}
	sortReasons(res)
	return res, nil
}

func sortReasons(r *writ.PolicyResult) {
	slices.SortFunc(r.Deny, func(a, b writ.Reason) int { return strings.Compare(a.Code, b.Code) })
	slices.SortFunc(r.Approval, func(a, b writ.ApprovalReason) int { return strings.Compare(a.Code, b.Code) })
	slices.Sort(r.Alerts)
}

// Engine holds the bundle in force and swaps it atomically on reload.
//
// At most GOMAXPROCS evaluations run at once; the others wait their turn
// before their timeout starts, so time spent waiting for a CPU never turns
// into a timed-out decision. A caller that waits longer than MaxQueue, or
// that finds MaxWaiting callers already waiting, is told the engine is
// overloaded (KindUnavailable, code "overloaded"), which is not a
// decision and is not recorded.
type Engine struct {
	cur        atomic.Pointer[Bundle]
	sem        chan struct{}
	waiting    atomic.Int64
	MaxQueue   time.Duration
	MaxWaiting int64
}

// NewEngine returns an engine deciding with b.
func NewEngine(b *Bundle) *Engine {
	e := &Engine{sem: make(chan struct{}, runtime.GOMAXPROCS(0)), MaxQueue: 2 * time.Second, MaxWaiting: 256}
	e.cur.Store(b)
	return e
}

// Bundle returns the bundle in force.
func (e *Engine) Bundle() *Bundle { return e.cur.Load() }

// Swap puts b in force and returns the previous bundle.
func (e *Engine) Swap(b *Bundle) *Bundle { return e.cur.Swap(b) }

// errCanceled is the error of an evaluation whose caller went away (a
// client that disconnected): not a decision, and not worth retrying.
var errCanceled = &writ.Error{Kind: writ.KindUnavailable, Code: "canceled", Message: "the request ended before the policy was evaluated"}

// Evaluate evaluates input with the bundle in force. An evaluation that
// does not finish within the bundle's timeout, or that waits longer than
// MaxQueue for a CPU, is KindUnavailable ("policy_timeout", "overloaded"):
// not a decision.
func (e *Engine) Evaluate(ctx context.Context, input []byte) (*writ.PolicyResult, error) {
	select {
	case e.sem <- struct{}{}:
		return e.eval(ctx, input)
	default:
	}
	if e.waiting.Add(1) > e.MaxWaiting {
		e.waiting.Add(-1)
		return nil, &writ.Error{Kind: writ.KindUnavailable, Code: "overloaded", RetryAfter: time.Second, Message: "the policy engine's queue is full; nothing was decided, retry shortly"}
	}
	defer e.waiting.Add(-1)
	t := time.NewTimer(e.MaxQueue)
	select {
	case e.sem <- struct{}{}:
		t.Stop()
	case <-t.C:
		return nil, &writ.Error{Kind: writ.KindUnavailable, Code: "overloaded", RetryAfter: time.Second, Message: "the policy engine is saturated; nothing was decided, retry shortly"}
	case <-ctx.Done():
		t.Stop()
		return nil, fmt.Errorf("%w: %w", errCanceled, ctx.Err())
	}
	return e.eval(ctx, input)
}

// eval evaluates input holding a slot of e.sem, which it frees.
func (e *Engine) eval(ctx context.Context, input []byte) (*writ.PolicyResult, error) {
	defer func() { <-e.sem }()
	b := e.cur.Load()
	res, err := b.Eval(ctx, input)
	if err != nil {
		return &writ.PolicyResult{PolicyDigest: b.Digest, DataDigest: b.DataDigest}, err
	}
	return res, nil
}

// Digest returns the content digest of the bundle files in fsys without
// compiling them, so a watcher can tell whether anything changed.
func Digest(fsys fs.FS) (string, error) {
	files, err := readBundle(fsys)
	if err != nil {
		return "", err
	}
	d, _ := manifest(files)
	return d, nil
}

// manifest returns the content digest of files — the SHA-256 of the lines
// "<sha256 hex>  <path>\n" sorted by path, as sha256sum prints them — and
// the files as a bundle lists them.
func manifest(files []bundleFile) (string, []File) {
	var m bytes.Buffer
	out := make([]File, 0, len(files))
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		h := hex.EncodeToString(sum[:])
		fmt.Fprintf(&m, "%s  %s\n", h, f.path)
		out = append(out, File{Path: f.path, SHA256: h, Test: strings.HasSuffix(f.path, "_test.rego")})
	}
	sum := sha256.Sum256(m.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:]), out
}

// Trace evaluates input like Eval and writes OPA's evaluation trace (each
// rule entered, each expression evaluated, with file:line) to w, for
// `writ policy eval --trace`.
func (b *Bundle) Trace(ctx context.Context, input []byte, w io.Writer) error {
	v, err := parseInput(input)
	if err != nil {
		return fmt.Errorf("policy input: %w", err)
	}
	buf := topdown.NewBufferTracer()
	if _, err := b.query.Eval(ctx, rego.EvalParsedInput(v), rego.EvalQueryTracer(buf)); err != nil {
		return err
	}
	topdown.PrettyTraceWithLocation(w, *buf)
	return nil
}
