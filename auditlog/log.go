package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
)

// Pending is a committed event not yet in the log.
type Pending struct {
	Pos  int64  // its outbox position
	Body []byte // its exact stored bytes
}

// Store is what the integrator needs from storage. One integrator writes
// at a time; AppendLog is the only write, and it is one transaction.
type Store interface {
	// Unsequenced returns up to limit committed events not yet sequenced,
	// in commit order.
	Unsequenced(ctx context.Context, limit int) ([]Pending, error)
	// LogSize returns the number of sequenced entries.
	LogSize(ctx context.Context) (int64, error)
	// ReadHashes returns the stored hashes at the given tlog stored-hash
	// indexes (tlog.StoredHashIndex), one for each index, or an error.
	ReadHashes(ctx context.Context, indexes []int64) ([]Hash, error)
	// AppendLog, in one transaction, refuses (returns an error) unless the
	// log holds exactly from entries; gives the events at outbox positions
	// pos[i] the log indexes from+i; stores hashes (stored-hash index →
	// hash: exactly the indexes from tlog.StoredHashIndex(0, from) up to,
	// not including, tlog.StoredHashIndex(0, size)); and stores the signed
	// checkpoint of size entries and root root, whose note is signedNote.
	// The leaf hash of entry from+i is hashes[tlog.StoredHashIndex(0, from+i)].
	AppendLog(ctx context.Context, from int64, pos []int64, hashes map[int64]Hash, size int64, root Hash, signedNote []byte) error
	// LatestCheckpoint returns the newest stored signed checkpoint note,
	// or (nil, nil) when the log is empty.
	LatestCheckpoint(ctx context.Context) ([]byte, error)
}

// Config configures a [Log].
type Config struct {
	Store  Store
	Signer note.Signer // the log key (docs/design.md §4.7)
	Origin string      // the checkpoints' origin line, "<trust-domain>/audit"
	Logger *slog.Logger
	// MaxBatch is the most events one checkpoint adds; 0 means 4096.
	MaxBatch int
	// Interval is the longest Run waits between passes when nobody calls
	// Wake; 0 means 1s. It is also the pause after a failed pass.
	Interval time.Duration
}

// DefaultMaxBatch and DefaultInterval are the defaults of [Config].
const (
	DefaultMaxBatch = 4096
	DefaultInterval = time.Second
)

// Log is the integrator and proof server of the audit log. It sequences
// committed events into the tree ([Log.Integrate], [Log.Run]), serves the
// latest signed checkpoint and proves inclusion and consistency.
type Log struct {
	store    Store
	signer   note.Signer
	origin   string
	log      *slog.Logger
	maxBatch int
	interval time.Duration

	wake        chan struct{} // buffered(1): a pass is wanted
	integrating sync.Mutex    // held by Integrate

	mu        sync.Mutex
	latest    Checkpoint    // the newest signed checkpoint this Log has seen
	note      []byte        // latest's signed note; nil until loaded
	signed    int64         // the largest size this process signed and stored
	changed   chan struct{} // closed and replaced when latest grows
	emptyNote []byte        // the signed checkpoint of the empty log

	tree treeState // the health of the stored tree (tree.go)
}

// New returns a Log. It does no I/O: the first [Log.Integrate] (or
// [Log.Checkpoint], or a proof) reads the store.
func New(cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit log: no store")
	}
	if cfg.Signer == nil {
		return nil, errors.New("audit log: no signer (the log key)")
	}
	if err := checkOrigin(cfg.Origin); err != nil {
		return nil, fmt.Errorf("audit log: origin: %w", err)
	}
	if cfg.MaxBatch < 0 || cfg.Interval < 0 {
		return nil, fmt.Errorf("audit log: negative MaxBatch (%d) or Interval (%v)", cfg.MaxBatch, cfg.Interval)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{
		store:    cfg.Store,
		signer:   cfg.Signer,
		origin:   cfg.Origin,
		log:      logger.With(slog.String("component", "auditlog")),
		maxBatch: cfg.MaxBatch,
		interval: cfg.Interval,
		wake:     make(chan struct{}, 1),
		latest:   Checkpoint{Origin: cfg.Origin, Root: emptyRoot},
		changed:  make(chan struct{}),
		tree:     treeState{wanted: make(chan struct{}, 1)},
	}, nil
}

// Integrate sequences every event committed so far, in batches of at most
// MaxBatch: for each batch it computes the leaves SHA-256(0x00 || body)
// of the exact stored bytes, the new stored hashes and root with tlog,
// signs a checkpoint of the new size and stores all of it with one
// [Store.AppendLog]. It returns how many events it sequenced (including
// those of batches before an error).
//
// Before each batch it checks that the stored tree reproduces the latest
// signed checkpoint, and that the store holds at least what this process
// signed before; if not, it signs nothing and returns an error (see the
// package doc, "Security properties").
//
// Integrate serializes itself: calls from several goroutines wait for
// each other. In the server [Log.Run] is its only caller.
func (l *Log) Integrate(ctx context.Context) (int, error) {
	l.integrating.Lock()
	defer l.integrating.Unlock()
	total := 0
	for {
		n, err := l.integrateBatch(ctx)
		total += n
		if err != nil || n < l.maxBatch {
			return total, err
		}
	}
}

func (l *Log) integrateBatch(ctx context.Context) (int, error) {
	// The size of the stored log and of its latest checkpoint are written
	// in one transaction and must agree. Another integrator (a replica
	// taking over) may append between the two reads: read once more.
	var (
		size int64
		cp   Checkpoint
	)
	for attempt := 0; ; attempt++ {
		var err error
		if size, err = l.store.LogSize(ctx); err != nil {
			return 0, fmt.Errorf("audit log: log size: %w", err)
		}
		if cp, _, err = l.refresh(ctx); err != nil {
			return 0, err
		}
		if size == cp.Size {
			break
		}
		if attempt == 1 {
			return 0, fmt.Errorf("audit log: the store holds %d log entries but its latest checkpoint commits to %d; refusing to extend the log", size, cp.Size)
		}
	}

	// Check the stored tree before building on it: its root must be the
	// signed one. This also loads the hashes along the tree's right edge,
	// which are all the new leaves need.
	r := &overlay{ctx: ctx, store: l.store, read: map[int64]Hash{}, added: map[int64]Hash{}}
	root, err := tlog.TreeHash(size, r)
	if err != nil {
		return 0, fmt.Errorf("audit log: tree hash at %d: %w", size, err)
	}
	if root != cp.Root {
		l.wantCheck() // re-derive the stored tree from the leaves (CheckTree)
		return 0, fmt.Errorf("audit log: the stored tree hashes do not reproduce the root of the latest signed checkpoint (size %d); refusing to extend the log", size)
	}

	pending, err := l.store.Unsequenced(ctx, l.maxBatch)
	if err != nil {
		return 0, fmt.Errorf("audit log: unsequenced events: %w", err)
	}
	if len(pending) == 0 {
		return 0, nil
	}
	if len(pending) > l.maxBatch {
		return 0, fmt.Errorf("audit log: the store returned %d unsequenced events, more than the %d asked for", len(pending), l.maxBatch)
	}
	pos := make([]int64, len(pending))
	seen := make(map[int64]bool, len(pending))
	for i, p := range pending {
		if seen[p.Pos] {
			return 0, fmt.Errorf("audit log: the store returned outbox position %d twice", p.Pos)
		}
		seen[p.Pos] = true
		pos[i] = p.Pos
		n := size + int64(i)
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(p.Body), r)
		if err != nil {
			return 0, fmt.Errorf("audit log: hashes of entry %d: %w", n, err)
		}
		base := tlog.StoredHashIndex(0, n)
		for j, h := range hs {
			r.added[base+int64(j)] = h
		}
	}
	next := Checkpoint{Origin: l.origin, Size: size + int64(len(pending))}
	if next.Root, err = tlog.TreeHash(next.Size, r); err != nil {
		return 0, fmt.Errorf("audit log: tree hash at %d: %w", next.Size, err)
	}
	signed, err := Sign(next, l.signer)
	if err != nil {
		return 0, err
	}
	if err := l.store.AppendLog(ctx, size, pos, r.added, next.Size, next.Root, signed); err != nil {
		return 0, fmt.Errorf("audit log: append entries [%d, %d): %w", size, next.Size, err)
	}
	l.mu.Lock()
	l.signed = max(l.signed, next.Size)
	l.mu.Unlock()
	l.publish(next, signed)
	return len(pending), nil
}

// overlay is the tlog.HashReader of one integration pass: the hashes the
// pass added, then hashes read from the store (cached).
type overlay struct {
	ctx   context.Context
	store Store
	read  map[int64]Hash
	added map[int64]Hash
}

func (o *overlay) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	var miss []int64 // indexes to read from the store
	var at []int     // where each goes in out
	for i, x := range indexes {
		if h, ok := o.added[x]; ok {
			out[i] = h
		} else if h, ok := o.read[x]; ok {
			out[i] = h
		} else {
			miss, at = append(miss, x), append(at, i)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	hs, err := readHashes(o.ctx, o.store, miss)
	if err != nil {
		return nil, err
	}
	for k, h := range hs {
		o.read[miss[k]] = h
		out[at[k]] = h
	}
	return out, nil
}

func readHashes(ctx context.Context, s Store, indexes []int64) ([]Hash, error) {
	hs, err := s.ReadHashes(ctx, indexes)
	if err != nil {
		return nil, fmt.Errorf("audit log: read tree hashes: %w", err)
	}
	if len(hs) != len(indexes) {
		return nil, fmt.Errorf("audit log: read tree hashes: asked for %d, got %d", len(indexes), len(hs))
	}
	return hs, nil
}

// Run integrates until ctx is done: a pass ([Log.Integrate]), then a wait
// for [Log.Wake] or Interval, whichever comes first. A failed pass is
// logged and followed by a full Interval, so a persistent failure (a
// store that is down, a tree that no longer reproduces its checkpoint)
// neither spins nor signs anything. Run returns nil when ctx is done.
func (l *Log) Run(ctx context.Context) error {
	t := time.NewTimer(l.interval)
	defer t.Stop()
	for {
		n, err := l.Integrate(ctx)
		if ctx.Err() != nil {
			return nil
		}
		t.Reset(l.interval)
		if err != nil {
			level := slog.LevelError
			if writ.ErrorKind(err) == writ.KindConflict {
				level = slog.LevelWarn // another integrator appended; retry
			}
			l.log.LogAttrs(ctx, level, "audit log integration failed", slog.Int("sequenced", n), slog.Any("error", err))
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			continue
		}
		if n > 0 {
			l.log.LogAttrs(ctx, slog.LevelDebug, "audit log integrated", slog.Int("sequenced", n), slog.Int64("size", l.Size()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.wake:
		case <-t.C:
		}
	}
}

// Follow keeps the Log's view of the stored log current while another
// process (a replica holding the sequencer lock) integrates: it reads the
// latest checkpoint every Interval, and at once after [Log.Wake], so that
// [Log.WaitFor] on this replica sees entries the other one appended. It
// returns nil when ctx is done.
func (l *Log) Follow(ctx context.Context) error {
	t := time.NewTimer(l.interval)
	defer t.Stop()
	for {
		if _, _, err := l.refresh(ctx); err != nil && ctx.Err() == nil {
			l.log.LogAttrs(ctx, slog.LevelError, "audit log: reading the latest checkpoint failed", slog.Any("error", err))
		}
		t.Reset(l.interval)
		select {
		case <-ctx.Done():
			return nil
		case <-l.wake:
		case <-t.C:
		}
	}
}

// Wake asks [Log.Run] for a pass now. It never blocks; wakes that arrive
// during a pass are folded into one more pass. The store calls it after
// every commit that wrote events.
func (l *Log) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// WaitFor blocks until entry seq is in a signed checkpoint — the log's
// size is greater than seq — or ctx is done, whose error it then returns.
// It wakes the integrator. It sees checkpoints this Log signed or read
// from the store (every pass of Run reads it), so on a replica that is
// not the integrator it returns within about one Interval of the append.
func (l *Log) WaitFor(ctx context.Context, seq int64) error {
	if seq < 0 {
		return writ.Errorf(writ.KindInvalid, "invalid_seq", "log index %d is negative", seq)
	}
	l.mu.Lock()
	loaded := l.note != nil
	l.mu.Unlock()
	if !loaded {
		// Nothing read yet (no pass has run): the store may already hold it.
		if _, err := l.ensure(ctx, seq+1); err != nil {
			return err
		}
	}
	woke := false
	for {
		l.mu.Lock()
		size, ch := l.latest.Size, l.changed
		l.mu.Unlock()
		if size > seq {
			return nil
		}
		if !woke {
			l.Wake()
			woke = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("audit log: waiting for entry %d: %w", seq, ctx.Err())
		case <-ch:
		}
	}
}

// Size returns the size of the latest signed checkpoint this Log has
// seen: 0 until its first pass, [Log.Checkpoint] or proof has read the
// store.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest.Size
}

// Checkpoint returns the latest signed checkpoint note, read from the
// store. For an empty log it is a signed checkpoint of size 0 with the
// empty tree's root.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	_, msg, err := l.refresh(ctx)
	return msg, err
}

// Latest is [Log.Checkpoint] with the checkpoint parsed: a caller that
// serves a proof with its checkpoint takes both from one read, so that
// the proof's size is the checkpoint's.
func (l *Log) Latest(ctx context.Context) (Checkpoint, []byte, error) {
	return l.refresh(ctx)
}

// refresh reads the latest signed checkpoint from the store, publishes it
// if it is newer than what the Log has seen, and returns it. A store that
// holds less than this process already signed is an error: it was rolled
// back (restored from a backup) behind the published log.
func (l *Log) refresh(ctx context.Context) (Checkpoint, []byte, error) {
	// What this process signed, read before the store: a size signed
	// after this point may be committed after the store read began, and
	// a read that misses it is not a rollback.
	l.mu.Lock()
	signed := l.signed
	l.mu.Unlock()
	msg, err := l.store.LatestCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("audit log: latest checkpoint: %w", err)
	}
	var cp Checkpoint
	if msg == nil {
		cp = Checkpoint{Origin: l.origin, Size: 0, Root: emptyRoot}
		if msg, err = l.signedEmpty(); err != nil {
			return Checkpoint{}, nil, err
		}
	} else {
		// The store is the integrator's own; its notes were signed by
		// l.signer, whose public half this Log does not hold. Parse the
		// text; the signature is the clients' to check.
		text, ok := noteText(msg)
		if !ok {
			return Checkpoint{}, nil, errors.New("audit log: the stored latest checkpoint is not a signed note")
		}
		if cp, err = parseCheckpoint(text); err != nil {
			return Checkpoint{}, nil, fmt.Errorf("audit log: the stored latest checkpoint: %w", err)
		}
		if cp.Origin != l.origin {
			return Checkpoint{}, nil, fmt.Errorf("audit log: the stored latest checkpoint is for log %q, not %q", cp.Origin, l.origin)
		}
	}
	if cp.Size < signed {
		return Checkpoint{}, nil, fmt.Errorf("audit log: the store's latest checkpoint commits to %d entries, but this server already signed %d: the store was rolled back; refusing to serve or extend the log", cp.Size, signed)
	}
	l.publish(cp, msg)
	return cp, msg, nil
}

// noteText returns the text of a signed note: everything up to and
// including the newline before the blank line.
func noteText(msg []byte) (string, bool) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return "", false
	}
	return string(msg[:i+1]), true
}

func (l *Log) signedEmpty() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.emptyNote == nil {
		msg, err := Sign(Checkpoint{Origin: l.origin, Size: 0, Root: emptyRoot}, l.signer)
		if err != nil {
			return nil, err
		}
		l.emptyNote = msg
	}
	return l.emptyNote, nil
}

// publish makes cp (signed as msg) the latest checkpoint if it is newer
// than what the Log has, and wakes the waiters.
func (l *Log) publish(cp Checkpoint, msg []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.note != nil && cp.Size <= l.latest.Size {
		return
	}
	l.latest, l.note = cp, msg
	l.rememberRoot(cp)
	close(l.changed)
	l.changed = make(chan struct{})
}

// ensure returns the latest signed size, reading the store when the
// cached one is smaller than want.
func (l *Log) ensure(ctx context.Context, want int64) (int64, error) {
	l.mu.Lock()
	size, loaded := l.latest.Size, l.note != nil
	l.mu.Unlock()
	if loaded && want <= size {
		return size, nil
	}
	cp, _, err := l.refresh(ctx)
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// InclusionProof returns the proof that entry index is in the tree of
// size entries (tlog.ProveRecord over the stored hashes), for
// [CheckInclusion]. size must be at most the latest signed size, and
// index below size; otherwise the error is a *writ.Error of KindInvalid.
//
// The proof is checked before it is returned, against the signed root of
// size, or against a root proved consistent with the latest signed one
// (one read of stored hashes in all). When the check fails the stored
// tree is damaged: the Log asks for a check ([Log.TreeCheckWanted]) and
// computes the proof from the leaves instead; a proof that still does not
// check is refused (KindUnavailable, audit_log_damaged). So is the proof
// of an entry a check found altered (audit_entry_altered).
func (l *Log) InclusionProof(ctx context.Context, index, size int64) (tlog.RecordProof, error) {
	if size < 1 {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_size", "tree size %d: an inclusion proof needs a tree of at least one entry", size)
	}
	if index < 0 || index >= size {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_index", "entry %d is not in a tree of %d entries", index, size)
	}
	have, err := l.ensure(ctx, size)
	if err != nil {
		return nil, err
	}
	if size > have {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_size", "tree size %d is larger than the log (its latest checkpoint has %d entries)", size, have)
	}
	if l.altered(index) {
		return nil, writ.Errorf(writ.KindUnavailable, "audit_entry_altered", "the stored bytes of entry %d are not those the log signed: no inclusion proof is served for it", index)
	}
	latest := l.latestCheckpoint()
	var p tlog.RecordProof
	what := func() string { return fmt.Sprintf("the inclusion proof of entry %d in the tree of %d", index, size) }
	err = l.withFallback(ctx, what, func(r tlog.HashReader) error {
		var err error
		p, err = l.proveInclusion(r, latest, index, size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit log: inclusion proof of entry %d in tree %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of from entries is a
// prefix of the tree of to entries (tlog.ProveTree), for
// [CheckConsistency]. The proof from the empty tree, or between equal
// sizes, is empty. from must be at most to, and to at most the latest
// signed size; otherwise the error is a *writ.Error of KindInvalid. It is
// checked before it is returned, as [Log.InclusionProof]'s proofs are.
func (l *Log) ConsistencyProof(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	if from < 0 || from > to {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_from", "a consistency proof goes from a smaller tree to a larger one, not from %d to %d", from, to)
	}
	have, err := l.ensure(ctx, to)
	if err != nil {
		return nil, err
	}
	if to > have {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_to", "tree size %d is larger than the log (its latest checkpoint has %d entries)", to, have)
	}
	if from == 0 || from == to {
		return tlog.TreeProof{}, nil
	}
	latest := l.latestCheckpoint()
	var p tlog.TreeProof
	what := func() string { return fmt.Sprintf("the consistency proof from %d to %d", from, to) }
	err = l.withFallback(ctx, what, func(r tlog.HashReader) error {
		var err error
		p, err = l.proveConsistency(r, latest, from, to)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit log: consistency proof from %d to %d: %w", from, to, err)
	}
	return p, nil
}
