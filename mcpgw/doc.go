// Package mcpgw is writ's MCP gateway: `writ serve` holds every configured
// upstream MCP server (a stdio command it starts, or a Streamable HTTP URL)
// as one MCP client session, and serves each at /mcp/{server} as a
// Streamable HTTP MCP server for runs. It is the only package of writ that
// imports github.com/modelcontextprotocol/go-sdk. It is part of the writ
// server and has no API stability.
//
// # What is enforced
//
//   - Authentication: every HTTP request to /mcp/{server} carries a run's
//     Bearer JWT-SVID whose audience is exactly <publicURL>/mcp/<server>
//     (RFC 8707 resource; never the API audience), unbound (DPoP-bound
//     tokens are API tokens). The run's state is read on every request, so
//     a run that ended, was killed, suspended or expired is refused on its
//     next request. A missing or bad token is answered 401 with
//     WWW-Authenticate: Bearer resource_metadata="…" pointing at the RFC 9728
//     document served at /.well-known/oauth-protected-resource/mcp/<server>.
//     The token is never passed upstream: writ talks to the upstream with its
//     own session.
//   - Sessions (2025-11-25 era) are bound to the run that opened them: a
//     request with another run's token on that Mcp-Session-Id is refused.
//   - Origin: a request with an Origin header other than the public URL's
//     origin is refused (403); requests without one (non-browser clients)
//     pass.
//   - tools/list returns only the tools whose descriptor is accepted (see
//     pinning) and whose name mcp:<server>/<tool> is covered by the run's
//     scope tools. This is a filter by the scope pattern, not a policy
//     evaluation per tool: a recorded decision per listed tool would flood
//     the audit log and the run's history (budgets, thresholds) on every
//     list, and an unrecorded one would be a second, divergent path through
//     policy. The call itself is always decided.
//   - tools/call is an mcp.call action named mcp:<server>/<tool>, decided
//     through the decision point (via "mcp") before anything reaches the
//     upstream: allow forwards it; deny answers a JSON-RPC error (code
//     [CodeDenied]) whose message and data carry the reasons and the
//     decision id; approval_required answers a JSON-RPC error (code
//     [CodeApprovalRequired]) naming the approval and the command a human
//     runs to give it, the approval in its data. The decision event carries
//     the arguments' digest; the arguments themselves stay in the decisions
//     table, or only their digest and size when they exceed
//     writ.MaxActionArgs.
//   - Default argument rules, as facts for policy (input.context.args): every
//     string under a key that names a path (path, paths, file, filename,
//     dir, directory, root, source, destination, src, dst, cwd, or any key
//     containing "path", "file" or "dir") and every file:// URL is a
//     filesystem path, resolved against the server's configured workspace
//     (with {run} replaced by the run id) and checked lexically to stay
//     inside it; with no workspace configured every path is outside. Every
//     URL in the arguments — a whole string, or one inside a string —
//     contributes its host, matched against the run's scope hosts; URLs
//     are read as a WHATWG parser (Node's new URL) reads them, so
//     whitespace, case, backslashes, userinfo, percent-encoding, IDNA and
//     IPv4 notations do not hide a host (urlhost.go). The default policy
//     denies either (path_outside_workspace, host_not_in_scope).
//   - Results larger than the configured cap (default 1 MiB, as JSON) are
//     replaced by an error result.
//   - Fail closed: a decision that cannot be made or recorded (policy
//     error, store or audit write failure), an unparseable message, an
//     unknown tool or a quarantined server refuses the call.
//
// # Pinning and quarantine
//
// A tool's descriptor digest is "sha256:" + hex(SHA-256) of the canonical
// JSON of {"description", "inputSchema", "name"} (object keys sorted at
// every level, no insignificant whitespace, numbers as Go's encoding/json
// writes float64): [ToolDigest]. Configured pins (mcp.servers[].tools) are
// the accepted digests; a server without pins records the digests it sees
// first (trust on first use) in the state directory. When the upstream
// presents a tool whose digest differs from the accepted one — or, on a
// server without pins, a tool that was not there when the digests were
// recorded — the whole server is quarantined (event mcp.quarantined): its
// tools are no longer listed and every call is refused until an admin
// accepts the current descriptors (POST /v1/mcp/{server}/accept, `writ mcp
// accept NAME`; event mcp.accepted), which records them as the accepted
// digests. On a server with pins, a tool without a pin is hidden and
// refused, never quarantining. Descriptors are re-read from the upstream on
// every tools/list and on the upstream's tools/list_changed notification.
//
// # Protocol eras
//
// The SDK (v1.8.0) serves the 2025-11-25 era (initialize, Mcp-Session-Id,
// GET stream) from a stateful handler, and the 2026-07-28 era (no
// initialize, per-request metadata, Mcp-Method/Mcp-Name headers) only from
// a handler created with Stateless set, which in turn answers no sessions.
// It has no handler that serves both at one URL. The gateway therefore
// keeps one of each per server and routes each request by its
// MCP-Protocol-Version header (2026-07-28 or later goes to the stateless
// one). The SDK checks the Mcp-Method and Mcp-Name headers against the body
// only for requests of the new era on the stateless handler; mcpgw checks
// them itself before either handler, for every request that carries them:
// Mcp-Method must equal the JSON-RPC method and, for tools/call,
// prompts/get and resources/read, Mcp-Name must equal params.name (or
// params.uri); a 2026-07-28 request without them is refused as well. A
// mismatch is answered 400 with a JSON-RPC error and never reaches the SDK.
//
// Upstream, writ speaks 2025-11-25 (its own client session, one per
// server), whatever era the run's client speaks. Calls upstream run on a
// context detached from the run's request: the SDK keeps the inbound
// request's protocol version among its context values, and its client
// would otherwise announce that version to the upstream.
//
// Sessions live in the memory of the replica that created them (the SDK
// keeps them in its handler); several replicas need sticky routing of
// /mcp/ by Mcp-Session-Id, or clients of the stateless era. Resources,
// prompts and completions of the upstream are not proxied; neither are
// requests the upstream sends to the client (sampling, elicitation, roots).
package mcpgw
