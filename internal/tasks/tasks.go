// Package tasks is the contract between the scheduler, which enqueues asynq
// tasks, and the worker, which handles them: task types, queue names and
// payloads. Payloads carry IDs only, never credentials (asynqmon shows them).
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TypeCheckConnection is the task that checks one connection.
const TypeCheckConnection = "check:connection"

// Queues, highest priority first.
const (
	QueueCritical = "critical" // credential updates, reactivations, on-demand refreshes
	QueueDefault  = "default"  // the weekly sweep
	QueueLow      = "low"      // bulk and demo work
)

// Queues lists the check queues, which the worker serves by weight.
var Queues = []string{QueueCritical, QueueDefault, QueueLow}

// AllQueues lists every queue checkd uses: the check queues, then the
// webhook deliverer's own.
var AllQueues = []string{QueueCritical, QueueDefault, QueueLow, QueueWebhooks}

// IsDequeue reports whether the keys of a script call are those of asynq's
// dequeue: a queue's pending list, paused flag, active list and lease set
// (asynq v0.26, internal/rdb.Dequeue); no other asynq script starts so.
// asynq's processor dequeues one task at a time, so clients wrapping
// asynq's server treat that call apart.
func IsDequeue(keys []string) bool {
	if len(keys) != 4 {
		return false
	}
	q, ok := strings.CutSuffix(keys[0], "}:pending")
	return ok && strings.HasPrefix(q, "asynq:{") && keys[1] == q+"}:paused" && keys[2] == q+"}:active" && keys[3] == q+"}:lease"
}

// asynqQueuesKey is the Redis set in which asynq lists the queues that
// exist (its base.AllQueues, internal to asynq). asynq adds a queue to it
// with a process's first task on the queue; asynqmon, the Inspector and
// the asynq_* metrics list only the queues in it.
const asynqQueuesKey = "asynq:queues"

// RegisterQueues lists every one of AllQueues in asynq's set of queues, so
// the dashboard, the queue routes and the asynq_* metrics show them (empty)
// from the first start rather than after each queue's first task. Adding a
// queue to AllQueues is enough for it to appear. It is idempotent.
func RegisterQueues(ctx context.Context, rdb redis.Cmdable) error {
	members := make([]any, len(AllQueues))
	for i, q := range AllQueues {
		members[i] = q
	}
	if err := rdb.SAdd(ctx, asynqQueuesKey, members...).Err(); err != nil {
		return fmt.Errorf("register the task queues %v: %w", AllQueues, err)
	}
	return nil
}

// Reasons a check was enqueued.
const (
	ReasonScheduled   = "scheduled"
	ReasonRefresh     = "refresh"
	ReasonCredentials = "credentials"
	ReasonReactivated = "reactivated"
	// ReasonInvestigationCleared: an operator cleared an investigation.
	ReasonInvestigationCleared = "investigation-cleared"
	// ReasonBreakerClosed: the datasource's outage breaker closed and the
	// checks it did not attempt run again.
	ReasonBreakerClosed = "breaker-closed"
)

// CheckPayload is the payload of a check:connection task.
type CheckPayload struct {
	ConnectionID string `json:"connectionId"`
	// Slot is the due time (Unix ms) the check was enqueued for; with the
	// connection ID it makes the task ID.
	Slot   int64  `json:"slot"`
	Reason string `json:"reason"`
}

// CheckTaskID is the deterministic task ID of a connection's check for one
// slot: several schedulers enqueue it once, and a failed (archived) slot does
// not block the next slot's ID.
func CheckTaskID(connectionID string, slot time.Time) string {
	return "check:" + connectionID + ":" + strconv.FormatInt(slot.UnixMilli(), 10)
}

// NewCheckTask returns the task checking connectionID for slot. Options (queue,
// retention, timeout) are the caller's; the task ID is set here.
func NewCheckTask(connectionID string, slot time.Time, reason string, opts ...asynq.Option) (*asynq.Task, error) {
	p, err := json.Marshal(CheckPayload{ConnectionID: connectionID, Slot: slot.UnixMilli(), Reason: reason})
	if err != nil {
		return nil, fmt.Errorf("encode check payload of %s: %w", connectionID, err)
	}
	opts = append([]asynq.Option{asynq.TaskID(CheckTaskID(connectionID, slot))}, opts...)
	return asynq.NewTask(TypeCheckConnection, p, opts...), nil
}

// AsynqMaxRetry is the asynq.MaxRetry of a check task that may fail
// maxRetry times: one more, kept for retries that do not count (a checker's
// Retry-After, which the worker reports as no failure). asynq archives a
// failing task whose retry counter has reached its MaxRetry, counted
// failure or not, so without the spare retry a Retry-After on the last
// attempt would end the check. The worker records a temporary failure on
// the last counted attempt, and archives other failures there.
func AsynqMaxRetry(maxRetry int) int { return maxRetry + 1 }

// ErrMalformed reports a payload that can never be handled.
var ErrMalformed = errors.New("malformed task payload")

// ParseCheckPayload decodes and validates a check:connection payload.
func ParseCheckPayload(b []byte) (CheckPayload, error) {
	if p, ok := parseCanonical(b); ok && p.ConnectionID != "" {
		return p, nil
	}
	var p CheckPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.ConnectionID == "" {
		return p, fmt.Errorf("%w: connectionId is missing", ErrMalformed)
	}
	return p, nil
}

// parseCanonical reads a payload in exactly the form NewCheckTask writes
// for plain IDs and reasons, without encoding/json's reflection (a few
// microseconds of every check). ok is false for anything else (escapes,
// other spacing or order, numbers out of range), which ParseCheckPayload
// hands to encoding/json, so both always agree (FuzzParseCanonical).
func parseCanonical(b []byte) (p CheckPayload, ok bool) {
	rest, ok := cutPrefix(b, `{"connectionId":"`)
	if !ok {
		return p, false
	}
	if p.ConnectionID, rest, ok = plainString(rest); !ok {
		return p, false
	}
	if rest, ok = cutPrefix(rest, `,"slot":`); !ok {
		return p, false
	}
	n := 0
	for n < len(rest) && (rest[n] == '-' || rest[n] >= '0' && rest[n] <= '9') {
		n++
	}
	num := string(rest[:n])
	if num == "" || num == "-" || (num[0] == '-' && num[1] == '0' || num[0] == '0') && num != "0" {
		return p, false // JSON has no leading zeros (and no "-0" here)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return p, false
	}
	p.Slot = v
	if rest, ok = cutPrefix(rest[n:], `,"reason":"`); !ok {
		return p, false
	}
	if p.Reason, rest, ok = plainString(rest); !ok {
		return p, false
	}
	return p, string(rest) == "}"
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return b, false
	}
	return b[len(prefix):], true
}

// plainString reads a JSON string's body up to its closing quote, when it
// is printable ASCII without escapes (what our IDs and reasons are).
func plainString(b []byte) (string, []byte, bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return string(b[:i]), b[i+1:], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", b, false
		}
	}
	return "", b, false
}

// Webhook delivery: the dispatcher enqueues one webhook:deliver task per
// message and endpoint on QueueWebhooks, which the deliverer serves with an
// asynq server of its own, so a slow endpoint never holds up a check.
const (
	TypeWebhookDeliver = "webhook:deliver" // one attempt (and its retries) of a message to an endpoint
	TypeWebhookRecover = "webhook:recover" // one page of an endpoint's recovery: its failed messages sent again
	QueueWebhooks      = "webhooks"
)

// WebhookDeliverPayload is the payload of a webhook:deliver task: IDs only
// (the message's body is read from the store at each attempt).
type WebhookDeliverPayload struct {
	MessageID  string `json:"m"`
	EndpointID string `json:"e"`
	// Trigger is scheduled (the dispatcher's task: the retry schedule runs
	// as its retries), resend, recover or test (one attempt each).
	Trigger string `json:"t"`
}

// WebhookDeliverTaskID is the task ID of a message's scheduled delivery
// to an endpoint: dispatcher replicas, or one dispatching again after a
// crash, enqueue it once while it is pending, retrying or archived (and
// the deliverer skips a delivery already finished). Other triggers take a
// fresh ID (nonce), since a fixed one stays taken while archived.
func WebhookDeliverTaskID(msgID, epID, trigger, nonce string) string {
	if nonce == "" {
		return "wh:" + msgID + ":" + epID
	}
	return "wh:" + msgID + ":" + epID + ":" + trigger + ":" + nonce
}

// NewWebhookDeliverTask returns the task of one delivery; nonce "" gives
// the scheduled delivery's fixed ID (WebhookDeliverTaskID).
func NewWebhookDeliverTask(p WebhookDeliverPayload, nonce string, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode webhook delivery of %s: %w", p.MessageID, err)
	}
	opts = append([]asynq.Option{asynq.Queue(QueueWebhooks), asynq.TaskID(WebhookDeliverTaskID(p.MessageID, p.EndpointID, p.Trigger, nonce))}, opts...)
	return asynq.NewTask(TypeWebhookDeliver, b, opts...), nil
}

// ParseWebhookDeliverPayload decodes a webhook:deliver payload: what
// NewWebhookDeliverTask writes for plain IDs without encoding/json's
// reflection (as parseCanonical), anything else with it.
func ParseWebhookDeliverPayload(b []byte) (WebhookDeliverPayload, error) {
	if p, ok := parseDeliverCanonical(b); ok && p.MessageID != "" && p.EndpointID != "" && p.Trigger != "" {
		return p, nil
	}
	var p WebhookDeliverPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.MessageID == "" || p.EndpointID == "" || p.Trigger == "" {
		return p, fmt.Errorf("%w: a webhook delivery needs m, e and t", ErrMalformed)
	}
	return p, nil
}

// parseDeliverCanonical reads {"m":"...","e":"...","t":"..."} of plain
// strings; ok is false for anything else (FuzzParseDeliverCanonical).
func parseDeliverCanonical(b []byte) (p WebhookDeliverPayload, ok bool) {
	for _, f := range []struct {
		prefix string
		dst    *string
	}{{`{"m":"`, &p.MessageID}, {`,"e":"`, &p.EndpointID}, {`,"t":"`, &p.Trigger}} {
		if b, ok = cutPrefix(b, f.prefix); !ok {
			return p, false
		}
		if *f.dst, b, ok = plainString(b); !ok {
			return p, false
		}
	}
	return p, string(b) == "}"
}

// WebhookRecoverPayload is the payload of a webhook:recover task: the
// endpoint, the window of change times (Unix ms) and where the previous
// page ended.
type WebhookRecoverPayload struct {
	EndpointID string `json:"e"`
	Since      int64  `json:"s"`
	Until      int64  `json:"u"`
	Cursor     string `json:"c,omitempty"`
}

// NewWebhookRecoverTask returns the task of one page of a recovery.
func NewWebhookRecoverTask(p WebhookRecoverPayload, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode webhook recovery of %s: %w", p.EndpointID, err)
	}
	return asynq.NewTask(TypeWebhookRecover, b, append([]asynq.Option{asynq.Queue(QueueWebhooks)}, opts...)...), nil
}

// ParseWebhookRecoverPayload decodes a webhook:recover payload.
func ParseWebhookRecoverPayload(b []byte) (WebhookRecoverPayload, error) {
	var p WebhookRecoverPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.EndpointID == "" || p.Until < p.Since {
		return p, fmt.Errorf("%w: a webhook recovery needs e and s ≤ u", ErrMalformed)
	}
	return p, nil
}
