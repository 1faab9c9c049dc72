package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
)

// sqlitePath returns the file of an SQLite store DSN, or an error naming
// what to use on PostgreSQL.
func sqlitePath(cfg Config, what string) (string, error) {
	switch {
	case strings.HasPrefix(cfg.Store, "sqlite://"):
		return strings.TrimPrefix(cfg.Store, "sqlite://"), nil
	case strings.Contains(cfg.Store, "://"):
		return "", fmt.Errorf("writ %s works on SQLite stores; on PostgreSQL use pg_dump and pg_restore, or the cluster's point-in-time recovery (docs/operations.md)", what)
	default:
		return cfg.Store, nil
	}
}

// storeLock holds the flock that keeps one process at a time on an SQLite
// store: `writ serve` while it serves, `writ restore` while it replaces
// the file.
type storeLock struct{ f *os.File }

func lockStore(path string) (*storeLock, error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the store %s is in use by another writ process (writ serve or writ restore holds %s): stop it first", path, f.Name())
		}
		return nil, fmt.Errorf("lock the store: %w", err)
	}
	return &storeLock{f: f}, nil
}

func (l *storeLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing releases the flock
		l.f = nil
	}
}

// BackupReport describes a backup written by [Backup].
type BackupReport struct {
	Path       string
	LogSize    int64               // entries logged in the copy
	Checkpoint auditlog.Checkpoint // the newest checkpoint the copy holds
}

// Backup writes a consistent copy of cfg's SQLite store to path while
// writ may be serving from it (VACUUM INTO: one read snapshot), then
// checks the copy: sound, and its newest checkpoint signed by this
// installation's log key. The copy is as of one commit; everything after
// it is what a restore of it forgets (docs/operations.md).
func Backup(ctx context.Context, cfg Config, path string) (*BackupReport, error) {
	src, err := sqlitePath(cfg, "backup")
	if err != nil {
		return nil, err
	}
	keys, err := LoadKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	if err := sqlstore.BackupFile(ctx, src, path); err != nil {
		return nil, err
	}
	rep, _, err := inspectBackup(ctx, cfg, keys, path)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("the backup did not check out, so it was removed: %w", err)
	}
	return rep, nil
}

// inspectBackup checks a backup file: sound, a writ store, its checkpoint
// signed by keys.Log.
func inspectBackup(ctx context.Context, cfg Config, keys *Keys, path string) (*BackupReport, *sqlstore.FileFacts, error) {
	facts, err := sqlstore.InspectFile(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	if len(facts.Problems) > 0 {
		return nil, nil, &DamagedStoreError{Path: path, Problems: facts.Problems}
	}
	rep := &BackupReport{Path: path, LogSize: facts.LogSize}
	if facts.Checkpoint != nil {
		v, err := note.NewVerifier(keys.LogKey)
		if err != nil {
			return nil, nil, err
		}
		cp, err := auditlog.OpenCheckpoint(facts.Checkpoint, v, cfg.TrustDomain+"/audit")
		if err != nil {
			return nil, nil, fmt.Errorf("%s: its checkpoint is not this installation's (signed by keys.log for trust domain %s): %w", path, cfg.TrustDomain, err)
		}
		rep.Checkpoint = cp
	}
	return rep, facts, nil
}

// RestoreReport describes what [Restore] did.
type RestoreReport struct {
	Backup BackupReport
	// Previous is where the replaced store file was moved ("" when there
	// was none): writ never deletes it.
	Previous string
	// PinSize is the log size the checkpoint pin recorded before the
	// restore (0: no pin).
	PinSize int64
	// TriggerHorizon is the trigger replay horizon after the restore:
	// every trigger expiring by then is refused, used or not.
	TriggerHorizon time.Time
}

// Restore replaces cfg's SQLite store with the backup at path, with writ
// stopped (it takes the store's lock). The replaced file is moved aside,
// never deleted. The restored store keeps refusing what the replaced one
// had seen used: the trigger replay horizon is raised to the latest
// expiry of a trigger the replaced store or the checkpoint pin knew, and
// the DPoP horizon to now plus a proof's lifetime. An alert records the
// restore, and the pin is reset to the backup's checkpoint. Credentials
// issued after the backup are found and revoked by the next `writ serve`
// where their system can be listed (PostgreSQL roles); the others end at
// their own TTL (docs/operations.md).
func Restore(ctx context.Context, cfg Config, path string, log *slog.Logger) (*RestoreReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dst, err := sqlitePath(cfg, "restore")
	if err != nil {
		return nil, err
	}
	keys, err := LoadKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	lock, err := lockStore(dst)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	backup, _, err := inspectBackup(ctx, cfg, keys, path)
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", path, err)
	}
	rep := &RestoreReport{Backup: *backup}

	// What the replaced store and the pin had seen used.
	v, err := note.NewVerifier(keys.LogKey)
	if err != nil {
		return nil, err
	}
	pinPath := PinPath(cfg)
	horizon := time.Time{}
	if pin, err := readPin(pinPath, v, cfg.TrustDomain+"/audit"); err != nil {
		log.WarnContext(ctx, "the checkpoint pin cannot be read; restoring without it", slog.Any("error", err))
	} else if pin != nil {
		rep.PinSize = pin.cp.Size
		horizon = pin.file.TriggerHorizon
	}
	if _, err := os.Stat(dst); err == nil {
		cur, err := sqlstore.InspectFile(ctx, dst)
		switch {
		case err != nil:
			log.WarnContext(ctx, "the store being replaced cannot be read; its trigger uses are known only from the pin", slog.Any("error", err))
		case len(cur.Problems) > 0:
			log.WarnContext(ctx, "the store being replaced is damaged; its trigger uses are known only from the pin", slog.Any("problems", cur.Problems))
		case cur.TriggerHorizon.After(horizon):
			horizon = cur.TriggerHorizon
		}
	}

	// The backup goes in under a temporary name, synced; the old file
	// (with its WAL) is moved aside; then the rename.
	tmp := dst + ".restoring"
	if err := copySynced(path, tmp); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		aside := fmt.Sprintf("%s.before-restore-%s", dst, time.Now().UTC().Format("20060102T150405Z"))
		for _, suffix := range []string{"", "-wal"} {
			if err := os.Rename(dst+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				os.Remove(tmp)
				return nil, fmt.Errorf("restore: move the replaced store aside: %w", err)
			}
		}
		os.Remove(dst + "-shm")
		rep.Previous = aside
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := finishRestore(ctx, cfg, keys, rep, horizon, path); err != nil {
		return nil, fmt.Errorf("restore: the backup is in place but not yet sealed (run writ restore again): %w", err)
	}
	return rep, nil
}

// finishRestore raises the replay horizons of the restored store, records
// the alert and resets the pin.
func finishRestore(ctx context.Context, cfg Config, keys *Keys, rep *RestoreReport, horizon time.Time, from string) error {
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: cfg.Store, Durability: cfg.Durability})
	if err != nil {
		return err
	}
	defer store.Close()
	if !horizon.IsZero() {
		if err := store.RaiseHorizon(ctx, sqlstore.HorizonTrigger, horizon); err != nil {
			return err
		}
	}
	// Every DPoP proof made before now is refused: proofs are made per
	// request, so none that matters is lost.
	if err := store.RaiseHorizon(ctx, sqlstore.HorizonDPoP, time.Now().Add(token.MaxProofAge+2*time.Minute)); err != nil {
		return err
	}
	if rep.TriggerHorizon, err = store.ReplayHorizon(ctx, sqlstore.HorizonTrigger); err != nil {
		return err
	}
	msg := fmt.Sprintf("the store was restored from %s (%d log entries); the checkpoint pin had recorded %d: what happened in between is forgotten, except that triggers expiring by %s stay refused",
		from, rep.Backup.LogSize, rep.PinSize, rep.TriggerHorizon.Format(time.RFC3339))
	if err := store.AppendEvent(ctx, &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: "store", Details: map[string]any{
		"code": "store_restored", "message": msg, "backup": from, "backup_size": rep.Backup.LogSize, "pin_size": rep.PinSize,
		"previous": rep.Previous, "trigger_horizon": rep.TriggerHorizon}}); err != nil {
		return err
	}
	audit, err := auditlog.New(auditlog.Config{Store: auditStore{store}, Signer: keys.Log, Origin: cfg.TrustDomain + "/audit"})
	if err != nil {
		return err
	}
	p, err := newPinKeeper(cfg, keys, store, audit, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		return err
	}
	return p.write(ctx, true)
}

func copySynced(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
