package openapitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Webhook checks one webhook message (its headers and body) against the
// document's webhooks section for eventType; a mismatch fails tb.
func Webhook(tb testing.TB, eventType string, header http.Header, body []byte) {
	if err := apiValidator(tb).checkWebhook(eventType, header, body); err != nil {
		report(tb, err)
	}
}

// checkWebhook checks a webhook message as the request of the document's
// webhooks.<eventType>.post operation.
func (v *validator) checkWebhook(eventType string, header http.Header, body []byte) error {
	item := v.doc.Webhooks[eventType]
	if item == nil || item.Post == nil {
		return fmt.Errorf("openapitest: webhook %s: %s has no webhooks.%q.post: describe the event there", eventType, DocumentPath, eventType)
	}
	req, err := http.NewRequest(http.MethodPost, "/", io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return err
	}
	req.Header = header.Clone()
	route := &routers.Route{Spec: v.doc, Path: eventType, PathItem: item, Method: http.MethodPost, Operation: item.Post}
	opts := &openapi3filter.Options{AuthenticationFunc: authenticate, SkipSettingDefaults: true, MultiError: true}
	opts.WithCustomSchemaErrorFunc(schemaError)
	in := &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("openapitest: webhook %s does not match %s's webhooks.%q (fix the document or the payload): %v\nbody: %.2000s",
			eventType, DocumentPath, eventType, err, body)
	}
	return nil
}
