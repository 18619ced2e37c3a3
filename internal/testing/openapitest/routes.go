package openapitest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/checkd/checkd/api"
)

// CompareRoutes compares the routes a server registers (api.Server's
// Routes) with the operations the document describes. undocumented names
// each route the document lacks, or describes with other authentication;
// unserved each documented operation no route serves. Each message says
// what to do. A mounted subtree ("/monitoring/", which takes every method)
// is another application and is not compared.
func CompareRoutes(tb testing.TB, routes []api.Route) (undocumented, unserved []string) {
	tb.Helper()
	doc := Document(tb)
	served := map[string]bool{}
	for _, r := range routes {
		if r.Method == "" && strings.HasSuffix(r.Path, "/") {
			continue
		}
		key := r.Method + " " + r.Path
		served[key] = true
		item := doc.Paths.Value(r.Path)
		var op *openapi3.Operation
		if item != nil {
			op = item.GetOperation(r.Method)
		}
		if op == nil {
			undocumented = append(undocumented, fmt.Sprintf(
				"%s is served (registered in api/handlers.go's routes, or by a Mount) but %s does not describe it: add %q under \"paths\" → %q, with an operationId, its parameters, requestBody and every response it can answer with its schema (copy a neighbour such as GET /v1/company/{companyId}), then list it in docs/api.md",
				key, DocumentPath, strings.ToLower(r.Method), r.Path))
			continue
		}
		if needs := needsKey(doc, op); needs != r.KeyRequired {
			undocumented = append(undocumented, fmt.Sprintf(
				"%s: the server %s, but %s says it %s: fix the operation's \"security\" (omit it to inherit the API key; [] for none)",
				key, keyWords(r.KeyRequired, "requires an API key", "requires none"), DocumentPath, keyWords(needs, "requires one", "requires none")))
		} else if got := keyScopes(doc, op); r.KeyRequired && !slices.Equal(got, []string{string(r.Scope)}) {
			undocumented = append(undocumented, fmt.Sprintf(
				"%s needs the %s scope, but %s's \"security\" lists %v for the API key: write [{\"ApiKey\": [%q]}, {\"Bearer\": [%q]}]",
				key, r.Scope, DocumentPath, got, r.Scope, r.Scope))
		}
	}
	for _, p := range doc.Paths.InMatchingOrder() {
		for m := range doc.Paths.Value(p).Operations() {
			if key := m + " " + p; !served[key] {
				unserved = append(unserved, fmt.Sprintf(
					"%s describes %s, but the server registers no such route: remove it from the document, or register it (api/handlers.go's routes)", DocumentPath, key))
			}
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unserved)
	return undocumented, unserved
}

// needsKey reports whether an operation's effective security asks for the
// API key (the document's ApiKey or Bearer schemes), not nothing.
func needsKey(doc *openapi3.T, op *openapi3.Operation) bool {
	reqs := doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	for _, r := range reqs {
		if len(r) == 0 { // {} in the list: no authentication is one option
			return false
		}
	}
	return len(reqs) > 0
}

// keyScopes is the scopes an operation's effective security lists for the
// API key (ApiKey and Bearer must list the same), or nil when they differ.
func keyScopes(doc *openapi3.T, op *openapi3.Operation) []string {
	reqs := doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	var out []string
	seen := false
	for _, r := range reqs {
		for name, scopes := range r {
			if name != "ApiKey" && name != "Bearer" {
				continue
			}
			if seen && !slices.Equal(out, scopes) {
				return nil
			}
			out, seen = scopes, true
		}
	}
	return out
}

func keyWords(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
