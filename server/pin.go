package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/sqlstore"
)

// The checkpoint pin (docs/design.md §5 "The checkpoint pin"): outside the
// database, the newest audit checkpoint writ signed, rewritten (fsynced)
// at most about once a second. At start a store whose log is shorter than
// the pin, or whose first entries do not hash to the pinned root, was
// rolled back or rewritten, and writ refuses it.

// pinFile is the pin's JSON form.
type pinFile struct {
	Version int `json:"version"`
	// Checkpoint is the signed note (C2SP tlog-checkpoint) as the log
	// signed it.
	Checkpoint string `json:"checkpoint"`
	// TriggerHorizon is the latest expiry of a trigger the store had seen
	// used when the pin was written: after a rollback or a restore, every
	// trigger expiring by then stays refused.
	TriggerHorizon time.Time `json:"trigger_horizon"`
	WrittenAt      time.Time `json:"written_at"`
}

// pinned is a pin read and verified.
type pinned struct {
	file pinFile
	cp   auditlog.Checkpoint
}

// PinPath returns where cfg's checkpoint pin lives: checkpointPin when
// set; on PostgreSQL, in git.root, the filesystem replicas share (their
// data dirs are their own); otherwise in the data dir.
func PinPath(cfg Config) string {
	switch {
	case cfg.CheckpointPin != "":
		return cfg.CheckpointPin
	case strings.HasPrefix(cfg.Store, "postgres://"), strings.HasPrefix(cfg.Store, "postgresql://"):
		return filepath.Join(cfg.gitRoot(), ".writ-checkpoint.pin")
	default:
		return filepath.Join(cfg.DataDir, "checkpoint.pin")
	}
}

func (c Config) gitRoot() string {
	if c.Git.Root != "" {
		return c.Git.Root
	}
	return filepath.Join(c.DataDir, "repos")
}

// RollbackError is the refusal of a store that is behind, or disagrees
// with, the checkpoint pin.
type RollbackError struct {
	Pin       string // the pin's path
	PinSize   int64  // entries the pin records
	StoreSize int64  // entries the store's log holds
	// Rewritten is set when the store holds at least PinSize entries but
	// they do not hash to the pinned root.
	Rewritten bool
}

func (e *RollbackError) Error() string {
	what := fmt.Sprintf("the store's audit log has %d entries but the checkpoint pin %s records %d: the database was rolled back, restored from an older copy, or lost committed writes (a damaged WAL)",
		e.StoreSize, e.Pin, e.PinSize)
	if e.Rewritten {
		what = fmt.Sprintf("the store's first %d audit log entries do not hash to the root the checkpoint pin %s records: the log was rewritten or replaced by another installation's", e.PinSize, e.Pin)
	}
	return what + ". writ refuses to start, since what happened after would be forgotten (events, trigger uses, leases). " +
		"To restore a backup deliberately use `writ restore`; to start on this store anyway use `writ serve --accept-rollback`, " +
		"which records an alert, keeps refusing the triggers used up to the pin and resets the pin"
}

// readPin reads and verifies the pin at path; (nil, nil) when there is
// none.
func readPin(path string, v note.Verifier, origin string) (*pinned, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint pin %s: %w", path, err)
	}
	var f pinFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("checkpoint pin %s: not a version 1 pin (%v); if it is damaged, move it aside and start with --accept-rollback", path, err)
	}
	cp, err := auditlog.OpenCheckpoint([]byte(f.Checkpoint), v, origin)
	if err != nil {
		return nil, fmt.Errorf("checkpoint pin %s: %w; a pin not signed by this server's log key (keys.log) belongs to another installation: move it aside and start with --accept-rollback", path, err)
	}
	return &pinned{file: f, cp: cp}, nil
}

// writePin replaces the pin at path with f unless the pin there already
// records a larger log (another replica wrote it) and force is false. It
// holds an flock on path+".lock" across the read and the rename, writes a
// temporary file, fsyncs it, renames it over the pin and fsyncs the
// directory.
func writePin(path string, f pinFile, size int64, force bool, v note.Verifier, origin string) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("checkpoint pin: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return false, fmt.Errorf("checkpoint pin: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return false, fmt.Errorf("checkpoint pin: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	if !force {
		if cur, err := readPin(path, v, origin); err == nil && cur != nil && cur.cp.Size >= size {
			return false, nil
		}
	}
	f.Version = 1
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return false, err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	if err := writeSynced(tmp, append(data, '\n')); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("checkpoint pin: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("checkpoint pin: %w", err)
	}
	return true, syncDir(filepath.Dir(path))
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// pinKeeper writes the pin of one server.
type pinKeeper struct {
	path     string
	verifier note.Verifier
	origin   string
	store    *sqlstore.DB
	audit    *auditlog.Log
	log      *slog.Logger
	now      func() time.Time
	written  int64 // the size last pinned by this process
}

func newPinKeeper(cfg Config, keys *Keys, store *sqlstore.DB, audit *auditlog.Log, log *slog.Logger, now func() time.Time) (*pinKeeper, error) {
	v, err := note.NewVerifier(keys.LogKey)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	return &pinKeeper{path: PinPath(cfg), verifier: v, origin: cfg.TrustDomain + "/audit", store: store, audit: audit, log: log, now: now}, nil
}

// check compares the store with the pin at start. A missing pin is
// written (and, when the log is not empty, alerted: a pin deleted
// together with a rollback would hide it). With accept, a store behind
// or disagreeing with the pin is taken as it is: an alert is recorded,
// the trigger horizon raised to the pin's and the pin reset.
func (p *pinKeeper) check(ctx context.Context, accept bool) error {
	pin, err := readPin(p.path, p.verifier, p.origin)
	if err != nil && !accept {
		return err
	}
	size, err := p.store.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint pin: %w", err)
	}
	if pin == nil {
		if size > 0 {
			p.log.WarnContext(ctx, "no checkpoint pin: writing one; a rollback before now cannot be detected", slog.String("pin", p.path), slog.Int64("log_size", size))
			if err := p.alert(ctx, "checkpoint_pin_missing", fmt.Sprintf("the checkpoint pin %s was missing at start with %d entries in the log; a new pin was written", p.path, size), map[string]any{"store_size": size}); err != nil {
				return err
			}
		}
		return p.write(ctx, true)
	}
	rb := p.compare(ctx, pin, size)
	if rb == nil {
		p.written = pin.cp.Size
		return nil
	}
	if !accept {
		return rb
	}
	return p.acceptRollback(ctx, pin, rb)
}

// compare returns nil when the store's log extends the pinned one.
func (p *pinKeeper) compare(ctx context.Context, pin *pinned, size int64) *RollbackError {
	rb := &RollbackError{Pin: p.path, PinSize: pin.cp.Size, StoreSize: size}
	if size < pin.cp.Size {
		return rb
	}
	if pin.cp.Size == 0 {
		return nil
	}
	root, err := tlog.TreeHash(pin.cp.Size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := p.store.ReadLogHashes(ctx, idx)
		out := make([]tlog.Hash, len(hs))
		for i := range hs {
			out[i] = hs[i]
		}
		return out, err
	}))
	if err == nil && root == pin.cp.Root {
		return nil
	}
	// The stored tree hashes may be what is damaged (the background
	// re-derivation repairs them): the leaves decide.
	leafRoot, lerr := leavesRoot(ctx, p.store, pin.cp.Size)
	if lerr == nil && leafRoot == pin.cp.Root {
		p.log.WarnContext(ctx, "the stored audit tree hashes do not reproduce the pinned root but the leaves do: the tree hashes are damaged and will be re-derived",
			slog.Int64("size", pin.cp.Size))
		return nil
	}
	rb.Rewritten = true
	return rb
}

// leavesRoot computes the RFC 6962 root of the first n entries from their
// stored bytes (not the recorded leaf hashes, which may be what is
// damaged), streaming: a stack of complete subtrees, O(log n) memory.
func leavesRoot(ctx context.Context, store *sqlstore.DB, n int64) (tlog.Hash, error) {
	type sub struct {
		h    tlog.Hash
		size int64
	}
	var stack []sub
	const page = 4096
	for start := int64(0); start < n; start += page {
		end := min(start+page, n)
		leaves, err := store.LogLeaves(ctx, start, end, true)
		if err != nil {
			return tlog.Hash{}, err
		}
		if int64(len(leaves)) != end-start {
			return tlog.Hash{}, fmt.Errorf("the log is missing entries in [%d, %d)", start, end)
		}
		for i, l := range leaves {
			if l.Seq != start+int64(i) {
				return tlog.Hash{}, fmt.Errorf("the log is missing entry %d", start+int64(i))
			}
			s := sub{h: tlog.RecordHash(l.Body), size: 1}
			for len(stack) > 0 && stack[len(stack)-1].size == s.size {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				s = sub{h: tlog.NodeHash(top.h, s.h), size: s.size * 2}
			}
			stack = append(stack, s)
		}
	}
	if len(stack) == 0 {
		return tlog.Hash{}, errors.New("empty log")
	}
	h := stack[len(stack)-1].h
	for i := len(stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(stack[i].h, h)
	}
	return h, nil
}

// acceptRollback takes a store the pin refuses, deliberately: the alert
// first, then the trigger horizon, then the pin.
func (p *pinKeeper) acceptRollback(ctx context.Context, pin *pinned, rb *RollbackError) error {
	details := map[string]any{"store_size": rb.StoreSize}
	horizon := time.Time{}
	if pin != nil {
		details["pin_size"] = pin.cp.Size
		details["pin_root"] = pin.cp.Root.String()
		details["pin_written_at"] = pin.file.WrittenAt
		details["trigger_horizon"] = pin.file.TriggerHorizon
		horizon = pin.file.TriggerHorizon
	}
	msg := "writ serve --accept-rollback: started on a store the checkpoint pin refused: " + rb.Error()
	if err := p.alert(ctx, "store_rollback_accepted", msg, details); err != nil {
		return err
	}
	if !horizon.IsZero() {
		if err := p.store.RaiseHorizon(ctx, sqlstore.HorizonTrigger, horizon); err != nil {
			return err
		}
	}
	p.log.WarnContext(ctx, "accepted a rolled-back store", slog.Int64("store_size", rb.StoreSize), slog.Int64("pin_size", rb.PinSize), slog.String("pin", p.path))
	return p.write(ctx, true)
}

func (p *pinKeeper) alert(ctx context.Context, code, msg string, details map[string]any) error {
	d := map[string]any{"code": code, "message": msg, "pin": p.path}
	for k, v := range details {
		d[k] = v
	}
	if err := p.store.AppendEvent(ctx, &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: "store", Details: d}); err != nil {
		return fmt.Errorf("checkpoint pin: record the %s alert: %w", code, err)
	}
	return nil
}

// write pins the newest checkpoint the store holds when it is larger than
// the one pinned (or whatever it is, with force).
func (p *pinKeeper) write(ctx context.Context, force bool) error {
	msg, err := p.store.LatestCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint pin: %w", err)
	}
	if msg == nil {
		if msg, err = p.audit.Checkpoint(ctx); err != nil { // the signed empty log
			return fmt.Errorf("checkpoint pin: %w", err)
		}
	}
	cp, err := auditlog.OpenCheckpoint(msg, p.verifier, p.origin)
	if err != nil {
		return fmt.Errorf("checkpoint pin: the store's latest checkpoint: %w", err)
	}
	if !force && cp.Size <= p.written {
		return nil
	}
	th, err := p.store.UsedTriggerHorizon(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint pin: %w", err)
	}
	if _, err := writePin(p.path, pinFile{Checkpoint: string(msg), TriggerHorizon: th, WrittenAt: p.now().UTC()}, cp.Size, force, p.verifier, p.origin); err != nil {
		return err
	}
	p.written = cp.Size
	return nil
}

// loop re-pins at most once a second while the log grows, and once more
// when ctx ends.
func (p *pinKeeper) loop(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := p.write(ctx, false); err != nil && ctx.Err() == nil {
			p.log.ErrorContext(ctx, "checkpoint pin", slog.Any("error", err))
		}
	}
}

// sweepOrphans revokes, once at start, the credentials outside systems
// still hold for leases the store does not know (a rollback, a restore,
// or a crash of another installation's: see broker.Lister).
func (s *Server) sweepOrphans(ctx context.Context) {
	n, err := s.broker.broker.SweepOrphans(ctx, s.store.AppendEvent)
	if err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "sweeping credentials the store does not know", slog.Any("error", err))
	}
	if n > 0 {
		s.log.WarnContext(ctx, "revoked credentials the store does not know", slog.Int("count", n))
	}
}
