package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/mcpgw"
)

// fileMCP is the mcp section of writ.yaml.
type fileMCP struct {
	// MaxResultBytes caps one tool result (as JSON); default 1 MiB.
	MaxResultBytes int `json:"maxResultBytes"`
	// Advertise is the URL the other replicas reach this one at; a
	// session lives in the replica that opened it, and the others proxy
	// its requests there. Default: publicURL (one replica).
	Advertise string          `json:"advertise"`
	Servers   []fileMCPServer `json:"servers"`
}

type fileMCPServer struct {
	Name      string            `json:"name"`
	Command   []string          `json:"command"`
	Env       []string          `json:"env"`
	URL       string            `json:"url"`
	Tools     map[string]string `json:"tools"`
	Workspace string            `json:"workspace"`
	Redact    []string          `json:"redact"` // tools whose arguments are recorded as a digest only; "*" for all
	// writ's own credentials towards the upstream, from the broker's
	// static secrets (environment/name): a variable of a command, a header
	// of a url.
	SecretEnv     map[string]string `json:"secretEnv"`
	SecretHeaders map[string]string `json:"secretHeaders"`
}

// MCPConfig configures the MCP gateway (docs/design.md §4.10, docs/mcp.md).
type MCPConfig struct {
	Servers        []mcpgw.Upstream
	MaxResultBytes int
	Advertise      string
}

func (fm fileMCP) config() MCPConfig {
	c := MCPConfig{MaxResultBytes: fm.MaxResultBytes, Advertise: fm.Advertise}
	for _, s := range fm.Servers {
		c.Servers = append(c.Servers, mcpgw.Upstream{Name: s.Name, Command: s.Command, Env: s.Env, URL: s.URL, Tools: s.Tools, Workspace: s.Workspace, Redact: s.Redact,
			SecretEnv: s.SecretEnv, SecretHeaders: s.SecretHeaders})
	}
	return c
}

func (c *MCPConfig) validate() error {
	if a := c.Advertise; a != "" {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("mcp.advertise %q: want the http(s) URL other replicas reach this one at, without a path", a)
		}
	}
	if c.MaxResultBytes < 0 || c.MaxResultBytes > 64<<20 {
		return fmt.Errorf("mcp.maxResultBytes %d: must be between 0 (the default, 1 MiB) and 64 MiB", c.MaxResultBytes)
	}
	seen := map[string]bool{}
	for i, s := range c.Servers {
		if err := mcpgw.ValidateUpstream(s); err != nil {
			return fmt.Errorf("mcp.servers[%d]: %w", i, err)
		}
		if seen[s.Name] {
			return fmt.Errorf("mcp.servers[%d]: server %q is configured twice", i, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// newMCP builds the MCP gateway, or nil when no server is configured.
func (s *Server) newMCP() (*mcpgw.Gateway, error) {
	if len(s.cfg.MCP.Servers) == 0 {
		return nil, nil
	}
	// Session ids are authenticated with a key every replica has: one
	// derived from the audit log's private key (replicas share key files).
	logKey, err := os.ReadFile(s.cfg.Keys.Log)
	if err != nil {
		return nil, fmt.Errorf("mcp session key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("writ mcp session ids v1\x00"), bytes.TrimSpace(logKey)...))
	return mcpgw.New(mcpgw.Config{
		Advertise: s.cfg.MCP.Advertise, SessionKey: sum[:],
		Servers: s.cfg.MCP.Servers, PublicURL: s.cfg.PublicURL, Tokens: s.runs, Decider: s.decider, Events: s.store, Outcomes: s.store,
		StateDir: filepath.Join(s.cfg.DataDir, "mcp"), MaxResultBytes: s.cfg.MCP.MaxResultBytes, Logger: s.log, Now: s.now,
		Secrets: mcpSecrets(s.broker),
	})
}

// mcpHandler is the gateway as the API mounts it (nil when there is none).
func (s *Server) mcpHandler() httpapi.MCP {
	if s.mcp == nil {
		return nil
	}
	return s.mcp
}

// mcpKnown reports whether an MCP server name is configured.
func (s *Server) mcpKnown(name string) bool { return s.mcp != nil && s.mcp.Known(name) }

// MCPStatus reports the state of MCP server name (tests, diagnostics).
func (s *Server) MCPStatus(name string) (*mcpgw.ServerStatus, bool) {
	if s.mcp == nil {
		return nil, false
	}
	return s.mcp.Status(name)
}

// mcpSecrets is the broker's static secrets as the MCP gateway opens them
// (nil without a broker key).
func mcpSecrets(bp *brokerParts) mcpgw.Secrets {
	if bp == nil || bp.secrets == nil {
		return nil
	}
	return bp.secrets
}
