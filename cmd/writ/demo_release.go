package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/launch"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// demoRelease holds what the release part of the demo adds to the dev
// config: a second maintainer who approves, and CI's deployment key.
type demoRelease struct {
	erinKey ed25519.PrivateKey
	ciKey   *ecdsa.PrivateKey
}

// demoReleaseConfig adds to cfg a maintainer (erin) who approves, a build
// recipe, and CI as a deployment reporter. Without git it adds nothing.
func demoReleaseConfig(cfg *server.Config) (*demoRelease, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, nil
	}
	_, erin, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := ssh.NewPublicKey(erin.Public())
	if err != nil {
		return nil, err
	}
	ci, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&ci.PublicKey)
	if err != nil {
		return nil, err
	}
	cfg.Signers = append(cfg.Signers,
		server.SignerConfig{Signer: writ.Signer{Name: "erin", Kind: writ.SignerHuman, Groups: []string{"maintainers"}},
			Keys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))}},
		server.SignerConfig{Signer: writ.Signer{Name: "ci", Kind: writ.SignerSystem},
			Keys: []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}})
	cfg.Builds.Recipes = []builder.Recipe{{Name: "app", Command: []string{"sh", "-c", "mkdir -p out && cat src/*.go > out/app"}, Outputs: []string{"out/app"}}}
	// The recipe runs under the Landlock sandbox; on a kernel without it
	// the demo says so and builds unsandboxed (never do that in production).
	cfg.Builds.UnsandboxedUnsafe = launch.ABI() < launch.MinABI
	cfg.Deployments.Reporters = []string{"ci"}
	return &demoRelease{erinKey: erin, ciKey: ci}, nil
}

// run walks from a refactor run's push to a deployed artifact: approved
// merge, sandboxed build with SLSA provenance, the run's attestation, the
// release gate (and what it refuses), CI's deployment report, and the
// artifact's chain from ticket to deployment.
func (r *demoRelease) run(ctx context.Context, d *demo, url, trustDomain, humanName string, human *client.Client, key crypto.Signer) error {
	if r == nil {
		d.say("(no git binary: the build and release part of the demo is skipped)")
		return nil
	}
	tok, err := human.CreateToken(ctx, "erin", time.Hour)
	if err != nil {
		return err
	}
	erin := client.New(url, tok.Token)
	approve := func(id string) error {
		st, err := erin.ApprovalStatement(ctx, id, approval.Approve)
		if err != nil {
			return err
		}
		signed, err := trigger.SignDSSE(st, approval.PayloadType, r.erinKey)
		if err != nil {
			return err
		}
		_, err = erin.SubmitApproval(ctx, id, approval.Approve, signed)
		return err
	}
	pending := func(err error) (string, error) {
		var we *writ.Error
		if !errors.As(err, &we) || we.Kind != writ.KindApprovalPending || we.Approval == "" {
			return "", fmt.Errorf("demo: want a pending approval, got %v", err)
		}
		return we.Approval, nil
	}
	start := func(mod func(*writ.Trigger)) (*client.Client, writ.RunID, error) {
		t := trigger.Template(time.Now(), humanName)
		t.Scope.Repos[0].Name = "acme/app" // the path demo above works on acme/api
		mod(&t)
		p, err := json.Marshal(t)
		if err != nil {
			return nil, "", err
		}
		signed, err := trigger.SignDSSE(p, writ.TriggerPayloadType, key)
		if err != nil {
			return nil, "", err
		}
		dk, err := token.NewDPoPKey()
		if err != nil {
			return nil, "", err
		}
		run, err := client.New(url, "").StartRun(ctx, signed, dk)
		if err != nil {
			return nil, "", err
		}
		return client.NewRun(url, run.Token, dk), run.ID, nil
	}

	d.say("A new refactor run pushes its work through writ's git gateway (ticket jira:ENG-125).")
	if _, err := human.AddRepo(ctx, &writ.RepoAddRequest{Name: "acme/app", Init: true}); err != nil {
		return err
	}
	rc, run, err := start(func(t *writ.Trigger) {
		t.Ticket = writ.Ticket{System: "jira", ID: "ENG-125"}
		t.Task = "Add the app entry point."
	})
	if err != nil {
		return err
	}
	cred, err := rc.RequestCredential(ctx, string(run), &writ.CredentialRequest{Kind: "git", Target: "acme/app", Permissions: []string{"write"}})
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "writ-demo-work-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	git := func(args ...string) (string, error) {
		c := exec.Command("git", args...)
		c.Dir = work
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=refactor-bot", "GIT_AUTHOR_EMAIL=bot@example.org", "GIT_COMMITTER_NAME=refactor-bot",
			"GIT_COMMITTER_EMAIL=bot@example.org", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
		out, err := c.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", args[0], err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	os.MkdirAll(filepath.Join(work, "src"), 0o755)
	os.WriteFile(filepath.Join(work, "src", "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	u := strings.Replace(url, "http://", "http://"+cred.Credential["username"]+":"+cred.Credential["password"]+"@", 1) + "/git/acme/app.git"
	for _, args := range [][]string{{"init", "-q", "--initial-branch=main"}, {"add", "."}, {"commit", "-q", "-m", "app entry point"},
		{"-c", "credential.helper=", "push", "-q", u, "HEAD:refs/heads/writ/" + string(run) + "/app"}} {
		if _, err := git(args...); err != nil {
			return err
		}
	}
	head, _ := git("rev-parse", "HEAD")
	d.detail("pushed %s to writ/%s/app (a git.pushed event records the commit)", head[:12], run)

	d.say("Nothing is built before it is merged; the merge into main waits for a maintainer's approval.")
	if _, err := human.Build(ctx, &writ.BuildRequest{Run: run, Recipe: "app"}); writ.ErrorCode(err) != "not_merged" {
		return fmt.Errorf("demo: building unmerged work: want not_merged, got %v", err)
	}
	d.detail("writ build %s --recipe app → refused (not_merged)", run)
	_, err = human.Merge(ctx, "acme/app", &writ.MergeRequest{Run: run})
	apr, err := pending(err)
	if err != nil {
		return err
	}
	if err := approve(apr); err != nil {
		return err
	}
	m, err := human.Merge(ctx, "acme/app", &writ.MergeRequest{Run: run})
	if err != nil {
		return err
	}
	d.detail("erin approved %s (a signed statement); merged %s into main by approved SHA", apr, m.Head[:12])

	d.say("writ's builder builds the merged commit in a fresh directory, sandboxed, and signs SLSA provenance.")
	if launch.ABI() < launch.MinABI {
		d.detail("NOTE: this kernel has no Landlock ABI %d: the demo builds unsandboxed (builds.unsandboxedUnsafe)", launch.MinABI)
	}
	b, err := human.Build(ctx, &writ.BuildRequest{Run: run, Recipe: "app"})
	if err != nil {
		return err
	}
	if b.State != writ.BuildSucceeded {
		return fmt.Errorf("demo: build failed: %s\n%s", b.Failure, b.Log)
	}
	digest := b.Outputs[0].Digest
	pubPEM, err := human.AttestKey(ctx)
	if err != nil {
		return err
	}
	pub, err := attest.ParsePublicKey(pubPEM)
	if err != nil {
		return err
	}
	if _, _, err := attest.VerifyProvenance(b.Provenance, pub, "spiffe://"+trustDomain+"/writ/builder/v1"); err != nil {
		return fmt.Errorf("demo: provenance: %w", err)
	}
	d.detail("out/app = %s; provenance (%s) verifies with the attest key", digest, attest.PredicateSLSAProvenance)

	d.say("The refactor run ends; writ signs its attestation once the end is in a signed checkpoint.")
	if _, err := rc.Transition(ctx, string(run), "end", "done"); err != nil {
		return err
	}
	var env []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if env, err = human.RunAttestation(ctx, string(run)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
	}
	logKey, err := human.AuditKey(ctx)
	if err != nil {
		return err
	}
	st, p, err := attest.VerifyRun(env, pub, func(lp *attest.LogProof) error {
		_, err := auditlog.CheckEntryProof([]byte(lp.Checkpoint), logKey, "", lp.Index, lp.Entry, lp.Proof)
		return err
	})
	if err != nil {
		return fmt.Errorf("demo: run attestation: %w", err)
	}
	d.detail("subject %s (gitCommit); %d approval(s), %d merge(s) witnessed; end event at log index %d, proved in a checkpoint of size %d",
		st.Subject[0].Name, len(p.Witnessed.Approvals), len(p.Witnessed.Merges), p.LogProof.Index, p.LogProof.Size)

	d.say("A release run releases the artifact: the gate checks provenance, the approved merge, and an approval of this digest for staging.")
	relC, rel, err := start(func(t *writ.Trigger) {
		t.Agent, t.Profile, t.Ticket, t.Task = "release-bot", "release", writ.Ticket{System: "jira", ID: "ENG-125"}, "Ship the app to staging."
		t.Scope.Tools, t.Scope.Environments = []string{"read", "shell:build"}, []string{"staging"}
		t.Scope.Repos[0].Write = false
	})
	if err != nil {
		return err
	}
	release := func(digest string) (*writ.ReleaseResult, error) {
		return relC.Release(ctx, &writ.ReleaseRequest{Run: rel, Artifact: digest, Environment: "staging"})
	}
	if _, err := release("sha256:" + strings.Repeat("ab", 32)); writ.ErrorCode(err) != "no_provenance" {
		return fmt.Errorf("demo: releasing a self-built artifact: want no_provenance, got %v", err)
	}
	d.detail("an artifact the agent built itself → refused (no_provenance: agent-asserted)")
	_, err = release(digest)
	relApr, err := pending(err)
	if err != nil {
		return err
	}
	if err := approve(relApr); err != nil {
		return err
	}
	res, err := release(digest)
	if err != nil {
		return err
	}
	if _, _, err := attest.Verify(res.Attestation, pub); err != nil {
		return err
	}
	d.detail("erin approved %s for %s in staging; released (release %s), release attestation signed", relApr, digest[:19]+"…", res.ID)

	d.say("CI reports its deployments, signed with its system key; one to production was never released there.")
	for _, envName := range []string{"staging", "production"} {
		payload, _ := json.Marshal(writ.DeploymentReport{ID: writ.NewULID(time.Now(), nil), Environment: envName, Artifact: digest,
			Result: "succeeded", Pipeline: "ci#1234", ReportedAt: time.Now()})
		signed, err := trigger.SignDSSE(payload, writ.DeploymentPayloadType, r.ciKey)
		if err != nil {
			return err
		}
		dep, err := client.New(url, "").ReportDeployment(ctx, signed)
		if err != nil {
			return err
		}
		if dep.Alert != (envName == "production") {
			return fmt.Errorf("demo: deployment to %s: %+v", envName, dep)
		}
		d.detail("deployment to %-10s recorded; released there: %v; alert: %v", envName, dep.Released, dep.Alert)
	}

	d.say("The artifact's chain, from ticket to deployment, in one call (writ trace %s).", digest)
	return traceArtifact(ctx, d.e, human, digest, false)
}
