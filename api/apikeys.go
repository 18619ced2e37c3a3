package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/store"
)

// CreateAPIKeyRequest is the body of POST /v1/keys.
type CreateAPIKeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Companies, when not empty, limits the key to these companies' data:
	// any other company, and its connections, is 404 to it. Only with
	// the read and write scopes.
	Companies []string `json:"companies,omitempty"`
}

// CreatedAPIKey answers POST /v1/keys: the key as stored and, this once,
// the key itself.
type CreatedAPIKey struct {
	store.APIKey
	// Key is the secret to send in X-API-Key. checkd keeps only its hash:
	// it is never shown again.
	Key string `json:"key"`
}

// APIKeyList answers GET /v1/keys: the runtime keys (not the bootstrap
// ones, which are configured), by name, without their secrets.
type APIKeyList struct {
	Keys []store.APIKey `json:"keys"`
}

// createAPIKey answers POST /v1/keys.
func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) {
	var in CreateAPIKeyRequest
	if !s.decode(w, r, &in) {
		return
	}
	if p := apiKeyProblem(in); p != "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, p)
		return
	}
	k, secret, err := s.st.CreateAPIKey(r.Context(), store.APIKey{Name: in.Name, Scopes: in.Scopes, Companies: in.Companies})
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf(
			"companies: %s: give the IDs of existing companies (GET /v1/company)", strings.TrimPrefix(err.Error(), "key "+in.Name+": ")))
		return
	}
	if err != nil {
		s.storeError(w, r, err, "")
		return
	}
	s.log.WithFields(logrus.Fields{"key": k.Name, "scopes": k.Scopes, "companies": k.Companies, "by": store.ActorOf(r.Context()),
		"requestId": RequestID(r.Context())}).Info("api: API key created")
	w.Header().Set("Location", "/v1/keys/"+k.Name)
	writeJSON(w, http.StatusCreated, CreatedAPIKey{APIKey: k, Key: secret})
}

// apiKeyProblem says what the API refuses in a new key ("" if nothing);
// the store checks the name.
func apiKeyProblem(in CreateAPIKeyRequest) string {
	valid := make([]string, len(Scopes))
	for i, sc := range Scopes {
		valid[i] = string(sc)
	}
	if len(in.Scopes) == 0 {
		return fmt.Sprintf("scopes is required: one or more of %s", strings.Join(valid, ", "))
	}
	for _, sc := range in.Scopes {
		if !slices.Contains(valid, sc) {
			return fmt.Sprintf("scopes: unknown scope %.50q: use %s", sc, strings.Join(valid, ", "))
		}
		if len(in.Companies) > 0 && sc != string(ScopeRead) && sc != string(ScopeWrite) {
			return fmt.Sprintf("scopes: a key limited to companies may hold only read and write, not %s (which act beyond any company)", sc)
		}
	}
	for _, co := range in.Companies {
		if !store.ValidID(store.CompanyIDPrefix, co) {
			return fmt.Sprintf("companies: %.50q is not a company ID (co_...)", co)
		}
	}
	return ""
}

// listAPIKeys answers GET /v1/keys.
func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.st.ListAPIKeys(r.Context())
	if err != nil {
		s.storeError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, APIKeyList{Keys: ks})
}

// deleteAPIKey answers DELETE /v1/keys/{name}: the key is refused from
// then on by every API process (they read keys from Redis on every
// request).
func (s *Server) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.st.DeleteAPIKey(r.Context(), name); err != nil {
		s.storeError(w, r, err, fmt.Sprintf("API key %.100q not found: list the keys with GET /v1/keys", name))
		return
	}
	s.log.WithFields(logrus.Fields{"key": name, "by": store.ActorOf(r.Context()), "requestId": RequestID(r.Context())}).Info("api: API key deleted")
	w.WriteHeader(http.StatusNoContent)
}
