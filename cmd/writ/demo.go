package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// demoCommand is `writ demo`: the scripted walk below.
type demoCommand struct{ keep bool }

func (c *demoCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory and print its path")
}

func (c *demoCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("demo takes no arguments")
	}
	return runDemo(ctx, e, c.keep)
}

// demo is a scripted walk through the foundation: every step checks what it
// expects and the demo fails (non-zero exit) on any deviation.
type demo struct {
	e    *env
	step int
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.e.stdout, "\n%d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.e.stdout, "   %s\n", fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, e *env, keep bool) error {
	began := time.Now()
	dir, err := os.MkdirTemp("", "writ-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(e.stdout, "data directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	d := &demo{e: e}
	cfg, dev, err := server.PrepareDev(dir, "127.0.0.1:0")
	if err != nil {
		return err
	}
	bob, err := demoSetup(&cfg)
	if err != nil {
		return err
	}
	rel, err := demoReleaseConfig(&cfg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(ctx, cfg, server.Options{Logger: log, Sandbox: buildSandbox()})
	if err != nil {
		return err
	}
	url, err := srv.Listen()
	if err != nil {
		srv.Close()
		return err
	}
	if err := srv.FinishDev(ctx, dev, url); err != nil {
		srv.Close()
		return err
	}
	srvCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(srvCtx) }()
	defer func() { stop(); <-done }()

	d.say("A writ server is up at %s (SQLite in %s).", url, dir)
	d.detail("dev human %q signs triggers with %s and holds an admin API token", dev.Human, dev.KeyFile)
	keyPEM, err := os.ReadFile(dev.KeyFile)
	if err != nil {
		return err
	}
	key, err := trigger.LoadPrivateKey(keyPEM)
	if err != nil {
		return err
	}
	anon := client.New(url, "")
	human := client.New(url, dev.Token)

	d.say("The dev human signs a trigger: refactor-bot may edit acme/api for ticket jira:ENG-123, for 30 minutes.")
	t := trigger.Template(time.Now(), dev.Human)
	t.Ticket = writ.Ticket{System: "jira", ID: "ENG-123", URL: "https://jira.example.org/browse/ENG-123"}
	t.Task = "Rename the config loader and update its tests."
	payload, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	signed, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, key)
	if err != nil {
		return err
	}
	d.detail("DSSE envelope, %d bytes, payload type %s", len(signed), writ.TriggerPayloadType)

	d.say("The signed trigger is its own credential: POST /v1/runs starts the run.")
	dpopKey, err := token.NewDPoPKey()
	if err != nil {
		return err
	}
	run, err := anon.StartRun(ctx, signed, dpopKey)
	if err != nil {
		return fmt.Errorf("starting the run: %w", err)
	}
	d.detail("run       %s", run.ID)
	d.detail("identity  %s", run.SPIFFEID)
	d.detail("deadline  %s (hard; the run expires then whatever it is doing)", run.Deadline.Format(time.RFC3339))
	if run.TokenType != "DPoP" {
		return fmt.Errorf("demo: want a DPoP-bound first token, got %q", run.TokenType)
	}
	claims, err := jwtClaims(run.Token)
	if err != nil {
		return err
	}
	d.detail("its first token is a JWT-SVID (ES256), bound to the launcher's DPoP key:")
	for _, k := range []string{"sub", "aud", "iss", "exp", "run", "agent", "profile", "ticket", "cnf"} {
		d.detail("  %-8s %s", k, claims[k])
	}

	d.say("A relying party (Vault, a cloud STS) trusts it through OIDC discovery, not through writ's database.")
	if err := relyingParty(ctx, d, url, run.Token); err != nil {
		return err
	}

	d.say("The run acts with its token and a fresh DPoP proof per request; a copy of the token alone is useless.")
	self := client.NewRun(url, run.Token, dpopKey)
	if _, err := self.GetRun(ctx, string(run.ID)); err != nil {
		return fmt.Errorf("demo: the run reading itself: %w", err)
	}
	d.detail("GET /v1/runs/%s with DPoP: ok", run.ID)
	stolen := client.New(url, run.Token)
	if _, err := stolen.GetRun(ctx, string(run.ID)); writ.ErrorCode(err) != "dpop_required" {
		return fmt.Errorf("demo: a stolen bound token used as a bearer token: want dpop_required, got %v", err)
	}
	d.detail("the same token stolen and sent as a bearer token: refused (dpop_required)")
	thief, _ := token.NewDPoPKey()
	if _, err := client.NewRun(url, run.Token, thief).GetRun(ctx, string(run.ID)); writ.ErrorCode(err) != "invalid_dpop_proof" {
		return fmt.Errorf("demo: a stolen token with the thief's own DPoP key: want invalid_dpop_proof, got %v", err)
	}
	d.detail("with a proof from the thief's own key: refused (invalid_dpop_proof)")

	d.say("A human looks at the run (GET /v1/runs/{id}, with an API token).")
	got, err := human.GetRun(ctx, string(run.ID))
	if err != nil {
		return err
	}
	if got.State != writ.RunActive || got.TriggerDigest == "" {
		return fmt.Errorf("demo: want an active run with a trigger digest, got state %q digest %q", got.State, got.TriggerDigest)
	}
	d.detail("state %s, issuer %s, trigger digest %s", got.State, got.Issuer, got.TriggerDigest)
	if _, err := anon.GetRun(ctx, string(run.ID)); writ.ErrorCode(err) != "missing_credential" {
		return fmt.Errorf("demo: reading a run without a credential: want missing_credential, got %v", err)
	}
	d.detail("without a credential: refused (missing_credential)")

	if err := demoPolicy(ctx, d, self, human, run, key); err != nil {
		return err
	}

	d.say("Someone tampers with the signed trigger: one byte of the payload changes.")
	var env map[string]any
	if err := json.Unmarshal(signed, &env); err != nil {
		return err
	}
	tampered := []byte(string(payload))
	copy(tampered[len(tampered)-40:], []byte("X"))
	env["payload"] = tampered
	tb, _ := json.Marshal(env)
	if err := expectRefusal(d, anon, tb, "bad_signature"); err != nil {
		return err
	}

	d.say("Someone replays the original signed trigger to start a second run.")
	if err := expectRefusal(d, anon, signed, "replay"); err != nil {
		return err
	}

	d.say("The dev human signs a trigger asking for more than the profile allows.")
	wide := trigger.Template(time.Now(), dev.Human)
	wide.Scope.Tools = append(wide.Scope.Tools, "shell:net", "web:fetch")
	wide.Scope.Hosts = []string{"evil.example.com"}
	wide.Scope.Repos = append(wide.Scope.Repos, writ.RepoScope{Name: "other/secret-repo", Base: "main"})
	wp, _ := json.Marshal(wide)
	ws, err := trigger.SignDSSE(wp, writ.TriggerPayloadType, key)
	if err != nil {
		return err
	}
	if err := expectRefusal(d, anon, ws, "scope_too_broad"); err != nil {
		return err
	}

	d.say("The human ends the run; the end is final, and the run's token dies with it — before it expires.")
	ended, err := human.Transition(ctx, string(run.ID), "end", "ENG-123 done")
	if err != nil {
		return err
	}
	d.detail("run %s is %s", ended.ID, ended.State)
	if _, err := self.GetRun(ctx, string(run.ID)); writ.ErrorCode(err) != "token_revoked" {
		return fmt.Errorf("demo: the ended run's token: want token_revoked, got %v", err)
	}
	d.detail("the run's token, still %s from expiry, on the next request: refused (token_revoked)", time.Until(run.TokenExpiresAt).Round(time.Second))
	if _, err := human.Transition(ctx, string(run.ID), "resume", ""); writ.ErrorCode(err) != "run_final" {
		return fmt.Errorf("demo: resuming an ended run: want run_final, got %v", err)
	}
	d.detail("resuming it: refused (run_final)")

	d.say("Every state change above was written with its audit event in the same transaction:")
	evs, err := srv.Store().Events(ctx, 0, 100)
	if err != nil {
		return err
	}
	want := []string{writ.EventKeyRotated, writ.EventPolicyLoaded, writ.EventTokenIssued, writ.EventTriggerAccepted, writ.EventRunStarted, writ.EventTokenIssued,
		writ.EventDecision, writ.EventDecision, writ.EventDecision, writ.EventDecision, writ.EventDecision, writ.EventDecision, writ.EventApprovalRequested, writ.EventApprovalRefused,
		writ.EventDecision, writ.EventAlert, writ.EventRunSuspended, writ.EventRunResumed, writ.EventDecision,
		writ.EventTriggerRefused, writ.EventTriggerRefused, writ.EventRunEnded}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
		var parsed writ.Event
		_ = json.Unmarshal(ev.Body, &parsed)
		extra := ""
		if c, ok := parsed.Details["code"]; ok {
			extra = fmt.Sprintf(" (%v)", c)
		}
		if parsed.Type == writ.EventDecision {
			extra = fmt.Sprintf(" %s %s → %s", parsed.Action, parsed.Details["name"], parsed.Decision)
		}
		d.detail("%-17s %s%s", ev.Type, parsed.Actor, extra)
	}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		return fmt.Errorf("demo: events: want %v, got %v", want, types)
	}
	d.detail("the tampered trigger left no event: a signature that does not verify authenticates no one, so it only counts in metrics")

	d.say("An auditor verifies the log without trusting writ's database: signed checkpoint, every leaf, the tree.")
	if _, err := human.AuditCheckpoint(ctx, int64(len(evs))); err != nil {
		return fmt.Errorf("demo: waiting for the checkpoint: %w", err)
	}
	x, err := fetchLog(ctx, human)
	if err != nil {
		return err
	}
	cp, res, err := verifyLog(x, x.Key, nil)
	if err != nil {
		return fmt.Errorf("demo: the audit log does not verify: %w", err)
	}
	d.detail("checkpoint %s, size %d, signed by %s", cp.Origin, cp.Size, strings.SplitN(x.Key, "+", 2)[0])
	d.detail("ok: %d entries re-hashed from their exact bytes reproduce the signed root", res.Entries)
	x.entries[3].Body = append([]byte(nil), x.entries[3].Body...)
	x.entries[3].Body[len(x.entries[3].Body)-3] ^= 1
	if _, _, err := verifyLog(x, x.Key, nil); err == nil {
		return fmt.Errorf("demo: a tampered entry verified")
	} else {
		d.detail("one byte of entry 3 changed: %v", err)
	}

	d.say("The run's trace: from the trigger to its end, with log indexes.")
	tr, err := human.Trace(ctx, string(run.ID))
	if err != nil {
		return err
	}
	for _, te := range tr.Events {
		var ev writ.Event
		_ = json.Unmarshal(te.Event, &ev)
		d.detail("#%-3d %-17s %-12s %s", te.Seq, te.Type, ev.Actor, summary(&ev))
	}
	if err := demoGit(ctx, d, url, human, key, bob, dev.Human); err != nil {
		return err
	}
	if err := rel.run(ctx, d, url, cfg.TrustDomain, dev.Human, human, key); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\ndemo ok (%s)\n", time.Since(began).Round(10*time.Millisecond))
	return nil
}

func expectRefusal(d *demo, c *client.Client, body []byte, code string) error {
	_, err := c.StartRun(context.Background(), body, nil)
	var we *writ.Error
	if !errors.As(err, &we) || we.Code != code {
		return fmt.Errorf("demo: want refusal %q, got %v", code, err)
	}
	d.detail("refused: %s — %s", we.Code, we.Message)
	for _, it := range we.Items {
		d.detail("  outside the allowance: %s", it)
	}
	return nil
}

// jwtClaims decodes a JWT's claims for display (no verification: that is
// the relying party's job below).
func jwtClaims(raw string) (map[string]string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("demo: the token is not a compact JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range m {
		switch x := v.(type) {
		case float64:
			out[k] = time.Unix(int64(x), 0).UTC().Format(time.RFC3339)
		case string:
			out[k] = x
		default:
			j, _ := json.Marshal(x)
			out[k] = string(j)
		}
	}
	return out, nil
}

// relyingParty verifies tok the way a relying party does: it knows only
// writ's issuer URL, fetches the discovery document and the JWKS it names,
// and checks the token's signature, issuer, audience and lifetime.
func relyingParty(ctx context.Context, d *demo, issuer, tok string) error {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return err
	}
	if disc.Issuer != issuer {
		return fmt.Errorf("demo: discovery names issuer %q, want %q", disc.Issuer, issuer)
	}
	var jwks json.RawMessage
	if err := getJSON(ctx, disc.JWKSURI, &jwks); err != nil {
		return err
	}
	keys, err := token.ParseJWKS(jwks)
	if err != nil {
		return err
	}
	v := &token.Verifier{Issuer: disc.Issuer, Leeway: time.Minute, Now: time.Now,
		Keys: func(kid string) (*ecdsa.PublicKey, bool) { k, ok := keys[kid]; return k, ok }}
	c, err := v.Verify(tok, issuer+"/v1")
	if err != nil {
		return fmt.Errorf("demo: the relying party refused writ's token: %w", err)
	}
	d.detail("GET %s/.well-known/openid-configuration → jwks_uri %s (%d key)", issuer, disc.JWKSURI, len(keys))
	d.detail("verified: sub %s, valid until %s", c.Subject, c.Expiry.Format(time.RFC3339))
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// demoPolicy walks the run through policy: ordinary work is allowed, what
// lies outside the trigger is denied, a protected path waits for a human,
// and scope creep suspends the run until a human resumes it.
func demoPolicy(ctx context.Context, d *demo, self, human *client.Client, run *client.Run, key crypto.Signer) error {
	d.say("The run asks policy before each action (POST /v1/decide); the embedded default bundle decides.")
	branch := "writ/" + string(run.ID) + "/rename-logger"
	steps := []struct {
		what   string
		action writ.Action
		want   string
		code   string
	}{
		{"edit src/log.go", writ.Action{Kind: writ.ActionTool, Name: "edit", Target: writ.Target{Repo: "acme/api", Paths: []string{"src/log.go"}}}, writ.VerdictAllow, ""},
		{"go build ./...", writ.Action{Kind: writ.ActionTool, Name: "shell:build"}, writ.VerdictAllow, ""},
		{"curl to the internet", writ.Action{Kind: writ.ActionTool, Name: "shell:net"}, writ.VerdictDeny, "tool_not_in_scope"},
		{"push to main", writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Ref: "main", Paths: []string{"src/log.go"}}}, writ.VerdictDeny, "protected_branch"},
		{"push its run branch", writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Ref: branch, Paths: []string{"src/log.go"}}}, writ.VerdictAllow, ""},
		{"push a CODEOWNERS change", writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Ref: branch, Paths: []string{"docs/CODEOWNERS"}}}, writ.VerdictApprovalRequired, "protected_path"},
	}
	var gate string
	for _, st := range steps {
		dec, err := self.Decide(ctx, &client.DecideRequest{Action: st.action, Via: "cli"})
		if err != nil {
			return fmt.Errorf("demo: deciding %q: %w", st.what, err)
		}
		if dec.Decision != st.want || (st.code != "" && (len(dec.Reasons) == 0 || !hasReason(dec.Reasons, st.code))) {
			return fmt.Errorf("demo: %q: want %s %s, got %s %v", st.what, st.want, st.code, dec.Decision, dec.Reasons)
		}
		line := fmt.Sprintf("%-26s → %s", st.what, dec.Decision)
		if st.code != "" {
			line += " (" + st.code + ")"
		}
		if dec.Approval != nil {
			line += fmt.Sprintf(", approval %s waits for %d of %q", dec.Approval.ID, dec.Approval.Count, dec.Approval.Group)
			gate = dec.Approval.ID
		}
		d.detail("%s", line)
	}

	d.say("The human who signed the trigger tries to approve its own run's gate: separation of duties.")
	st, err := human.ApprovalStatement(ctx, gate, approval.Approve)
	if err != nil {
		return err
	}
	d.detail("the statement writ fixes for this approver and verdict: %d bytes, %s", len(st), approval.PayloadType)
	signedSt, err := trigger.SignDSSE(st, approval.PayloadType, key)
	if err != nil {
		return err
	}
	if _, err := human.SubmitApproval(ctx, gate, approval.Approve, signedSt); writ.ErrorCode(err) != "separation_of_duties" {
		return fmt.Errorf("demo: the trigger's signer approving its own run: want separation_of_duties, got %v", err)
	}
	d.detail("signed with the dev human's own key, submitted with their token: refused (separation_of_duties), and the refusal is logged")
	d.detail("another maintainer would run: writ approvals approve %s --key THEIR.key (or --ssh-key)", gate)

	d.say("After editing and building, the run asks for a production secret its trigger never named: scope creep.")
	dec, err := self.Decide(ctx, &client.DecideRequest{Via: "cli", Action: writ.Action{Kind: writ.ActionCredential, Name: "secret",
		Target: writ.Target{Secret: "db/password", Environment: "production"}}})
	if err != nil {
		return err
	}
	if dec.Decision != writ.VerdictDeny || !hasReason(dec.Reasons, "scope_creep") || !dec.Obligations.Suspend || dec.RunState != writ.RunSuspended {
		return fmt.Errorf("demo: scope creep: want deny scope_creep and a suspended run, got %+v", dec)
	}
	d.detail("→ deny (scope_creep); policy's obligation suspends the run, and an alert is on record")
	if _, err := self.Decide(ctx, &client.DecideRequest{Via: "cli", Action: writ.Action{Kind: writ.ActionTool, Name: "read"}}); writ.ErrorCode(err) != "token_revoked" {
		return fmt.Errorf("demo: the suspended run's next request: want token_revoked, got %v", err)
	}
	d.detail("its next request, even a harmless read: refused (token_revoked) until a human resumes or kills it")
	if _, err := human.Transition(ctx, string(run.ID), "resume", "looked at it: the agent misread the ticket"); err != nil {
		return err
	}
	again, err := self.Decide(ctx, &client.DecideRequest{Via: "cli", Action: writ.Action{Kind: writ.ActionTool, Name: "read"}})
	if err != nil || again.Decision != writ.VerdictAllow {
		return fmt.Errorf("demo: the resumed run reading: want allow, got %+v, %v", again, err)
	}
	d.detail("a human (admin) resumed it — a human act, recorded as run.resumed — and the same token reads again: %s", again.Decision)
	return nil
}

func hasReason(rs []writ.Reason, code string) bool {
	for _, r := range rs {
		if r.Code == code {
			return true
		}
	}
	return false
}
