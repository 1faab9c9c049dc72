package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
)

type auditVerifyOpts struct {
	key, trustFile, export string
	noPin                  bool
}

type auditTailOpts struct {
	follow bool
	n      int64
	json   bool
}

func init() {
	register(&command{
		name: "audit verify", summary: "verify the audit log: checkpoint signature, every entry, and consistency with what this client saw before",
		example: "writ audit verify                          # online; pins the log key on first use\nwrit audit verify --export audit.jsonl --key \"$(cat log.pub)\"   # offline",
		flags: func(fs *flag.FlagSet) any {
			o := &auditVerifyOpts{}
			fs.StringVar(&o.key, "key", "", "the log's public note key (default: the one pinned in the trust file)")
			fs.StringVar(&o.trustFile, "trust-file", "", "where this client remembers the key and the last verified checkpoint (default $XDG_CONFIG_HOME/writ/audit-trust.json)")
			fs.StringVar(&o.export, "export", "", "verify this export file offline instead of the server")
			fs.BoolVar(&o.noPin, "no-pin", false, "do not pin the key or record the checkpoint in the trust file")
			return o
		},
		run: runAuditVerify,
	})
	register(&command{
		name: "audit export", summary: "write the audit log (checkpoint, checkpoints, every entry) as JSON lines for offline verification",
		example: "writ audit export > audit.jsonl",
		flags:   func(fs *flag.FlagSet) any { return fs.String("o", "", "write here instead of stdout") },
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) > 0 {
				return usagef("audit export takes no arguments")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			ex, err := fetchLog(ctx, c)
			if err != nil {
				return err
			}
			w := e.stdout
			if p := *opts.(*string); p != "" {
				f, err := os.Create(p)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			return ex.write(w)
		},
	})
	register(&command{
		name: "audit tail", summary: "print the newest audit events; -f follows",
		example: "writ audit tail -n 20 -f",
		flags: func(fs *flag.FlagSet) any {
			o := &auditTailOpts{}
			fs.BoolVar(&o.follow, "f", false, "keep printing new events as they are logged")
			fs.Int64Var(&o.n, "n", 10, "how many of the newest events to print first")
			fs.BoolVar(&o.json, "json", false, "print each event's exact JSON")
			return o
		},
		run: runAuditTail,
	})
	register(&command{
		name: "trace", args: "RUN|ARTIFACT", summary: "a run's timeline (trigger, every action and decision, credentials, approvals, with log indexes), or an artifact's chain from ticket to deployment",
		example: "writ trace 01jd3v4k5m6n7p8q9r0s1t2v3w\nwrit trace 01jd3v4k5m6n7p8q9r0s1t2v3w --json\nwrit trace sha256:4f0c…e1",
		flags:   func(fs *flag.FlagSet) any { return fs.Bool("json", false, "print JSON") },
		run: func(ctx context.Context, e *env, opts any, args []string) error {
			if len(args) != 1 {
				return usagef("trace takes one run id or artifact digest")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if strings.HasPrefix(args[0], "sha256:") {
				return traceArtifact(ctx, e, c, args[0], *opts.(*bool))
			}
			t, err := c.Trace(ctx, args[0])
			if err != nil {
				return err
			}
			if *opts.(*bool) {
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
		},
	})
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

// logExport is what `writ audit export` writes and `audit verify --export`
// reads: a header line with the key, origin and signed checkpoints, then one
// line per entry.
type logExport struct {
	Key         string   `json:"key"`
	Origin      string   `json:"origin"`
	Checkpoint  string   `json:"checkpoint"`
	Checkpoints []string `json:"checkpoints,omitempty"`
	entries     []client.AuditEntry
}

func fetchLog(ctx context.Context, c *client.Client) (*logExport, error) {
	key, err := c.AuditKey(ctx)
	if err != nil {
		return nil, err
	}
	// The older checkpoints first: fetched after the latest, they could
	// include checkpoints the log signed in between, larger than the one
	// verified, which reads as a rollback.
	older, err := c.AuditCheckpoints(ctx, 1000)
	if err != nil {
		return nil, err
	}
	cpNote, err := c.AuditCheckpoint(ctx, 0)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("the server's log key: %w", err)
	}
	cp, err := auditlog.OpenCheckpoint(cpNote, v, v.Name())
	if err != nil {
		return nil, err
	}
	entries, err := c.AuditEntries(ctx, 0, cp.Size)
	if err != nil {
		return nil, err
	}
	return &logExport{Key: key, Origin: v.Name(), Checkpoint: string(cpNote), Checkpoints: older, entries: entries}, nil
}

func (x *logExport) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(x); err != nil {
		return err
	}
	for _, e := range x.entries {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func readExport(path string) (*logExport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	var x logExport
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	for {
		var e client.AuditEntry
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: entry %d: %w", path, len(x.entries), err)
		}
		x.entries = append(x.entries, e)
	}
	return &x, nil
}

// trust is what a verifier remembers between runs.
type trust struct {
	Key        string    `json:"key"`
	Origin     string    `json:"origin"`
	Size       int64     `json:"size"`
	Root       string    `json:"root"` // base64
	VerifiedAt time.Time `json:"verifiedAt"`
}

func trustPath(e *env, flagPath string) string {
	if flagPath != "" {
		return flagPath
	}
	dir := e.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		dir = filepath.Join(e.getenv("HOME"), ".config")
	}
	return filepath.Join(dir, "writ", "audit-trust.json")
}

func runAuditVerify(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*auditVerifyOpts)
	if len(args) > 0 {
		return usagef("audit verify takes no arguments")
	}
	tp := trustPath(e, o.trustFile)
	var tr trust
	if data, err := os.ReadFile(tp); err == nil {
		if err := json.Unmarshal(data, &tr); err != nil {
			return fmt.Errorf("%s: %w", tp, err)
		}
	}
	var x *logExport
	var err error
	if o.export != "" {
		x, err = readExport(o.export)
	} else {
		var c *client.Client
		if c, err = newClient(e); err == nil {
			x, err = fetchLog(ctx, c)
		}
	}
	if err != nil {
		return err
	}
	key := o.key
	switch {
	case key == "" && tr.Key != "":
		key = tr.Key
	case key == "" && o.export != "":
		return usagef("offline verification needs the log key: --key, or a trust file that pinned it")
	case key == "":
		key = x.Key
		fmt.Fprintf(e.stderr, "writ: hint: pinning the log key on first use: %s\nwrit: hint: compare it with the key your writ operator publishes\n", key)
	}
	if tr.Key != "" && key != tr.Key {
		return fmt.Errorf("audit log: the log key %q is not the one pinned in %s (%q); if the operator rotated it, verify the new key out of band and edit the trust file", key, tp, tr.Key)
	}
	var trusted *trust
	if tr.Size > 0 {
		trusted = &tr
	}
	cp, res, err := verifyLog(x, key, trusted)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ok: %d entries verified against checkpoint %s size %d root %s\n", res.Entries, cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Root[:]))
	if tr.Size > 0 {
		fmt.Fprintf(e.stdout, "ok: consistent with the checkpoint of size %d this client verified on %s\n", tr.Size, tr.VerifiedAt.Format(time.RFC3339))
	}
	if o.noPin {
		return nil
	}
	nt := trust{Key: key, Origin: cp.Origin, Size: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Root[:]), VerifiedAt: time.Now().UTC()}
	data, _ := json.MarshalIndent(nt, "", "  ")
	if err := os.MkdirAll(filepath.Dir(tp), 0o700); err != nil {
		return err
	}
	return os.WriteFile(tp, append(data, '\n'), 0o600)
}

// verifyLog checks a fetched or exported log with the log key: the
// checkpoint's signature, every entry against it (naming the first bad
// index), and, given what this client trusted before, that the log only
// grew.
func verifyLog(x *logExport, key string, trusted *trust) (auditlog.Checkpoint, *auditlog.Verification, error) {
	v, err := note.NewVerifier(key)
	if err != nil {
		return auditlog.Checkpoint{}, nil, fmt.Errorf("log key: %w", err)
	}
	cp, err := auditlog.OpenCheckpoint([]byte(x.Checkpoint), v, v.Name())
	if err != nil {
		return cp, nil, err
	}
	var older []auditlog.Checkpoint
	for _, n := range x.Checkpoints {
		c, err := auditlog.OpenCheckpoint([]byte(n), v, v.Name())
		if err != nil {
			return cp, nil, fmt.Errorf("an older checkpoint: %w", err)
		}
		older = append(older, c)
	}
	entries := make([]auditlog.Entry, len(x.entries))
	for i, ae := range x.entries {
		entries[i] = auditlog.Entry{Seq: ae.Seq, Body: ae.Body}
		if ae.LeafHash != "" {
			if b, err := hex.DecodeString(ae.LeafHash); err == nil && len(b) == 32 {
				var h auditlog.Hash
				copy(h[:], b)
				entries[i].LeafHash = &h
			}
		}
	}
	res, err := auditlog.Verify(cp, entries, older)
	if err != nil {
		return cp, nil, err
	}
	if trusted != nil {
		var root auditlog.Hash
		b, err := base64.StdEncoding.DecodeString(trusted.Root)
		if err != nil || len(b) != len(root) {
			return cp, nil, fmt.Errorf("the trust file's root is not a base64 SHA-256 hash")
		}
		copy(root[:], b)
		if err := auditlog.CheckTrusted(auditlog.Checkpoint{Origin: trusted.Origin, Size: trusted.Size, Root: root}, cp, entries); err != nil {
			return cp, nil, err
		}
	}
	return cp, res, nil
}

func runAuditTail(ctx context.Context, e *env, opts any, args []string) error {
	o := opts.(*auditTailOpts)
	if len(args) > 0 {
		return usagef("audit tail takes no arguments")
	}
	c, err := newClient(e)
	if err != nil {
		return err
	}
	size := int64(0)
	if cp, err := c.AuditCheckpoint(ctx, 0); err == nil {
		size = checkpointSize(cp)
	} else {
		return err
	}
	next := max(size-o.n, 0)
	for {
		es, err := c.AuditEntries(ctx, next, size)
		if err != nil {
			if o.follow && ctx.Err() != nil {
				return nil // interrupted: the way -f ends
			}
			return err
		}
		for _, ae := range es {
			next = ae.Seq + 1
			if o.json {
				fmt.Fprintf(e.stdout, "%d %s\n", ae.Seq, ae.Body)
				continue
			}
			var ev writ.Event
			_ = json.Unmarshal(ae.Body, &ev)
			fmt.Fprintf(e.stdout, "%-6d %s  %-18s %-22s %s %s\n", ae.Seq, ev.Time.Format(time.RFC3339), ae.Type, ev.Actor, ev.Run, summary(&ev))
		}
		if !o.follow {
			return nil
		}
		// Wait (server-side, at most 10 s) for the log to grow.
		cp, err := c.AuditCheckpoint(ctx, next+1)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && writ.ErrorCode(err) != "not_yet_logged" {
			return err
		}
		if err == nil {
			size = checkpointSize(cp)
		}
	}
}

// checkpointSize reads the size line of a checkpoint note (display only;
// verification is audit verify's job).
func checkpointSize(cp []byte) int64 {
	lines := strings.SplitN(string(cp), "\n", 3)
	if len(lines) < 2 {
		return 0
	}
	var n int64
	fmt.Sscan(lines[1], &n)
	return n
}
