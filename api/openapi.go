package api

import (
	"bytes"
	_ "embed" // the OpenAPI document
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of this API: every route
// of Routes, its parameters, bodies, answers and errors, and the webhook
// events. Tests hold it to the code (internal/testing/openapitest).
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document (JSON) that GET /v1/openapi.json
// serves: generate a client from it, or validate against it.
func OpenAPI() []byte { return bytes.Clone(openAPIDocument) }

// openAPI serves the document. It needs no key (it holds no data) and may
// be read from any origin, so a documentation viewer elsewhere can load it.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(openAPIDocument)
}
