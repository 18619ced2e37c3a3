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

// Queues lists every queue checkd uses.
var Queues = []string{QueueCritical, QueueDefault, QueueLow}

// asynqQueuesKey is the Redis set in which asynq lists the queues that
// exist (its base.AllQueues, internal to asynq). asynq adds a queue to it
// with a process's first task on the queue; asynqmon, the Inspector and
// the asynq_* metrics list only the queues in it.
const asynqQueuesKey = "asynq:queues"

// RegisterQueues lists every one of Queues in asynq's set of queues, so the
// dashboard, the queue routes and the asynq_* metrics show them (empty)
// from the first start rather than after each queue's first task. Adding a
// queue to Queues is enough for it to appear. It is idempotent.
func RegisterQueues(ctx context.Context, rdb redis.Cmdable) error {
	members := make([]any, len(Queues))
	for i, q := range Queues {
		members[i] = q
	}
	if err := rdb.SAdd(ctx, asynqQueuesKey, members...).Err(); err != nil {
		return fmt.Errorf("register the task queues %v: %w", Queues, err)
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
