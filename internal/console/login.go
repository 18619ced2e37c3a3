package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/checkd/checkd/internal/dashboard"
	"github.com/checkd/checkd/store"
)

// adminScope is the API scope a runtime key needs to log in to the
// console (the api package's ScopeAdmin: the console acts beyond any one
// company, as the admin routes do).
const adminScope = "admin"

// loginError is a refused runtime-key login: the status and what the page
// says.
type loginError struct {
	status           int
	heading, message string
}

// runtimeKeyUser authenticates a request by a runtime API key (POST
// /v1/keys): in the X-API-Key header, or as the Basic-auth password with
// the key's name as the user. It reads the key from the store on every
// request, as the API does, so a deleted key's session ends at once. It
// returns the key's name, the actor the API records for it; "" and nil
// when the request carries no runtime key; a loginError when the key is
// refused.
func (c *Console) runtimeKeyUser(r *http.Request) (string, *loginError) {
	secret, name := r.Header.Get(dashboard.HeaderAPIKey), ""
	if secret == "" {
		var ok bool
		if name, secret, ok = r.BasicAuth(); !ok {
			return "", nil
		}
	}
	if !strings.HasPrefix(secret, store.APIKeyPrefix) {
		return "", nil
	}
	k, err := c.cfg.Store.APIKeyBySecret(r.Context(), secret)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		c.log.WithError(err).WithField("path", r.URL.Path).Warn("console: read an API key for a login")
		return "", &loginError{http.StatusServiceUnavailable, "The login cannot be checked now",
			"checkd could not read the API keys from its database (Redis). Reload in a few seconds (GET /readyz says when it is back)."}
	}
	switch {
	case name != "" && name != k.Name:
		return "", nil // a key with another key's name: as a wrong password
	case !slices.Contains(k.Scopes, adminScope) || len(k.Companies) > 0:
		return "", &loginError{http.StatusForbidden, "This key cannot open the console",
			fmt.Sprintf("The API key %s has the scopes %s; the console needs a key with the admin scope (not limited to companies). Ask an admin for one (POST /v1/keys with \"scopes\": [\"admin\"]), or log in with the dashboard's password.",
				k.Name, strings.Join(k.Scopes, ", "))}
	}
	return k.Name, nil
}
