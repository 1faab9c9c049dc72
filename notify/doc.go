// Package notify sends webhook notifications of approval events
// (docs/design.md §4.5, §4.10 `notify:`): a request for approval, a grant, a
// denial, a voided request.
//
// It is part of the writ server and has no API stability.
//
// # The outbox is the queue
//
// Every state change writes its audit event into the store's outbox in the
// same transaction (docs/design.md §4.6), so the outbox already is a durable,
// ordered queue of everything that happened. A [Notifier] reads it after a
// cursor of its own, one per webhook, and moves the cursor only once an
// event is handled. Nothing on the decision path waits for a webhook: an
// approval is committed whether or not anyone is told, and a slow or dead
// receiver delays only its own notifications.
//
// # Delivery
//
// Delivery is at least once, in commit order, per webhook. Each event is
// POSTed with a 10 s timeout; a 2xx answer delivers it and the cursor moves
// past it durably. Any other answer, a redirect (never followed, so a
// receiver cannot bounce writ to an internal address) or a transport error
// is retried with backoff, up to [Config.MaxAttempts]; then the event is
// dropped with an error log naming it, counted in [Stats], and the
// webhook moves on — a dead receiver never stalls notifications forever.
// A crash between a delivery and the cursor's move sends the event again,
// so every request carries the event id, in the payload and as the
// Idempotency-Key header, for the receiver to de-duplicate.
//
// A webhook seen for the first time starts at the end of the outbox: it
// is told what happens from then on, not the whole history. Its cursor is
// named after its position in the configuration and a hash of its URL, so
// changing the URL starts afresh.
//
// # Payloads
//
// Format "json" (the default) posts
//
//	{"event": <the event exactly as stored>, "link": "<publicURL>/v1/approvals/<id>"}
//
// and format "slack" posts a Slack incoming-webhook message,
// {"text": "<one-line summary>"}, with Slack's control characters escaped
// so that text from a run cannot mention a channel or forge a link.
//
// # Secrets
//
// A webhook URL may carry a secret (a Slack webhook URL is one). It is
// never logged: logs, errors and [Webhook.LogValue] name the scheme and
// host only.
package notify
