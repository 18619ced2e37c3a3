package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

// WebhookEndpointRequest is the body of POST /v1/webhooks/endpoints (url
// required) and of PATCH /v1/webhooks/endpoints/{endpointId} (any field,
// at least one). Empty filterTypes or companyIds mean all.
type WebhookEndpointRequest struct {
	URL         *string   `json:"url,omitempty"`
	Description *string   `json:"description,omitempty"`
	FilterTypes *[]string `json:"filterTypes,omitempty"`
	CompanyIDs  *[]string `json:"companyIds,omitempty"`
	Disabled    *bool     `json:"disabled,omitempty"`
}

// WebhookEndpointCreated is the answer of POST /v1/webhooks/endpoints: the
// endpoint and its signing secret.
type WebhookEndpointCreated struct {
	store.WebhookEndpoint
	Secret string `json:"secret"`
}

// WebhookSecret is the answer of the secret routes.
type WebhookSecret struct {
	Secret string `json:"secret"`
	// PreviousValidUntil, after a rotation, is when the previous secret
	// stops signing.
	PreviousValidUntil *time.Time `json:"previousValidUntil,omitempty"`
}

// WebhookTestRequest is the body of POST
// /v1/webhooks/endpoints/{endpointId}/test.
type WebhookTestRequest struct {
	EventType string `json:"eventType"`
}

// WebhookRecoverRequest is the body of POST
// /v1/webhooks/endpoints/{endpointId}/recover: RFC 3339 times; until
// defaults to now.
type WebhookRecoverRequest struct {
	Since string `json:"since"`
	Until string `json:"until,omitempty"`
}

// WebhookAccepted answers a route that enqueued deliveries.
type WebhookAccepted struct {
	MessageID  string     `json:"msgId,omitempty"`
	EndpointID string     `json:"endpointId"`
	Since      *time.Time `json:"since,omitempty"`
	Until      *time.Time `json:"until,omitempty"`
	Enqueued   bool       `json:"enqueued"`
}

// WebhookAttempts is the answer of GET /v1/webhooks/messages/{msgId}/attempts.
type WebhookAttempts struct {
	Attempts []store.WebhookAttempt `json:"attempts"`
}

// WebhookEventTypes is the answer of GET /v1/webhooks/event-types.
type WebhookEventTypes struct {
	EventTypes []webhook.EventType `json:"eventTypes"`
}

// DefaultWebhookPage is the page size of the webhook listings without ?limit.
const DefaultWebhookPage = 50

func (s *Server) webhookRoutes(api func(string, Scope, http.HandlerFunc)) {
	api("POST /v1/webhooks/endpoints", ScopeWebhooks, s.webhooks(s.createEndpoint))
	api("GET /v1/webhooks/endpoints", ScopeWebhooks, s.webhooks(s.listEndpoints))
	api("GET /v1/webhooks/endpoints/{endpointId}", ScopeWebhooks, s.webhooks(s.getEndpoint))
	api("PATCH /v1/webhooks/endpoints/{endpointId}", ScopeWebhooks, s.webhooks(s.patchEndpoint))
	api("DELETE /v1/webhooks/endpoints/{endpointId}", ScopeWebhooks, s.webhooks(s.deleteEndpoint))
	api("GET /v1/webhooks/endpoints/{endpointId}/secret", ScopeWebhooks, s.webhooks(s.endpointSecret))
	api("POST /v1/webhooks/endpoints/{endpointId}/secret/rotate", ScopeWebhooks, s.webhooks(s.rotateSecret))
	api("POST /v1/webhooks/endpoints/{endpointId}/test", ScopeWebhooks, s.webhooks(s.testEndpoint))
	api("POST /v1/webhooks/endpoints/{endpointId}/recover", ScopeWebhooks, s.webhooks(s.recoverEndpoint))
	api("GET /v1/webhooks/endpoints/{endpointId}/attempts", ScopeWebhooks, s.webhooks(s.endpointAttempts))
	api("GET /v1/webhooks/event-types", ScopeWebhooks, s.webhooks(s.eventTypes))
	api("GET /v1/webhooks/messages", ScopeWebhooks, s.webhooks(s.listMessages))
	api("GET /v1/webhooks/messages/{msgId}", ScopeWebhooks, s.webhooks(s.getMessage))
	api("GET /v1/webhooks/messages/{msgId}/attempts", ScopeWebhooks, s.webhooks(s.messageAttempts))
	api("POST /v1/webhooks/messages/{msgId}/endpoints/{endpointId}/resend", ScopeWebhooks, s.webhooks(s.resend))
}

// webhooks answers 503 when the API has no webhook operations configured.
func (s *Server) webhooks(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Webhooks == nil {
			writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "webhooks are not configured in this API process")
			return
		}
		h(w, r)
	}
}

func endpointNotFound(id string) string {
	return fmt.Sprintf("webhook endpoint %.100q not found: list them with GET /v1/webhooks/endpoints", id)
}

func messageNotFound(id string) string {
	return fmt.Sprintf("webhook message %.100q not found (messages are kept for webhooks.retention): list them with GET /v1/webhooks/messages", id)
}

// webhookError answers an error of the webhook operations: a refused URL
// is 400, a disabled endpoint 409, the rest as storeError.
func (s *Server) webhookError(w http.ResponseWriter, r *http.Request, err error, notFound string) {
	switch {
	case errors.Is(err, webhook.ErrURLRefused):
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
	case errors.Is(err, webhook.ErrDisabled):
		writeError(w, http.StatusConflict, CodeNotAllowed, err.Error())
	default:
		s.storeError(w, r, err, notFound)
	}
}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var in WebhookEndpointRequest
	if !s.decode(w, r, &in) {
		return
	}
	if in.URL == nil || strings.TrimSpace(*in.URL) == "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, `url is required: send {"url": "https://example.com/webhooks"}`)
		return
	}
	ne := store.NewWebhookEndpoint{URL: *in.URL}
	if in.Description != nil {
		ne.Description = *in.Description
	}
	if in.FilterTypes != nil {
		ne.FilterTypes = *in.FilterTypes
	}
	if in.CompanyIDs != nil {
		ne.CompanyIDs = *in.CompanyIDs
	}
	if in.Disabled != nil {
		ne.Disabled = *in.Disabled
	}
	e, secret, err := s.cfg.Webhooks.CreateEndpoint(r.Context(), ne)
	if err != nil {
		s.webhookError(w, r, err, "")
		return
	}
	w.Header().Set("Location", "/v1/webhooks/endpoints/"+e.ID)
	writeJSON(w, http.StatusCreated, WebhookEndpointCreated{WebhookEndpoint: e, Secret: secret})
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	limit, ok := parseLimit(w, r.URL.Query().Get("limit"), DefaultWebhookPage, store.MaxWebhookEndpoints)
	if !ok {
		return
	}
	page, err := s.st.ListWebhookEndpoints(r.Context(), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.storeError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	e, err := s.st.WebhookEndpoint(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, endpointNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) patchEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	var in WebhookEndpointRequest
	if !s.decode(w, r, &in) {
		return
	}
	e, err := s.cfg.Webhooks.UpdateEndpoint(r.Context(), id, store.WebhookEndpointPatch{URL: in.URL, Description: in.Description,
		FilterTypes: in.FilterTypes, CompanyIDs: in.CompanyIDs, Disabled: in.Disabled})
	if err != nil {
		s.webhookError(w, r, err, endpointNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	if err := s.st.DeleteWebhookEndpoint(r.Context(), id); err != nil {
		s.storeError(w, r, err, endpointNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
}

func (s *Server) endpointSecret(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	sec, err := s.st.WebhookSecrets(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, endpointNotFound(id))
		return
	}
	out := WebhookSecret{Secret: sec.Current}
	if sec.Previous != "" && s.cfg.Clock.Now().Before(sec.PreviousUntil) {
		out.PreviousValidUntil = &sec.PreviousUntil
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	secret, err := s.cfg.Webhooks.RotateSecret(r.Context(), id)
	if err != nil {
		s.webhookError(w, r, err, endpointNotFound(id))
		return
	}
	sec, err := s.st.WebhookSecrets(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, endpointNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, WebhookSecret{Secret: secret, PreviousValidUntil: &sec.PreviousUntil})
}

func (s *Server) testEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	var in WebhookTestRequest
	if !s.decode(w, r, &in) {
		return
	}
	if !isEventType(in.EventType) {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("eventType %.100q is not one of %s",
			in.EventType, strings.Join(store.EventTypes, ", ")))
		return
	}
	msgID, err := s.cfg.Webhooks.Test(r.Context(), id, in.EventType)
	if err != nil {
		s.webhookError(w, r, err, endpointNotFound(id))
		return
	}
	writeJSON(w, http.StatusAccepted, WebhookAccepted{MessageID: msgID, EndpointID: id, Enqueued: true})
}

func isEventType(t string) bool {
	for _, e := range store.EventTypes {
		if t == e {
			return true
		}
	}
	return false
}

// parseTime reads an RFC 3339 time of a request body.
func parseTime(w http.ResponseWriter, name, v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("%s %.100q is not an RFC 3339 time such as 2026-03-02T09:00:00Z", name, v))
		return time.Time{}, false
	}
	return t, true
}

func (s *Server) recoverEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	var in WebhookRecoverRequest
	if !s.decode(w, r, &in) {
		return
	}
	if in.Since == "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, `since is required: send {"since": "2026-03-02T09:00:00Z"} (and optionally "until")`)
		return
	}
	since, ok := parseTime(w, "since", in.Since)
	if !ok {
		return
	}
	until := s.cfg.Clock.Now()
	if in.Until != "" {
		if until, ok = parseTime(w, "until", in.Until); !ok {
			return
		}
	}
	if until.Before(since) {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "until is before since: give a window that starts before it ends")
		return
	}
	if err := s.cfg.Webhooks.Recover(r.Context(), id, since, until); err != nil {
		s.webhookError(w, r, err, endpointNotFound(id))
		return
	}
	since, until = since.UTC(), until.UTC()
	writeJSON(w, http.StatusAccepted, WebhookAccepted{EndpointID: id, Since: &since, Until: &until, Enqueued: true})
}

func (s *Server) endpointAttempts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("endpointId")
	limit, ok := parseLimit(w, r.URL.Query().Get("limit"), DefaultWebhookPage, store.MaxWebhookPage)
	if !ok {
		return
	}
	page, err := s.st.WebhookEndpointAttempts(r.Context(), id, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.storeError(w, r, err, endpointNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) eventTypes(w http.ResponseWriter, r *http.Request) {
	ts, err := webhook.EventTypes()
	if err != nil {
		s.serverError(w, r, err, "api: render webhook examples")
		return
	}
	writeJSON(w, http.StatusOK, WebhookEventTypes{EventTypes: ts})
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := parseLimit(w, q.Get("limit"), DefaultWebhookPage, store.MaxWebhookPage)
	if !ok {
		return
	}
	page, err := s.st.ListWebhookMessages(r.Context(), store.WebhookMessageFilter{EventType: q.Get("eventType"),
		ConnectionID: q.Get("connectionId")}, q.Get("cursor"), limit)
	if err != nil {
		s.storeError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("msgId")
	m, err := s.st.GetWebhookMessage(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, messageNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) messageAttempts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("msgId")
	as, err := s.st.WebhookMessageAttempts(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, messageNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, WebhookAttempts{Attempts: as})
}

func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	msgID, epID := r.PathValue("msgId"), r.PathValue("endpointId")
	if err := s.cfg.Webhooks.Resend(r.Context(), msgID, epID); err != nil {
		notFound := messageNotFound(msgID)
		if _, e := s.st.GetWebhookMessage(r.Context(), msgID); e == nil {
			notFound = endpointNotFound(epID)
		}
		s.webhookError(w, r, err, notFound)
		return
	}
	writeJSON(w, http.StatusAccepted, WebhookAccepted{MessageID: msgID, EndpointID: epID, Enqueued: true})
}
