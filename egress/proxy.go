// Package egress is writ's egress proxy (docs/design.md §4.2, control
// C-PO3 of docs/threat-model.md): HTTP CONNECT and absolute-form requests
// on writ's own listener, authenticated by the run's egress lease
// (Proxy-Authorization: Basic run-id:lease), each connection an egress
// action decided by policy, only to the run's scope hosts and the
// configured model hosts, resolved once and dialled by the checked
// address. Its lease kind's broker source is [LeaseSource]; the
// launcher's side (HTTPS_PROXY for the agent) is in package launch.
//
// Part of the writ server; no API stability.
package egress

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// Config is the egress proxy's configuration (egress in writ.yaml).
type Config struct {
	ModelHosts          []string
	AllowLoopbackUnsafe bool
	MaxTunnels          int
	MaxTunnelsPerRun    int
	// Resolve looks up a host's addresses; nil: the system resolver. Tests
	// inject one.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Validate checks the configuration.
func (e Config) Validate() error {
	for i, h := range e.ModelHosts {
		if err := writ.ValidateHostPattern(h); err != nil {
			return fmt.Errorf("egress.modelHosts[%d] %q: want a host name or *.suffix", i, h)
		}
	}
	if e.MaxTunnels < 1 || e.MaxTunnelsPerRun < 1 || e.MaxTunnelsPerRun > e.MaxTunnels {
		return fmt.Errorf("egress.maxTunnels %d / maxTunnelsPerRun %d: want positive numbers, the per-run one no larger", e.MaxTunnels, e.MaxTunnelsPerRun)
	}
	return nil
}

// Leases checks egress credentials (package broker).
type Leases interface {
	CheckEgress(ctx context.Context, user, password string) (*writ.Lease, error)
}

// Runs reads a run as it is now, through the run-state cache (package
// runs).
type Runs interface {
	Get(ctx context.Context, id writ.RunID) (*writ.Run, error)
}

// Decider is the policy decision point.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error)
}

// Proxy is writ's egress proxy. Serve it with [Proxy.Wrap]; run
// [Proxy.Watch] to close the tunnels of runs that stopped.
type Proxy struct {
	cfg     Config
	leases  Leases
	runs    Runs
	decider Decider
	log     *slog.Logger
	dialer  net.Dialer

	mu     sync.Mutex
	open   int
	perRun map[writ.RunID]map[*tunnel]struct{}
}

type tunnel struct {
	client, upstream net.Conn
}

// New returns a proxy admitting runs' egress leases checked by leases,
// reading runs through runs and deciding with d.
func New(cfg Config, leases Leases, runs Runs, d Decider, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, leases: leases, runs: runs, decider: d, log: log.With("component", "egress"),
		perRun: map[writ.RunID]map[*tunnel]struct{}{}}
	if p.cfg.Resolve == nil {
		p.cfg.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	p.dialer = net.Dialer{Timeout: 10 * time.Second, Control: p.checkDialed}
	return p
}

// Wrap serves CONNECT and absolute-form requests and hands everything
// else to next.
func (p *Proxy) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodConnect:
			p.serveConnect(w, r)
		case r.URL.IsAbs():
			// An absolute-form request (RFC 9112 §3.2.2): a client using
			// writ as its HTTP_PROXY for a plain-http URL.
			p.serveForward(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// refuse answers a CONNECT with status and a reason (plain text, so that
// curl and git show it).
func refuseConnect(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusProxyAuthRequired {
		w.Header().Set("Proxy-Authenticate", `Basic realm="writ egress"`)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Writ-Reason", code)
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	fmt.Fprintf(w, "writ egress: %s: %s\n", code, msg)
}

// admitted is what admit found: the run, its lease, the checked target
// and the decision that allowed it.
type admitted struct {
	run      *writ.Run
	lease    *writ.Lease
	host     string
	port     uint16
	target   string // host:port, the egress action's name
	addrs    []netip.Addr
	decision string
}

// admit authenticates a proxy request (the run's egress lease), decides an
// egress action for hostport and checks the host, and resolves it; or it
// answers the request with the refusal and returns false.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, hostport string) (*admitted, bool) {
	ctx := r.Context()
	user, pass, ok := proxyBasicAuth(r)
	if !ok {
		refuseConnect(w, http.StatusProxyAuthRequired, "missing_credential", "send the run's egress credential (HTTPS_PROXY=http://RUN:LEASE@writ)")
		return nil, false
	}
	lease, err := p.leases.CheckEgress(ctx, user, pass)
	if err != nil {
		if we := (*writ.Error)(nil); !errors.As(err, &we) || we.Kind == writ.KindInternal {
			p.log.ErrorContext(ctx, "checking an egress credential", slog.Any("error", err))
			refuseConnect(w, http.StatusServiceUnavailable, "unavailable", "the credential could not be checked")
			return nil, false
		}
		refuseConnect(w, http.StatusProxyAuthRequired, writ.ErrorCode(err), errMessage(err))
		return nil, false
	}
	host, port, err := splitTarget(hostport)
	if err != nil {
		refuseConnect(w, http.StatusBadRequest, "invalid_target", err.Error())
		return nil, false
	}
	run, err := p.runs.Get(ctx, lease.Run)
	if err != nil {
		refuseConnect(w, http.StatusServiceUnavailable, "unavailable", "the run could not be read")
		return nil, false
	}
	// The model hosts count as in scope for this decision only.
	asked := *run
	asked.Scope.Hosts = append(slices.Clone(run.Scope.Hosts), p.cfg.ModelHosts...)
	action := writ.Action{Kind: writ.ActionEgress, Name: host + ":" + strconv.Itoa(int(port))}
	if err := action.Validate(); err != nil {
		refuseConnect(w, http.StatusBadRequest, "invalid_target", errMessage(err))
		return nil, false
	}
	d, err := p.decider.Decide(ctx, &decision.Request{Run: &asked, Action: action, Via: "egress", Actor: "run:" + string(run.ID)})
	if err != nil {
		refuseConnect(w, http.StatusServiceUnavailable, "decision_failed", "policy could not decide; nothing was connected")
		return nil, false
	}
	w.Header().Set("X-Writ-Decision", d.ID)
	if d.Verdict != writ.VerdictAllow {
		code, sentence := writ.DecisionMessage(d)
		refuseConnect(w, http.StatusForbidden, code, sentence)
		return nil, false
	}
	// Whatever a custom policy says, the proxy goes only to listed hosts.
	if !slices.ContainsFunc(asked.Scope.Hosts, func(pat string) bool { return writ.MatchHost(pat, host) }) {
		refuseConnect(w, http.StatusForbidden, "host_not_in_scope", fmt.Sprintf("host %q is in neither the run's scope nor egress.modelHosts", host))
		return nil, false
	}
	addrs, err := p.resolve(ctx, host)
	if err != nil {
		refuseConnect(w, http.StatusForbidden, writ.ErrorCode(err), errMessage(err))
		return nil, false
	}
	return &admitted{run: run, lease: lease, host: host, port: port, target: action.Name, addrs: addrs, decision: d.ID}, true
}

func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ad, ok := p.admit(w, r, r.Host)
	if !ok {
		return
	}
	run, lease, addrs, port := ad.run, ad.lease, ad.addrs, ad.port
	host := ad.host
	if !p.acquire(run.ID) {
		refuseConnect(w, http.StatusTooManyRequests, "too_many_tunnels", "too many tunnels are open; close some")
		return
	}
	var up net.Conn
	var addr netip.Addr
	var err error
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	for _, a := range addrs {
		if up, err = p.dialer.DialContext(dctx, "tcp", netip.AddrPortFrom(a, port).String()); err == nil {
			addr = a
			break
		}
	}
	cancel()
	if up == nil {
		p.release(run.ID, nil)
		refuseConnect(w, http.StatusBadGateway, "connect_failed", fmt.Sprintf("could not connect to %s:%d", host, port))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		p.release(run.ID, nil)
		refuseConnect(w, http.StatusInternalServerError, "internal", "the connection cannot be taken over")
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		up.Close()
		p.release(run.ID, nil)
		return
	}
	t := &tunnel{client: conn, upstream: up}
	if !p.register(run.ID, t) {
		conn.Close()
		up.Close()
		return
	}
	p.log.DebugContext(ctx, "egress tunnel open", slog.String("run", string(run.ID)), slog.String("target", ad.target),
		slog.String("addr", addr.String()), slog.String("decision", ad.decision))
	// The server's read and write deadlines for the request must not cut
	// the tunnel; it lives until either side closes, the lease's expiry
	// (the run's deadline), or the run stops (closeRun).
	_ = conn.SetDeadline(lease.ExpiresAt)
	_ = up.SetDeadline(lease.ExpiresAt)
	if _, err := rw.WriteString("HTTP/1.1 200 Connection Established\r\nX-Writ-Decision: " + ad.decision + "\r\n\r\n"); err == nil {
		err = rw.Flush()
		if err == nil {
			splice(conn, rw.Reader, up)
		}
	}
	conn.Close()
	up.Close()
	p.release(run.ID, t)
}

// splice copies bytes both ways until both directions are done.
func splice(client net.Conn, clientBuf *bufio.Reader, up net.Conn) {
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, clientBuf)
		if c, ok := up.(interface{ CloseWrite() error }); ok {
			_ = c.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, up)
		if c, ok := client.(interface{ CloseWrite() error }); ok {
			_ = c.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}

func (p *Proxy) acquire(run writ.RunID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open >= p.cfg.MaxTunnels || len(p.perRun[run]) >= p.cfg.MaxTunnelsPerRun {
		return false
	}
	p.open++
	return true
}

func (p *Proxy) register(run writ.RunID, t *tunnel) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.perRun[run]
	if m == nil {
		m = map[*tunnel]struct{}{}
		p.perRun[run] = m
	}
	m[t] = struct{}{}
	return true
}

func (p *Proxy) release(run writ.RunID, t *tunnel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open--
	if t != nil {
		delete(p.perRun[run], t)
		if len(p.perRun[run]) == 0 {
			delete(p.perRun, run)
		}
	}
}

// Watch closes the tunnels of runs that stopped, checking every interval,
// until ctx is done: revoking the egress lease stops new tunnels, this
// stops open ones.
func (p *Proxy) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.closeAll()
			return
		case <-t.C:
		}
		p.mu.Lock()
		runs := make([]writ.RunID, 0, len(p.perRun))
		for id := range p.perRun {
			runs = append(runs, id)
		}
		p.mu.Unlock()
		for _, id := range runs {
			r, err := p.runs.Get(ctx, id)
			if err != nil && writ.ErrorKind(err) != writ.KindNotFound {
				continue
			}
			if err == nil && r.LiveAt(time.Now()) {
				continue
			}
			p.closeRun(id)
		}
	}
}

func (p *Proxy) closeRun(id writ.RunID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.perRun[id] {
		t.client.Close()
		t.upstream.Close()
	}
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.perRun {
		for t := range m {
			t.client.Close()
			t.upstream.Close()
		}
	}
}

// resolve looks host up once and returns the addresses the proxy may
// connect to, in the resolver's order; the dial uses these addresses,
// never the name again.
func (p *Proxy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if why := p.blocked(a); why != "" {
			return nil, writ.Errorf(writ.KindDenied, "address_not_allowed", "%s is a %s address", a, why)
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := p.cfg.Resolve(rctx, host)
	if err != nil || len(addrs) == 0 {
		return nil, writ.Errorf(writ.KindDenied, "resolve_failed", "%s does not resolve", host)
	}
	var ok []netip.Addr
	var whys []string
	for _, a := range addrs {
		if why := p.blocked(a); why != "" {
			whys = append(whys, a.String()+" is "+why)
			continue
		}
		ok = append(ok, a.Unmap())
	}
	if len(ok) == 0 {
		return nil, writ.Errorf(writ.KindDenied, "address_not_allowed", "%s resolves only to addresses the proxy refuses (%s)", host, strings.Join(whys, "; "))
	}
	return ok, nil
}

var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
	ietf      = netip.MustParsePrefix("192.0.0.0/24")
	benchmark = netip.MustParsePrefix("198.18.0.0/15")
	reserved  = netip.MustParsePrefix("240.0.0.0/4")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
)

// blocked says why the proxy refuses address a ("" when it does not):
// loopback (unless allowLoopbackUnsafe), private (RFC 1918, ULA),
// link-local (including 169.254.169.254), CGNAT, unspecified, multicast
// and reserved ranges; IPv4-mapped IPv6 is checked as the IPv4 address.
func (p *Proxy) blocked(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		if p.cfg.AllowLoopbackUnsafe {
			return ""
		}
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsUnspecified() || thisNet.Contains(a):
		return "unspecified"
	case a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "multicast"
	case cgnat.Contains(a):
		return "shared (CGNAT)"
	case ietf.Contains(a) || benchmark.Contains(a) || reserved.Contains(a) || nat64.Contains(a):
		return "reserved"
	case !a.IsGlobalUnicast():
		return "non-global"
	}
	return ""
}

// checkDialed checks the address actually dialled (net.Dialer.Control),
// so nothing but a checked address is ever connected to.
func (p *Proxy) checkDialed(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	if why := p.blocked(ap.Addr()); why != "" {
		return fmt.Errorf("egress: refusing to connect to a %s address", why)
	}
	return nil
}

// proxyBasicAuth reads Proxy-Authorization: Basic.
func proxyBasicAuth(r *http.Request) (user, pass string, ok bool) {
	h := r.Header.Get("Proxy-Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}

// splitTarget parses a CONNECT target host:port (a name, not a pattern).
func splitTarget(hostport string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return "", 0, errors.New("CONNECT needs host:port")
	}
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("port %q: want 1 to 65535", ps)
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if len(host) > 253 {
		return "", 0, errors.New("host name too long")
	}
	return host, uint16(n), nil
}

func errMessage(err error) string {
	var we *writ.Error
	if errors.As(err, &we) {
		return we.Message
	}
	return "internal error"
}

// maxForwardBody caps a forwarded plain-http request's body.
const maxForwardBody = 32 << 20

// hopHeaders are dropped from forwarded requests and responses (RFC 9110
// §7.6.1), with the proxy's own credential.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// serveForward forwards one plain-http request (absolute form), admitted
// like a tunnel: the run's egress lease, an egress decision for the
// target, the checked address dialled. Responses stream (server-sent
// events from a model API included).
func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	if r.URL.Scheme != "http" {
		refuseConnect(w, http.StatusBadRequest, "invalid_target", "only http:// URLs are forwarded; use CONNECT for https")
		return
	}
	hostport := r.URL.Host
	if r.URL.Port() == "" {
		hostport = net.JoinHostPort(r.URL.Hostname(), "80")
	}
	ad, ok := p.admit(w, r, hostport)
	if !ok {
		return
	}
	if !p.acquire(ad.run.ID) {
		refuseConnect(w, http.StatusTooManyRequests, "too_many_tunnels", "too many connections are open; close some")
		return
	}
	defer p.release(ad.run.ID, nil)
	ctx := r.Context()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var last error
		for _, a := range ad.addrs {
			c, err := p.dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(a, ad.port).String())
			if err == nil {
				return c, nil
			}
			last = err
		}
		return nil, last
	}
	tr := &http.Transport{DialContext: dial, Proxy: nil, DisableKeepAlives: true, ResponseHeaderTimeout: 5 * time.Minute}
	defer tr.CloseIdleConnections()
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.Body = http.MaxBytesReader(w, r.Body, maxForwardBody)
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	resp, err := tr.RoundTrip(out)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			refuseConnect(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a forwarded request body is at most %d bytes", maxForwardBody))
			return
		}
		refuseConnect(w, http.StatusBadGateway, "connect_failed", fmt.Sprintf("could not reach %s", ad.target))
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.Header().Set("X-Writ-Decision", ad.decision)
	// A streamed answer may outlast the server's write timeout; not the
	// lease.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(ad.lease.ExpiresAt)
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
