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
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
)

// auditVerifyCommand is `writ audit verify`: the log, online or an
// export offline, against the key and checkpoint this client trusts.
type auditVerifyCommand struct {
	key, trustFile, export string
	noPin                  bool
}

func (c *auditVerifyCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.key, "key", "", "the log's public note key (default: the one pinned in the trust file)")
	fs.StringVar(&c.trustFile, "trust-file", "", "where this client remembers the key and the last verified checkpoint (default $XDG_CONFIG_HOME/writ/audit-trust.json)")
	fs.StringVar(&c.export, "export", "", "verify this export file offline instead of the server")
	fs.BoolVar(&c.noPin, "no-pin", false, "do not pin the key or record the checkpoint in the trust file")
}

func (c *auditVerifyCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("audit verify takes no arguments")
	}
	tp := trustPath(e, c.trustFile)
	var tr trust
	if data, err := os.ReadFile(tp); err == nil {
		if err := json.Unmarshal(data, &tr); err != nil {
			return fmt.Errorf("%s: %w", tp, err)
		}
	}
	var x *logExport
	var err error
	if c.export != "" {
		x, err = readExport(c.export)
	} else {
		var cl *client.Client
		if cl, err = newClient(e); err == nil {
			x, err = fetchLog(ctx, cl)
		}
	}
	if err != nil {
		return err
	}
	key := c.key
	switch {
	case key == "" && tr.Key != "":
		key = tr.Key
	case key == "" && c.export != "":
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
	if c.noPin {
		return nil
	}
	nt := trust{Key: key, Origin: cp.Origin, Size: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Root[:]), VerifiedAt: time.Now().UTC()}
	data, _ := json.MarshalIndent(nt, "", "  ")
	if err := os.MkdirAll(filepath.Dir(tp), 0o700); err != nil {
		return err
	}
	return os.WriteFile(tp, append(data, '\n'), 0o600)
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

// auditExportCommand is `writ audit export`.
type auditExportCommand struct{ out string }

func (c *auditExportCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.out, "o", "", "write here instead of stdout")
}

func (c *auditExportCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("audit export takes no arguments")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	ex, err := fetchLog(ctx, cl)
	if err != nil {
		return err
	}
	w := e.stdout
	if p := c.out; p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return ex.write(w)
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

// auditTailCommand is `writ audit tail`.
type auditTailCommand struct {
	follow bool
	n      int64
	json   bool
}

func (c *auditTailCommand) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.follow, "f", false, "keep printing new events as they are logged")
	fs.Int64Var(&c.n, "n", 10, "how many of the newest events to print first")
	fs.BoolVar(&c.json, "json", false, "print each event's exact JSON")
}

func (c *auditTailCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("audit tail takes no arguments")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	size := int64(0)
	if cp, err := cl.AuditCheckpoint(ctx, 0); err == nil {
		size = checkpointSize(cp)
	} else {
		return err
	}
	next := max(size-c.n, 0)
	for {
		es, err := cl.AuditEntries(ctx, next, size)
		if err != nil {
			if c.follow && ctx.Err() != nil {
				return nil // interrupted: the way -f ends
			}
			return err
		}
		for _, ae := range es {
			next = ae.Seq + 1
			if c.json {
				fmt.Fprintf(e.stdout, "%d %s\n", ae.Seq, ae.Body)
				continue
			}
			var ev writ.Event
			_ = json.Unmarshal(ae.Body, &ev)
			fmt.Fprintf(e.stdout, "%-6d %s  %-18s %-22s %s %s\n", ae.Seq, ev.Time.Format(time.RFC3339), ae.Type, ev.Actor, ev.Run, summary(&ev))
		}
		if !c.follow {
			return nil
		}
		// Wait (server-side, at most 10 s) for the log to grow.
		cp, err := cl.AuditCheckpoint(ctx, next+1)
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
