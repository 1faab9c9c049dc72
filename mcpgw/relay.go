package mcpgw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// RelayConfig configures [Relay].
type RelayConfig struct {
	// URL is the gateway endpoint: <writ>/mcp/<server>.
	URL string
	// Token returns the run's bearer token for URL; it is called for every
	// request, so a token file the launcher refreshes is re-read.
	Token func(ctx context.Context) (string, error)
	In    io.Reader
	Out   io.Writer
	// HTTPClient defaults to a client with a 10-minute timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Relay forwards newline-delimited JSON-RPC messages from In to the
// gateway over Streamable HTTP (2025-11-25: initialize opens a session
// whose Mcp-Session-Id every later request carries) and writes every
// message the gateway answers to Out, one per line. It never starts or
// reaches the upstream itself, and holds no credential but the run's
// token. Requests after initialize run concurrently (a long tool call
// does not block a ping or a cancellation); it returns when In ends and
// every request has been answered.
func Relay(ctx context.Context, cfg RelayConfig) error {
	r := &relay{cfg: cfg, hc: cfg.HTTPClient, log: cfg.Logger}
	if r.hc == nil {
		r.hc = &http.Client{Timeout: 10 * time.Minute}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	sc := bufio.NewScanner(cfg.In)
	sc.Buffer(make([]byte, 64<<10), maxRequestBody)
	var wg sync.WaitGroup
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		msg := append([]byte(nil), line...)
		var head struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.Unmarshal(msg, &head); err != nil {
			r.write(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": -32700, "message": "writ mcp proxy: not a JSON-RPC message"}})
			continue
		}
		if head.Method == "initialize" {
			// Everything after it needs the session it opens.
			wg.Wait()
			r.send(ctx, msg, head.ID, true)
			continue
		}
		wg.Go(func() { r.send(ctx, msg, head.ID, false) })
	}
	wg.Wait()
	r.closeSession(ctx)
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}

type relay struct {
	cfg RelayConfig
	hc  *http.Client
	log *slog.Logger

	outMu sync.Mutex

	mu       sync.Mutex
	session  string
	protocol string
}

func (r *relay) write(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	r.writeRaw(b)
}

func (r *relay) writeRaw(b []byte) {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return
	}
	buf.WriteByte('\n')
	r.outMu.Lock()
	defer r.outMu.Unlock()
	_, _ = r.cfg.Out.Write(buf.Bytes())
}

func (r *relay) fail(id json.RawMessage, format string, args ...any) {
	if len(id) == 0 || string(id) == "null" {
		r.log.Warn("writ mcp proxy", slog.String("error", fmt.Sprintf(format, args...)))
		return
	}
	r.write(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": CodeUnavailable, "message": "writ mcp proxy: " + fmt.Sprintf(format, args...)}})
}

func (r *relay) request(ctx context.Context, method string, body []byte) (*http.Request, error) {
	tok, err := r.cfg.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("no run token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	r.mu.Lock()
	if r.session != "" {
		req.Header.Set("Mcp-Session-Id", r.session)
	}
	if r.protocol != "" {
		req.Header.Set("Mcp-Protocol-Version", r.protocol)
	}
	r.mu.Unlock()
	return req, nil
}

func (r *relay) send(ctx context.Context, msg, id json.RawMessage, initialize bool) {
	req, err := r.request(ctx, http.MethodPost, msg)
	if err != nil {
		r.fail(id, "%v", err)
		return
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		r.fail(id, "the gateway cannot be reached: %v", err)
		return
	}
	defer resp.Body.Close()
	if initialize {
		if s := resp.Header.Get("Mcp-Session-Id"); s != "" {
			r.mu.Lock()
			r.session = s
			r.mu.Unlock()
		}
	}
	if resp.StatusCode == http.StatusAccepted {
		return
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		// A JSON-RPC error body (a refused request) goes through as is.
		var m struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(b, &m) == nil && len(m.Error) > 0 && string(m.Error) != "null" && len(id) > 0 {
			r.write(map[string]any{"jsonrpc": "2.0", "id": id, "error": m.Error})
			return
		}
		r.fail(id, "the gateway answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
		return
	}
	mt := resp.Header.Get("Content-Type")
	if strings.HasPrefix(mt, "text/event-stream") {
		r.readSSE(resp.Body, initialize)
		return
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		r.fail(id, "reading the gateway's answer: %v", err)
		return
	}
	r.deliver(b, initialize)
}

// deliver writes one answered message, noting the protocol version an
// initialize result negotiated.
func (r *relay) deliver(b []byte, initialize bool) {
	if initialize {
		var res struct {
			Result struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
		}
		if json.Unmarshal(b, &res) == nil && res.Result.ProtocolVersion != "" {
			r.mu.Lock()
			r.protocol = res.Result.ProtocolVersion
			r.mu.Unlock()
		}
	}
	r.writeRaw(b)
}

// readSSE writes the data of every event of a response stream.
func (r *relay) readSSE(body io.Reader, initialize bool) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var data []string
	flush := func() {
		if len(data) > 0 {
			r.deliver([]byte(strings.Join(data, "\n")), initialize)
			data = nil
		}
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	flush()
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("writ mcp proxy: reading an event stream", slog.Any("error", err))
	}
}

func (r *relay) closeSession(ctx context.Context) {
	r.mu.Lock()
	s := r.session
	r.mu.Unlock()
	if s == "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	req, err := r.request(cctx, http.MethodDelete, nil)
	if err != nil {
		return
	}
	if resp, err := r.hc.Do(req); err == nil {
		resp.Body.Close()
	}
}
