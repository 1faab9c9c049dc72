package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/token"
)

type runStartOpts struct {
	trigger, runDir, delegateFrom, request string
	json                                   bool
}

type runListOpts struct {
	state, agent string
	limit        int
	json         bool
}

type runVerbOpts struct {
	reason string
	json   bool
}

func init() {
	register(&command{
		name: "run start", summary: "start a run from a signed trigger (the trigger is the credential)",
		example: "writ run start --trigger t.signed.json\nwrit run start --trigger t.signed.json --json | jq -r .id",
		flags: func(fs *flag.FlagSet) any {
			o := &runStartOpts{}
			fs.StringVar(&o.trigger, "trigger", "", "signed trigger file (DSSE envelope or payload+sshsig JSON); - for stdin")
			fs.StringVar(&o.runDir, "run-dir", "", "where to keep the run's token and DPoP key (default $XDG_STATE_HOME/writ/runs/RUN)")
			fs.BoolVar(&o.json, "json", false, "print the whole run as JSON (without its token)")
			fs.StringVar(&o.delegateFrom, "delegate-from", "", "start a child of this run instead (WRIT_RUN_DIR holds its credentials); with --request FILE")
			fs.StringVar(&o.request, "request", "", "with --delegate-from: the child's agent, profile, scope, task (JSON); see writ run delegate")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*runStartOpts)
			if o.delegateFrom != "" {
				if o.trigger != "" || o.request == "" || len(args) > 0 {
					return usagef("run start --delegate-from RUN needs --request FILE, and no --trigger")
				}
				return runDelegate(ctx, e, &delegateOpts{request: o.request, runDir: o.runDir, asJSON: o.json}, []string{o.delegateFrom})
			}
			if o.trigger == "" || len(args) > 0 {
				return usagef("run start needs --trigger FILE (or --delegate-from RUN) and no arguments")
			}
			body, err := readInput(o.trigger)
			if err != nil {
				return err
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			// A key per run: the run's first token is bound to it (DPoP),
			// so the token alone is useless to whoever copies it.
			key, err := token.NewDPoPKey()
			if err != nil {
				return err
			}
			run, err := c.StartRun(ctx, body, key)
			if err != nil {
				return err
			}
			dir, err := saveRunDir(e, o.runDir, c.BaseURL(), run, key)
			if err != nil {
				return fmt.Errorf("run %s started, but its credentials could not be saved: %w", run.ID, err)
			}
			if o.json {
				run.Token = ""
				return printJSON(e.stdout, run)
			}
			fmt.Fprintf(e.stdout, "run %s started\nidentity %s\ndeadline %s\ncredentials %s (DPoP-bound token, key 0600)\n", run.ID, run.SPIFFEID, run.Deadline.Format(time.RFC3339), dir)
			fmt.Fprintf(e.stdout, "export WRIT_RUN=%s WRIT_RUN_DIR=%s\n", run.ID, dir)
			return nil
		},
	})
	register(&command{
		name: "run list", summary: "list runs, newest first",
		example: "writ run list --state active",
		flags: func(fs *flag.FlagSet) any {
			o := &runListOpts{}
			fs.StringVar(&o.state, "state", "", "only runs in this state (active, suspended, ended, killed, expired)")
			fs.StringVar(&o.agent, "agent", "", "only runs of this agent")
			fs.IntVar(&o.limit, "limit", 0, "at most this many runs (default 100)")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*runListOpts)
			if len(args) > 0 {
				return usagef("run list takes no arguments")
			}
			c, err := clientFor(e)
			if err != nil {
				return err
			}
			runs, err := c.ListRuns(ctx, writ.RunFilter{State: writ.RunState(o.state), Agent: o.agent, Limit: o.limit})
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(e.stdout, runs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tAGENT\tPROFILE\tSTATE\tTICKET\tDEADLINE")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%s\t%s\n", r.ID, r.Agent, r.Profile, r.State, r.Ticket.System, r.Ticket.ID, r.Deadline.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	})
	register(&command{
		name: "run show", args: "RUN", summary: "show one run",
		example: "writ run show 01jd3v4k5m6n7p8q9r0s1t2v3w",
		flags: func(fs *flag.FlagSet) any {
			return fs.Bool("json", false, "print JSON")
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) != 1 {
				return usagef("run show takes one run id")
			}
			c, err := clientFor(e)
			if err != nil {
				return err
			}
			run, err := c.GetRun(ctx, args[0])
			if err != nil {
				return err
			}
			if *opts.(*bool) {
				return printJSON(e.stdout, run)
			}
			printRun(e.stdout, run)
			return nil
		},
	})
	verbs := map[string]string{
		"end":     "end a run; its credentials die with it",
		"kill":    "kill a run (admins)",
		"suspend": "suspend a run: its tokens are refused until a human resumes it",
		"resume":  "resume a suspended run (admins)",
	}
	for _, verb := range []string{"end", "kill", "suspend", "resume"} {
		register(&command{
			name: "run " + verb, args: "RUN", summary: verbs[verb],
			example: fmt.Sprintf("writ run %s 01jd3v4k5m6n7p8q9r0s1t2v3w --reason \"ticket closed\"", verb),
			flags: func(fs *flag.FlagSet) any {
				o := &runVerbOpts{}
				fs.StringVar(&o.reason, "reason", "", "why; recorded in the audit event")
				fs.BoolVar(&o.json, "json", false, "print the run as JSON")
				return o
			},
			run: func(ctx context.Context, e *env, opts any, args []string) error {
				o := opts.(*runVerbOpts)
				if len(args) != 1 {
					return usagef("run %s takes one run id", verb)
				}
				c, err := clientFor(e)
				if err != nil {
					return err
				}
				run, err := c.Transition(ctx, args[0], verb, o.reason)
				if err != nil {
					return err
				}
				if o.json {
					return printJSON(e.stdout, run)
				}
				fmt.Fprintf(e.stdout, "run %s is %s\n", run.ID, run.State)
				return nil
			},
		})
	}
}

func printRun(w io.Writer, r *client.Run) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("run", string(r.ID))
	row("identity", r.SPIFFEID)
	row("state", string(r.State))
	row("agent", r.Agent)
	row("profile", r.Profile)
	row("ticket", r.Ticket.System+":"+r.Ticket.ID)
	row("issuer", r.Issuer+" ("+r.SignerKey+")")
	row("trigger", r.TriggerID+" "+r.TriggerDigest)
	row("created", r.CreatedAt.Format(time.RFC3339))
	row("deadline", r.Deadline.Format(time.RFC3339))
	if !r.EndedAt.IsZero() {
		row("ended", r.EndedAt.Format(time.RFC3339)+" ("+r.EndReason+")")
	}
	for _, repo := range r.Scope.Repos {
		mode := "read"
		if repo.Write {
			mode = "write"
		}
		row("repo", fmt.Sprintf("%s@%s %s %v", repo.Name, repo.Base, mode, repo.Paths))
	}
	row("tools", fmt.Sprint(r.Scope.Tools))
	if len(r.Scope.Hosts) > 0 {
		row("hosts", fmt.Sprint(r.Scope.Hosts))
	}
	row("scope", r.ScopeDigest)
	tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readInput reads a file, or stdin for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	}
	return os.ReadFile(path)
}

// saveRunDir keeps a run's credentials where the commands acting as the
// run find them: token and dpop.key (0600), url and run id.
func saveRunDir(e *env, dir, baseURL string, run *client.Run, key *ecdsa.PrivateKey) (string, error) {
	if dir == "" {
		state := e.getenv("XDG_STATE_HOME")
		if state == "" {
			home := e.getenv("HOME")
			if home == "" {
				return "", fmt.Errorf("set --run-dir, XDG_STATE_HOME or HOME")
			}
			state = filepath.Join(home, ".local", "state")
		}
		dir = filepath.Join(state, "writ", "runs", string(run.ID))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"dpop.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
		{"token", []byte(run.Token + "\n")},
		{"url", []byte(baseURL + "\n")},
		{"run", []byte(string(run.ID) + "\n")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// runClient is a client acting as the run whose credentials are in dir
// (WRIT_RUN_DIR): its bound token and DPoP key.
func runClient(e *env, dir string) (*client.Client, string, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b)), err
	}
	id, err := read("run")
	if err != nil {
		return nil, "", fmt.Errorf("run credentials in %s: %w", dir, err)
	}
	tok, err := read("token")
	if err != nil {
		return nil, "", err
	}
	u, err := read("url")
	if err != nil {
		return nil, "", err
	}
	if v := e.getenv("WRIT_URL"); v != "" {
		u = v
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "dpop.key"))
	if errors.Is(err, fs.ErrNotExist) {
		// Beside an agent the launcher keeps only an unbound short-lived
		// token here; its DPoP key stays with the launcher.
		return client.New(u, tok), id, nil
	}
	if err != nil {
		return nil, "", err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, "", fmt.Errorf("%s/dpop.key is not PEM", dir)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, "", err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, "", fmt.Errorf("%s/dpop.key is not an ECDSA key", dir)
	}
	return client.NewRun(u, tok, ek), id, nil
}

// clientFor returns a human's client, or — when no human token is set and
// WRIT_RUN_DIR names a run's credentials — that run's own client.
func clientFor(e *env) (*client.Client, error) {
	if e.getenv("WRIT_TOKEN") == "" {
		if dir := e.getenv("WRIT_RUN_DIR"); dir != "" {
			c, _, err := runClient(e, dir)
			return c, err
		}
	}
	return newClient(e)
}
