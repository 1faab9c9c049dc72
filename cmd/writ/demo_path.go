package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/mcpgw"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// The second half of the demo: one run's whole path through writ's
// gateways with the real git binary — clone, edit, test, push — the
// refusals that bound it, a human-approved merge by SHA, and its leases
// dying with it.

// demoSetup adds what the path needs to the dev config before the server
// starts: a second maintainer (bob, whose key signs approvals), the demo's
// MCP upstream (this binary as a tiny stdio MCP server), and the MCP tools
// in the refactor profile. It returns bob's key.
func demoSetup(cfg *server.Config) (crypto.Signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	cfg.Signers = append(cfg.Signers, server.SignerConfig{
		Signer: writ.Signer{Name: "bob", Kind: writ.SignerHuman, Groups: []string{"maintainers"}},
		Keys:   []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))},
	})
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg.MCP.Servers = append(cfg.MCP.Servers, mcpgw.Upstream{Name: "demo", Command: []string{exe, mcpgw.DemoServerArg}})
	for _, p := range cfg.Profiles {
		if p.Name == "refactor" {
			p.Tools = append(p.Tools, "mcp:demo/*")
		}
	}
	return priv, nil
}

// demoGit runs the path. url is the server, human the dev admin, key the
// dev human's trigger key, bob the second maintainer's key.
func demoGit(ctx context.Context, d *demo, url string, human *client.Client, key, bob crypto.Signer, devName string) error {
	if _, err := exec.LookPath("git"); err != nil {
		return errors.New("demo: the git path needs the git binary on PATH")
	}
	work, err := os.MkdirTemp("", "writ-demo-git-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	git := func(dir string, env []string, args ...string) (string, error) {
		c := exec.CommandContext(ctx, "git", args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=refactor-bot", "GIT_AUTHOR_EMAIL=bot@writ.invalid",
			"GIT_COMMITTER_NAME=refactor-bot", "GIT_COMMITTER_EMAIL=bot@writ.invalid",
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
		c.Env = append(c.Env, env...)
		out, err := c.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	mustGit := func(dir string, env []string, args ...string) (string, error) {
		out, err := git(dir, env, args...)
		if err != nil {
			return "", fmt.Errorf("demo: git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out, nil
	}

	d.say("An admin hosts acme/api in writ's git gateway, copied from its upstream (a local bare repository here).")
	up := filepath.Join(work, "upstream.git")
	seed := filepath.Join(work, "seed")
	for _, step := range [][]string{{"init", "-q", "--bare", "--initial-branch=main", up}, {"init", "-q", "--initial-branch=main", seed}} {
		if _, err := mustGit(work, nil, step...); err != nil {
			return err
		}
	}
	os.MkdirAll(filepath.Join(seed, "src"), 0o755)
	os.WriteFile(filepath.Join(seed, "src", "log.go"), []byte("package src\n\n// OpenLogger opens the logger.\nfunc OpenLogger() {}\n"), 0o644)
	for _, step := range [][]string{{"add", "."}, {"commit", "-q", "-m", "initial"}, {"push", "-q", up, "main"}} {
		if _, err := mustGit(seed, nil, step...); err != nil {
			return err
		}
	}
	if _, err := human.AddRepo(ctx, &writ.RepoAddRequest{Name: "acme/api", Upstream: up}); err != nil {
		return fmt.Errorf("demo: writ repo add: %w", err)
	}
	d.detail("served at %s/git/acme/api.git; main is protected (it is the base of every trigger)", url)

	d.say("A new trigger (ticket ENG-124) starts a run that may change src/** and the CI workflow, and call mcp:demo/echo.")
	t := trigger.Template(time.Now(), devName)
	t.Ticket = writ.Ticket{System: "jira", ID: "ENG-124"}
	t.Task = "Rename OpenLogger to NewLogger; the CI must run go vet."
	t.Scope.Repos[0].Paths = []string{"src/**", ".github/workflows/**"}
	t.Scope.Tools = []string{"read", "edit", "shell:git", "shell:test", "mcp:demo/echo"}
	payload, _ := json.Marshal(t)
	signed, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, key)
	if err != nil {
		return err
	}
	dpop, err := token.NewDPoPKey()
	if err != nil {
		return err
	}
	run, err := client.New(url, "").StartRun(ctx, signed, dpop)
	if err != nil {
		return fmt.Errorf("demo: starting the second run: %w", err)
	}
	self := client.NewRun(url, run.Token, dpop)
	// The agent's side gets what `writ run` gives it: an unbound token in a
	// run directory, and git wired to writ's credential helper.
	agentTok, err := self.MintToken(ctx, string(run.ID), "", false)
	if err != nil {
		return err
	}
	runDir := filepath.Join(work, "run")
	os.MkdirAll(runDir, 0o700)
	for name, v := range map[string]string{"run": string(run.ID), "url": url, "token": agentTok.Token} {
		if err := os.WriteFile(filepath.Join(runDir, name), []byte(v+"\n"), 0o600); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	agentEnv := []string{"WRIT_RUN_DIR=" + runDir, "WRIT_URL=", "WRIT_TOKEN=",
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=credential.helper", "GIT_CONFIG_VALUE_0=!'" + exe + "' git-credential",
		"GIT_CONFIG_KEY_1=credential.useHttpPath", "GIT_CONFIG_VALUE_1=true"}
	d.detail("run %s; git asks `writ git-credential` for a fresh lease per operation", run.ID)

	d.say("The agent clones through the gateway, renames the function, tests, and pushes its run branch.")
	repo := filepath.Join(work, "api")
	if _, err := mustGit(work, agentEnv, "clone", "-q", url+"/git/acme/api.git", repo); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(repo, "src", "log.go"), []byte("package src\n\n// NewLogger opens the logger.\nfunc NewLogger() {}\n"), 0o644)
	dec, err := self.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: "shell:test"}, Via: "exec"})
	if err != nil || dec.Decision != writ.VerdictAllow {
		return fmt.Errorf("demo: testing: want allow, got %+v %v", dec, err)
	}
	testOut, testErr := exec.CommandContext(ctx, "grep", "-q", "NewLogger", filepath.Join(repo, "src", "log.go")).CombinedOutput()
	exit := 0
	if testErr != nil {
		exit = 1
	}
	if err := self.ReportOutcome(ctx, dec.ID, &client.Outcome{ExitCode: &exit}); err != nil {
		return err
	}
	if exit != 0 {
		return fmt.Errorf("demo: the test failed: %s", testOut)
	}
	d.detail("shell:test allowed (%s), ran, exit 0 recorded as its outcome", dec.ID)
	branch := "writ/" + string(run.ID) + "/rename-logger"
	for _, step := range [][]string{{"commit", "-q", "-am", "Rename OpenLogger to NewLogger"}, {"push", "-q", "origin", "HEAD:refs/heads/" + branch}} {
		if _, err := mustGit(repo, agentEnv, step...); err != nil {
			return err
		}
	}
	head, _ := mustGit(repo, nil, "rev-parse", "HEAD")
	d.detail("pushed %s to %s", head[:12], branch)

	d.say("What the run may not do is refused at the gateways, whatever the agent's own settings say:")
	out, err := git(repo, agentEnv, "push", "origin", "HEAD:refs/heads/main")
	if err == nil || !strings.Contains(out, "remote: writ:") {
		return fmt.Errorf("demo: a push to main: want refused by writ, got %v\n%s", err, out)
	}
	d.detail("git push origin HEAD:main → %s", firstLine(out, "remote: writ:"))
	os.WriteFile(filepath.Join(repo, "src", "config.go"), []byte("package src\n\nconst awsKey = \"AKIA"+"Q3EGRXYZ7PLKM2NB\"\n"), 0o644)
	mustGit(repo, nil, "add", ".")
	mustGit(repo, nil, "commit", "-q", "-m", "add config")
	out, err = git(repo, agentEnv, "push", "origin", "HEAD:refs/heads/"+branch)
	if err == nil || !strings.Contains(out, "remote: writ:") {
		return fmt.Errorf("demo: a push with a cloud key: want refused, got %v\n%s", err, out)
	}
	d.detail("a commit holding an AWS access key, on its own branch → %s", firstLine(out, "remote: writ:"))
	mustGit(repo, nil, "reset", "-q", "--hard", "HEAD~1")
	if err := demoMCP(ctx, d, url, self, run); err != nil {
		return err
	}
	if err := demoEgress(ctx, d, url, self, run); err != nil {
		return err
	}

	d.say("A change to the CI workflow is a protected path: accepted onto the run branch, waiting for the merge's approval.")
	os.MkdirAll(filepath.Join(repo, ".github", "workflows"), 0o755)
	os.WriteFile(filepath.Join(repo, ".github", "workflows", "ci.yml"), []byte("on: push\njobs:\n  vet:\n    runs-on: ubuntu-latest\n    steps:\n      - run: go vet ./...\n"), 0o644)
	mustGit(repo, nil, "add", ".")
	mustGit(repo, nil, "commit", "-q", "-m", "CI: run go vet")
	if _, err := mustGit(repo, agentEnv, "push", "-q", "origin", "HEAD:refs/heads/"+branch); err != nil {
		return err
	}
	head, _ = mustGit(repo, nil, "rev-parse", "HEAD")
	gated := false
	if tr, err := human.Trace(ctx, string(run.ID)); err == nil {
		for _, te := range tr.Events {
			var ev writ.Event
			if json.Unmarshal(te.Event, &ev) == nil && ev.Type == writ.EventDecision && ev.Action == writ.ActionGitPush && ev.Decision == writ.VerdictApprovalRequired {
				gated = true
			}
		}
	}
	if !gated {
		return fmt.Errorf("demo: the workflow push has no approval_required decision on record")
	}
	d.detail("pushed %s: accepted, with an approval_required decision on record for .github/workflows/ci.yml", head[:12])

	d.say("The agent's work is merged only by the SHA a human approved.")
	_, err = human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: run.ID})
	var we *writ.Error
	if !errors.As(err, &we) || we.Kind != writ.KindApprovalPending || we.Approval == "" {
		return fmt.Errorf("demo: the first merge: want approval_required, got %v", err)
	}
	apr := we.Approval
	d.detail("writ merge %s → approval %s: a commit approval of exactly %s (diff digest, paths incl. the workflow)", run.ID, apr, head[:12])
	st, err := human.ApprovalStatement(ctx, apr, approval.Approve)
	if err != nil {
		return err
	}
	selfSigned, _ := trigger.SignDSSE(st, approval.PayloadType, key)
	if _, err := human.SubmitApproval(ctx, apr, approval.Approve, selfSigned); writ.ErrorCode(err) != "separation_of_duties" {
		return fmt.Errorf("demo: the trigger's signer approving the merge: want separation_of_duties, got %v", err)
	}
	d.detail("the trigger's own signer approves: refused (separation_of_duties)")
	bobTok, err := human.CreateToken(ctx, "bob", time.Hour)
	if err != nil {
		return err
	}
	bobC := client.New(url, bobTok.Token)
	st, err = bobC.ApprovalStatement(ctx, apr, approval.Approve)
	if err != nil {
		return err
	}
	bobSigned, err := trigger.SignDSSE(st, approval.PayloadType, bob)
	if err != nil {
		return err
	}
	if _, err := bobC.SubmitApproval(ctx, apr, approval.Approve, bobSigned); err != nil {
		return fmt.Errorf("demo: bob's approval: %w", err)
	}
	d.detail("bob, a second maintainer, signs the statement with his own key: approved, countersigned by writ")
	res, err := human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: run.ID})
	if err != nil {
		return fmt.Errorf("demo: the approved merge: %w", err)
	}
	if res.Head != head {
		return fmt.Errorf("demo: main is at %s, want the approved %s", res.Head, head)
	}
	upMain, _ := mustGit(work, nil, "--git-dir", up, "rev-parse", "refs/heads/main")
	if upMain != head {
		return fmt.Errorf("demo: the upstream's main is %s, want %s", upMain, head)
	}
	d.detail("main %s → %s (compare-and-swap), mirrored to the upstream: it holds exactly the approved SHA", res.Base[:12], res.Head[:12])

	d.say("The run ends: every lease it held is revoked, and its trail is one verifiable log.")
	if _, err := self.Transition(ctx, string(run.ID), "end", "ENG-124 merged"); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls, err := human.ListLeases(ctx, string(run.ID), "")
		if err != nil {
			return err
		}
		live := 0
		for _, l := range ls {
			if l.State != writ.LeaseRevoked {
				live++
			}
		}
		if live == 0 {
			d.detail("%d leases (git per operation, egress), all revoked", len(ls))
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %d leases still live 10 s after the run ended", live)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr, err := human.Trace(ctx, string(run.ID))
	if err != nil {
		return err
	}
	kinds := map[string]int{}
	for _, te := range tr.Events {
		kinds[te.Type]++
	}
	d.detail("trace: %d events — %d decisions, %d git pushes, %d credentials issued and %d revoked, approval granted %d, merge %d",
		len(tr.Events), kinds[writ.EventDecision], kinds["git.pushed"], kinds[writ.EventCredentialIssued], kinds[writ.EventCredentialRevoked],
		kinds[writ.EventApprovalGranted], kinds["merge"])
	if kinds["merge"] != 1 || kinds[writ.EventApprovalGranted] != 1 {
		return fmt.Errorf("demo: the trace lacks the merge or its approval: %v", kinds)
	}
	x, err := fetchLog(ctx, human)
	if err != nil {
		return err
	}
	cp, vr, err := verifyLog(x, x.Key, nil)
	if err != nil {
		return fmt.Errorf("demo: the audit log does not verify: %w", err)
	}
	d.detail("writ audit verify: checkpoint size %d, %d entries re-hashed: ok", cp.Size, vr.Entries)
	return nil
}

func firstLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(out)
}

// demoMCP calls the demo MCP server through writ's gateway, as an agent
// would with a token for that resource.
func demoMCP(ctx context.Context, d *demo, url string, self *client.Client, run *client.Run) error {
	mt, err := self.MintToken(ctx, string(run.ID), url+"/mcp/demo", false)
	if err != nil {
		return fmt.Errorf("demo: an MCP token: %w", err)
	}
	call := func(tool string, args map[string]any) (string, error) {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": args,
			"_meta": map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28",
				"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "writ-demo-agent", "version": "1"},
				"io.modelcontextprotocol/clientCapabilities": map[string]any{}}}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/mcp/demo", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+mt.Token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", tool)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		// A JSON answer, or one server-sent event holding it.
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "data: "); ok {
				return v, nil
			}
		}
		return string(raw), nil
	}
	d.say("MCP tools are reached through writ's gateway (/mcp/demo); each call is decided before it reaches the upstream.")
	out, err := call("echo", map[string]any{"message": "hello"})
	if err != nil || !strings.Contains(out, "echo: hello") {
		return fmt.Errorf("demo: mcp echo: %v %s", err, out)
	}
	d.detail("tools/call echo → \"echo: hello\"")
	out, err = call("read_env", map[string]any{"name": "HOME"})
	if err != nil || !strings.Contains(out, "tool_not_in_scope") {
		return fmt.Errorf("demo: mcp read_env: want refused (tool_not_in_scope), got %v %s", err, out)
	}
	d.detail("tools/call read_env (not in the trigger) → refused (tool_not_in_scope), never sent upstream")
	return nil
}

// demoEgress asks writ's egress proxy for a host outside the run's scope.
func demoEgress(ctx context.Context, d *demo, url string, self *client.Client, run *client.Run) error {
	d.say("Network egress goes through writ's proxy with the run's egress lease; hosts outside the trigger are refused.")
	lease, err := self.RequestCredential(ctx, string(run.ID), &writ.CredentialRequest{Kind: writ.CredentialEgress, Target: "proxy"})
	if err != nil {
		return fmt.Errorf("demo: the egress lease: %w", err)
	}
	host := strings.TrimPrefix(url, "http://")
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	defer conn.Close()
	auth := base64.StdEncoding.EncodeToString([]byte(lease.Credential["username"] + ":" + lease.Credential["password"]))
	fmt.Fprintf(conn, "CONNECT exfil.example.com:443 HTTP/1.1\r\nHost: exfil.example.com:443\r\nProxy-Authorization: Basic %s\r\n\r\n", auth)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("demo: the proxy's answer: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		return fmt.Errorf("demo: CONNECT exfil.example.com:443: want 403, got %s", resp.Status)
	}
	d.detail("CONNECT exfil.example.com:443 → %s (%s)", resp.Status, resp.Header.Get("X-Writ-Reason"))
	return nil
}
