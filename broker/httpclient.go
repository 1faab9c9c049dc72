package broker

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Helpers for sources that call a service over HTTP with a credential
// (Vault, GitHub): the credential must not travel in the clear or follow
// a redirect.

// HTTPClient returns a copy of c (or, for nil, a client with connect,
// TLS-handshake and header timeouts) that has an overall timeout
// (timeout when c has none) and follows no redirect: a redirect would
// carry the credential to wherever it points.
func HTTPClient(c *http.Client, timeout time.Duration) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		out.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ForceAttemptHTTP2:     true,
		}
	}
	if out.Timeout <= 0 {
		out.Timeout = timeout
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &out
}

// ServiceURL checks the base URL of a service credentials are sent to:
// https, or plain http only on a loopback host (a dev server); no user
// info, query or fragment. It returns the URL without a trailing slash.
// service and example name the service in errors.
func ServiceURL(raw, service, example string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not a URL such as %s", raw, example)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !Loopback(u.Hostname()) {
			return "", fmt.Errorf("%q is plain http: tokens travel to %s, so use https (http only on a loopback host)", raw, service)
		}
	default:
		return "", fmt.Errorf("%q: the scheme must be https", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// Loopback reports whether host is localhost or a loopback address.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
