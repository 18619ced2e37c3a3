package ctl

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/checkd/checkd/api"
)

// hintAPIKey is the hint of a 404 for a key name.
const hintAPIKey = "list the API keys with: checkctl keys list"

// keysGroup is `checkctl keys`: the API keys made at runtime.
func (a *app) keysGroup() *cobra.Command {
	return group("keys", "API keys: make, list and revoke keys with scopes and companies",
		a.leaf("list", "list the API keys made at runtime (not the configured bootstrap keys)", 0, 0, "", "", keysList),
		a.keysCreate(),
		withLong(a.leaf("delete <name>", "revoke an API key: every API process refuses it from the next request", 1, 1, "<name>", hintAPIKey, keysDelete),
			"To rotate a key: create its successor, move its users to it, then delete the old one."))
}

func (a *app) keysCreate() *cobra.Command {
	var scopes, companies []string
	cmd := a.leaf("create <name> --scope S [--scope S...] [--company co_...]",
		"make an API key; it is printed once and never shown again", 1, 1, "<name>", "",
		func(c *call) error {
			if len(scopes) == 0 {
				return usagef("--scope is required: one or more of read, write, admin, webhooks (e.g. --scope read,write)")
			}
			raw, err := c.send(http.MethodPost, "/v1/keys", nil, api.CreateAPIKeyRequest{Name: c.args[0], Scopes: scopes, Companies: companies})
			if err != nil {
				return err
			}
			var k api.CreatedAPIKey
			return c.emit(raw, &k, func(t *tw) {
				t.line("key:       %s", k.Key)
				t.line("name:      %s", k.Name)
				t.line("scopes:    %s", strings.Join(k.Scopes, ", "))
				t.line("companies: %s", orDash(strings.Join(k.Companies, ", ")))
				t.line("Store the key now: checkd keeps only its hash and cannot show it again.")
			})
		})
	cmd.Long = "Scopes: read (companies, connections, history), write (create and change them, refresh,\n" +
		"links), admin (queues, encryption keys, API keys), webhooks (webhook endpoints). A key limited\n" +
		"to companies (--company, read and write only) sees no other company: they answer 404."
	cmd.Flags().StringSliceVar(&scopes, "scope", nil, "a `scope` the key holds: read, write, admin or webhooks (repeat, or comma-separate)")
	cmd.Flags().StringSliceVar(&companies, "company", nil, "limit the key to this `companyId` (repeat, or comma-separate)")
	return cmd
}

func keysList(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/keys", nil, nil)
	if err != nil {
		return err
	}
	var out api.APIKeyList
	return c.emit(raw, &out, func(t *tw) {
		t.row("NAME", "SCOPES", "COMPANIES", "CREATED")
		for _, k := range out.Keys {
			t.row(k.Name, strings.Join(k.Scopes, ","), orDash(strings.Join(k.Companies, ",")), stamp(k.CreatedAt))
		}
	})
}

func keysDelete(c *call) error {
	if _, err := c.send(http.MethodDelete, "/v1/keys/"+seg(c.args[0]), nil, nil); err != nil {
		return err
	}
	return c.emit([]byte(`{}`), nil, func(t *tw) {
		t.line("API key %s deleted: every API process refuses it now.", c.args[0])
	})
}
