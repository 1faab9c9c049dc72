package server

import (
	"fmt"

	"github.com/writ-dev/writ/httpapi"
)

// fileLimits is the limits section: per route class, how many requests
// are served at once and how fast each caller may call
// (docs/design.md §4.11).
type fileLimits struct {
	Decide   fileLimit `json:"decide"`   // POST /v1/decide
	RunStart fileLimit `json:"runStart"` // POST /v1/runs (per signer and per address), delegation
	Git      fileLimit `json:"git"`      // /git/… (inFlight only), merges
	MCP      fileLimit `json:"mcp"`      // /mcp/{server} (inFlight only)
	UI       fileLimit `json:"ui"`       // /ui/…
	Audit    fileLimit `json:"audit"`    // /v1/audit/…, /v1/trace/…
	API      fileLimit `json:"api"`      // every other API route
	Approval fileLimit `json:"approval"` // approval verdicts (rate and burst only)
	SignIn   fileLimit `json:"signIn"`   // the web UI's sign-in, per address (rate and burst only)
}

// fileLimit bounds one route class; an unset key keeps its default.
type fileLimit struct {
	InFlight *int     `json:"inFlight"` // requests served at once; one more is 503 overloaded; 0: unbounded
	Rate     *float64 `json:"rate"`     // requests per second per caller (human, run, signer, address); beyond: 429 rate_limited; 0: no limit
	Burst    *int     `json:"burst"`    // requests a caller may make at once before its rate applies
}

func (fl fileLimits) byClass() map[httpapi.Class]fileLimit {
	return map[httpapi.Class]fileLimit{
		httpapi.ClassDecide: fl.Decide, httpapi.ClassRunStart: fl.RunStart, httpapi.ClassGit: fl.Git,
		httpapi.ClassMCP: fl.MCP, httpapi.ClassUI: fl.UI, httpapi.ClassAudit: fl.Audit, httpapi.ClassAPI: fl.API,
		httpapi.ClassApproval: fl.Approval, httpapi.ClassSignIn: fl.SignIn,
	}
}

// parseLimits applies the limits section over the defaults in l.
func parseLimits(l httpapi.Limits, fl fileLimits) {
	for c, f := range fl.byClass() {
		v := l[c]
		if f.InFlight != nil {
			v.InFlight = *f.InFlight
		}
		if f.Rate != nil {
			v.Rate = *f.Rate
		}
		if f.Burst != nil {
			v.Burst = *f.Burst
		}
		l[c] = v
	}
}

// validateRates checks the limits section.
func (c *Config) validateRates() error {
	for _, cl := range httpapi.Classes {
		v := c.Limits[cl]
		switch {
		case v.InFlight < 0 || v.InFlight > 1_000_000:
			return fmt.Errorf("limits.%s.inFlight %d: want 0 (unbounded) to 1000000", cl, v.InFlight)
		case v.Rate < 0 || v.Rate > 1_000_000:
			return fmt.Errorf("limits.%s.rate %v: want requests per second per caller, 0 (no limit) to 1000000", cl, v.Rate)
		case v.Burst < 0 || v.Burst > 1_000_000:
			return fmt.Errorf("limits.%s.burst %d: want 0 to 1000000", cl, v.Burst)
		case v.Rate > 0 && v.Burst < 1:
			return fmt.Errorf("limits.%s.burst %d: a rate needs a burst of at least 1", cl, v.Burst)
		case (cl == httpapi.ClassApproval || cl == httpapi.ClassSignIn) && v.InFlight != 0:
			return fmt.Errorf("limits.%s.inFlight: %s has a rate limit only; its requests count toward their route class's inFlight", cl, cl)
		}
	}
	return nil
}
