// Package gitgw is writ's git gateway (docs/design.md §3, docs/threat-model.md C-GT1–3):
// it hosts bare repositories in writ's data dir and serves them over git's
// smart HTTP protocol at /git/{owner}/{repo}.git to runs (Basic auth: the
// run id and an opaque git lease, checked by the broker) and to humans
// (their API token as the Basic password).
//
// Fetches are served by the real `git upload-pack` (protocol v0, v1 and
// v2); each fetch of a run is a git.fetch decision. Pushes are parsed
// here: the ref update commands are checked before the pack is read (no
// tags, no deletions, a run only under refs/heads/writ/<run-id>/, no
// protected branch), the pack is indexed by `git index-pack --strict` into
// a quarantine directory, the changed paths and new blobs are read from
// the quarantine (paths go to policy as a git.push decision per ref; blobs
// go through a secret scan), and only then are the objects moved into the
// repository and the refs updated with a compare-and-swap. A refused push
// gets a report git prints as "remote: writ: …" and "! [remote rejected]".
//
// Merges fast-forward a protected branch to exactly the head a human
// approved (a commit approval through the decision point), with a
// compare-and-swap, and push-mirror it to the repository's upstream.
//
// Every git process runs with an argv array, "--" before positionals that
// come from requests, a restricted GIT_ALLOW_PROTOCOL, no system or
// global config and a clean HOME. Repository names and refs are checked
// against writ's grammar before they reach a path or an argv.
//
// Part of the writ server; no API stability.
package gitgw
