package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"text/tabwriter"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/launch"
)

type buildOpts struct {
	recipe, repo string
	json         bool
}

type releaseOpts struct {
	env, run string
	json     bool
}

func init() {
	register(&command{
		name: "build", args: "RUN", summary: "build a run's approved, merged commit with a configured recipe, sandboxed, and sign SLSA provenance for its outputs",
		example: "writ build 01jd3v4k5m6n7p8q9r0s1t2v3w --recipe go\nwrit build 01jd3v4k5m6n7p8q9r0s1t2v3w --recipe go --json",
		flags: func(fs *flag.FlagSet) any {
			o := &buildOpts{}
			fs.StringVar(&o.recipe, "recipe", "", "the recipe (builds.recipes[].name in writ.yaml)")
			fs.StringVar(&o.repo, "repo", "", "the repository, when the run merged into several")
			fs.BoolVar(&o.json, "json", false, "print JSON, the provenance envelope included")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*buildOpts)
			if len(args) != 1 || o.recipe == "" {
				return usagef("build takes one run id and --recipe NAME")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			b, err := c.Build(ctx, &writ.BuildRequest{Run: writ.RunID(args[0]), Recipe: o.recipe, Repo: o.repo})
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(e.stdout, b)
			}
			fmt.Fprintf(e.stdout, "build %s of %s@%s (recipe %s): %s\n", b.ID, b.Repo, b.Commit, b.Recipe, b.State)
			for _, out := range b.Outputs {
				fmt.Fprintf(e.stdout, "  %s  %s  (%d bytes)\n", out.Digest, out.Name, out.Size)
			}
			if b.State != writ.BuildSucceeded {
				if b.Log != "" {
					fmt.Fprintf(e.stderr, "%s\n", b.Log)
				}
				return errors.New(b.Failure)
			}
			return nil
		},
	})
	register(&command{
		name: "release", args: "ARTIFACT", summary: "release an artifact built by writ's builder to an environment (the release gate: provenance, approved merge, approval of this digest for this environment)",
		example: "writ release sha256:4f0c…e1 --env staging --run 01jd3v4k5m6n7p8q9r0s1t2v3w\nWRIT_RUN=… writ release sha256:4f0c…e1 --env production   # inside a release run",
		flags: func(fs *flag.FlagSet) any {
			o := &releaseOpts{}
			fs.StringVar(&o.env, "env", "", "the environment to release to")
			fs.StringVar(&o.run, "run", "", "the release run (default $WRIT_RUN)")
			fs.BoolVar(&o.json, "json", false, "print JSON, the release attestation included")
			return o
		},
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			o := opts.(*releaseOpts)
			if o.run == "" {
				o.run = e.getenv("WRIT_RUN")
			}
			if len(args) != 1 || o.env == "" || o.run == "" {
				return usagef("release takes one artifact digest, --env NAME and --run RUN (or WRIT_RUN)")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			r, err := c.Release(ctx, &writ.ReleaseRequest{Run: writ.RunID(o.run), Artifact: args[0], Environment: o.env})
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(e.stdout, r)
			}
			fmt.Fprintf(e.stdout, "released %s to %s (release %s)\n  built from %s@%s (build event %s)\n  decision %s, approval %s\n",
				r.Artifact, r.Environment, r.ID, r.Repo, r.Commit, r.Build, r.Decision, r.Approval)
			return nil
		},
	})
}

// buildSandbox confines writ serve's build recipes with the Landlock
// helper of this binary, the one `writ run` uses.
func buildSandbox() builder.Sandbox {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	return func(ctx context.Context, argv, env []string, dir string, ports []uint16) (*exec.Cmd, func(), error) {
		return launch.SandboxCommand(ctx, self, argv, env, dir, ports)
	}
}

// traceArtifact prints an artifact's chain: each run that built or
// released it (ticket, trigger, approvals, merge), then its builds,
// releases, deployments and alerts.
func traceArtifact(ctx context.Context, e *env, c *client.Client, digest string, asJSON bool) error {
	t, err := c.ArtifactTrace(ctx, digest)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, t)
	}
	fmt.Fprintf(e.stdout, "artifact %s\n", t.Artifact)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, r := range t.Runs {
		fmt.Fprintf(tw, "\n%s by run %s (%s, %s) — ticket %s:%s — trigger %s signed by %s\n", r.Role, r.Run.ID, r.Run.Agent, r.Run.Profile,
			r.Run.Ticket.System, r.Run.Ticket.ID, r.Run.TriggerDigest, r.Run.Issuer)
		for _, te := range r.Events {
			switch te.Type {
			case writ.EventTriggerAccepted, writ.EventRunStarted, writ.EventApprovalGranted, "git.pushed", "merge", writ.EventBuild,
				writ.EventRelease, writ.EventRunEnded, writ.EventRunKilled, writ.EventRunExpired, "attestation.signed":
				printTraceLine(tw, te)
			}
		}
	}
	fmt.Fprintf(tw, "\nartifact events\n")
	for _, te := range t.Events {
		printTraceLine(tw, te)
	}
	return tw.Flush()
}

func printTraceLine(w io.Writer, te client.TraceEvent) {
	var ev writ.Event
	_ = json.Unmarshal(te.Event, &ev)
	seq := fmt.Sprint(te.Seq)
	if te.Seq < 0 {
		seq = "(pending)"
	}
	detail := summary(&ev)
	switch ev.Type {
	case "merge":
		detail = fmt.Sprintf("%v into %v, approval %v", ev.Details["head"], ev.Details["into"], ev.Details["approval"])
	case writ.EventBuild:
		detail = fmt.Sprintf("%v of %v: %v", ev.Details["recipe"], ev.Details["commit"], ev.Details["state"])
	case writ.EventRelease:
		detail = fmt.Sprintf("%v to %v, approval %v", ev.Details["artifact"], ev.Details["environment"], ev.Details["approval"])
	case writ.EventDeployment:
		detail = fmt.Sprintf("to %v: %v (%v), released there: %v", ev.Details["environment"], ev.Details["result"], ev.Details["pipeline"], ev.Details["released"])
	case writ.EventAlert:
		detail = fmt.Sprint(ev.Details["message"])
	}
	fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", seq, ev.Time.Format(time.RFC3339), te.Type, ev.Actor, detail)
}
