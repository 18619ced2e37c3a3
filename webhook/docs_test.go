package webhook

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/checkd/checkd/store"
)

// TestDocsExamples: the example messages of docs/webhooks.md are what
// checkd sends for the example changes, byte for byte once compacted.
func TestDocsExamples(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(\\{\n  \"type\": \"(connection\\.[a-z]+\\.v2)\".*?\n\\})\n```").FindAllSubmatch(doc, -1)
	seen := map[string]bool{}
	for _, b := range blocks {
		typ := string(b[2])
		want, err := Example(typ)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := json.Compact(&got, b[1]); err != nil {
			t.Fatalf("%s example: %v", typ, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("docs/webhooks.md's %s example is not what checkd sends:\n%s\nwant\n%s", typ, got.Bytes(), want)
		}
		seen[typ] = true
	}
	for _, typ := range store.EventTypes {
		if !seen[typ] {
			t.Errorf("docs/webhooks.md has no example of %s", typ)
		}
	}
}
