package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/trigger"
)

// buildRecipes are the recipes of the release tests: one that builds the
// checkout's sources into out/app, one that fails. These run without the
// Landlock sandbox (server tests have no sandbox helper);
// cmd/writ's TestBuildSandbox runs recipes under it.
func buildRecipes(cfg *server.Config) {
	cfg.Signers = append(cfg.Signers, server.SignerConfig{Signer: writ.Signer{Name: "ci", Kind: writ.SignerSystem}, Keys: []string{ciKeyPEM}})
	cfg.Deployments.Reporters = []string{"ci"}
	cfg.Builds = server.BuildsConfig{UnsandboxedUnsafe: true, Recipes: []builder.Recipe{
		{Name: "app", Command: []string{"sh", "-c", "mkdir -p out && cat src/*.go > out/app"}, Outputs: []string{"out/app"}},
		{Name: "broken", Command: []string{"sh", "-c", "echo compile error >&2; exit 3"}, Outputs: []string{"out/app"}},
		{Name: "escape", Command: []string{"sh", "-c", "mkdir -p out && ln -s /etc/passwd out/app"}, Outputs: []string{"out/app"}},
		{Name: "escape-dir", Command: []string{"sh", "-c", "echo hi > \"$TMPDIR/app\" && ln -s \"$TMPDIR\" out"}, Outputs: []string{"out/app"}},
	}}
}

// mergeApproved merges the run's pushed work with bob's approval.
func mergeApproved(t *testing.T, a *approvalRig, run writ.RunID) {
	t.Helper()
	ctx := context.Background()
	_, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: run})
	we, ok := err.(*writ.Error)
	if !ok || we.Kind != writ.KindApprovalPending {
		t.Fatalf("merge: %v; want a pending approval", err)
	}
	if _, err := a.approve("bob", we.Approval); err != nil {
		t.Fatal(err)
	}
	if _, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: run}); err != nil {
		t.Fatal(err)
	}
}

// pendingApproval asserts err is a pending approval and returns its id.
func pendingApproval(t *testing.T, what string, err error) string {
	t.Helper()
	we, ok := err.(*writ.Error)
	if !ok || we.Kind != writ.KindApprovalPending || we.Approval == "" {
		t.Fatalf("%s: %v; want a pending approval", what, err)
	}
	return we.Approval
}

// TestBuildAndRelease: writ's builder builds only a merged, approved
// commit and signs SLSA provenance for it; the release gate releases only
// such an artifact, only with an approval of that digest for that
// environment; and it refuses an artifact a run built itself, an
// approval for another environment, an approval of a digest since
// rebuilt, and provenance whose source commit was never merged.
func TestBuildAndRelease(t *testing.T) {
	a := startApprovals(t, buildRecipes)
	ctx := context.Background()
	g := newGitRun(t, a.policyRig, map[string][]byte{"src/a.go": []byte("package src\n")})
	head := g.commit("src/b.go", "package src\n// b\n")
	g.push()

	// Pushed, not merged: nothing to build.
	if _, err := a.human.Build(ctx, &writ.BuildRequest{Run: g.run, Recipe: "app"}); writ.ErrorKind(err) != writ.KindConflict || !strings.Contains(err.Error(), "no approved merge") {
		t.Fatalf("build before the merge: %v; want not_merged", err)
	}
	mergeApproved(t, a, g.run)
	if _, err := a.human.Build(ctx, &writ.BuildRequest{Run: g.run, Recipe: "nope"}); writ.ErrorKind(err) != writ.KindNotFound {
		t.Errorf("unknown recipe: %v", err)
	}
	b, err := g.runC.Build(ctx, &writ.BuildRequest{Run: g.run, Recipe: "app"})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("package src\npackage src\n// b\n"))
	digest := "sha256:" + hex.EncodeToString(want[:])
	if b.State != writ.BuildSucceeded || b.Commit != head || len(b.Outputs) != 1 || b.Outputs[0].Digest != digest {
		t.Fatalf("build %+v; want out/app = %s built from %s", b, digest, head)
	}
	pub := a.attestKey(t)
	builderID := "spiffe://" + a.d.cfg.TrustDomain + "/writ/builder/v1"
	st, prov, err := attest.VerifyProvenance(b.Provenance, pub, builderID)
	if err != nil {
		t.Fatal(err)
	}
	bd := prov.BuildDefinition
	if !st.HasSubject("sha256", digest[7:]) || bd.ExternalParameters.Source.Commit != head || bd.ExternalParameters.Recipe.Name != "app" ||
		bd.InternalParameters.Run != string(g.run) || bd.InternalParameters.TriggerDigest == "" || bd.InternalParameters.PolicyDigest == "" ||
		bd.InternalParameters.MergeApproval == "" || len(bd.ResolvedDependencies) != 1 || bd.ResolvedDependencies[0].Digest[attest.DigestGitCommit] != head {
		t.Errorf("provenance %+v / %+v", st.Subject, prov)
	}
	// A failed build is recorded as failed, with no provenance; an output
	// that is a symlink, or under a symlinked directory (to anything writ
	// can read), fails the build.
	for _, r := range []string{"broken", "escape", "escape-dir"} {
		f, err := a.human.Build(ctx, &writ.BuildRequest{Run: g.run, Recipe: r})
		if err != nil || f.State != writ.BuildFailed || f.Provenance != nil || len(f.Outputs) != 0 {
			t.Errorf("recipe %s: %+v, %v; want a failed build", r, f, err)
		}
	}

	rc, rel := a.run(releaseRun)
	release := func(digest, env string) (*writ.ReleaseResult, error) {
		return rc.Release(ctx, &writ.ReleaseRequest{Run: rel, Artifact: digest, Environment: env})
	}
	// A run's own build: no provenance from writ's builder.
	own := sha256.Sum256([]byte("what the agent built with writ exec"))
	if _, err := release("sha256:"+hex.EncodeToString(own[:]), "staging"); writ.ErrorKind(err) != writ.KindDenied || !strings.Contains(err.Error(), "agent-asserted") {
		t.Errorf("releasing a self-built artifact: %v; want no_provenance", err)
	}
	// Staging: one approval of this digest for staging.
	apr := pendingApproval(t, "release to staging", func() error { _, err := release(digest, "staging"); return err }())
	if _, err := a.approve("bob", apr); err != nil {
		t.Fatal(err)
	}
	r, err := release(digest, "staging")
	if err != nil {
		t.Fatal(err)
	}
	rst, _, err := attest.Verify(r.Attestation, pub)
	if err != nil || rst.PredicateType != attest.PredicateRelease || !rst.HasSubject("sha256", digest[7:]) || r.Commit != head || r.Approval != apr {
		t.Errorf("release %+v: %v", r, err)
	}
	// Approved for staging, released to production: production needs its
	// own approval (two approvers: it is sensitive).
	prodApr := pendingApproval(t, "release to production", func() error { _, err := release(digest, "production"); return err }())
	if prodApr == apr {
		t.Error("the staging approval was offered for production")
	}
	if _, err := a.approve("bob", prodApr); err != nil {
		t.Fatal(err)
	}
	pendingApproval(t, "release to production with one of two approvals", func() error { _, err := release(digest, "production"); return err }())

	// Rebuilt with another digest after approval: the new digest needs its
	// own approval.
	g.commit("src/c.go", "package src\n// c\n")
	g.push()
	mergeApproved(t, a, g.run)
	b2, err := a.human.Build(ctx, &writ.BuildRequest{Run: g.run, Recipe: "app"})
	if err != nil || b2.State != writ.BuildSucceeded || b2.Outputs[0].Digest == digest {
		t.Fatalf("rebuild: %+v, %v", b2, err)
	}
	pendingApproval(t, "release of the rebuilt digest", func() error { _, err := release(b2.Outputs[0].Digest, "staging"); return err }())

	// Provenance (signed by writ's own key) whose source commit was pushed
	// but never merged: the gate re-reads the merge from the log.
	keys, err := server.LoadKeys(a.d.cfg.Keys)
	if err != nil {
		t.Fatal(err)
	}
	var pushEvent string
	for _, e := range storeEvents(t, a.r.srv.Store()) {
		if e.Type == "git.pushed" && e.Run == g.run {
			pushEvent = e.ID
		}
	}
	fake := sha256.Sum256([]byte("built from an unmerged commit"))
	fakeDigest := "sha256:" + hex.EncodeToString(fake[:])
	p := *prov
	p.BuildDefinition.InternalParameters.MergeEvent = pushEvent
	env, err := attest.Sign(&attest.Statement{Subject: []attest.Subject{{Name: "out/app", Digest: map[string]string{"sha256": fakeDigest[7:]}}},
		PredicateType: attest.PredicateSLSAProvenance, Predicate: p}, keys.Attest)
	if err != nil {
		t.Fatal(err)
	}
	ev := &writ.Event{Type: writ.EventBuild, Run: g.run, Actor: "writ", Details: map[string]any{"state": "succeeded", "provenance": json.RawMessage(env)}}
	if err := a.r.srv.Store().AppendArtifactEvent(ctx, ev, writ.ArtifactRef{Digest: fakeDigest, Kind: writ.EventBuild}); err != nil {
		t.Fatal(err)
	}
	if _, err := release(fakeDigest, "staging"); writ.ErrorKind(err) != writ.KindDenied || !strings.Contains(err.Error(), "approved merge") {
		t.Errorf("releasing an artifact of an unmerged commit: %v; want source_not_merged", err)
	}
	// A build record whose provenance another key signed.
	other := *ev
	other.ID = ""
	forged, _ := attest.Sign(&attest.Statement{Subject: []attest.Subject{{Name: "out/app", Digest: map[string]string{"sha256": fakeDigest[7:]}}},
		PredicateType: attest.PredicateSLSAProvenance, Predicate: *prov}, keys.Identity)
	other.Details = map[string]any{"state": "succeeded", "provenance": json.RawMessage(forged)}
	forgedDigest := fakeDigest
	if err := a.r.srv.Store().AppendArtifactEvent(ctx, &other, writ.ArtifactRef{Digest: forgedDigest, Kind: writ.EventBuild}); err != nil {
		t.Fatal(err)
	}
	if _, err := release(forgedDigest, "staging"); writ.ErrorKind(err) != writ.KindDenied {
		t.Errorf("releasing with forged provenance: %v; want denied", err)
	}

	// CI reports deployments, signed with its system key.
	report := func(key *ecdsa.PrivateKey, digest, env string) ([]byte, error) {
		p, _ := json.Marshal(writ.DeploymentReport{ID: writ.NewULID(time.Now(), nil), Environment: env, Artifact: digest, Result: "succeeded",
			Pipeline: "ci#42", ReportedAt: time.Now()})
		return trigger.SignDSSE(p, writ.DeploymentPayloadType, key)
	}
	env, _ = report(ciKey, digest, "staging")
	dep, err := a.human.ReportDeployment(ctx, env)
	if err != nil || !dep.Released || dep.Alert || dep.Reporter != "ci" {
		t.Fatalf("deployment of a released artifact: %+v, %v", dep, err)
	}
	if _, err := a.human.ReportDeployment(ctx, env); writ.ErrorKind(err) != writ.KindConflict {
		t.Errorf("a replayed report: %v; want a conflict", err)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forgedReport, _ := report(stranger, digest, "staging")
	if _, err := a.human.ReportDeployment(ctx, forgedReport); err == nil {
		t.Error("a report signed by an unknown key was accepted")
	}
	env, _ = report(ciKey, digest, "production")
	dep, err = a.human.ReportDeployment(ctx, env)
	if err != nil || dep.Released || !dep.Alert {
		t.Fatalf("deployment of an artifact never released to production: %+v, %v; want an alert", dep, err)
	}

	// The artifact's chain, from ticket to deployment, in one call.
	tr, err := a.human.ArtifactTrace(ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	var roles, types []string
	for _, r := range tr.Runs {
		roles = append(roles, string(r.Run.ID)+" "+r.Role)
	}
	for _, e := range tr.Events {
		types = append(types, e.Type)
	}
	if strings.Join(roles, ",") != string(g.run)+" built,"+string(rel)+" released" ||
		strings.Join(types, ",") != "build,release,deployment,deployment,alert" {
		t.Errorf("artifact trace: runs %v, events %v", roles, types)
	}
	if len(tr.Runs) > 0 && (tr.Runs[0].Run.Ticket.ID == "" || !slices.ContainsFunc(tr.Runs[0].Events, func(e client.TraceEvent) bool { return e.Type == "merge" })) {
		t.Errorf("the building run's timeline lacks its ticket or merge")
	}
}

var ciKey, ciKeyPEM = func() (*ecdsa.PrivateKey, string) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}()
