// Package tasks is the contract between the scheduler, which enqueues asynq
// tasks, and the worker, which handles them: task types, queue names and
// payloads. Payloads carry IDs only, never credentials (asynqmon shows them).
package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
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

// Reasons a check was enqueued.
const (
	ReasonScheduled   = "scheduled"
	ReasonRefresh     = "refresh"
	ReasonCredentials = "credentials"
	ReasonReactivated = "reactivated"
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

// ErrMalformed reports a payload that can never be handled.
var ErrMalformed = errors.New("malformed task payload")

// ParseCheckPayload decodes and validates a check:connection payload.
func ParseCheckPayload(b []byte) (CheckPayload, error) {
	var p CheckPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.ConnectionID == "" {
		return p, fmt.Errorf("%w: connectionId is missing", ErrMalformed)
	}
	return p, nil
}
