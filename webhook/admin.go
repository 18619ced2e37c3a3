package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// AdminConfig configures an Admin. Every field is required.
type AdminConfig struct {
	// Policy decides which endpoint URLs are accepted.
	Policy Policy
	// RotationGrace is how long a rotated-out secret keeps signing.
	RotationGrace time.Duration
	// Timeout is the deliverer's attempt timeout; Retention how long
	// messages are kept (a recovery reaches no further back).
	Timeout, Retention time.Duration
	Clock              clock.Clock
}

// Admin is what the API does with webhooks beyond reading the store:
// endpoints checked against the address policy and given secrets, example
// messages, resends and recoveries.
type Admin struct {
	st  *store.Store
	enq Enqueuer
	cfg AdminConfig
}

// NewAdmin returns the webhook operations of the API over st, enqueueing
// through enq.
func NewAdmin(st *store.Store, enq Enqueuer, cfg AdminConfig) (*Admin, error) {
	if st == nil || enq == nil {
		return nil, errors.New("webhook: admin needs a store and an enqueuer")
	}
	if cfg.RotationGrace <= 0 || cfg.Timeout <= 0 || cfg.Retention <= 0 || cfg.Clock == nil {
		return nil, errors.New("webhook: admin config: rotationGrace, timeout, retention and a clock are required")
	}
	return &Admin{st: st, enq: enq, cfg: cfg}, nil
}

// ErrDisabled reports an action that needs an enabled endpoint.
var ErrDisabled = errors.New("the webhook endpoint is disabled: enable it first (PATCH {\"disabled\": false})")

// CreateEndpoint checks the URL against the policy, makes a secret and
// stores the endpoint; it returns the endpoint and its secret.
func (a *Admin) CreateEndpoint(ctx context.Context, in store.NewWebhookEndpoint) (store.WebhookEndpoint, string, error) {
	if err := a.checkURL(ctx, in.URL); err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	secret, err := NewSecret()
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	in.Secret = secret
	e, err := a.st.CreateWebhookEndpoint(ctx, in)
	return e, secret, err
}

// UpdateEndpoint checks a new URL against the policy and applies the patch.
func (a *Admin) UpdateEndpoint(ctx context.Context, id string, p store.WebhookEndpointPatch) (store.WebhookEndpoint, error) {
	if p.URL != nil {
		if err := a.checkURL(ctx, *p.URL); err != nil {
			return store.WebhookEndpoint{}, err
		}
	}
	return a.st.UpdateWebhookEndpoint(ctx, id, p)
}

// checkURL checks a URL's form, then the address policy.
func (a *Admin) checkURL(ctx context.Context, u string) error {
	if err := store.ValidateWebhookURL(u); err != nil {
		return err
	}
	return a.cfg.Policy.Check(ctx, u)
}

// RotateSecret gives an endpoint a new secret and returns it; the old one
// keeps signing (a second signature) for RotationGrace.
func (a *Admin) RotateSecret(ctx context.Context, id string) (string, error) {
	secret, err := NewSecret()
	if err != nil {
		return "", err
	}
	if err := a.st.RotateWebhookSecret(ctx, id, secret, a.cfg.Clock.Now().Add(a.cfg.RotationGrace)); err != nil {
		return "", err
	}
	return secret, nil
}

// EventType describes one event type, with an example body.
type EventType struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Example     json.RawMessage `json:"example"`
}

var eventDescriptions = map[string]string{
	store.EventConnectionCreated: "A connection was created (through the API or a new-connection link).",
	store.EventConnectionUpdated: "A field GET /v1/connection/{connectionId}/details shows changed, other than timestamps alone: " +
		"data.protectedChanges names the fields and data.old holds their previous values.",
	store.EventConnectionValidated: "A check recorded a connection status different from the one before it (the first check, " +
		"entering or leaving an error); sent beside that write's connection.updated.v2.",
}

// EventTypes lists the event types with an example body each.
func EventTypes() ([]EventType, error) {
	out := make([]EventType, 0, len(store.EventTypes))
	for _, t := range store.EventTypes {
		b, err := Example(t)
		if err != nil {
			return nil, err
		}
		out = append(out, EventType{Name: t, Description: eventDescriptions[t], Example: b})
	}
	return out, nil
}

// Test sends an example message of type typ to an endpoint now, signed as
// any other (its ID starts msg_test_); it returns the message's ID. The
// message is kept, unlisted, for its attempts to be read.
func (a *Admin) Test(ctx context.Context, epID, typ string) (string, error) {
	e, err := a.st.WebhookEndpoint(ctx, epID)
	if err != nil {
		return "", err
	}
	if e.Disabled {
		return "", ErrDisabled
	}
	body, err := Example(typ)
	if err != nil {
		return "", fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	ex := ExampleEvent(typ)
	id := "msg_test_" + nonce()
	if err := a.st.SaveWebhookMessages(ctx, []store.NewWebhookMessage{{ID: id, Type: typ, ConnectionID: ex.ConnectionID,
		CompanyID: ex.CompanyID, Time: a.cfg.Clock.Now(), Body: body, Unlisted: true}}, a.cfg.Retention); err != nil {
		return "", err
	}
	return id, a.enqueue(ctx, id, epID, store.TriggerTest)
}

// Resend delivers a message to an endpoint once more, now, with the same
// webhook-id and body.
func (a *Admin) Resend(ctx context.Context, msgID, epID string) error {
	m, err := a.st.GetWebhookMessage(ctx, msgID)
	if err != nil {
		return err
	}
	e, err := a.st.WebhookEndpoint(ctx, epID)
	if err != nil {
		return err
	}
	if e.Disabled {
		return ErrDisabled
	}
	if m.DeliveryTo(epID).Status == "" && !e.Receives(m.EventType, m.CompanyID) {
		return fmt.Errorf("%w: endpoint %s does not subscribe to message %s (%s of company %s): change its filterTypes or companyIds first",
			store.ErrNotAllowed, epID, msgID, m.EventType, m.CompanyID)
	}
	return a.enqueue(ctx, msgID, epID, store.TriggerResend)
}

func (a *Admin) enqueue(ctx context.Context, msgID, epID, trigger string) error {
	task, err := tasks.NewWebhookDeliverTask(tasks.WebhookDeliverPayload{MessageID: msgID, EndpointID: epID, Trigger: trigger},
		nonce(), asynq.MaxRetry(deliverMaxRetry), asynq.Timeout(a.cfg.Timeout+taskTimeoutMargin))
	if err != nil {
		return err
	}
	if _, err := a.enq.EnqueueContext(ctx, task); err != nil {
		return fmt.Errorf("webhook: enqueue the %s of %s to %s: %w", trigger, msgID, epID, err)
	}
	return nil
}

// Recover sends again, in the background, every message of the window
// [since, until] (change times) that the endpoint receives and whose
// delivery to it failed or never happened (it was disabled): one attempt
// each, with the same webhook-id and body.
func (a *Admin) Recover(ctx context.Context, epID string, since, until time.Time) error {
	e, err := a.st.WebhookEndpoint(ctx, epID)
	if err != nil {
		return err
	}
	if e.Disabled {
		return ErrDisabled
	}
	if until.Before(since) {
		return fmt.Errorf("%w: until %s is before since %s", store.ErrInvalid, until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	task, err := tasks.NewWebhookRecoverTask(tasks.WebhookRecoverPayload{EndpointID: epID, Since: since.UnixMilli(), Until: until.UnixMilli()},
		asynq.TaskID("whr:"+epID+":"+nonce()))
	if err != nil {
		return err
	}
	if _, err := a.enq.EnqueueContext(ctx, task); err != nil {
		return fmt.Errorf("webhook: enqueue the recovery of %s: %w", epID, err)
	}
	return nil
}
