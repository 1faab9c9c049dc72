package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// exchange is one request the client sent and the server's answer.
type exchange struct {
	method, path, query string
	status              int
	contentType         string
	body                []byte
}

// recorder is the transport of the clients of TestWireRoundTrip: it keeps
// every answer's exact bytes for the drift check.
type recorder struct {
	mu  sync.Mutex
	log []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.log = append(r.log, exchange{method: req.Method, path: req.URL.Path, query: req.URL.RawQuery, status: resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"), body: body})
	r.mu.Unlock()
	return resp, nil
}

// last returns the last recorded answer to method path.
func (r *recorder) last(t *testing.T, method, path string) exchange {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.log) - 1; i >= 0; i-- {
		if r.log[i].method == method && r.log[i].path == path {
			return r.log[i]
		}
	}
	t.Fatalf("no %s %s was sent", method, path)
	return exchange{}
}

// wireTypes is, for every route the Go client calls, the type its
// successful answer is on the wire (nil: not JSON). A route the client
// gains must be added here, or the drift check fails.
var wireTypes = map[string]func() any{
	"GET /readyz":                         func() any { return new(api.Status) },
	"POST /v1/runs":                       func() any { return new(api.StartedRun) },
	"GET /v1/runs":                        func() any { return new(api.RunList) },
	"GET /v1/runs/{id}":                   func() any { return new(api.RunView) },
	"POST /v1/runs/{id}/end":              func() any { return new(api.RunView) },
	"POST /v1/runs/{id}/suspend":          func() any { return new(api.RunView) },
	"POST /v1/runs/{id}/kill":             func() any { return new(api.RunView) },
	"POST /v1/runs/{id}/resume":           func() any { return new(api.RunView) },
	"POST /v1/runs/{id}/token":            func() any { return new(api.RunTokenResponse) },
	"POST /v1/runs/{id}/delegate":         func() any { return new(api.DelegateResponse) },
	"POST /v1/runs/{id}/heartbeat":        func() any { return new(api.HeartbeatResponse) },
	"GET /v1/runs/{id}/attestation":       nil, // a DSSE envelope, verified by package attest
	"POST /v1/runs/{id}/credentials":      func() any { return new(writ.IssuedCredential) },
	"GET /v1/runs/{id}/credentials":       func() any { return new(api.LeaseList) },
	"GET /v1/leases/{id}":                 func() any { return new(writ.Lease) },
	"POST /v1/leases/{id}/revoke":         func() any { return new(writ.Lease) },
	"GET /v1/secrets":                     func() any { return new(api.SecretList) },
	"PUT /v1/secrets/{env}/{name}":        func() any { return new(api.SecretPutResponse) },
	"DELETE /v1/secrets/{env}/{name}":     func() any { return new(api.SecretDeleteResponse) },
	"POST /v1/decide":                     func() any { return new(api.DecideResponse) },
	"POST /v1/decisions/{id}/outcome":     func() any { return new(api.OutcomeResponse) },
	"POST /v1/outcomes":                   func() any { return new(api.OutcomeResponse) },
	"GET /v1/approvals":                   func() any { return new(api.ApprovalList) },
	"GET /v1/approvals/{id}":              func() any { return new(api.ApprovalView) },
	"GET /v1/approvals/{id}/statement":    nil, // the bytes an approver signs
	"POST /v1/approvals/{id}/approve":     func() any { return new(writ.ApprovalRequest) },
	"POST /v1/tokens":                     func() any { return new(api.TokenResponse) },
	"POST /v1/keys/{kind}/rotate":         func() any { return new(api.RotateKeyResponse) },
	"GET /v1/audit/checkpoint":            nil, // a signed note
	"GET /v1/audit/key":                   func() any { return new(api.AuditKey) },
	"GET /v1/audit/checkpoints":           func() any { return new(api.AuditCheckpoints) },
	"GET /v1/audit/entries":               func() any { return new(api.AuditEntries) },
	"GET /v1/audit/proof/inclusion":       func() any { return new(api.InclusionResponse) },
	"GET /v1/audit/proof/consistency":     func() any { return new(api.ConsistencyResponse) },
	"GET /v1/trace/{id}":                  func() any { return new(api.Trace) },
	"GET /v1/trace/sha256:{digest}":       func() any { return new(api.ArtifactTrace) },
	"POST /v1/agents/{name}/disable":      func() any { return new(api.KillSwitchResponse) },
	"POST /v1/agents/{name}/enable":       func() any { return new(api.KillSwitchResponse) },
	"GET /v1/freeze":                      func() any { return new(api.KillSwitchResponse) },
	"POST /v1/freeze":                     func() any { return new(api.KillSwitchResponse) },
	"DELETE /v1/freeze":                   func() any { return new(api.KillSwitchResponse) },
	"POST /v1/mcp/{server}/accept":        func() any { return new(api.MCPAcceptResponse) },
	"GET /v1/attest/key":                  nil, // PEM
	"POST /v1/repos":                      func() any { return new(writ.RepoInfo) },
	"POST /v1/repos/{owner}/{repo}/merge": func() any { return new(writ.MergeResult) },
	"POST /v1/builds":                     func() any { return new(writ.BuildResult) },
	"POST /v1/releases":                   func() any { return new(writ.ReleaseResult) },
	"POST /v1/deployments":                func() any { return new(writ.DeploymentResult) },
	"POST /v1/approvals/{id}/deny":        func() any { return new(writ.ApprovalRequest) },
}

// notCalled are routes of the table this test does not reach: a denial
// (its answer is the approve route's type).
var notCalled = []string{"POST /v1/approvals/{id}/deny"}

// strictDecode decodes b into v, refusing a field v does not have.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// TestWireRoundTrip calls every method of the Go client against a real
// server (SQLite store, policy, broker, git gateway, builder, release
// gate) and checks what each decoded, then checks every answer the server
// sent: a successful JSON answer decodes into its package api (or root
// package) type, an error into api.ErrorBody, both refusing unknown
// fields — so a field the server adds that the shared type lacks fails
// here, not in a caller.
func TestWireRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server, git and builds")
	}
	a := startApprovals(t, buildRecipes)
	ctx := context.Background()
	rec := &recorder{}
	hc := &http.Client{Transport: rec, Timeout: time.Minute}
	human := a.human.WithHTTPClient(hc)
	bob := a.humans["bob"].c.WithHTTPClient(hc)
	url0 := a.r.url

	// --- public routes and tokens ---
	if err := client.New(url0, "").WithHTTPClient(hc).Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if s := strictJSON[api.Status](t, rec.last(t, "GET", "/readyz")); s.Status != "ready" {
		t.Errorf("readyz: %+v", s)
	}
	ht, err := human.CreateToken(ctx, "carol", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ht.Human != "carol" || ht.Token == "" || ht.ID == "" ||
		ht.ExpiresAt.Before(time.Now().Add(59*time.Minute)) || ht.ExpiresAt.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("CreateToken: %+v; want carol's token for an hour", ht)
	}
	if _, err := client.New(url0, ht.Token).WithHTTPClient(hc).ListRuns(ctx, writ.RunFilter{Limit: 1}); err != nil {
		t.Errorf("the new token does not authenticate: %v", err)
	}
	kid, err := human.RotateKey(ctx, "identity")
	if err != nil || kid == "" {
		t.Errorf("RotateKey: %q %v", kid, err)
	}
	pem, err := human.AttestKey(ctx)
	if err != nil || !bytes.Contains(pem, []byte("PUBLIC KEY")) {
		t.Errorf("AttestKey: %q %v", pem, err)
	}

	// --- a run: start, read, tokens, heartbeat ---
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	started, err := client.New(url0, "").WithHTTPClient(hc).StartRun(ctx, a.d.sign(t, time.Now(), nil), key)
	if err != nil {
		t.Fatal(err)
	}
	id := started.ID
	if _, err := writ.ParseRunID(string(id)); err != nil || started.State != writ.RunActive || started.Agent != "refactor-bot" ||
		started.SPIFFEID != delegSPIFFE("refactor-bot", id) || started.Token == "" || started.TokenType != "DPoP" ||
		!started.TokenExpiresAt.After(time.Now()) || started.Issuer != "dev" || len(started.Scope.Repos) == 0 {
		t.Fatalf("StartRun: %+v", started)
	}
	self := client.NewRun(url0, started.Token, key).WithHTTPClient(hc)
	got, err := human.GetRun(ctx, string(id))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.SPIFFEID != started.SPIFFEID || got.ScopeDigest != started.ScopeDigest || got.Token != "" || !got.TokenExpiresAt.IsZero() {
		t.Errorf("GetRun: %+v; want the started run without a token", got)
	}
	list, err := human.ListRuns(ctx, writ.RunFilter{Agent: "refactor-bot", State: writ.RunActive})
	if err != nil || !slices.ContainsFunc(list, func(r client.Run) bool { return r.ID == id && r.SPIFFEID == started.SPIFFEID }) {
		t.Errorf("ListRuns: %v %v; want %s in it", list, err, id)
	}
	mt, err := self.MintToken(ctx, string(id), "", true)
	if err != nil || mt.Token == "" || mt.TokenType != "DPoP" || mt.Audience == "" || !mt.ExpiresAt.After(time.Now()) {
		t.Errorf("MintToken: %+v %v; want a DPoP-bound API token", mt, err)
	}
	hb, err := self.Heartbeat(ctx, string(id))
	if err != nil || hb.Run != id || hb.State != writ.RunActive || hb.Interval.D() != 10*time.Second || hb.Missed != 3 || hb.At.IsZero() {
		t.Errorf("Heartbeat: %+v %v", hb, err)
	}

	// --- decisions and outcomes ---
	dec, err := self.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: "read"}, Via: "hook:wire", CallRef: "call-1"})
	if err != nil || dec.Decision != writ.VerdictAllow || !strings.HasPrefix(dec.ID, "dec_") || dec.RunState != writ.RunActive ||
		dec.PolicyDigest != a.r.srv.PolicyDigest() || !strings.HasPrefix(dec.InputDigest, "sha256:") || dec.DryRun {
		t.Fatalf("Decide: %+v %v", dec, err)
	}
	exit := 0
	if err := self.ReportOutcome(ctx, dec.ID, &client.Outcome{ExitCode: &exit, DurationMS: 12}); err != nil {
		t.Fatal(err)
	}
	if o := strictJSON[api.OutcomeResponse](t, rec.last(t, "POST", "/v1/decisions/"+dec.ID+"/outcome")); o.Decision != dec.ID || o.Outcome == nil ||
		o.Outcome.DurationMS != 12 || o.Outcome.ExitCode == nil || *o.Outcome.ExitCode != 0 {
		t.Errorf("decision outcome answer: %+v", o)
	}
	dec2, err := self.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: "read"}, Via: "hook:wire", CallRef: "call-2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := self.ReportOutcome(ctx, "", &client.Outcome{Via: "hook:wire", CallRef: "call-2", DurationMS: 5, Error: "exit 2"}); err != nil {
		t.Fatalf("outcome by call ref: %v", err)
	}
	if o := strictJSON[api.OutcomeResponse](t, rec.last(t, "POST", "/v1/outcomes")); o.Decision != dec2.ID || o.Outcome == nil || o.Outcome.Error != "exit 2" || o.Outcome.ExitCode != nil {
		t.Errorf("call outcome answer: %+v", o)
	}
	dry, err := human.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionEgress, Name: "evil.example.com:443"}, DryRun: true, Run: string(id)})
	if err != nil || dry.Decision != writ.VerdictDeny || !hasCode(dry.Reasons, "host_not_in_scope") || !dry.DryRun || dry.RunState != writ.RunActive {
		t.Errorf("a human's dry run: %+v %v; want deny host_not_in_scope", dry, err)
	}

	// --- delegation ---
	ckey, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := token.Thumbprint(&ckey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dreq := delegReview(delegReviewScope())
	dreq.DPoPJKT, dreq.Audience, dreq.RequestedTokenType = jkt, "", api.TokenTypeJWT
	child, err := self.Delegate(ctx, string(id), &dreq)
	if err != nil {
		t.Fatal(err)
	}
	if child.IssuedTokenType != api.TokenTypeJWT || child.TokenType != "DPoP" || child.AccessToken == "" || child.ExpiresIn <= 0 ||
		child.Run.Parent != id || child.Run.Agent != "review-bot" || child.Run.Profile != "review" || child.Run.Depth != 1 ||
		child.Run.SPIFFEID != delegSPIFFE("review-bot", child.Run.ID) || child.Run.Task != "review the rename" ||
		!slices.Equal(child.Run.Scope.Tools, []string{"read"}) {
		t.Errorf("Delegate: %+v", child)
	}
	kidC := client.NewRun(url0, child.AccessToken, ckey).WithHTTPClient(hc)
	if r, err := kidC.Transition(ctx, string(child.Run.ID), "end", "reviewed"); err != nil || r.State != writ.RunEnded || r.EndReason != "reviewed" || r.ID != child.Run.ID {
		t.Errorf("the child ends itself: %+v %v", r, err)
	}

	// --- a secret behind an approval: secrets, approvals, credentials, leases ---
	if v, err := human.PutSecret(ctx, "staging", "deploy-key", []byte("s3cret")); err != nil || v != 1 {
		t.Fatalf("PutSecret: %d %v", v, err)
	}
	if s := strictJSON[api.SecretPutResponse](t, rec.last(t, "PUT", "/v1/secrets/staging/deploy-key")); s.Secret != "staging/deploy-key" || s.Version != 1 {
		t.Errorf("PutSecret answer: %+v", s)
	}
	if v, err := human.PutSecret(ctx, "staging", "old-key", []byte("x")); err != nil || v != 1 {
		t.Fatalf("PutSecret: %d %v", v, err)
	}
	secrets, err := human.ListSecrets(ctx)
	if err != nil || !slices.ContainsFunc(secrets, func(s *writ.Secret) bool {
		return s.Environment == "staging" && s.Name == "deploy-key" && s.Version == 1 && s.UpdatedBy != ""
	}) {
		t.Errorf("ListSecrets: %+v %v", secrets, err)
	}
	if err := human.DeleteSecret(ctx, "staging", "old-key"); err != nil {
		t.Fatal(err)
	}
	if s := strictJSON[api.SecretDeleteResponse](t, rec.last(t, "DELETE", "/v1/secrets/staging/old-key")); s.Secret != "staging/old-key" || !s.Deleted {
		t.Errorf("DeleteSecret answer: %+v", s)
	}
	sc, sid := a.run(secretRun)
	sc = sc.WithHTTPClient(hc)
	creq := &writ.CredentialRequest{Kind: "secret", Target: "staging/deploy-key"}
	_, err = sc.RequestCredential(ctx, string(sid), creq)
	apr := pendingApproval(t, "the secret", err)
	if we := err.(*writ.Error); we.Code != "approval_required" || we.Decision == "" || we.Message == "" {
		t.Errorf("the approval error: %+v", we)
	}
	pending, err := human.ListApprovals(ctx, writ.ApprovalFilter{State: writ.ApprovalPending, Run: sid})
	if err != nil || len(pending) != 1 || pending[0].ID != apr || pending[0].Run != sid {
		t.Errorf("ListApprovals: %+v %v; want %s", pending, err, apr)
	}
	view, err := human.GetApproval(ctx, apr)
	if err != nil {
		t.Fatal(err)
	}
	if view.ID != apr || view.State != writ.ApprovalPending || view.RunInfo == nil || view.RunInfo.ID != sid || view.RunInfo.Agent != "release-bot" ||
		view.Risk.Profile != "release" || view.Risk.Environment != "staging" || view.Risk.Secret != "deploy-key" && view.Risk.Secret != "staging/deploy-key" ||
		!slices.Contains(view.Risk.Reasons, "secret_requires_approval") || view.Action == nil || view.Action.Kind != writ.ActionCredential {
		t.Errorf("GetApproval: %+v (run %+v, risk %+v, action %+v)", view, view.RunInfo, view.Risk, view.Action)
	}
	stmt, err := bob.ApprovalStatement(ctx, apr, "approve")
	if err != nil || !bytes.Contains(stmt, []byte(apr)) {
		t.Errorf("ApprovalStatement: %s %v", stmt, err)
	}
	ok, err := a.approve("bob", apr) // signs through bob's own (unrecorded) client
	if err != nil || ok.State != writ.ApprovalApproved {
		t.Fatalf("approve: %+v %v", ok, err)
	}
	issued, err := sc.RequestCredential(ctx, string(sid), creq)
	if err != nil {
		t.Fatal(err)
	}
	if issued.Lease == nil || issued.Lease.Run != sid || issued.Lease.Kind != "secret" || issued.Lease.State != writ.LeaseActive || issued.Credential["value"] != "s3cret" {
		t.Fatalf("RequestCredential: %+v", issued)
	}
	leases, err := human.ListLeases(ctx, string(sid), writ.LeaseActive)
	if err != nil || len(leases) != 1 || leases[0].ID != issued.Lease.ID {
		t.Errorf("ListLeases: %+v %v", leases, err)
	}
	if l, err := sc.GetLease(ctx, issued.Lease.ID); err != nil || l.ID != issued.Lease.ID || l.Target != "staging/deploy-key" {
		t.Errorf("GetLease: %+v %v", l, err)
	}
	if l, err := sc.RevokeLease(ctx, issued.Lease.ID); err != nil || l.ID != issued.Lease.ID || l.State != writ.LeaseRevoked && l.State != writ.LeaseActive {
		t.Errorf("RevokeLease: %+v %v", l, err)
	}

	// --- git, merge, build, release, deployment, the artifact's trace ---
	if info, err := human.AddRepo(ctx, &writ.RepoAddRequest{Name: "acme/wire", Upstream: seedUpstream(t, t.TempDir(), map[string][]byte{"a": []byte("a\n")})}); err != nil ||
		info.Name != "acme/wire" || info.URL != url0+"/git/acme/wire.git" || info.Head == "" {
		t.Errorf("AddRepo: %+v %v", info, err)
	}
	g := newGitRun(t, a.policyRig, map[string][]byte{"src/a.go": []byte("package src\n")})
	head := g.commit("src/b.go", "package src\n// b\n")
	g.push()
	_, err = human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	mapr := pendingApproval(t, "merge", err)
	if _, err := bob.SubmitApproval(ctx, mapr, "approve", a.sign(a.humans["bob"], a.humans["bob"].key, mapr, "approve")); err != nil {
		t.Fatal(err)
	}
	m, err := human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	if err != nil || m.Repo != "acme/api" || m.Head != head || m.Into == "" || m.Branch == "" || m.Decision == "" {
		t.Fatalf("Merge: %+v %v", m, err)
	}
	b, err := g.runC.WithHTTPClient(hc).Build(ctx, &writ.BuildRequest{Run: g.run, Recipe: "app"})
	want := sha256.Sum256([]byte("package src\npackage src\n// b\n"))
	digest := "sha256:" + hex.EncodeToString(want[:])
	if err != nil || b.State != writ.BuildSucceeded || b.Commit != head || len(b.Outputs) != 1 || b.Outputs[0].Digest != digest || len(b.Provenance) == 0 {
		t.Fatalf("Build: %+v %v", b, err)
	}
	rc, rel := a.run(releaseRun)
	rc = rc.WithHTTPClient(hc)
	rreq := &writ.ReleaseRequest{Run: rel, Artifact: digest, Environment: "staging"}
	_, err = rc.Release(ctx, rreq)
	rapr := pendingApproval(t, "release", err)
	if _, err := a.approve("bob", rapr); err != nil {
		t.Fatal(err)
	}
	r, err := rc.Release(ctx, rreq)
	if err != nil || r.Approval != rapr || r.Commit != head || len(r.Attestation) == 0 {
		t.Fatalf("Release: %+v %v", r, err)
	}
	p, _ := json.Marshal(writ.DeploymentReport{ID: writ.NewULID(time.Now(), nil), Environment: "staging", Artifact: digest, Result: "succeeded",
		Pipeline: "ci#7", ReportedAt: time.Now()})
	env, err := trigger.SignDSSE(p, writ.DeploymentPayloadType, ciKey)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := client.New(url0, "").WithHTTPClient(hc).ReportDeployment(ctx, env)
	if err != nil || !dep.Released || dep.Alert || dep.Reporter != "ci" {
		t.Errorf("ReportDeployment: %+v %v", dep, err)
	}
	at, err := human.ArtifactTrace(ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, tr := range at.Runs {
		roles = append(roles, string(tr.Run.ID)+" "+tr.Role)
	}
	if at.Artifact != digest || strings.Join(roles, ",") != string(g.run)+" built,"+string(rel)+" released" || len(at.Events) != 3 ||
		at.Runs[0].Run.SPIFFEID == "" || !slices.ContainsFunc(at.Runs[0].Events, func(e client.TraceEvent) bool { return e.Type == "merge" }) {
		t.Errorf("ArtifactTrace: %+v", at)
	}

	// --- MCP: none configured, so the answer is an error; it round-trips too ---
	if _, err := human.AcceptMCP(ctx, "docs"); writ.ErrorKind(err) != writ.KindNotFound || writ.ErrorCode(err) != "unknown_mcp_server" {
		t.Errorf("AcceptMCP of an unknown server: %v", err)
	}

	// --- kill switches and transitions ---
	if k, err := human.DisableAgent(ctx, "docs-bot", "wire test"); err != nil || k.Agent != "docs-bot" || !k.Disabled || !k.Changed {
		t.Errorf("DisableAgent: %+v %v", k, err)
	}
	if k, err := human.EnableAgent(ctx, "docs-bot"); err != nil || k.Agent != "docs-bot" || k.Disabled || !k.Changed {
		t.Errorf("EnableAgent: %+v %v", k, err)
	}
	if k, err := human.Freeze(ctx, "wire test"); err != nil || !k.Frozen || !k.Changed || !slices.Contains(k.Suspended, id) {
		t.Errorf("Freeze: %+v %v; want %s suspended", k, err, id)
	}
	if k, err := human.FreezeState(ctx); err != nil || !k.Frozen || k.State == nil || !k.State.Frozen {
		t.Errorf("FreezeState: %+v %v", k, err)
	}
	if k, err := human.Unfreeze(ctx); err != nil || k.Frozen || !k.Changed || !slices.Contains(k.Resumed, id) {
		t.Errorf("Unfreeze: %+v %v; want %s resumed", k, err, id)
	}
	for _, step := range []struct {
		verb  string
		state writ.RunState
	}{{"suspend", writ.RunSuspended}, {"resume", writ.RunActive}, {"kill", writ.RunKilled}} {
		r, err := human.Transition(ctx, string(id), step.verb, "wire "+step.verb)
		if err != nil || r.ID != id || r.State != step.state || r.SPIFFEID != started.SPIFFEID {
			t.Errorf("%s: %+v %v; want %s", step.verb, r, err, step.state)
		}
	}
	if r, err := human.Transition(ctx, string(id), "resume", ""); writ.ErrorKind(err) != writ.KindConflict || r.ID != "" {
		t.Errorf("resuming a killed run: %+v %v; want a conflict", r, err)
	}

	// --- the audit log and the run's trace and attestation ---
	if k, err := human.AuditKey(ctx); err != nil || !strings.HasPrefix(k, a.d.cfg.TrustDomain+"/audit+") {
		t.Errorf("AuditKey: %q %v", k, err)
	}
	if k := strictJSON[api.AuditKey](t, rec.last(t, "GET", "/v1/audit/key")); k.Origin != a.d.cfg.TrustDomain+"/audit" {
		t.Errorf("audit key origin: %+v", k)
	}
	note, err := human.AuditCheckpoint(ctx, 3)
	if err != nil || !bytes.HasPrefix(note, []byte(a.d.cfg.TrustDomain+"/audit\n")) {
		t.Errorf("AuditCheckpoint: %q %v", note, err)
	}
	if cps, err := human.AuditCheckpoints(ctx, 5); err != nil || len(cps) == 0 || !strings.HasPrefix(cps[0], a.d.cfg.TrustDomain+"/audit\n") {
		t.Errorf("AuditCheckpoints: %q %v", cps, err)
	}
	es, err := human.AuditEntries(ctx, 0, 3)
	if err != nil || len(es) != 3 {
		t.Fatalf("AuditEntries: %+v %v", es, err)
	}
	for i, e := range es {
		leaf := sha256.Sum256(append([]byte{0}, e.Body...))
		if e.Seq != int64(i) || e.ID == "" || e.Type == "" || e.LeafHash != hex.EncodeToString(leaf[:]) {
			t.Errorf("entry %d: %+v; want its leaf hash over its exact bytes", i, e)
		}
	}
	tr, err := human.Trace(ctx, string(id))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range tr.Events {
		types = append(types, e.Type)
	}
	if tr.Run.ID != id || tr.Run.SPIFFEID != started.SPIFFEID || tr.Run.State != writ.RunKilled ||
		!slices.Contains(types, writ.EventRunStarted) || !slices.Contains(types, writ.EventRunKilled) || !slices.Contains(types, writ.EventDecision) || !slices.Contains(types, writ.EventDecisionOutcome) {
		t.Errorf("Trace: run %+v, events %v", tr.Run, types)
	}
	// The proof routes have no client method: read them with the recorded
	// transport, so their types are checked as well.
	getJSON(t, hc, url0+"/v1/audit/proof/inclusion?wait=1&event="+url.QueryEscape(tr.Events[0].ID), a.d.env.Token)
	getJSON(t, hc, url0+"/v1/audit/proof/consistency?from=1", a.d.env.Token)
	if ir := strictJSON[api.InclusionResponse](t, rec.last(t, "GET", "/v1/audit/proof/inclusion")); ir.Entry.ID != tr.Events[0].ID || ir.Size <= ir.Index || len(ir.Checkpoint) == 0 {
		t.Errorf("inclusion proof: %+v", ir)
	}
	if cp := strictJSON[api.ConsistencyResponse](t, rec.last(t, "GET", "/v1/audit/proof/consistency")); cp.From != 1 || cp.To < cp.From {
		t.Errorf("consistency proof: %+v", cp)
	}
	var envelope []byte
	poll(t, "the killed run's attestation", func() bool {
		envelope, err = human.RunAttestation(ctx, string(id))
		if writ.ErrorCode(err) == "not_yet_attested" {
			return false
		}
		return true
	})
	if err != nil || !bytes.Contains(envelope, []byte(`"payloadType"`)) {
		t.Errorf("RunAttestation: %s %v", envelope, err)
	}

	checkWire(t, rec)
}

// strictJSON decodes an exchange's body strictly into a T.
func strictJSON[T any](t *testing.T, e exchange) T {
	t.Helper()
	var v T
	if err := strictDecode(e.body, &v); err != nil {
		t.Errorf("%s %s: %v in %s", e.method, e.path, err, e.body)
	}
	return v
}

// getJSON GETs u as human tok with hc (the recorder).
func getJSON(t *testing.T, hc *http.Client, u, tok string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
}

// checkWire checks every recorded answer against wireTypes, and that
// every route of the table was called.
func checkWire(t *testing.T, rec *recorder) {
	t.Helper()
	mux := http.NewServeMux()
	for pattern := range wireTypes {
		if strings.Contains(pattern, "sha256:") {
			continue // matched by hand below: a mux wildcard is a whole segment
		}
		mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	}
	seen := map[string]bool{}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.log {
		req := &http.Request{Method: e.method, URL: &url.URL{Path: e.path}}
		_, pattern := mux.Handler(req)
		if e.method == http.MethodGet && strings.HasPrefix(e.path, "/v1/trace/sha256:") {
			pattern = "GET /v1/trace/sha256:{digest}"
		}
		newType, known := wireTypes[pattern]
		if !known {
			t.Errorf("%s %s (%d): a route the wire table does not list", e.method, e.path, e.status)
			continue
		}
		seen[pattern] = true
		mt, _, _ := mime.ParseMediaType(e.contentType)
		switch {
		case e.status >= 300:
			if mt != "application/json" {
				t.Errorf("%s %s: error %d is %q, not JSON", e.method, e.path, e.status, e.contentType)
				continue
			}
			var eb api.ErrorBody
			if err := strictDecode(e.body, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Errorf("%s %s: error %d %s does not decode into api.ErrorBody: %v", e.method, e.path, e.status, e.body, err)
			}
		case newType == nil:
			if mt == "application/json" && !strings.Contains(e.path, "/attestation") {
				t.Errorf("%s %s: a JSON answer on a route the table lists as not JSON", e.method, e.path)
			}
		default:
			if mt != "application/json" {
				t.Errorf("%s %s: answer is %q, not JSON", e.method, e.path, e.contentType)
			}
			if err := strictDecode(e.body, newType()); err != nil {
				t.Errorf("%s %s: the answer has drifted from %T: %v\n%s", e.method, e.path, newType(), err, e.body)
			}
		}
	}
	for pattern := range wireTypes {
		if !seen[pattern] && !slices.Contains(notCalled, pattern) {
			t.Errorf("%s: no call reached it; the round trip does not cover it", pattern)
		}
	}
}
