// Package webui is writ's web UI for approvers and auditors: the approval
// queue with the server-computed diff, runs and their timelines, and the
// audit log's checkpoint with an inclusion check done in the browser.
//
// Pages are rendered on the server with html/template from files embedded
// in the binary; there is no build step and one small static script (the
// inclusion check). The UI has its own mux, mounted at /ui/, with the
// browser protections the JSON API does not need: a strict Content
// Security Policy (no inline script), nosniff, a Referrer-Policy,
// [http.CrossOriginProtection], and a per-session CSRF token on every form.
//
// A human signs in with an API token. The token stays on the server, in a
// session held in memory; the browser gets only a random session id in an
// HTTP-only, SameSite=Strict cookie. Every page is read through the JSON
// API in-process with the session's token, so the UI holds no business
// rule of its own: what a human may see and do is what the API lets them.
// Approving still needs the human's own signature over the statement the
// server fixes; the UI only carries it.
package webui
