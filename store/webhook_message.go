package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/jsontext"
)

// Webhook messages and their delivery. A message is one hash holding the
// exact bytes every attempt sends, its type, connection, company and
// change time, and one field per endpoint it is for: the delivery's state,
// "<status><attempts>:<attempt IDs>" (status p pending, s delivered, f
// failed; attempts of the retry schedule; IDs of the endpoint's attempt
// log entries, comma-separated). Messages expire after the retention,
// counted from their change; two sorted sets list them by change time
// (all, and per connection) and are trimmed to it. Every endpoint
// has an attempt log, a stream trimmed to the retention.

// Delivery states of a message to one endpoint.
const (
	DeliveryPending = "pending" // attempts are scheduled
	DeliverySuccess = "success" // an attempt got a 2xx
	DeliveryFailed  = "failed"  // every scheduled attempt failed, or the endpoint was disabled
)

// Attempt triggers.
const (
	TriggerScheduled = "scheduled" // the first attempt, when the change was dispatched
	TriggerRetry     = "retry"     // a later attempt of the retry schedule
	TriggerResend    = "resend"    // an operator asked for one more attempt
	TriggerRecover   = "recover"   // an operator recovered the endpoint's failed messages
	TriggerTest      = "test"      // an example message
)

// MaxWebhookMessageID bounds a message ID (they are made by the webhook
// package from a connection ID and a sequence).
const MaxWebhookMessageID = 100

// ValidWebhookMessageID reports whether s can be a message ID: msg_ and
// characters of [A-Za-z0-9_], as the Standard Webhooks' webhook-id.
func ValidWebhookMessageID(s string) bool {
	if !strings.HasPrefix(s, "msg_") || len(s) > MaxWebhookMessageID || len(s) == len("msg_") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// NewWebhookMessage is a message to store: the body every attempt sends,
// and the endpoints it is for (their deliveries start pending).
type NewWebhookMessage struct {
	ID           string
	Type         string
	ConnectionID string
	CompanyID    string
	Time         time.Time
	Body         []byte
	Endpoints    []string
	// Unlisted keeps the message out of the listings (an example sent to
	// test an endpoint).
	Unlisted bool
}

// saveScript stores messages: each one's hash (unless it exists, when only
// the deliveries it lacks are added: a message keeps its first body and
// every state), its expiry, and its entries in the listings by change
// time, all and its connection's (which expires with its newest message,
// and is trimmed to the retention when it existed already); then the
// listing of all is trimmed to the retention.
//
// KEYS: all messages' listing, then per message its hash and its
// connection's listing
// ARGV: horizon (ms), then per message: id, body, type, connection,
// company, change time (ms), ttl (ms), listed (1|0), number of endpoints,
// the endpoints
var saveScript = redis.NewScript(`
local a = 2
for k = 2, #KEYS, 2 do
  local mk, ck = KEYS[k], KEYS[k+1]
  local id, body, ttl, listed, n = ARGV[a], ARGV[a+1], ARGV[a+6], ARGV[a+7], tonumber(ARGV[a+8])
  if redis.call('HSETNX', mk, 'b', body) == 1 then
    local f = {'t', ARGV[a+2], 'c', ARGV[a+3], 'o', ARGV[a+4], 'at', ARGV[a+5]}
    for i = 1, n do
      f[#f+1] = 'd:' .. ARGV[a+8+i]
      f[#f+1] = 'p0:'
    end
    redis.call('HSET', mk, unpack(f))
    redis.call('PEXPIRE', mk, ttl)
    if listed == '1' then
      redis.call('ZADD', KEYS[1], ARGV[a+5], id)
      local pttl = redis.call('PTTL', ck) -- -2: the connection's first
      redis.call('ZADD', ck, ARGV[a+5], id)
      if pttl ~= -2 then
        redis.call('ZREMRANGEBYSCORE', ck, '-inf', '(' .. ARGV[1])
      end
      if pttl < tonumber(ttl) then
        redis.call('PEXPIRE', ck, ttl)
      end
    end
  else
    for i = 1, n do
      redis.call('HSETNX', mk, 'd:' .. ARGV[a+8+i], 'p0:')
    end
  end
  a = a + 9 + n
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return 1
`)

// SaveWebhookMessages stores messages for retention, counted from their
// change time (one older than that is not stored), in one script call. It
// is idempotent: a message stored already keeps its body and its
// deliveries' states, so a dispatcher that dies after saving and saves
// again changes nothing.
func (s *Store) SaveWebhookMessages(ctx context.Context, msgs []NewWebhookMessage, retention time.Duration) error {
	now := s.cfg.Clock.Now()
	keys := []string{s.kWebhookMessages()}
	args := []any{ms(now.Add(-retention))}
	for _, m := range msgs {
		if !ValidWebhookMessageID(m.ID) {
			return fmt.Errorf("%w: webhook message ID %q", ErrInvalid, m.ID)
		}
		// Kept until its change is retention old, by the store's clock.
		ttl := m.Time.Add(retention).Sub(now)
		if ttl <= 0 {
			continue
		}
		listed := "1"
		if m.Unlisted {
			listed = "0"
		}
		keys = append(keys, s.kWebhookMessage(m.ID), s.kWebhookConnMessages(m.ConnectionID))
		args = append(args, m.ID, m.Body, m.Type, m.ConnectionID, m.CompanyID, ms(m.Time), ttl.Milliseconds(), listed, len(m.Endpoints))
		for _, ep := range m.Endpoints {
			args = append(args, ep)
		}
	}
	if len(keys) == 1 {
		return nil
	}
	if err := saveScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("save webhook messages: %w", err)
	}
	return nil
}

// WebhookMessage is a stored message as the API shows it.
type WebhookMessage struct {
	ID           string    `json:"id"`
	EventType    string    `json:"eventType"`
	ConnectionID string    `json:"connectionId"`
	CompanyID    string    `json:"companyId"`
	Timestamp    time.Time `json:"timestamp"`
	// Payload is the exact body every attempt sends.
	Payload    json.RawMessage   `json:"payload"`
	Deliveries []WebhookDelivery `json:"deliveries"`
}

// WebhookDelivery is a message's delivery to one endpoint.
type WebhookDelivery struct {
	EndpointID string `json:"endpointId"`
	Status     string `json:"status"`
	// Attempts counts the attempts of the retry schedule so far.
	Attempts int `json:"attempts"`
	// attemptIDs are the endpoint's attempt log entries of this message.
	attemptIDs []string
}

// AttemptIDs are the entries of the endpoint's attempt log made for this
// message (every trigger's), oldest first.
func (d WebhookDelivery) AttemptIDs() []string { return d.attemptIDs }

// DeliveryTo is the message's delivery to an endpoint (Status "" when the
// message was not for it: dispatched before the endpoint existed, or while
// it was disabled).
func (m WebhookMessage) DeliveryTo(ep string) WebhookDelivery {
	for _, d := range m.Deliveries {
		if d.EndpointID == ep {
			return d
		}
	}
	return WebhookDelivery{EndpointID: ep}
}

// parseDelivery reads a delivery state field value.
func parseDelivery(ep, v string) (WebhookDelivery, bool) {
	head, ids, ok := strings.Cut(v, ":")
	if !ok || len(head) < 2 {
		return WebhookDelivery{}, false
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil {
		return WebhookDelivery{}, false
	}
	d := WebhookDelivery{EndpointID: ep, Attempts: n}
	switch head[0] {
	case 'p':
		d.Status = DeliveryPending
	case 's':
		d.Status = DeliverySuccess
	case 'f':
		d.Status = DeliveryFailed
	default:
		return WebhookDelivery{}, false
	}
	if ids != "" {
		d.attemptIDs = strings.Split(ids, ",")
	}
	return d, true
}

// decodeWebhookMessage reads a message hash (HGETALL); ok is false when it
// does not exist (expired).
func decodeWebhookMessage(id string, h map[string]string) (WebhookMessage, bool) {
	if h["t"] == "" {
		return WebhookMessage{}, false
	}
	at, _ := strconv.ParseInt(h["at"], 10, 64)
	m := WebhookMessage{ID: id, EventType: h["t"], ConnectionID: h["c"], CompanyID: h["o"], Timestamp: fromMS(at),
		Payload: json.RawMessage(h["b"]), Deliveries: []WebhookDelivery{}}
	for k, v := range h {
		if ep, ok := strings.CutPrefix(k, "d:"); ok {
			if d, ok := parseDelivery(ep, v); ok {
				m.Deliveries = append(m.Deliveries, d)
			}
		}
	}
	slices.SortFunc(m.Deliveries, func(a, b WebhookDelivery) int { return strings.Compare(a.EndpointID, b.EndpointID) })
	return m, true
}

// GetWebhookMessage returns a message, or ErrNotFound (unknown or expired).
func (s *Store) GetWebhookMessage(ctx context.Context, id string) (WebhookMessage, error) {
	ms, err := s.webhookMessages(ctx, []string{id})
	if err != nil {
		return WebhookMessage{}, err
	}
	if len(ms) == 0 {
		return WebhookMessage{}, fmt.Errorf("webhook message %q: %w", id, ErrNotFound)
	}
	return ms[0], nil
}

func (s *Store) webhookMessages(ctx context.Context, ids []string) ([]WebhookMessage, error) {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !ValidWebhookMessageID(id) })
	if len(ids) == 0 {
		return nil, nil
	}
	p := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = p.HGetAll(ctx, s.kWebhookMessage(id))
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read webhook messages: %w", err)
	}
	out := make([]WebhookMessage, 0, len(ids))
	for i, c := range cmds {
		if m, ok := decodeWebhookMessage(ids[i], c.Val()); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// WebhookMessageFilter selects messages of a listing; empty fields select
// all.
type WebhookMessageFilter struct {
	EventType    string
	ConnectionID string
}

// WebhookMessagePage is a page of messages, newest first; Next is the
// cursor of the next page, empty on the last.
type WebhookMessagePage struct {
	Messages []WebhookMessage `json:"messages"`
	Next     string           `json:"nextCursor"`
}

// MaxWebhookPage bounds a page of messages or attempts.
const MaxWebhookPage = 250

// maxWebhookScan bounds the messages one listing page reads to find those
// of an event type.
const maxWebhookScan = 5000

// ListWebhookMessages lists messages newest first, limit at a time after
// cursor (a Next of a previous page): a message is listed once however
// many arrive while a client pages.
func (s *Store) ListWebhookMessages(ctx context.Context, f WebhookMessageFilter, cursor string, limit int) (WebhookMessagePage, error) {
	if limit <= 0 || limit > MaxWebhookPage {
		limit = MaxWebhookPage
	}
	if f.EventType != "" && !slices.Contains(EventTypes, f.EventType) {
		return WebhookMessagePage{}, fmt.Errorf("%w: eventType %.100q is not one of %s", ErrInvalid, f.EventType, strings.Join(EventTypes, ", "))
	}
	key := s.kWebhookMessages()
	if f.ConnectionID != "" {
		if !ValidID(ConnectionIDPrefix, f.ConnectionID) {
			return WebhookMessagePage{}, fmt.Errorf("%w: connectionId %.100q is not a connection ID", ErrInvalid, f.ConnectionID)
		}
		key = s.kWebhookConnMessages(f.ConnectionID)
	}
	at, after, err := parseScoreCursor(cursor)
	if err != nil {
		return WebhookMessagePage{}, err
	}
	// An event type filter reads the messages of the listing and keeps its
	// type's: a page may come out short (with a cursor) after
	// maxWebhookScan messages of other types.
	page := WebhookMessagePage{Messages: []WebhookMessage{}}
	for scanned := 0; len(page.Messages) < limit; {
		if scanned >= maxWebhookScan {
			page.Next = scoreCursor(at, after)
			return page, nil
		}
		n := limit - len(page.Messages)
		if f.EventType != "" {
			n = max(n, 100)
		}
		ids, scores, err := s.zpage(ctx, key, math.MinInt64, math.MaxInt64, at, after, n, true)
		if err != nil {
			return WebhookMessagePage{}, fmt.Errorf("list webhook messages: %w", err)
		}
		if len(ids) == 0 {
			return page, nil
		}
		msgs, err := s.webhookMessages(ctx, ids)
		if err != nil {
			return WebhookMessagePage{}, err
		}
		byID := make(map[string]WebhookMessage, len(msgs))
		for _, m := range msgs {
			byID[m.ID] = m
		}
		for i, id := range ids {
			scanned++
			at, after = scores[i], id
			if m, ok := byID[id]; ok && (f.EventType == "" || m.EventType == f.EventType) {
				page.Messages = append(page.Messages, m)
				if len(page.Messages) == limit {
					break
				}
			}
		}
	}
	page.Next = scoreCursor(at, after)
	return page, nil
}

func scoreCursor(at int64, id string) string { return strconv.FormatInt(at, 10) + "." + id }

// parseScoreCursor reads a scoreCursor ("" is the start).
func parseScoreCursor(c string) (int64, string, error) {
	if c == "" {
		return 0, "", nil
	}
	n, id, ok := strings.Cut(c, ".")
	v, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || v < 0 || !ValidWebhookMessageID(id) {
		return 0, "", fmt.Errorf("%w: cursor %.100q is not one this listing returned (start again without a cursor)", ErrInvalid, c)
	}
	return v, id, nil
}

// zpage returns up to n members of a sorted set with scores in [lo, hi],
// in (score, member) order (descending when desc), strictly after the
// member after at score at (from the first when after is "").
func (s *Store) zpage(ctx context.Context, key string, lo, hi, at int64, after string, n int, desc bool) ([]string, []int64, error) {
	bound := func(v int64) string {
		switch v {
		case math.MinInt64:
			return "-inf"
		case math.MaxInt64:
			return "+inf"
		}
		return strconv.FormatInt(v, 10)
	}
	min, max := bound(lo), bound(hi)
	if after != "" {
		if desc {
			max = bound(at)
		} else {
			min = bound(at)
		}
	}
	var ids []string
	var scores []int64
	for off := int64(0); len(ids) < n; {
		by := &redis.ZRangeBy{Min: min, Max: max, Offset: off, Count: int64(n)}
		var got []redis.Z
		var err error
		if desc {
			got, err = s.rdb.ZRevRangeByScoreWithScores(ctx, key, by).Result()
		} else {
			got, err = s.rdb.ZRangeByScoreWithScores(ctx, key, by).Result()
		}
		if err != nil {
			return nil, nil, err
		}
		for _, z := range got {
			id, _ := z.Member.(string)
			// Members tied with the cursor's score come in member order:
			// skip those up to it.
			if after != "" && int64(z.Score) == at && (desc && id >= after || !desc && id <= after) {
				continue
			}
			if len(ids) < n {
				ids, scores = append(ids, id), append(scores, int64(z.Score))
			}
		}
		if len(got) < n {
			break
		}
		off += int64(len(got))
	}
	return ids, scores, nil
}

// WebhookMessagesBetween lists the messages whose change is in [from, to],
// oldest first, up to limit after cursor ("" from the start); next is the
// cursor of the rest, "" after the last.
func (s *Store) WebhookMessagesBetween(ctx context.Context, from, to time.Time, cursor string, limit int) ([]WebhookMessage, string, error) {
	at, after, err := parseScoreCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	ids, scores, err := s.zpage(ctx, s.kWebhookMessages(), ms(from), ms(to), at, after, limit, false)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook messages: %w", err)
	}
	msgs, err := s.webhookMessages(ctx, ids)
	if err != nil || len(ids) < limit {
		return msgs, "", err
	}
	return msgs, scoreCursor(scores[len(ids)-1], ids[len(ids)-1]), nil
}

// WebhookTarget is what one delivery attempt needs: the message, the
// endpoint with its secrets, and the delivery's state.
type WebhookTarget struct {
	MessageType string
	CompanyID   string
	Body        []byte
	// Delivery is the state of the message's delivery to the endpoint
	// (Status "" when the message was never for it).
	Delivery WebhookDelivery
	// Endpoint and Secrets are as of this read. Endpoint's lists and
	// times are shared with other targets of the endpoint: read them, do
	// not change them.
	Endpoint WebhookEndpoint
	Secrets  WebhookSecrets
}

// Errors of LoadWebhookTarget.
var (
	ErrWebhookMessageGone  = errors.New("the webhook message expired")
	ErrWebhookEndpointGone = errors.New("the webhook endpoint was deleted")
)

// LoadWebhookTarget reads a message and an endpoint for an attempt, in one
// round trip shared with concurrent attempts' (the group commit, waiting
// up to Config.CheckBatchWindow for them as a check's calls do). It
// fails with ErrWebhookMessageGone or ErrWebhookEndpointGone when either
// no longer exists. The endpoint is read whole at every attempt, so a
// change (its URL, disabling, a rotated secret, its deletion) applies
// from the next attempt on; only its decoding is skipped (the secrets'
// decryption, the lists' JSON) when its fields are those decoded last.
func (s *Store) LoadWebhookTarget(ctx context.Context, msgID, epID string) (WebhookTarget, error) {
	if !ValidWebhookMessageID(msgID) {
		return WebhookTarget{}, fmt.Errorf("webhook message %q: %w", msgID, ErrWebhookMessageGone)
	}
	if !ValidID(WebhookEndpointIDPrefix, epID) {
		return WebhookTarget{}, fmt.Errorf("webhook endpoint %q: %w", epID, ErrWebhookEndpointGone)
	}
	p := s.rdb.Pipeline() // builds the commands; never run
	msg := p.HMGet(ctx, s.kWebhookMessage(msgID), "t", "o", "b", "d:"+epID)
	ep := p.HMGet(ctx, s.kWebhookEndpoint(epID), webhookTargetFields...)
	err := s.batch.DoWindowed(ctx, msg, ep)
	for _, c := range []redis.Cmder{msg, ep} {
		if err == nil {
			err = c.Err()
		}
	}
	if err != nil {
		return WebhookTarget{}, fmt.Errorf("load webhook message %s for %s: %w", msgID, epID, err)
	}
	mv := msg.Val()
	str := func(i int) string { s, _ := mv[i].(string); return s }
	if str(0) == "" {
		return WebhookTarget{}, fmt.Errorf("webhook message %s: %w", msgID, ErrWebhookMessageGone)
	}
	d, err := s.epDecodes.decode(s, epID, ep.Val())
	if err != nil {
		return WebhookTarget{}, err
	}
	if d == nil {
		return WebhookTarget{}, fmt.Errorf("webhook endpoint %s: %w", epID, ErrWebhookEndpointGone)
	}
	t := WebhookTarget{MessageType: str(0), CompanyID: str(1), Body: []byte(str(2)), Endpoint: d.e, Secrets: d.sec}
	if d, ok := parseDelivery(epID, str(3)); ok {
		t.Delivery = d
	} else {
		t.Delivery.EndpointID = epID
	}
	return t, nil
}

// WebhookAttempt is one delivery attempt, as the attempt logs keep it.
type WebhookAttempt struct {
	// ID is the attempt's entry in its endpoint's log (set when read).
	ID         string    `json:"id"`
	MessageID  string    `json:"msgId"`
	EndpointID string    `json:"endpointId"`
	URL        string    `json:"url"`
	Timestamp  time.Time `json:"timestamp"`
	Trigger    string    `json:"trigger"`
	// Attempt numbers the message's attempts to the endpoint, from 1.
	Attempt int `json:"attempt"`
	// Status is "success" (a 2xx) or "failed".
	Status string `json:"status"`
	// ResponseStatusCode is the HTTP status (0: no response, see Error).
	ResponseStatusCode int    `json:"responseStatusCode"`
	Error              string `json:"error,omitempty"`
	DurationMs         int64  `json:"durationMs"`
	// Response is the start of the response body.
	Response string `json:"response,omitempty"`
	// NextAttemptAt is when the retry schedule tries again (none: it
	// does not).
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

// AttemptOutcome is what an attempt does to its delivery and endpoint.
type AttemptOutcome struct {
	// Series: an attempt of the retry schedule (scheduled, retry); its
	// delivery's attempts count one more. Others (resend, recover, test)
	// change a delivery only by succeeding or, when no schedule runs for
	// it, by failing.
	Series bool
	// Success: a 2xx. Otherwise Final ends the schedule (no retry left, or
	// Gone), and Gone (a 410) disables the endpoint at once.
	Success, Final, Gone bool
	// GoneReason and StaleReason are the endpoint's disabled reason for a
	// 410, and for failing for DisableAfter.
	GoneReason, StaleReason string
	// Retention bounds the attempt log; DisableAfter disables an endpoint
	// whose attempts have all failed for that long.
	Retention, DisableAfter time.Duration
}

// recordScript logs an attempt and applies its outcome to the delivery
// state and the endpoint (failing since, disabled). It returns the log
// entry's ID and the reason the endpoint was disabled by it ("" if not).
//
// KEYS: message, endpoint, attempt log, endpoints version
// ARGV: delivery field, attempt JSON, series (1|0), outcome (ok|retry|final|gone),
//
//	now (ms), log floor (ms), disableAfter (ms), goneReason, staleReason
var recordScript = redis.NewScript(`
local id = redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[6], '*', 'a', ARGV[2])
local out = ARGV[4]
local st = redis.call('HGET', KEYS[1], ARGV[1])
if st or redis.call('EXISTS', KEYS[1]) == 1 then
  local s, n, ids = 'f', 0, ''
  if st then
    s, n, ids = string.match(st, '^(%a)(%d+):(.*)$')
    n = tonumber(n)
  end
  if ids ~= '' then ids = ids .. ',' end
  ids = ids .. id
  if ARGV[3] == '1' then n = n + 1 end
  if out == 'ok' then
    s = 's'
  elseif s ~= 's' then
    if ARGV[3] == '1' then
      if out == 'retry' then s = 'p' else s = 'f' end
    elseif s ~= 'p' then
      s = 'f'
    end
  end
  redis.call('HSET', KEYS[1], ARGV[1], s .. n .. ':' .. ids)
end
local reason = ''
if out == 'ok' then
  redis.call('HDEL', KEYS[2], 'ff') -- nothing on a deleted endpoint
  return {id, reason}
end
local ff = redis.call('HGET', KEYS[2], 'ff')
if not ff and redis.call('EXISTS', KEYS[2]) == 0 then
  return {id, reason}
end
local now = tonumber(ARGV[5])
ff = tonumber(ff or '')
if not ff then
  ff = now
  redis.call('HSET', KEYS[2], 'ff', ARGV[5])
end
if not redis.call('HGET', KEYS[2], 'x') then
  if out == 'gone' then
    reason = ARGV[8]
  elseif now - ff >= tonumber(ARGV[7]) then
    reason = ARGV[9]
  end
  if reason ~= '' then
    redis.call('HSET', KEYS[2], 'x', reason, 'xa', ARGV[5], 'ua', ARGV[5])
    redis.call('INCR', KEYS[4])
  end
end
return {id, reason}
`)

// RecordWebhookAttempt logs an attempt and applies its outcome, in one
// atomic step: the delivery's state, the endpoint's run of failures, and
// its disabling (a 410, or every attempt failed for DisableAfter). It
// returns the log entry's ID and, when this attempt disabled the endpoint,
// the reason.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a WebhookAttempt, o AttemptOutcome) (id, disabled string, err error) {
	keys, args, err := s.recordArgs(&a, o)
	if err != nil {
		return "", "", err
	}
	// Shared with concurrent attempts' round trips (the group commit,
	// windowed as LoadWebhookTarget).
	return recordResult(&a, s.batch.RunWindowed(ctx, recordScript, keys, args...))
}

// StowWebhookAttempt is RecordWebhookAttempt for an attempt whose caller
// does not wait: the record rides with the store's next round trip (the
// group commit's Stow), ahead of the calls made after it, and then gets
// its outcome. An asynq handler stows its attempt just before it returns:
// the record then goes in one round trip with asynq's completion of the
// task (Store.ServerClient), in that order. A process that dies before
// that round trip loses the record and the completion alike, so asynq
// runs the task again, as when it dies just after the attempt.
func (s *Store) StowWebhookAttempt(ctx context.Context, a WebhookAttempt, o AttemptOutcome, then func(id, disabled string, err error)) {
	keys, args, err := s.recordArgs(&a, o)
	if err != nil {
		then("", "", err)
		return
	}
	s.batch.Stow(ctx, recordScript, func(cmd *redis.Cmd) { then(recordResult(&a, cmd)) }, keys, args...)
}

// recordArgs are the record script's keys and arguments for a.
func (s *Store) recordArgs(a *WebhookAttempt, o AttemptOutcome) ([]string, []any, error) {
	b, err := appendAttempt(nil, a)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode webhook attempt: %w", ErrInvalid, err)
	}
	series := "0"
	if o.Series {
		series = "1"
	}
	out := "retry"
	switch {
	case o.Success:
		out = "ok"
	case o.Gone:
		out = "gone"
	case o.Final:
		out = "final"
	}
	now := ms(a.Timestamp)
	return []string{s.kWebhookMessage(a.MessageID), s.kWebhookEndpoint(a.EndpointID), s.kWebhookAttempts(a.EndpointID), s.kWebhookVersion()},
		[]any{"d:" + a.EndpointID, b, series, out, now, now - o.Retention.Milliseconds(), o.DisableAfter.Milliseconds(), o.GoneReason, o.StaleReason}, nil
}

// recordResult reads the record script's reply.
func recordResult(a *WebhookAttempt, cmd *redis.Cmd) (id, disabled string, err error) {
	v, err := cmd.StringSlice()
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("%d values in the reply, want 2", len(v))
	}
	if err != nil {
		return "", "", fmt.Errorf("record webhook attempt of %s to %s: %w", a.MessageID, a.EndpointID, err)
	}
	return v[0], v[1], nil
}

// appendAttempt appends a as json.Marshal writes it (FuzzAppendAttempt
// holds it to that), without reflection: an attempt is encoded once per
// delivery.
func appendAttempt(b []byte, a *WebhookAttempt) ([]byte, error) {
	if !jsonTime(a.Timestamp) || a.NextAttemptAt != nil && !jsonTime(*a.NextAttemptAt) {
		return json.Marshal(a) // its error: a year time.Time cannot encode
	}
	b = jsontext.AppendString(append(b, `{"id":`...), a.ID)
	b = jsontext.AppendString(append(b, `,"msgId":`...), a.MessageID)
	b = jsontext.AppendString(append(b, `,"endpointId":`...), a.EndpointID)
	b = jsontext.AppendString(append(b, `,"url":`...), a.URL)
	b = append(a.Timestamp.AppendFormat(append(b, `,"timestamp":"`...), time.RFC3339Nano), '"')
	b = jsontext.AppendString(append(b, `,"trigger":`...), a.Trigger)
	b = strconv.AppendInt(append(b, `,"attempt":`...), int64(a.Attempt), 10)
	b = jsontext.AppendString(append(b, `,"status":`...), a.Status)
	b = strconv.AppendInt(append(b, `,"responseStatusCode":`...), int64(a.ResponseStatusCode), 10)
	if a.Error != "" {
		b = jsontext.AppendString(append(b, `,"error":`...), a.Error)
	}
	b = strconv.AppendInt(append(b, `,"durationMs":`...), a.DurationMs, 10)
	if a.Response != "" {
		b = jsontext.AppendString(append(b, `,"response":`...), a.Response)
	}
	if a.NextAttemptAt != nil {
		b = append(a.NextAttemptAt.AppendFormat(append(b, `,"nextAttemptAt":"`...), time.RFC3339Nano), '"')
	}
	return append(b, '}'), nil
}

// jsonTime reports whether time.Time's MarshalJSON writes t (as
// AppendFormat with RFC3339Nano does) rather than fail: a year of four
// digits and a zone offset under a day.
func jsonTime(t time.Time) bool {
	_, off := t.Zone()
	return t.Year() >= 0 && t.Year() <= 9999 && off > -24*3600 && off < 24*3600
}

// failScript ends a pending delivery as failed (its endpoint was disabled
// or deleted before its next attempt).
//
// KEYS: message
// ARGV: delivery field
var failScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], ARGV[1])
if st and string.sub(st, 1, 1) == 'p' then
  redis.call('HSET', KEYS[1], ARGV[1], 'f' .. string.sub(st, 2))
end
return 1
`)

// FailWebhookDelivery ends a pending delivery as failed, without an
// attempt: its endpoint is disabled. Recover sends it again.
func (s *Store) FailWebhookDelivery(ctx context.Context, msgID, epID string) error {
	if err := failScript.Run(ctx, s.rdb, []string{s.kWebhookMessage(msgID)}, "d:"+epID).Err(); err != nil {
		return fmt.Errorf("end delivery of %s to %s: %w", msgID, epID, err)
	}
	return nil
}

func decodeAttempts(msgs []redis.XMessage) ([]WebhookAttempt, error) {
	out := make([]WebhookAttempt, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values["a"].(string)
		var a WebhookAttempt
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			return nil, fmt.Errorf("decode webhook attempt %s: %w", m.ID, err)
		}
		a.ID = m.ID
		out = append(out, a)
	}
	return out, nil
}

// WebhookMessageAttempts returns every attempt of a message, to every
// endpoint still existing, oldest first; ErrNotFound for an unknown or
// expired message.
func (s *Store) WebhookMessageAttempts(ctx context.Context, msgID string) ([]WebhookAttempt, error) {
	m, err := s.GetWebhookMessage(ctx, msgID)
	if err != nil {
		return nil, err
	}
	p := s.rdb.Pipeline()
	var cmds []*redis.XMessageSliceCmd
	for _, d := range m.Deliveries {
		for _, id := range d.attemptIDs {
			cmds = append(cmds, p.XRange(ctx, s.kWebhookAttempts(d.EndpointID), id, id))
		}
	}
	out := []WebhookAttempt{}
	if len(cmds) == 0 {
		return out, nil
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read attempts of %s: %w", msgID, err)
	}
	for _, c := range cmds {
		as, err := decodeAttempts(c.Val())
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	slices.SortFunc(out, func(a, b WebhookAttempt) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// WebhookAttemptPage is a page of an endpoint's attempts, newest first.
type WebhookAttemptPage struct {
	Attempts []WebhookAttempt `json:"attempts"`
	Next     string           `json:"nextCursor"`
}

// WebhookEndpointAttempts lists an endpoint's attempts, newest first, limit
// at a time before cursor (a Next of a previous page).
func (s *Store) WebhookEndpointAttempts(ctx context.Context, epID, cursor string, limit int) (WebhookAttemptPage, error) {
	if _, err := s.WebhookEndpoint(ctx, epID); err != nil {
		return WebhookAttemptPage{}, err
	}
	if limit <= 0 || limit > MaxWebhookPage {
		limit = MaxWebhookPage
	}
	end := "+"
	if cursor != "" {
		var a, b uint64
		if n, _ := fmt.Sscanf(cursor, "%d-%d", &a, &b); n != 2 || fmt.Sprintf("%d-%d", a, b) != cursor {
			return WebhookAttemptPage{}, fmt.Errorf("%w: cursor %.100q is not one this listing returned (start again without a cursor)", ErrInvalid, cursor)
		}
		end = "(" + cursor
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.kWebhookAttempts(epID), end, "-", int64(limit)).Result()
	if err != nil {
		return WebhookAttemptPage{}, fmt.Errorf("read attempts of %s: %w", epID, err)
	}
	as, err := decodeAttempts(msgs)
	if err != nil {
		return WebhookAttemptPage{}, err
	}
	page := WebhookAttemptPage{Attempts: as}
	if len(as) == limit {
		page.Next = as[len(as)-1].ID
	}
	return page, nil
}
