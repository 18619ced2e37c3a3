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
// Deliverer, asynq servers of its own on the webhooks queue (a slow
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

import (
	"slices"

	"github.com/checkd/checkd/configs"
)

// DelivererConfigFrom returns the deliverer's settings in a checkd
// configuration: its webhooks section, and the worker's shutdown timeout
// (the deliverer stops with the worker). The caller adds Clock, Logger and
// the hooks.
func DelivererConfigFrom(c configs.Config) DelivererConfig {
	w := c.Webhooks
	return DelivererConfig{Concurrency: w.Concurrency, PerEndpoint: w.PerEndpoint, Servers: w.Servers, Timeout: w.Timeout,
		Schedule: slices.Clone(w.RetrySchedule), Jitter: w.RetryJitter, DisableAfter: w.DisableAfter, Retention: w.Retention,
		Policy: Policy{AllowPrivate: w.AllowPrivate}, ShutdownTimeout: c.Worker.ShutdownTimeout, PollInterval: w.PollInterval}
}

// DispatcherConfigFrom returns the dispatcher's settings in a checkd
// configuration. The caller adds Clock, Logger and the hooks.
func DispatcherConfigFrom(c configs.Config) DispatcherConfig {
	w := c.Webhooks
	return DispatcherConfig{BatchSize: w.Dispatch.BatchSize, Block: w.Dispatch.Block, ClaimIdle: w.Dispatch.ClaimIdle,
		EnqueueConcurrency: w.Dispatch.EnqueueConcurrency, Retention: w.Retention, Timeout: w.Timeout}
}

// AdminConfigFrom returns the API's webhook settings in a checkd
// configuration. The caller adds Clock.
func AdminConfigFrom(c configs.Config) AdminConfig {
	w := c.Webhooks
	return AdminConfig{Policy: Policy{AllowPrivate: w.AllowPrivate}, RotationGrace: w.RotationGrace, Timeout: w.Timeout, Retention: w.Retention}
}
