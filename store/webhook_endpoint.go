package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/termtext"
)

// Webhook endpoints: where the webhook deliverer POSTs change events. One
// hash per endpoint (secrets sealed with the credential cipher, the
// endpoint ID as additional data), a sorted set of them by creation, and a
// version counter every change of an endpoint increments, so a dispatcher
// reloads them only when it moved.

// WebhookEndpointIDPrefix prefixes endpoint IDs.
const WebhookEndpointIDPrefix = "ep_"

// Bounds of an endpoint.
const (
	MaxWebhookEndpoints   = 100
	MaxWebhookURLLen      = 2048
	MaxWebhookDescription = 500
	MaxWebhookCompanies   = 1000
)

// WebhookEndpoint is a subscriber of change events, as the API shows it
// (its secrets are read apart, with WebhookSecrets).
type WebhookEndpoint struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Description string `json:"description"`
	// FilterTypes are the event types it receives; empty: all.
	FilterTypes []string `json:"filterTypes"`
	// CompanyIDs are the companies whose connections' events it receives;
	// empty: all.
	CompanyIDs []string `json:"companyIds"`
	// Disabled endpoints receive nothing; DisabledReason says why (an
	// operator, a 410 Gone, attempts failing for too long).
	Disabled       bool       `json:"disabled"`
	DisabledReason string     `json:"disabledReason,omitempty"`
	DisabledAt     *time.Time `json:"disabledAt,omitempty"`
	// FailingSince is when the current run of failed attempts began (nil
	// after a success).
	FailingSince *time.Time `json:"failingSince,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

// Receives reports whether the endpoint subscribes to events of type typ
// of a connection of company companyID (disabled or not).
func (e *WebhookEndpoint) Receives(typ, companyID string) bool {
	return (len(e.FilterTypes) == 0 || slices.Contains(e.FilterTypes, typ)) &&
		(len(e.CompanyIDs) == 0 || slices.Contains(e.CompanyIDs, companyID))
}

// WebhookSecrets are the keys an endpoint's messages are signed with: the
// current one, and during a rotation's grace period the previous one.
type WebhookSecrets struct {
	Current       string
	Previous      string
	PreviousUntil time.Time
}

// At returns the secrets that sign at t: the current one, and the previous
// one while its grace lasts.
func (s WebhookSecrets) At(t time.Time) []string {
	if s.Previous != "" && t.Before(s.PreviousUntil) {
		return []string{s.Current, s.Previous}
	}
	return []string{s.Current}
}

// NewWebhookEndpoint is the input of CreateWebhookEndpoint.
type NewWebhookEndpoint struct {
	URL         string
	Description string
	FilterTypes []string
	CompanyIDs  []string
	Disabled    bool
	// Secret is the endpoint's signing secret (the webhook package makes it).
	Secret string
}

// WebhookEndpointPatch changes an endpoint; nil fields are left alone.
// Enabling an endpoint clears its disabled reason and its run of failures.
type WebhookEndpointPatch struct {
	URL         *string
	Description *string
	FilterTypes *[]string
	CompanyIDs  *[]string
	Disabled    *bool
}

// ValidateWebhookURL reports (wrapping ErrInvalid) what the store refuses
// in an endpoint URL: it must be an absolute http(s) URL, without user
// information, fragment, spaces or control characters. Which hosts may be
// reached is the webhook package's policy.
func ValidateWebhookURL(u string) error {
	pu, err := url.Parse(u)
	msg := ""
	switch {
	case len(u) > MaxWebhookURLLen:
		msg = fmt.Sprintf("url is at most %d bytes", MaxWebhookURLLen)
	case err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.Opaque != "":
		msg = fmt.Sprintf("url %.100q is not an absolute http(s) URL such as https://example.com/webhooks", u)
	case pu.User != nil:
		msg = "url must not carry a user or password: authenticate the messages with their signature"
	case pu.Fragment != "" || strings.ContainsFunc(u, termtext.Unsafe) || strings.ContainsAny(u, " \t"):
		msg = "url must not have a fragment, spaces or control characters"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}

// webhookEndpointProblems lists what is wrong with an endpoint's fields
// (the URL's form only: which hosts may be reached is the caller's policy).
func (s *Store) webhookEndpointProblems(ctx context.Context, u, desc *string, types, cos *[]string) ([]string, error) {
	var p []string
	if u != nil {
		if err := ValidateWebhookURL(*u); err != nil {
			p = append(p, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		}
	}
	if desc != nil {
		if len(*desc) > MaxWebhookDescription || strings.ContainsFunc(*desc, termtext.Unsafe) {
			p = append(p, fmt.Sprintf("description is at most %d bytes, without control characters", MaxWebhookDescription))
		}
	}
	if types != nil {
		for _, t := range *types {
			if !slices.Contains(EventTypes, t) {
				p = append(p, fmt.Sprintf("filterTypes has unknown event type %.100q; the types are %s", t, strings.Join(EventTypes, ", ")))
				break
			}
		}
	}
	if cos != nil {
		if len(*cos) > MaxWebhookCompanies {
			p = append(p, fmt.Sprintf("companyIds has at most %d companies", MaxWebhookCompanies))
		} else {
			for _, co := range *cos {
				if _, err := s.GetCompany(ctx, co); errors.Is(err, ErrNotFound) {
					p = append(p, fmt.Sprintf("companyIds: company %.100q does not exist (list companies with GET /v1/company)", co))
					break
				} else if err != nil {
					return nil, err
				}
			}
		}
	}
	return p, nil
}

// uniq sorts and deduplicates a list (nil when empty), so an endpoint's
// filters read the same however they were given.
// uniq is l sorted without repeats; never nil (an endpoint's lists are
// JSON arrays, [] for all).
func uniq(l []string) []string {
	out := slices.Clone(l)
	if out == nil {
		return []string{}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CreateWebhookEndpoint stores a new endpoint. It refuses (ErrInvalid) bad
// fields, and more than MaxWebhookEndpoints endpoints (ErrNotAllowed).
func (s *Store) CreateWebhookEndpoint(ctx context.Context, in NewWebhookEndpoint) (WebhookEndpoint, error) {
	p, err := s.webhookEndpointProblems(ctx, &in.URL, &in.Description, &in.FilterTypes, &in.CompanyIDs)
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("create webhook endpoint: %w", err)
	}
	if in.Secret == "" {
		p = append(p, "a signing secret is required")
	}
	if len(p) > 0 {
		return WebhookEndpoint{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
	}
	n, err := s.rdb.ZCard(ctx, s.kWebhookEndpoints()).Result()
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("count webhook endpoints: %w", err)
	}
	if n >= MaxWebhookEndpoints {
		return WebhookEndpoint{}, fmt.Errorf("%w: there are %d webhook endpoints already, the most checkd keeps; delete one first", ErrNotAllowed, n)
	}
	now := s.cfg.Clock.Now().UTC().Truncate(time.Millisecond)
	e := WebhookEndpoint{ID: newID(WebhookEndpointIDPrefix), URL: in.URL, Description: in.Description,
		FilterTypes: uniq(in.FilterTypes), CompanyIDs: uniq(in.CompanyIDs), CreatedAt: now, UpdatedAt: now}
	sealed, err := s.sealSecret(e.ID, in.Secret)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	fields := map[string]any{"u": e.URL, "d": e.Description, "ft": jsonList(e.FilterTypes), "co": jsonList(e.CompanyIDs),
		"s": sealed, "ca": ms(now), "ua": ms(now)}
	if in.Disabled {
		e.Disabled, e.DisabledReason, e.DisabledAt = true, "disabled when created", &now
		fields["x"], fields["xa"] = e.DisabledReason, ms(now)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.kWebhookEndpoint(e.ID), fields)
		p.ZAdd(ctx, s.kWebhookEndpoints(), redis.Z{Score: float64(ms(now)), Member: e.ID})
		p.Incr(ctx, s.kWebhookVersion())
		return nil
	})
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("create webhook endpoint: %w", err)
	}
	return e, nil
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func (s *Store) sealSecret(id, secret string) (string, error) {
	ct, err := s.cfg.Cipher.Seal([]byte(secret), []byte(id))
	if err != nil {
		return "", fmt.Errorf("encrypt the secret of webhook endpoint %s: %w", id, err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

func (s *Store) openSecret(id, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	ct, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("secret of webhook endpoint %s: %w", id, err)
	}
	pt, err := s.cfg.Cipher.Open(ct, []byte(id))
	if err != nil {
		return "", fmt.Errorf("secret of webhook endpoint %s: %w", id, err)
	}
	return string(pt), nil
}

// webhookEndpointFields are the hash fields an endpoint is read from.
var webhookEndpointFields = []string{"u", "d", "ft", "co", "x", "xa", "ff", "ca", "ua"}

// webhookTargetFields are the fields an attempt reads of its endpoint:
// webhookEndpointFields, then its secrets' (decodeSecrets).
var webhookTargetFields = append(slices.Clip(webhookEndpointFields), "s", "ps", "pu")

// endpointDecodes keeps, per endpoint, the endpoint and secrets decoded
// from the values of webhookTargetFields last read, for the attempts that
// read the same values again (most: an endpoint changes seldom), which
// then skip the decoding and the secrets' decryption. The values are read
// at every attempt, so a change is never missed.
type endpointDecodes struct {
	mu sync.Mutex
	m  map[string]*decodedEndpoint
}

// decodedEndpoint is an endpoint and its secrets, and the hash values
// they were decoded from. Never changed once made.
type decodedEndpoint struct {
	raw []string
	e   WebhookEndpoint
	sec WebhookSecrets
}

// decode returns the endpoint and secrets of endpoint id's values v (of
// webhookTargetFields), nil when it does not exist.
func (c *endpointDecodes) decode(s *Store, id string, v []any) (*decodedEndpoint, error) {
	c.mu.Lock()
	d := c.m[id]
	c.mu.Unlock()
	if d != nil && sameValues(d.raw, v) {
		return d, nil
	}
	n := len(webhookEndpointFields)
	e, ok, err := decodeWebhookEndpoint(id, v[:n])
	if err != nil {
		return nil, err
	}
	if !ok {
		c.mu.Lock()
		delete(c.m, id)
		c.mu.Unlock()
		return nil, nil
	}
	sec, err := s.decodeSecrets(id, v[n:])
	if err != nil {
		return nil, err
	}
	d = &decodedEndpoint{raw: make([]string, len(v)), e: e, sec: sec}
	for i := range v {
		d.raw[i], _ = v[i].(string)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= 2*MaxWebhookEndpoints { // deleted endpoints' entries: start again
		c.m = map[string]*decodedEndpoint{}
	}
	c.m[id] = d
	c.mu.Unlock()
	return d, nil
}

// sameValues reports whether HMGET values v (strings, nil for a missing
// field) are raw (a missing field as "").
func sameValues(raw []string, v []any) bool {
	if len(raw) != len(v) {
		return false
	}
	for i := range v {
		if s, _ := v[i].(string); s != raw[i] {
			return false
		}
	}
	return true
}

// decodeWebhookEndpoint reads the values of webhookEndpointFields; ok is
// false when the endpoint does not exist.
func decodeWebhookEndpoint(id string, v []any) (e WebhookEndpoint, ok bool, err error) {
	str := func(i int) string { s, _ := v[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	if str(7) == "" {
		return e, false, nil
	}
	e = WebhookEndpoint{ID: id, URL: str(0), Description: str(1), DisabledReason: str(4), Disabled: str(4) != "",
		DisabledAt: optMS(num(5)), FailingSince: optMS(num(6)), CreatedAt: fromMS(num(7)), UpdatedAt: fromMS(num(8))}
	for i, dst := range map[int]*[]string{2: &e.FilterTypes, 3: &e.CompanyIDs} {
		if raw := str(i); raw != "" {
			if err := json.Unmarshal([]byte(raw), dst); err != nil {
				return e, true, fmt.Errorf("webhook endpoint %s: %w", id, err)
			}
		}
	}
	if e.FilterTypes == nil {
		e.FilterTypes = []string{}
	}
	if e.CompanyIDs == nil {
		e.CompanyIDs = []string{}
	}
	return e, true, nil
}

// WebhookEndpoint returns an endpoint, or ErrNotFound.
func (s *Store) WebhookEndpoint(ctx context.Context, id string) (WebhookEndpoint, error) {
	es, err := s.webhookEndpoints(ctx, []string{id})
	if err != nil {
		return WebhookEndpoint{}, err
	}
	if len(es) == 0 {
		return WebhookEndpoint{}, fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	return es[0], nil
}

// webhookEndpoints reads endpoints in one round trip, leaving out missing
// ones.
func (s *Store) webhookEndpoints(ctx context.Context, ids []string) ([]WebhookEndpoint, error) {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !ValidID(WebhookEndpointIDPrefix, id) })
	if len(ids) == 0 {
		return nil, nil
	}
	p := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = p.HMGet(ctx, s.kWebhookEndpoint(id), webhookEndpointFields...)
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read webhook endpoints: %w", err)
	}
	out := make([]WebhookEndpoint, 0, len(ids))
	for i, c := range cmds {
		e, ok, err := decodeWebhookEndpoint(ids[i], c.Val())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// WebhookSecrets returns an endpoint's signing secrets.
func (s *Store) WebhookSecrets(ctx context.Context, id string) (WebhookSecrets, error) {
	if !ValidID(WebhookEndpointIDPrefix, id) {
		return WebhookSecrets{}, fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	v, err := s.rdb.HMGet(ctx, s.kWebhookEndpoint(id), "s", "ps", "pu").Result()
	if err != nil {
		return WebhookSecrets{}, fmt.Errorf("read webhook endpoint %s: %w", id, err)
	}
	return s.decodeSecrets(id, v)
}

func (s *Store) decodeSecrets(id string, v []any) (WebhookSecrets, error) {
	str := func(i int) string { s, _ := v[i].(string); return s }
	if str(0) == "" {
		return WebhookSecrets{}, fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	var out WebhookSecrets
	var err error
	if out.Current, err = s.openSecret(id, str(0)); err != nil {
		return out, err
	}
	if out.Previous, err = s.openSecret(id, str(1)); err != nil {
		return out, err
	}
	until, _ := strconv.ParseInt(str(2), 10, 64)
	out.PreviousUntil = fromMS(until)
	return out, nil
}

// WebhookEndpointPage is a page of endpoints, oldest first; Next is the
// cursor of the next page, empty on the last.
type WebhookEndpointPage struct {
	Endpoints []WebhookEndpoint `json:"endpoints"`
	Next      string            `json:"nextCursor"`
}

// ListWebhookEndpoints lists endpoints by creation, limit at a time after
// cursor (a Next of a previous page).
func (s *Store) ListWebhookEndpoints(ctx context.Context, cursor string, limit int) (WebhookEndpointPage, error) {
	if limit <= 0 || limit > MaxWebhookEndpoints {
		limit = MaxWebhookEndpoints
	}
	start := int64(0)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 {
			return WebhookEndpointPage{}, fmt.Errorf("%w: cursor %.50q is not one this listing returned (start again without a cursor)", ErrInvalid, cursor)
		}
		start = n
	}
	// A few endpoints at most: an offset cursor is exact enough (an
	// endpoint deleted meanwhile shifts the next page by one).
	ids, err := s.rdb.ZRange(ctx, s.kWebhookEndpoints(), start, start+int64(limit)).Result()
	if err != nil {
		return WebhookEndpointPage{}, fmt.Errorf("list webhook endpoints: %w", err)
	}
	page := WebhookEndpointPage{Endpoints: []WebhookEndpoint{}}
	if len(ids) > limit {
		ids, page.Next = ids[:limit], strconv.FormatInt(start+int64(limit), 10)
	}
	es, err := s.webhookEndpoints(ctx, ids)
	if err != nil {
		return WebhookEndpointPage{}, err
	}
	page.Endpoints = append(page.Endpoints, es...)
	return page, nil
}

// WebhookEndpointsVersion is the endpoints' version: it moves with every
// change of any endpoint.
func (s *Store) WebhookEndpointsVersion(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.kWebhookVersion()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("read webhook endpoints version: %w", err)
	}
	return v, nil
}

// AllWebhookEndpoints returns every endpoint and the version they were read
// at (read before them, so a change during the read moves it again).
func (s *Store) AllWebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, int64, error) {
	v, err := s.WebhookEndpointsVersion(ctx)
	if err != nil {
		return nil, 0, err
	}
	ids, err := s.rdb.ZRange(ctx, s.kWebhookEndpoints(), 0, -1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("list webhook endpoints: %w", err)
	}
	es, err := s.webhookEndpoints(ctx, ids)
	return es, v, err
}

// UpdateWebhookEndpoint applies a patch. Enabling a disabled endpoint
// clears its reason and its run of failures; disabling one records
// "disabled by an operator".
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, id string, p WebhookEndpointPatch) (WebhookEndpoint, error) {
	if p.URL == nil && p.Description == nil && p.FilterTypes == nil && p.CompanyIDs == nil && p.Disabled == nil {
		return WebhookEndpoint{}, fmt.Errorf("%w: nothing to update: give url, description, filterTypes, companyIds or disabled", ErrInvalid)
	}
	problems, err := s.webhookEndpointProblems(ctx, p.URL, p.Description, p.FilterTypes, p.CompanyIDs)
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("update webhook endpoint %s: %w", id, err)
	}
	if len(problems) > 0 {
		return WebhookEndpoint{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	e, err := s.WebhookEndpoint(ctx, id)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	now := s.cfg.Clock.Now().UTC().Truncate(time.Millisecond)
	set := map[string]any{"ua": ms(now)}
	var del []string
	if p.URL != nil {
		e.URL, set["u"] = *p.URL, *p.URL
	}
	if p.Description != nil {
		e.Description, set["d"] = *p.Description, *p.Description
	}
	if p.FilterTypes != nil {
		e.FilterTypes = uniq(*p.FilterTypes)
		set["ft"] = jsonList(e.FilterTypes)
	}
	if p.CompanyIDs != nil {
		e.CompanyIDs = uniq(*p.CompanyIDs)
		set["co"] = jsonList(e.CompanyIDs)
	}
	switch {
	case p.Disabled == nil || *p.Disabled == e.Disabled:
	case *p.Disabled:
		e.Disabled, e.DisabledReason, e.DisabledAt = true, "disabled by an operator", &now
		set["x"], set["xa"] = e.DisabledReason, ms(now)
	default:
		e.Disabled, e.DisabledReason, e.DisabledAt, e.FailingSince = false, "", nil, nil
		del = append(del, "x", "xa", "ff")
	}
	e.UpdatedAt = now
	var exists *redis.IntCmd
	_, err = s.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		exists = pl.Exists(ctx, s.kWebhookEndpoint(id))
		pl.HSet(ctx, s.kWebhookEndpoint(id), set)
		if len(del) > 0 {
			pl.HDel(ctx, s.kWebhookEndpoint(id), del...)
		}
		pl.Incr(ctx, s.kWebhookVersion())
		return nil
	})
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("update webhook endpoint %s: %w", id, err)
	}
	if exists.Val() == 0 { // deleted meanwhile: do not leave a stub
		s.rdb.Del(ctx, s.kWebhookEndpoint(id))
		return WebhookEndpoint{}, fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	if e.FilterTypes == nil {
		e.FilterTypes = []string{}
	}
	if e.CompanyIDs == nil {
		e.CompanyIDs = []string{}
	}
	return e, nil
}

// DeleteWebhookEndpoint deletes an endpoint and its attempt log. Its
// deliveries in flight end when they find it gone; its messages stay.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	if !ValidID(WebhookEndpointIDPrefix, id) {
		return fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	var n *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.Del(ctx, s.kWebhookEndpoint(id))
		p.Del(ctx, s.kWebhookAttempts(id))
		p.ZRem(ctx, s.kWebhookEndpoints(), id)
		p.Incr(ctx, s.kWebhookVersion())
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, err)
	}
	if n.Val() == 0 {
		return fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	return nil
}

// rotateScript replaces an endpoint's secret, keeping the old one as the
// previous secret until ARGV[3].
//
// KEYS: endpoint, version
// ARGV: new sealed secret, updatedAt (ms), previous valid until (ms)
var rotateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 's')
if not cur then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'ps', cur, 'pu', ARGV[3], 'ua', ARGV[2])
redis.call('INCR', KEYS[2])
return 1
`)

// RotateWebhookSecret makes secret the endpoint's signing secret; the old
// one keeps signing too (a second signature) until graceUntil.
func (s *Store) RotateWebhookSecret(ctx context.Context, id, secret string, graceUntil time.Time) error {
	if !ValidID(WebhookEndpointIDPrefix, id) {
		return fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	sealed, err := s.sealSecret(id, secret)
	if err != nil {
		return err
	}
	now := s.cfg.Clock.Now()
	n, err := rotateScript.Run(ctx, s.rdb, []string{s.kWebhookEndpoint(id), s.kWebhookVersion()},
		sealed, ms(now), ms(graceUntil)).Int()
	if err != nil {
		return fmt.Errorf("rotate the secret of webhook endpoint %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("webhook endpoint %q: %w", id, ErrNotFound)
	}
	return nil
}
