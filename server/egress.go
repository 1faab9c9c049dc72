package server

import "github.com/writ-dev/writ/egress"

// fileEgress is the egress section of writ.yaml.
type fileEgress struct {
	// ModelHosts are the model API hosts every run may reach through the
	// proxy besides its scope's hosts (api.anthropic.com, …).
	ModelHosts []string `json:"modelHosts"`
	// AllowLoopbackUnsafe lets the proxy connect to loopback addresses
	// (127.0.0.0/8, ::1). For tests with a local stand-in only: it opens
	// every local service to the runs.
	AllowLoopbackUnsafe bool `json:"allowLoopbackUnsafe"`
	// MaxTunnels caps the tunnels open at once (default 1024), and
	// MaxTunnelsPerRun one run's (default 64).
	MaxTunnels       int `json:"maxTunnels"`
	MaxTunnelsPerRun int `json:"maxTunnelsPerRun"`
}

// parseEgress applies the egress section of writ.yaml over the defaults in e.
func parseEgress(e *egress.Config, fe fileEgress) {
	e.ModelHosts = fe.ModelHosts
	e.AllowLoopbackUnsafe = fe.AllowLoopbackUnsafe
	if fe.MaxTunnels != 0 {
		e.MaxTunnels = fe.MaxTunnels
	}
	if fe.MaxTunnelsPerRun != 0 {
		e.MaxTunnelsPerRun = fe.MaxTunnelsPerRun
	}
}
