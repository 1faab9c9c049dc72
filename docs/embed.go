// Package docs embeds the pages writ serves itself: the guide for MCP
// clients, which the MCP gateway's protected-resource metadata names as
// its resource_documentation (docs/design.md §4.8). Part of the writ
// server; no API stability. It holds text only and decides nothing.
package docs

import _ "embed"

// MCPClients is integrations/mcp-clients.md: how an MCP client reaches
// writ's gateway and where a run's token comes from.
//
//go:embed integrations/mcp-clients.md
var MCPClients string
