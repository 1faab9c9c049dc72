package notify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/notify"
	"github.com/writ-dev/writ/sqlstore"
)

// deadline bounds every wait for an outcome. Tests never assert on how
// long something took, only that it happens before this.
const deadline = 20 * time.Second

// tiny is a backoff that retries at once.
func tiny(int) time.Duration { return time.Millisecond }

// store adapts the SQL store to notify.Store, as the server does, and
// reports when a webhook's cursor is read and when the outbox is polled.
type store struct {
	db      *sqlstore.DB
	started chan string   // a cursor name, each time one is read
	polled  chan struct{} // each time Events returns (dropped when full)
	read    atomic.Int64  // the last position Events returned
	failSet bool          // SetNotifyCursor fails (a crash before the cursor moves)
}

func newStore(db *sqlstore.DB) *store {
	return &store{db: db, started: make(chan string, 16), polled: make(chan struct{}, 1)}
}

func (s *store) Events(ctx context.Context, after int64, limit int) ([]notify.Event, error) {
	evs, err := s.db.Events(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]notify.Event, len(evs))
	for i, e := range evs {
		out[i] = notify.Event{Pos: e.Pos, ID: e.ID, Type: e.Type, Body: e.Body}
		s.read.Store(e.Pos)
	}
	select {
	case s.polled <- struct{}{}:
	default:
	}
	return out, nil
}

func (s *store) StartNotifyCursor(ctx context.Context, name string) (int64, error) {
	pos, err := s.db.StartNotifyCursor(ctx, name)
	if err == nil {
		s.started <- name
	}
	return pos, err
}

func (s *store) SetNotifyCursor(ctx context.Context, name string, pos int64) error {
	if s.failSet {
		return errors.New("cursor write lost")
	}
	return s.db.SetNotifyCursor(ctx, name, pos)
}

func openDB(t *testing.T, cfg sqlstore.Config) *sqlstore.DB {
	t.Helper()
	cfg.DSN = "sqlite://" + filepath.Join(t.TempDir(), "writ.db")
	db, err := sqlstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("sqlstore.Open = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// running is a notifier whose Run is in progress.
type running struct {
	*notify.Notifier
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start makes a notifier of cfg (cfg.Store must be a *store), runs it and
// returns once every webhook has read its cursor, so that events appended
// afterwards are the webhooks' to deliver. It is stopped when the test
// ends.
func start(t *testing.T, cfg notify.Config) *running {
	t.Helper()
	n, err := notify.New(cfg)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Notifier: n, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	s := cfg.Store.(*store)
	for range cfg.Webhooks {
		select {
		case <-s.started:
		case <-time.After(deadline):
			t.Fatal("the notifier did not read its cursors")
		}
	}
	return r
}

// stop cancels Run and waits for it to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run = %v; want nil after cancel", err)
			}
		case <-time.After(deadline):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

// request is one attempt a receiver saw.
type request struct {
	Key, Type, ContentType string
	Body                   []byte
}

// receiver is a webhook receiver. respond returns the status of an
// attempt, given how many attempts (this one included) carried its
// Idempotency-Key; nil answers 204.
type receiver struct {
	*httptest.Server
	respond func(key string, attempt int) int

	mu   sync.Mutex
	reqs []request
	keys map[string]int
}

func newReceiver(t *testing.T, respond func(key string, attempt int) int) *receiver {
	rc := &receiver{respond: respond, keys: map[string]int{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Header.Get("Idempotency-Key")
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, request{Key: key, Type: r.Header.Get("X-Writ-Event"), ContentType: r.Header.Get("Content-Type"), Body: body})
		rc.keys[key]++
		n := rc.keys[key]
		rc.mu.Unlock()
		status := http.StatusNoContent
		if rc.respond != nil {
			status = rc.respond(key, n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// attempts returns how many requests carried key.
func (rc *receiver) attempts(key string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.keys[key]
}

// keysSeen returns the Idempotency-Key of every request, in order.
func (rc *receiver) keysSeen() []string {
	var out []string
	for _, r := range rc.requests() {
		out = append(out, r.Key)
	}
	return out
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// appendEvent stores an event and returns it as stored (id filled in).
func appendEvent(t *testing.T, db *sqlstore.DB, ev *writ.Event) *writ.Event {
	t.Helper()
	if err := db.AppendEvent(context.Background(), ev); err != nil {
		t.Fatalf("AppendEvent(%s) = %v", ev.Type, err)
	}
	return ev
}

func approval(typ, id string) *writ.Event {
	return &writ.Event{Type: typ, Run: "01JRUN", Actor: writ.ActorSystem, Subject: id}
}

// stored returns the outbox row of event id.
func stored(t *testing.T, db *sqlstore.DB, id string) sqlstore.StoredEvent {
	t.Helper()
	var pos int64
	for {
		evs, err := db.Events(context.Background(), pos, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			t.Fatalf("event %s is not in the outbox", id)
		}
		for _, e := range evs {
			if e.ID == id {
				return e
			}
		}
		pos = evs[len(evs)-1].Pos
	}
}

func debugLogger(buf *writtest.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestDeliversApprovalEventsInOrder: only approval events go out, in
// commit order, each as its exact stored bytes with a link, an
// Idempotency-Key equal to its id, and the cursor ends past the last.
func TestDeliversApprovalEventsInOrder(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	s := newStore(db)
	start(t, notify.Config{Store: s, Webhooks: []notify.Webhook{{URL: rc.URL + "/hook"}}, PublicURL: "https://writ.example.org/", Poll: 10 * time.Millisecond})

	req := approval("approval.requested", "apr_1")
	req.Details = map[string]any{"subjectKind": "commit", "subject": map[string]any{"repo": "acme/api", "head": "abc1234def"}, "group": "maintainers", "count": 1}
	var want []*writ.Event
	want = append(want, appendEvent(t, db, req))
	appendEvent(t, db, &writ.Event{Type: writ.EventRunStarted, Run: "01JRUN"})
	appendEvent(t, db, &writ.Event{Type: writ.EventDecision, Run: "01JRUN", Subject: "dec_1", Decision: "approval_required"})
	granted := approval("approval.granted", "apr_1")
	granted.Actor = writ.HumanActor("alice")
	want = append(want, appendEvent(t, db, granted))
	want = append(want, appendEvent(t, db, approval("approval.denied", "apr_2")))
	appendEvent(t, db, &writ.Event{Type: writ.EventAlert, Subject: "dec_1"})
	want = append(want, appendEvent(t, db, approval("approval.voided", "apr_3")))

	waitFor(t, "four deliveries", func() bool { return len(rc.requests()) >= len(want) })
	got := rc.requests()
	if len(got) != len(want) {
		t.Fatalf("receiver got %d requests; want %d: %v", len(got), len(want), rc.keysSeen())
	}
	for i, ev := range want {
		row := stored(t, db, ev.ID)
		wantBody := `{"event":` + string(row.Body) + `,"link":"https://writ.example.org/v1/approvals/` + ev.Subject + `"}`
		wantReq := request{Key: ev.ID, Type: ev.Type, ContentType: "application/json", Body: []byte(wantBody)}
		if diff := cmp.Diff(wantReq, got[i]); diff != "" {
			t.Errorf("request %d mismatch (-want +got):\n%s", i, diff)
		}
		var p struct {
			Event writ.Event `json:"event"`
			Link  string     `json:"link"`
		}
		if err := json.Unmarshal(got[i].Body, &p); err != nil || p.Event.ID != ev.ID || p.Event.Type != ev.Type {
			t.Errorf("request %d: payload %s does not decode to event %s (%v)", i, got[i].Body, ev.ID, err)
		}
	}
	last := stored(t, db, want[len(want)-1].ID)
	waitFor(t, "the cursor to move past the last event", func() bool {
		pos, err := db.NotifyCursor(context.Background(), notify.CursorName(0, rc.URL+"/hook"))
		return err == nil && pos == last.Pos
	})
}

// TestEventsFilter: a webhook that names event types gets only those.
func TestEventsFilter(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL, Events: []string{"approval.granted"}}}, Poll: 10 * time.Millisecond})
	appendEvent(t, db, approval("approval.requested", "apr_1"))
	g1 := appendEvent(t, db, approval("approval.granted", "apr_1"))
	appendEvent(t, db, approval("approval.denied", "apr_2"))
	g2 := appendEvent(t, db, approval("approval.granted", "apr_3"))
	waitFor(t, "the second grant", func() bool { return rc.attempts(g2.ID) == 1 })
	if diff := cmp.Diff([]string{g1.ID, g2.ID}, rc.keysSeen()); diff != "" {
		t.Errorf("delivered events mismatch (-want +got):\n%s", diff)
	}
}

// TestSlackPayload: a slack webhook gets {"text": summary}.
func TestSlackPayload(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL, Format: notify.FormatSlack}}, PublicURL: "https://writ.example.org", Poll: 10 * time.Millisecond})
	ev := approval("approval.requested", "apr_01JAPR")
	ev.Run = "01JRUN"
	ev.Details = map[string]any{"subjectKind": "commit", "subject": map[string]any{"repo": "acme/api", "head": "abc1234def5678"}, "group": "maintainers", "count": 2}
	appendEvent(t, db, ev)
	waitFor(t, "the delivery", func() bool { return rc.attempts(ev.ID) == 1 })
	got := rc.requests()[0]
	want := `{"text":"writ: approval apr_01JAPR requested for run 01JRUN (commit acme/api@abc1234): 2 approvers from maintainers — writ approvals show apr_01JAPR"}`
	if string(got.Body) != want {
		t.Errorf("slack payload =\n%s\nwant\n%s", got.Body, want)
	}
	if got.Key != ev.ID || got.ContentType != "application/json" {
		t.Errorf("headers: Idempotency-Key %q, Content-Type %q; want %q, application/json", got.Key, got.ContentType, ev.ID)
	}
}

func TestSlackText(t *testing.T) {
	commit := map[string]any{"subjectKind": "commit", "subject": map[string]any{"repo": "acme/api", "head": "abc1234def"}, "group": "maintainers", "count": float64(1)}
	tests := []struct {
		name string
		ev   writ.Event
		want string
	}{
		{"requested", writ.Event{Type: "approval.requested", Run: "01R", Subject: "apr_1", Details: commit},
			"writ: approval apr_1 requested for run 01R (commit acme/api@abc1234): 1 approver from maintainers — writ approvals show apr_1"},
		{"granted", writ.Event{Type: "approval.granted", Run: "01R", Subject: "apr_1", Actor: "human:alice", Details: map[string]any{"approvals": float64(1), "required": float64(1), "state": "approved"}},
			"writ: approval apr_1 granted by alice for run 01R"},
		{"granted 1 of 2", writ.Event{Type: "approval.granted", Run: "01R", Subject: "apr_1", Actor: "human:alice", Details: map[string]any{"approvals": float64(1), "required": float64(2), "state": "pending"}},
			"writ: approval apr_1 granted by alice for run 01R (1 of 2)"},
		{"granted with subject", writ.Event{Type: "approval.granted", Run: "01R", Subject: "apr_1", Actor: "human:alice", Details: commit},
			"writ: approval apr_1 granted by alice for run 01R (commit acme/api@abc1234)"},
		{"denied", writ.Event{Type: "approval.denied", Run: "01R", Subject: "apr_1", Actor: "human:bob", Details: map[string]any{"approvals": float64(0), "required": float64(1), "state": "denied"}},
			"writ: approval apr_1 denied by bob for run 01R"},
		{"voided", writ.Event{Type: "approval.voided", Run: "01R", Subject: "apr_1", Actor: "writ", Details: map[string]any{"reason": "expired", "was": "pending"}},
			"writ: approval apr_1 voided for run 01R: expired"},
		{"refused", writ.Event{Type: "approval.refused", Run: "01R", Subject: "apr_1", Actor: "human:mallory", Details: map[string]any{"code": "not_in_group", "message": "mallory is not in group maintainers", "human": "mallory"}},
			"writ: approval apr_1 refused a verdict by mallory for run 01R: mallory is not in group maintainers"},
		{"refused code only", writ.Event{Type: "approval.refused", Subject: "apr_1", Actor: "human:mallory", Details: map[string]any{"code": "self_approval"}},
			"writ: approval apr_1 refused a verdict by mallory: self_approval"},
		{"artifact", writ.Event{Type: "approval.requested", Subject: "apr_2", Details: map[string]any{"subjectKind": "artifact", "subject": map[string]any{"digest": "sha256:0123456789abcdef0123", "environment": "production"}}},
			"writ: approval apr_2 requested (artifact sha256:0123456789ab to production) — writ approvals show apr_2"},
		{"secret", writ.Event{Type: "approval.requested", Subject: "apr_3", Details: map[string]any{"subjectKind": "secret", "subject": map[string]any{"name": "DEPLOY_KEY", "environment": "staging"}, "group": "ops", "count": float64(2)}},
			"writ: approval apr_3 requested (secret DEPLOY_KEY in staging): 2 approvers from ops — writ approvals show apr_3"},
		{"tool", writ.Event{Type: "approval.requested", Subject: "apr_4", Details: map[string]any{"subjectKind": "tool", "subject": map[string]any{"kind": "tool", "name": "shell:rm"}}},
			"writ: approval apr_4 requested (tool shell:rm) — writ approvals show apr_4"},
		{"scope", writ.Event{Type: "approval.requested", Subject: "apr_5", Details: map[string]any{"subjectKind": "scope"}},
			"writ: approval apr_5 requested (scope expansion) — writ approvals show apr_5"},
		// Text a run controls cannot mention a channel, forge a link or
		// break the line.
		{"escaped", writ.Event{Type: "approval.requested", Subject: "apr_6", Details: map[string]any{"subjectKind": "tool", "subject": map[string]any{"name": "<!channel> & <https://evil.example|click>\nsecond line"}}},
			"writ: approval apr_6 requested (tool &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; second line) — writ approvals show apr_6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notify.SlackText(&tt.ev); got != tt.want {
				t.Errorf("SlackText =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestRetryThenDeliver: a receiver failing twice gets the same event three
// times, with the same key and body, and it counts as delivered once.
func TestRetryThenDeliver(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, func(_ string, attempt int) int {
		if attempt <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	n := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Backoff: tiny, Poll: 10 * time.Millisecond})
	ev := appendEvent(t, db, approval("approval.requested", "apr_1"))
	waitFor(t, "the delivery", func() bool { return n.Stats().Delivered == 1 })
	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests; want 3 (two failures, one success)", len(got))
	}
	for i, r := range got {
		if r.Key != ev.ID || !bytes.Equal(r.Body, got[0].Body) {
			t.Errorf("attempt %d: key %q body %s; want key %q and the first attempt's body", i+1, r.Key, r.Body, ev.ID)
		}
	}
	if diff := cmp.Diff(notify.Stats{Delivered: 1, FailedAttempts: 2}, n.Stats()); diff != "" {
		t.Errorf("Stats mismatch (-want +got):\n%s", diff)
	}
}

// TestDeadReceiverMovesOn: an event the receiver always refuses is tried
// MaxAttempts times, logged as dropped with its id, and the next event is
// delivered.
func TestDeadReceiverMovesOn(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	var poison atomic.Value
	poison.Store("")
	rc := newReceiver(t, func(key string, _ int) int {
		if key == poison.Load().(string) {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	logs := &writtest.SyncBuffer{}
	n := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Backoff: tiny, MaxAttempts: 3, Logger: debugLogger(logs), Poll: 10 * time.Millisecond})
	bad := approval("approval.requested", "apr_bad")
	bad.ID = "01JBADEVENT0000000000000000"
	poison.Store(bad.ID)
	appendEvent(t, db, bad)
	good := appendEvent(t, db, approval("approval.requested", "apr_good"))
	waitFor(t, "the next event", func() bool { return n.Stats().Delivered == 1 })
	if diff := cmp.Diff([]string{bad.ID, bad.ID, bad.ID, good.ID}, rc.keysSeen()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(notify.Stats{Delivered: 1, FailedAttempts: 3, Dropped: 1}, n.Stats()); diff != "" {
		t.Errorf("Stats mismatch (-want +got):\n%s", diff)
	}
	var dropped bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct {
			Level, Msg, Event string
			Attempts          int
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" && strings.Contains(rec.Msg, "dropped") {
			dropped = rec.Event == bad.ID && rec.Attempts == 3
		}
	}
	if !dropped {
		t.Errorf("no error log names the dropped event %s after 3 attempts; logs:\n%s", bad.ID, logs)
	}
}

// TestRestartResumes: a new notifier on the same store resumes after the
// last delivered event: nothing is sent twice and nothing is skipped.
func TestRestartResumes(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	cfg := notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Poll: 10 * time.Millisecond}
	first := start(t, cfg)
	a := appendEvent(t, db, approval("approval.requested", "apr_a"))
	b := appendEvent(t, db, approval("approval.granted", "apr_a"))
	bPos := stored(t, db, b.ID).Pos
	waitFor(t, "the cursor to move past the first two events", func() bool {
		pos, err := db.NotifyCursor(context.Background(), notify.CursorName(0, rc.URL))
		return err == nil && pos == bPos
	})
	first.stop(t)

	// Committed while no notifier runs: the restarted one sends it.
	c := appendEvent(t, db, approval("approval.requested", "apr_c"))
	start(t, cfg)
	d := appendEvent(t, db, approval("approval.denied", "apr_c"))
	waitFor(t, "the events after the restart", func() bool { return rc.attempts(d.ID) == 1 })
	if diff := cmp.Diff([]string{a.ID, b.ID, c.ID, d.ID}, rc.keysSeen()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

// TestLostCursorResends: when the cursor move after a delivery is lost
// (a crash between POST and commit), the restarted notifier sends the
// event again with the same Idempotency-Key: delivery is at least once.
func TestLostCursorResends(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	broken := newStore(db)
	broken.failSet = true
	first := start(t, notify.Config{Store: broken, Webhooks: []notify.Webhook{{URL: rc.URL}}, Poll: 10 * time.Millisecond})
	a := appendEvent(t, db, approval("approval.requested", "apr_a"))
	waitFor(t, "the first delivery", func() bool { return first.Stats().Delivered == 1 })
	first.stop(t)

	start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Poll: 10 * time.Millisecond})
	b := appendEvent(t, db, approval("approval.granted", "apr_a"))
	waitFor(t, "the next event", func() bool { return rc.attempts(b.ID) == 1 })
	got := rc.requests()
	if diff := cmp.Diff([]string{a.ID, a.ID, b.ID}, rc.keysSeen()); diff != "" {
		t.Fatalf("requests mismatch (-want +got):\n%s", diff)
	}
	if !bytes.Equal(got[0].Body, got[1].Body) {
		t.Errorf("the resent event's body differs:\n%s\n%s", got[0].Body, got[1].Body)
	}
}

// TestSkippedProgressSavedOnStop: the cursor moves past events the webhook
// does not want at the latest when Run stops, so a restart does not read
// them again.
func TestSkippedProgressSavedOnStop(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	s := newStore(db)
	r := start(t, notify.Config{Store: s, Webhooks: []notify.Webhook{{URL: "http://127.0.0.1:1/hook"}}, Poll: 10 * time.Millisecond})
	var last *writ.Event
	for range 3 {
		last = appendEvent(t, db, &writ.Event{Type: writ.EventRunStarted, Run: "01JRUN"})
	}
	lastPos := stored(t, db, last.ID).Pos
	waitFor(t, "the notifier to read the events", func() bool { return s.read.Load() == lastPos })
	r.stop(t)
	if pos, err := db.NotifyCursor(context.Background(), notify.CursorName(0, "http://127.0.0.1:1/hook")); pos != lastPos || err != nil {
		t.Errorf("cursor after stop = %d, %v; want %d, past the unwanted events", pos, err, lastPos)
	}
	if r.Stats() != (notify.Stats{}) {
		t.Errorf("Stats = %+v; want zero (nothing to deliver)", r.Stats())
	}
}

// TestNewWebhookStartsAtEnd: a webhook seen for the first time is not sent
// the history before it.
func TestNewWebhookStartsAtEnd(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	old := appendEvent(t, db, approval("approval.requested", "apr_old"))
	rc := newReceiver(t, nil)
	start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Poll: 10 * time.Millisecond})
	fresh := appendEvent(t, db, approval("approval.requested", "apr_new"))
	waitFor(t, "the new event", func() bool { return rc.attempts(fresh.ID) == 1 })
	if diff := cmp.Diff([]string{fresh.ID}, rc.keysSeen()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s (event %s predates the webhook)", diff, old.ID)
	}
}

// TestRedirectNotFollowed: a receiver answering with a redirect does not
// get writ to the redirect's target; it counts as a failure.
func TestRedirectNotFollowed(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	var targetHits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	var redirects atomic.Int64
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, target.URL+"/internal", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	n := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: redirector.URL}}, Backoff: tiny, MaxAttempts: 2, Poll: 10 * time.Millisecond,
		Client: &http.Client{}}) // a caller's client that would follow redirects
	appendEvent(t, db, approval("approval.requested", "apr_1"))
	waitFor(t, "the event to be dropped", func() bool { return n.Stats().Dropped == 1 })
	if redirects.Load() != 2 || targetHits.Load() != 0 {
		t.Errorf("redirector hit %d times, target %d times; want 2 and 0", redirects.Load(), targetHits.Load())
	}
	if diff := cmp.Diff(notify.Stats{FailedAttempts: 2, Dropped: 1}, n.Stats()); diff != "" {
		t.Errorf("Stats mismatch (-want +got):\n%s", diff)
	}
}

// TestURLNeverLogged: a webhook URL's path, query and password appear in
// no log line — not on success, retry, drop or connection failure — nor in
// a logged Webhook or a configuration error.
func TestURLNeverLogged(t *testing.T) {
	secrets := []string{"s3cr3tPATH", "s3cr3tQUERY", "s3cr3tPASS", "s3cr3tDEAD"}
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, func(_ string, attempt int) int {
		if attempt == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	// A port nothing listens on: connection errors quote the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://user:s3cr3tPASS@" + ln.Addr().String() + "/hook/s3cr3tDEAD"
	ln.Close()
	logs := &writtest.SyncBuffer{}
	log := debugLogger(logs)
	hooks := []notify.Webhook{
		{URL: rc.URL + "/services/T0/B0/s3cr3tPATH?token=s3cr3tQUERY", Format: notify.FormatSlack},
		{URL: dead},
	}
	n := start(t, notify.Config{Store: newStore(db), Webhooks: hooks, Backoff: tiny, MaxAttempts: 2, Logger: log, Poll: 10 * time.Millisecond})
	log.Info("configured", slog.Any("webhook", hooks[0]), slog.Any("dead", hooks[1]))
	appendEvent(t, db, approval("approval.requested", "apr_1"))
	waitFor(t, "one delivery and one drop", func() bool { s := n.Stats(); return s.Delivered == 1 && s.Dropped == 1 })

	_, err = notify.New(notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: "ftp://host/s3cr3tPATH"}}})
	if err == nil {
		t.Fatal("New accepted an ftp URL")
	}
	out := logs.String() + err.Error()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%q appears in the logs or errors:\n%s", s, out)
		}
	}
	if !strings.Contains(out, ln.Addr().String()) || !strings.Contains(out, "dropped") {
		t.Errorf("the logs do not name the dead webhook's host %s and its drop:\n%s", ln.Addr(), out)
	}
}

// TestRunStopsOnCancel: Run returns when its context is cancelled, whether
// idle, waiting between retries or in the middle of a request; an event
// not delivered keeps its place and is sent by the next notifier.
func TestRunStopsOnCancel(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		db := openDB(t, sqlstore.Config{})
		r := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: "http://127.0.0.1:1"}}, Poll: time.Hour})
		r.stop(t)
	})
	t.Run("no webhooks", func(t *testing.T) {
		db := openDB(t, sqlstore.Config{})
		r := start(t, notify.Config{Store: newStore(db)})
		r.stop(t)
	})
	t.Run("backoff", func(t *testing.T) {
		db := openDB(t, sqlstore.Config{})
		rc := newReceiver(t, func(string, int) int { return http.StatusInternalServerError })
		r := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Backoff: func(int) time.Duration { return time.Hour }})
		appendEvent(t, db, approval("approval.requested", "apr_1"))
		r.Wake()
		waitFor(t, "a failed attempt", func() bool { return r.Stats().FailedAttempts == 1 })
		r.stop(t)
	})
	t.Run("request", func(t *testing.T) {
		db := openDB(t, sqlstore.Config{})
		var hanging atomic.Bool
		hanging.Store(true)
		arrived := make(chan struct{}, 1)
		var delivered atomic.Int64
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // the server notices a closed connection only once the body is read
			if hanging.Load() {
				arrived <- struct{}{}
				<-r.Context().Done()
				return
			}
			delivered.Add(1)
		}))
		defer hang.Close()
		cfg := notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: hang.URL}}, Poll: 10 * time.Millisecond}
		r := start(t, cfg)
		ev := appendEvent(t, db, approval("approval.requested", "apr_1"))
		select {
		case <-arrived:
		case <-time.After(deadline):
			t.Fatal("the request never arrived")
		}
		r.stop(t)
		if s := r.Stats(); s != (notify.Stats{}) {
			t.Errorf("Stats = %+v after an interrupted request; want zero", s)
		}
		if pos, err := db.NotifyCursor(context.Background(), notify.CursorName(0, hang.URL)); err != nil || pos >= stored(t, db, ev.ID).Pos {
			t.Errorf("cursor after the interrupted request = %d, %v; want before the event", pos, err)
		}
		// The next notifier sends the event the first never finished.
		hanging.Store(false)
		next := start(t, cfg)
		waitFor(t, "the event to be sent again", func() bool { return next.Stats().Delivered == 1 })
		if delivered.Load() != 1 {
			t.Errorf("receiver accepted %d requests; want 1", delivered.Load())
		}
	})
}

// TestWake: with a poll interval too long to matter, a commit is
// delivered because the store's commit hook wakes the notifier.
func TestWake(t *testing.T) {
	var ref atomic.Pointer[notify.Notifier]
	db := openDB(t, sqlstore.Config{OnEvents: func() {
		if n := ref.Load(); n != nil {
			n.Wake()
		}
	}})
	rc := newReceiver(t, nil)
	s := newStore(db)
	n, err := notify.New(notify.Config{Store: s, Webhooks: []notify.Webhook{{URL: rc.URL}}, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ref.Store(n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-s.started:
	case <-time.After(deadline):
		t.Fatal("the notifier did not read its cursor")
	}
	// The first pass has read the (empty) outbox: from now on only a
	// wake, not the hour-long poll, can deliver.
	select {
	case <-s.polled:
	case <-time.After(deadline):
		t.Fatal("the notifier never read the outbox")
	}
	ev := appendEvent(t, db, approval("approval.requested", "apr_1"))
	waitFor(t, "the woken delivery", func() bool { return rc.attempts(ev.ID) == 1 })
}

// TestIndependentWebhooks: a webhook stuck retrying does not hold up
// another.
func TestIndependentWebhooks(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	down := newReceiver(t, func(string, int) int { return http.StatusInternalServerError })
	up := newReceiver(t, nil)
	n := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: down.URL}, {URL: up.URL}},
		Backoff: func(int) time.Duration { return time.Hour }, Poll: 10 * time.Millisecond})
	a := appendEvent(t, db, approval("approval.requested", "apr_a"))
	b := appendEvent(t, db, approval("approval.requested", "apr_b"))
	waitFor(t, "both events at the healthy webhook", func() bool { return n.Stats().Delivered == 2 })
	if diff := cmp.Diff([]string{a.ID, b.ID}, up.keysSeen()); diff != "" {
		t.Errorf("healthy webhook's requests mismatch (-want +got):\n%s", diff)
	}
	waitFor(t, "the failing webhook's first attempt", func() bool { return down.attempts(a.ID) == 1 })
	if s := n.Stats(); s.Dropped != 0 {
		t.Errorf("Stats = %+v; want none dropped", s)
	}
}

// TestOversizeEventDropped: an event whose payload is over the limit is
// dropped without a request, and the next one is delivered.
func TestOversizeEventDropped(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	n := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Poll: 10 * time.Millisecond})
	big := approval("approval.requested", "apr_big")
	big.Details = map[string]any{"note": strings.Repeat("x", 300<<10)}
	appendEvent(t, db, big)
	next := appendEvent(t, db, approval("approval.requested", "apr_next"))
	waitFor(t, "the next event", func() bool { return n.Stats().Delivered == 1 })
	if diff := cmp.Diff([]string{next.ID}, rc.keysSeen()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(notify.Stats{Delivered: 1, Dropped: 1}, n.Stats()); diff != "" {
		t.Errorf("Stats mismatch (-want +got):\n%s", diff)
	}
}

// TestMetrics: the counters are registered per webhook and count.
func TestMetrics(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	n := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, Registerer: reg, Poll: 10 * time.Millisecond})
	appendEvent(t, db, approval("approval.requested", "apr_1"))
	waitFor(t, "the delivery", func() bool { return n.Stats().Delivered == 1 })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			label := ""
			for _, l := range m.GetLabel() {
				label += l.GetName() + "=" + l.GetValue()
			}
			got[mf.GetName()+"{"+label+"}"] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"writ_notify_delivered_total{webhook=0}":       1,
		"writ_notify_failed_attempts_total{webhook=0}": 0,
		"writ_notify_dropped_total{webhook=0}":         0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics mismatch (-want +got):\n%s", diff)
	}
}

func TestNewInvalid(t *testing.T) {
	st := newStore(nil)
	tests := []struct {
		name string
		cfg  notify.Config
		want string
	}{
		{"no store", notify.Config{}, "no store"},
		{"scheme", notify.Config{Store: st, Webhooks: []notify.Webhook{{URL: "ftp://example.org/x"}}}, `webhooks[0]: url scheme "ftp"`},
		{"relative", notify.Config{Store: st, Webhooks: []notify.Webhook{{URL: "/hook"}}}, `webhooks[0]: url scheme ""`},
		{"no host", notify.Config{Store: st, Webhooks: []notify.Webhook{{URL: "https:///hook"}}}, "webhooks[0]: url has no host"},
		{"unparsable", notify.Config{Store: st, Webhooks: []notify.Webhook{{URL: "http://example.org/%zz"}}}, "webhooks[0]: url: invalid URL escape"},
		{"format", notify.Config{Store: st, Webhooks: []notify.Webhook{{URL: "https://a.example"}, {URL: "https://b.example", Format: "teams"}}}, `webhooks[1]: format "teams"`},
		{"event type", notify.Config{Store: st, Webhooks: []notify.Webhook{{URL: "https://a.example", Events: []string{"approval.grantd"}}}}, `event type "approval.grantd"`},
		{"attempts", notify.Config{Store: st, MaxAttempts: -1}, "maxAttempts -1"},
		{"poll", notify.Config{Store: st, Poll: -time.Second}, "poll interval -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notify.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v; want an error containing %q", err, tt.want)
			}
			if strings.Contains(tt.want, "webhooks[") {
				if cerr := notify.CheckWebhooks(tt.cfg.Webhooks); cerr == nil || cerr.Error() != err.Error() {
					t.Errorf("CheckWebhooks = %v; want New's error %v", cerr, err)
				}
			}
		})
	}
}

func TestCheckWebhooksValid(t *testing.T) {
	ws := []notify.Webhook{
		{URL: "https://hooks.slack.com/services/T0/B0/x", Format: notify.FormatSlack},
		{URL: "http://user:pw@10.0.0.1:8080/hook?token=x", Format: notify.FormatJSON, Events: notify.EventTypes},
		{URL: "https://example.org"},
	}
	if err := notify.CheckWebhooks(ws); err != nil {
		t.Errorf("CheckWebhooks = %v; want nil", err)
	}
}

// TestSetPublicURL: links follow a public URL set after New (a server
// listening on port 0 learns its address late).
func TestSetPublicURL(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	rc := newReceiver(t, nil)
	n := start(t, notify.Config{Store: newStore(db), Webhooks: []notify.Webhook{{URL: rc.URL}}, PublicURL: "http://127.0.0.1:0", Poll: 10 * time.Millisecond})
	n.SetPublicURL("http://127.0.0.1:7301/")
	ev := appendEvent(t, db, approval("approval.requested", "apr_1"))
	waitFor(t, "the delivery", func() bool { return rc.attempts(ev.ID) == 1 })
	var p struct{ Link string }
	if err := json.Unmarshal(rc.requests()[0].Body, &p); err != nil || p.Link != "http://127.0.0.1:7301/v1/approvals/apr_1" {
		t.Errorf("link = %q (%v); want http://127.0.0.1:7301/v1/approvals/apr_1", p.Link, err)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for attempt := range 40 {
		ceil := 5 * time.Minute
		if attempt < 10 {
			ceil = min(time.Second<<max(attempt-1, 0), 5*time.Minute)
		}
		for range 50 {
			if d := notify.DefaultBackoff(attempt); d < ceil/2 || d > ceil {
				t.Fatalf("DefaultBackoff(%d) = %s; want within [%s, %s]", attempt, d, ceil/2, ceil)
			}
		}
	}
}

func TestCursorName(t *testing.T) {
	sum := sha256.Sum256([]byte("https://example.org/hook?token=s3cr3t"))
	want := "webhook:3:" + hex.EncodeToString(sum[:])[:12]
	if got := notify.CursorName(3, "https://example.org/hook?token=s3cr3t"); got != want {
		t.Errorf("CursorName = %q; want %q", got, want)
	}
}

// TestRunAgain: the server runs the notifier only while it holds the
// sequencer lock, so Run is called again after it returned (resuming from
// the durable cursor); a second Run while one runs is refused.
func TestRunAgain(t *testing.T) {
	db := openDB(t, sqlstore.Config{})
	var got atomic.Int64
	rc := newReceiver(t, func(string, int) int { got.Add(1); return http.StatusOK })
	st := newStore(db)
	n, err := notify.New(notify.Config{Store: st, Webhooks: []notify.Webhook{{URL: rc.URL}}, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		select { // the webhook read its cursor: events from now on are its
		case <-st.started:
		case <-time.After(deadline):
			t.Fatal("the notifier did not read its cursor")
		}
		appendEvent(t, db, approval("approval.requested", fmt.Sprintf("apr_%d", round)))
		n.Wake()
		waitFor(t, "the round's event", func() bool { return got.Load() == int64(round+1) })
		if err := n.Run(context.Background()); err == nil {
			t.Fatal("a second Run while one runs was accepted")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	}
}
