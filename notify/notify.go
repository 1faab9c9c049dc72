package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-dev/writ"
)

// Webhook formats.
const (
	FormatJSON  = "json"  // {"event": …, "link": …}
	FormatSlack = "slack" // a Slack incoming-webhook message
)

// EventTypes are the event types a [Webhook] may ask for. A webhook that
// names none gets every event whose type starts with "approval.".
var EventTypes = []string{
	writ.EventApprovalRequested,
	writ.EventApprovalGranted,
	writ.EventApprovalDenied,
	writ.EventApprovalVoided,
	writ.EventApprovalRefused,
}

const approvalPrefix = "approval."

// Limits and defaults.
const (
	requestTimeout     = 10 * time.Second
	defaultMaxAttempts = 8
	defaultPoll        = time.Second
	minBackoff         = time.Second
	maxBackoff         = 5 * time.Minute
	pageSize           = 500
	maxPayload         = 256 << 10 // a bigger event is dropped, not sent
	maxResponse        = 64 << 10  // read (and discarded) of an answer, so the connection is reused
	maxSlackText       = 1000      // runes
	cursorSaveTimeout  = 5 * time.Second
	// skippedSaveInterval is how often the cursor moves past events the
	// webhook does not want; see hook.run.
	skippedSaveInterval = 10 * time.Second
)

// Webhook is one receiver of notifications.
type Webhook struct {
	// URL is where events are POSTed: http or https. It may carry a secret
	// (a token in its path or query, or user:password) and is never logged.
	URL string
	// Format is FormatJSON (the default when empty) or FormatSlack.
	Format string
	// Events are the event types sent, from [EventTypes]; empty means
	// every approval event.
	Events []string
}

// LogValue names the webhook by scheme and host only: its URL may carry a
// secret.
func (w Webhook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", redactURL(w.URL)), slog.String("format", w.Format))
}

// String is [Webhook.LogValue] for fmt.
func (w Webhook) String() string {
	return fmt.Sprintf("{%s %s %v}", redactURL(w.URL), w.Format, w.Events)
}

// Event is one event as the outbox holds it: its position in commit order,
// its id and type, and its exact stored bytes (writ.Event's JSON).
type Event struct {
	Pos  int64
	ID   string
	Type string
	Body []byte
}

// Store is what a [Notifier] needs from storage: the outbox and one
// durable cursor per webhook.
type Store interface {
	// Events returns up to limit events stored after position after, in
	// commit order. An event is returned only once committed, and no later
	// commit puts one before it.
	Events(ctx context.Context, after int64, limit int) ([]Event, error)
	// StartNotifyCursor returns the position of the cursor name, first
	// creating it at the outbox's last position when there is none.
	StartNotifyCursor(ctx context.Context, name string) (int64, error)
	// SetNotifyCursor moves the cursor name forward to pos.
	SetNotifyCursor(ctx context.Context, name string, pos int64) error
}

// Config configures a [Notifier].
type Config struct {
	Webhooks []Webhook
	Store    Store
	// Logger receives the notifier's logs; nil discards them.
	Logger *slog.Logger
	// Client sends the requests; nil means a client of the notifier's own.
	// Its CheckRedirect is replaced (redirects are never followed); each
	// request has its own 10 s timeout.
	Client *http.Client
	// PublicURL is writ's public base URL, for links in payloads; empty
	// leaves links out.
	PublicURL string
	// Backoff returns how long to wait after the attempt-th failed
	// delivery of an event (attempt counts from 1); nil means exponential
	// from 1 s to 5 min with jitter.
	Backoff func(attempt int) time.Duration
	// MaxAttempts is how many times one event is tried before it is
	// dropped; 0 means 8.
	MaxAttempts int
	// Poll is the longest a webhook waits for new events when nobody calls
	// [Notifier.Wake]; 0 means 1 s.
	Poll time.Duration
	// Registerer, when set, receives the notifier's counters:
	// writ_notify_delivered_total, writ_notify_failed_attempts_total and
	// writ_notify_dropped_total, by webhook (its index in Webhooks).
	Registerer prometheus.Registerer
}

// Stats counts what a [Notifier] did since [New], over all webhooks.
type Stats struct {
	Delivered      int64 // events a receiver accepted
	FailedAttempts int64 // deliveries that failed (and were retried or dropped)
	Dropped        int64 // events given up on after MaxAttempts, or that could not be sent
}

// Notifier delivers approval events to webhooks. Its methods are safe for
// concurrent use.
type Notifier struct {
	cfg       Config
	log       *slog.Logger
	client    *http.Client
	hooks     []*hook
	running   atomic.Bool
	publicURL atomic.Pointer[string]

	delivered, failed, dropped atomic.Int64
	metrics                    *metrics
}

// hook is one webhook and its delivery state.
type hook struct {
	n      *Notifier
	index  string
	url    string // may hold a secret: never logged
	format string
	types  map[string]bool // nil: every approval.* event
	cursor string
	log    *slog.Logger
	wake   chan struct{}
}

// New checks cfg and returns a notifier; [Notifier.Run] starts it.
func New(cfg Config) (*Notifier, error) {
	if cfg.Store == nil {
		return nil, errors.New("notify: no store")
	}
	switch {
	case cfg.MaxAttempts < 0:
		return nil, fmt.Errorf("notify: maxAttempts %d is negative", cfg.MaxAttempts)
	case cfg.MaxAttempts == 0:
		cfg.MaxAttempts = defaultMaxAttempts
	}
	switch {
	case cfg.Poll < 0:
		return nil, fmt.Errorf("notify: poll interval %s is negative", cfg.Poll)
	case cfg.Poll == 0:
		cfg.Poll = defaultPoll
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	n := &Notifier{cfg: cfg, log: cfg.Logger}
	n.SetPublicURL(cfg.PublicURL)
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.log = n.log.With(slog.String("component", "notify"))

	// A client of our own, whatever the caller passed: redirects are never
	// followed, so a receiver cannot send writ (and the event) on to an
	// address the operator did not configure.
	if cfg.Client != nil {
		c := *cfg.Client
		n.client = &c
	} else {
		n.client = &http.Client{}
	}
	n.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for i, w := range cfg.Webhooks {
		h, err := newHook(n, i, w)
		if err != nil {
			return nil, err
		}
		n.hooks = append(n.hooks, h)
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		n.metrics = m
		for _, h := range n.hooks { // every webhook shows, at zero, from the start
			for _, v := range []*prometheus.CounterVec{m.deliveredVec, m.failedVec, m.droppedVec} {
				v.WithLabelValues(h.index)
			}
		}
	}
	return n, nil
}

// CheckWebhooks reports the first problem of a list of webhooks, naming
// it by index ("notify: webhooks[1]: …") and never quoting its URL. [New]
// runs the same checks; a configuration loader calls this one to fail
// early.
func CheckWebhooks(ws []Webhook) error {
	for i, w := range ws {
		if _, err := w.check(i); err != nil {
			return err
		}
	}
	return nil
}

// check validates w, the i-th webhook, and returns its parsed URL.
func (w Webhook) check(i int) (*url.URL, error) {
	where := fmt.Sprintf("notify: webhooks[%d]", i)
	u, err := url.Parse(w.URL)
	if err != nil {
		// url.Parse's error quotes the whole URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: url: %w", where, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: url scheme %q: want http or https", where, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: url has no host", where)
	}
	switch w.Format {
	case "", FormatJSON, FormatSlack:
	default:
		return nil, fmt.Errorf("%s: format %q: want %q or %q", where, w.Format, FormatJSON, FormatSlack)
	}
	for _, t := range w.Events {
		if !slices.Contains(EventTypes, t) {
			return nil, fmt.Errorf("%s: event type %q: want one of %s", where, t, strings.Join(EventTypes, ", "))
		}
	}
	return u, nil
}

func newHook(n *Notifier, i int, w Webhook) (*hook, error) {
	u, err := w.check(i)
	if err != nil {
		return nil, err
	}
	h := &hook{
		n:      n,
		index:  strconv.Itoa(i),
		url:    w.URL,
		format: cmp.Or(w.Format, FormatJSON),
		cursor: CursorName(i, w.URL),
		wake:   make(chan struct{}, 1),
		log:    n.log.With(slog.Int("webhook", i), slog.String("host", u.Scheme+"://"+u.Host)),
	}
	for _, t := range w.Events {
		if h.types == nil {
			h.types = make(map[string]bool)
		}
		h.types[t] = true
	}
	return h, nil
}

// CursorName returns the name of the cursor of the i-th webhook, whose URL
// is rawURL: "webhook:<i>:<first 12 hex digits of SHA-256(rawURL)>".
func CursorName(i int, rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return "webhook:" + strconv.Itoa(i) + ":" + hex.EncodeToString(sum[:])[:12]
}

// DefaultBackoff is the backoff used when [Config.Backoff] is nil: 1 s
// doubling per attempt up to 5 min, each wait drawn uniformly from its
// upper half so that retries of many events spread out.
func DefaultBackoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 20 {
		d = min(minBackoff<<(attempt-1), maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// Run delivers events until ctx is done, then returns nil. Each webhook
// is served by its own goroutine, so a slow or failing receiver delays
// only its own notifications. Run may not be called while it runs; once
// it returned, it may be called again (it resumes from the cursors).
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	// Run may be called again once it returned: the server runs it only
	// while it holds the sequencer lock, so that one replica delivers.
	defer n.running.Store(false)
	if len(n.hooks) == 0 {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	for _, h := range n.hooks {
		wg.Go(func() { h.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Wake tells the notifier that new events may have committed. It never
// blocks; the store calls it after every commit that stored events.
func (n *Notifier) Wake() {
	for _, h := range n.hooks {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// SetPublicURL changes the base of the links in payloads, for a server
// that learns its address only once it listens.
func (n *Notifier) SetPublicURL(u string) {
	u = strings.TrimRight(u, "/")
	n.publicURL.Store(&u)
}

// Stats returns the notifier's counters.
func (n *Notifier) Stats() Stats {
	return Stats{Delivered: n.delivered.Load(), FailedAttempts: n.failed.Load(), Dropped: n.dropped.Load()}
}

// run serves one webhook until ctx is done.
//
// The cursor moves durably after every delivered (or dropped) event. Past
// events the webhook does not want it moves at most every
// skippedSaveInterval, and when Run stops: losing that progress in a crash
// costs a re-read of those events, never a duplicate, and saving it on
// every commit would add a write per commit to the store.
func (h *hook) run(ctx context.Context) {
	pos, ok := h.start(ctx)
	if !ok {
		return
	}
	h.log.DebugContext(ctx, "webhook started", slog.Int64("pos", pos))
	saved, savedAt := pos, time.Now()
	save := func() {
		if pos != saved {
			h.save(ctx, pos)
			saved, savedAt = pos, time.Now()
		}
	}
	defer save()
	for {
		evs, err := h.n.cfg.Store.Events(ctx, pos, pageSize)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.log.ErrorContext(ctx, "read events to notify", slog.Int64("after", pos), slog.Any("error", err))
			if !h.sleep(ctx, h.n.cfg.Poll) {
				return
			}
			continue
		}
		for _, ev := range evs {
			if !h.wants(ev.Type) {
				pos = ev.Pos
				continue
			}
			if !h.deliver(ctx, ev) {
				// Stopped mid-delivery: the cursor stays before ev, which
				// is sent again on the next start.
				return
			}
			pos = ev.Pos
			save()
		}
		if time.Since(savedAt) >= skippedSaveInterval {
			save()
		}
		if len(evs) == pageSize {
			continue
		}
		if !h.wait(ctx) {
			return
		}
	}
}

// start reads (or creates) the webhook's cursor, retrying until it can or
// ctx is done.
func (h *hook) start(ctx context.Context) (int64, bool) {
	for {
		pos, err := h.n.cfg.Store.StartNotifyCursor(ctx, h.cursor)
		if err == nil {
			return pos, true
		}
		if ctx.Err() != nil {
			return 0, false
		}
		h.log.ErrorContext(ctx, "read notify cursor", slog.Any("error", err))
		if !h.sleep(ctx, h.n.cfg.Poll) {
			return 0, false
		}
	}
}

// save moves the durable cursor to pos. It
// runs even when ctx is done — a delivered event whose cursor move is lost
// is sent twice — and a failure only costs that duplicate, so it is
// logged, not fatal.
func (h *hook) save(ctx context.Context, pos int64) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cursorSaveTimeout)
	defer cancel()
	if err := h.n.cfg.Store.SetNotifyCursor(sctx, h.cursor, pos); err != nil {
		h.log.WarnContext(ctx, "save notify cursor (events up to it may be sent again)", slog.Int64("pos", pos), slog.Any("error", err))
	}
}

func (h *hook) wants(typ string) bool {
	if h.types == nil {
		return strings.HasPrefix(typ, approvalPrefix)
	}
	return h.types[typ]
}

// wait waits for a wake, the poll interval or ctx; false means ctx is done.
func (h *hook) wait(ctx context.Context) bool {
	t := time.NewTimer(h.n.cfg.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-h.wake:
		return true
	case <-t.C:
		return true
	}
}

func (h *hook) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// deliver sends ev until the receiver accepts it or MaxAttempts is spent.
// It returns false only when ctx is done before ev is handled.
func (h *hook) deliver(ctx context.Context, ev Event) bool {
	attrs := []slog.Attr{slog.String("event", ev.ID), slog.String("type", ev.Type), slog.Int64("pos", ev.Pos)}
	body, err := h.payload(ev)
	if err != nil {
		h.log.LogAttrs(ctx, slog.LevelError, "webhook notification dropped: cannot build its payload", append(attrs, slog.Any("error", err))...)
		h.n.count(h, &h.n.dropped, h.n.metrics.dropped())
		return true
	}
	for attempt := 1; ; attempt++ {
		err := h.post(ctx, ev, body)
		if err == nil {
			h.n.count(h, &h.n.delivered, h.n.metrics.delivered())
			h.log.LogAttrs(ctx, slog.LevelDebug, "webhook notified", append(attrs, slog.Int("attempt", attempt))...)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		h.n.count(h, &h.n.failed, h.n.metrics.failed())
		if attempt >= h.n.cfg.MaxAttempts {
			h.log.LogAttrs(ctx, slog.LevelError, "webhook notification dropped after its last attempt",
				append(attrs, slog.Int("attempts", attempt), slog.Any("error", err))...)
			h.n.count(h, &h.n.dropped, h.n.metrics.dropped())
			return true
		}
		wait := max(h.n.cfg.Backoff(attempt), 0)
		h.log.LogAttrs(ctx, slog.LevelWarn, "webhook notification failed; retrying",
			append(attrs, slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("error", err))...)
		if !h.sleep(ctx, wait) {
			return false
		}
	}
}

// post sends one attempt. Its error never holds the URL.
func (h *hook) post(ctx context.Context, ev Event, body []byte) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return redactErr(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "writ-notify/1")
	req.Header.Set("Idempotency-Key", ev.ID)
	req.Header.Set("X-Writ-Event", ev.Type)
	resp, err := h.n.client.Do(req)
	if err != nil {
		return redactErr(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("receiver answered %s; redirects are not followed", resp.Status)
	}
	return fmt.Errorf("receiver answered %s", resp.Status)
}

// redactErr strips the URL net/http puts in its errors
// (`Post "https://…": …`), keeping the operation and the cause.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// redactURL returns scheme://host of a URL, which is safe to log, or a
// placeholder when it does not parse.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// payload returns the request body for ev in the webhook's format.
func (h *hook) payload(ev Event) ([]byte, error) {
	var e writ.Event
	if err := json.Unmarshal(ev.Body, &e); err != nil {
		return nil, fmt.Errorf("decode stored event: %w", err)
	}
	var b []byte
	switch h.format {
	case FormatSlack:
		var err error
		b, err = json.Marshal(struct {
			Text string `json:"text"`
		}{SlackText(&e)})
		if err != nil {
			return nil, err
		}
	default:
		// The event goes out as the exact bytes the audit log hashes, so
		// a receiver can check it against the log.
		var buf bytes.Buffer
		buf.WriteString(`{"event":`)
		buf.Write(bytes.TrimSpace(ev.Body))
		if link := h.n.link(&e); link != "" {
			l, err := json.Marshal(link)
			if err != nil {
				return nil, err
			}
			buf.WriteString(`,"link":`)
			buf.Write(l)
		}
		buf.WriteString("}")
		b = buf.Bytes()
	}
	if len(b) > maxPayload {
		return nil, fmt.Errorf("payload of %d bytes is over the %d-byte limit", len(b), maxPayload)
	}
	return b, nil
}

// link returns the API address of the approval e is about, or "".
func (n *Notifier) link(e *writ.Event) string {
	base := *n.publicURL.Load()
	if base == "" || !strings.HasPrefix(e.Subject, "apr_") {
		return ""
	}
	return base + "/v1/approvals/" + url.PathEscape(e.Subject)
}

// SlackText returns the one-line summary of an approval event that a
// Slack message carries, for example
//
//	writ: approval apr_01J… requested for run 01J… (commit acme/api@abc1234): 1 approver from maintainers — writ approvals show apr_01J…
//	writ: approval apr_01J… granted by alice for run 01J… (1 of 2)
//	writ: approval apr_01J… voided for run 01J…: expired
//
// Every value taken from the event is cut to one short line, and Slack's
// control characters (&, <, >) are escaped, so text that came from a run
// cannot mention a channel, forge a link or spread over many lines.
func SlackText(e *writ.Event) string {
	id := clean(e.Subject, 80)
	who := clean(strings.TrimPrefix(e.Actor, "human:"), 80)
	var b strings.Builder
	b.WriteString("writ: approval")
	if id != "" {
		b.WriteString(" " + id)
	}
	switch e.Type {
	case writ.EventApprovalGranted, writ.EventApprovalDenied:
		b.WriteString(" " + strings.TrimPrefix(e.Type, "approval."))
		if who != "" {
			b.WriteString(" by " + who)
		}
	case writ.EventApprovalRefused:
		b.WriteString(" refused a verdict")
		if who != "" {
			b.WriteString(" by " + who)
		}
	default:
		b.WriteString(" " + clean(strings.TrimPrefix(e.Type, "approval."), 40))
	}
	if e.Run != "" {
		b.WriteString(" for run " + clean(string(e.Run), 80))
	}
	if s := describeSubject(e.Details); s != "" {
		b.WriteString(" (" + s + ")")
	}
	switch e.Type {
	case writ.EventApprovalRequested:
		group := detailString(e.Details, "group")
		if count := detailInt(e.Details, "count"); group != "" && count >= 1 {
			noun := "approvers"
			if count == 1 {
				noun = "approver"
			}
			fmt.Fprintf(&b, ": %d %s from %s", count, noun, clean(group, 80))
		}
		if id != "" {
			b.WriteString(" — writ approvals show " + id)
		}
	case writ.EventApprovalGranted:
		// Of N-of-M approvals, say how far along the request is.
		if got, need := detailInt(e.Details, "approvals"), detailInt(e.Details, "required"); need > 1 && got >= 1 {
			fmt.Fprintf(&b, " (%d of %d)", got, need)
		}
	case writ.EventApprovalRefused:
		if msg := detailString(e.Details, "message"); msg != "" {
			b.WriteString(": " + clean(msg, 200))
		} else if code := detailString(e.Details, "code"); code != "" {
			b.WriteString(": " + clean(code, 80))
		}
	default:
		if reason := detailString(e.Details, "reason"); reason != "" {
			b.WriteString(": " + clean(reason, 200))
		}
	}
	return slackEscape(truncate(b.String(), maxSlackText))
}

// describeSubject names what an approval is for, from the subjectKind and
// subject details of its event, or returns "".
func describeSubject(d map[string]any) string {
	kind, _ := d["subjectKind"].(string)
	s, _ := d["subject"].(map[string]any)
	str := func(k string) string {
		v, _ := s[k].(string)
		return clean(v, 100)
	}
	switch kind {
	case "":
		return ""
	case writ.SubjectCommit:
		repo, head := str("repo"), str("head")
		switch {
		case repo != "" && head != "":
			return "commit " + repo + "@" + prefix(head, 7)
		case repo != "" && str("ref") != "":
			return "commit " + repo + " " + str("ref")
		case repo != "":
			return "commit " + repo
		}
		return "commit"
	case writ.SubjectArtifact:
		out := "artifact"
		if dg := str("digest"); dg != "" {
			out += " " + shortDigest(dg)
		}
		if env := str("environment"); env != "" {
			out += " to " + env
		}
		return out
	case writ.SubjectSecret:
		out := "secret"
		if name := str("name"); name != "" {
			out += " " + name
		}
		if env := str("environment"); env != "" {
			out += " in " + env
		}
		return out
	case writ.SubjectTool:
		if name := str("name"); name != "" {
			return "tool " + name
		}
		if k := str("kind"); k != "" {
			return "tool " + k
		}
		return "tool"
	case writ.SubjectScope:
		return "scope expansion"
	}
	return clean(kind, 40)
}

func detailString(d map[string]any, k string) string {
	v, _ := d[k].(string)
	return v
}

// detailInt returns a whole-number detail (JSON numbers decode as
// float64), or 0.
func detailInt(d map[string]any, k string) int64 {
	switch v := d[k].(type) {
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
	case int:
		return int64(v)
	case int64:
		return v
	}
	return 0
}

// shortDigest shortens "sha256:<hex>" to "sha256:<12 hex digits>".
func shortDigest(s string) string {
	alg, hexPart, ok := strings.Cut(s, ":")
	if !ok {
		return prefix(s, 19)
	}
	return alg + ":" + prefix(hexPart, 12)
}

// clean returns s on one line, without control characters, cut to at most
// n runes.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return truncate(strings.TrimSpace(s), n)
}

// truncate cuts s to at most n runes, marking a cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// prefix returns the first n runes of s, unmarked: for commit ids and
// digests, which are read by their start.
func prefix(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// slackEscape escapes the three characters Slack's message format gives a
// meaning (https://api.slack.com/reference/surfaces/formatting#escaping).
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// count adds one to a counter and, when metrics are registered, to its
// per-webhook Prometheus counter.
func (n *Notifier) count(h *hook, c *atomic.Int64, vec *prometheus.CounterVec) {
	c.Add(1)
	if vec != nil {
		vec.WithLabelValues(h.index).Inc()
	}
}

// metrics are the notifier's Prometheus counters.
type metrics struct {
	deliveredVec, failedVec, droppedVec *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveredVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_notify_delivered_total", Help: "Events a webhook receiver accepted, by webhook (index in the configuration).",
		}, []string{"webhook"}),
		failedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_notify_failed_attempts_total", Help: "Webhook deliveries that failed and were retried or dropped, by webhook.",
		}, []string{"webhook"}),
		droppedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_notify_dropped_total", Help: "Events not delivered to a webhook after every attempt, by webhook.",
		}, []string{"webhook"}),
	}
	for _, c := range []prometheus.Collector{m.deliveredVec, m.failedVec, m.droppedVec} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("notify: register metrics: %w", err)
		}
	}
	return m, nil
}

// The accessors are nil-safe: without a registerer there are no metrics.
func (m *metrics) delivered() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.deliveredVec
}

func (m *metrics) failed() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.failedVec
}

func (m *metrics) dropped() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.droppedVec
}
