// Package webhook delivers checkd's change events to integrators as
// Standard Webhooks (standardwebhooks.com): signed, retried, logged and
// replayable.
//
// The data path:
//
//	store write ──► change-event stream (P ev) ──► Dispatcher ──► queue "webhooks" ──► Deliverer ──► endpoint
//	(one event per write that     (consumer group: nothing     (webhook:deliver,    (signed POST, retries,
//	 changed GET details)          lost, nothing doubled)       one per message ×    attempt log, disabling)
//	                                                            endpoint)
//
// Every store write that changes what GET /v1/connection/{id}/details
// shows appends one event in the same atomic step, holding the connection
// before and after (package store). The Dispatcher reads the stream
// through a consumer group, renders each event's messages once (Render:
// the type, the change's time, and the connection exactly as GET details
// answered, with its sequence and, for connection.updated.v2, the changed
// fields and their previous values), stores them, and enqueues one
// webhook:deliver task per message and enabled endpoint receiving it. The
// Deliverer, an asynq server of its own on the webhooks queue (a slow
// endpoint never holds up a check), POSTs the stored bytes with the
// headers webhook-id (MessageID: the same on every attempt, resend and
// endpoint), webhook-timestamp and webhook-signature (Sign), and retries
// a failure on the configured schedule (Svix's by default: at once, 5s,
// 5m, 30m, 2h, 5h, 10h, 10h, each ±20%), honouring Retry-After. A 410
// disables the endpoint at once; so does failing for
// webhooks.disableAfter. Admin holds what the API does beyond the store:
// endpoint URLs checked against the address Policy (SSRF), secrets, test
// messages, resends and recoveries.
package webhook
