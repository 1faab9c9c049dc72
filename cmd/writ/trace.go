package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
)

// traceCommand is `writ trace RUN|ARTIFACT`.
type traceCommand struct{ json bool }

func (c *traceCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *traceCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("trace takes one run id or artifact digest")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	if strings.HasPrefix(args[0], "sha256:") {
		return traceArtifact(ctx, e, cl, args[0], c.json)
	}
	t, err := cl.Trace(ctx, args[0])
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, t)
	}
	fmt.Fprintf(e.stdout, "run %s (%s, %s) — %s:%s — %s\n", t.Run.ID, t.Run.Agent, t.Run.Profile, t.Run.Ticket.System, t.Run.Ticket.ID, t.Run.State)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tEVENT\tACTOR\tDETAIL")
	for _, te := range t.Events {
		var ev writ.Event
		_ = json.Unmarshal(te.Event, &ev)
		seq := fmt.Sprint(te.Seq)
		if te.Seq < 0 {
			seq = "(pending)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", seq, ev.Time.Format(time.RFC3339), te.Type, ev.Actor, summary(&ev))
	}
	return tw.Flush()
}

// summary is one line about an event for people.
func summary(ev *writ.Event) string {
	var parts []string
	switch ev.Type {
	case writ.EventDecision:
		what := ev.Action
		if n, _ := ev.Details["name"].(string); n != "" {
			what += " " + n
		}
		parts = append(parts, fmt.Sprintf("%s → %s", what, ev.Decision))
		if rs, ok := ev.Details["reasons"].([]any); ok {
			for _, r := range rs {
				if m, ok := r.(map[string]any); ok {
					parts = append(parts, fmt.Sprint(m["code"]))
				}
			}
		}
		return strings.Join(parts, " ")
	case writ.EventApprovalGranted, writ.EventApprovalDenied:
		return fmt.Sprintf("%s %s by %v (%v of %v)", ev.Subject, ev.Decision, ev.Details["approver"], ev.Details["approvals"], ev.Details["required"])
	}
	for _, k := range []string{"code", "reason", "aud", "kid", "deadline", "digest"} {
		if v, ok := ev.Details[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if ev.Subject != "" && len(parts) == 0 {
		parts = append(parts, ev.Subject)
	}
	return strings.Join(parts, " ")
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
