package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/store"
)

// TestStoreKeys: the key status names the primary key and the keys in
// use; POST /v1/store/rekey starts a run once and says so.
func TestStoreKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.st.EnsureKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.connection(e.company("Acme").ID, "user_good")
	w := e.do(call{method: "GET", path: "/v1/store/keys"})
	st := decodeAs[store.KeyStatus](t, w)
	if w.Code != http.StatusOK || len(st.Primary) != 16 || len(st.InUse) != 1 || st.InUse[0] != st.Primary || st.Rekey.Running {
		t.Fatalf("GET /v1/store/keys: %d %s", w.Code, w.Body)
	}
	for i, want := range []bool{true, false} {
		w := e.do(call{method: "POST", path: "/v1/store/rekey"})
		got := decodeAs[api.RekeyResponse](t, w)
		if w.Code != http.StatusAccepted || got.Started != want || got.Rekey.Target != st.Primary || !got.Rekey.Running {
			t.Fatalf("POST %d: %d %s; want started %v", i+1, w.Code, w.Body, want)
		}
	}
	if w := e.do(call{method: "POST", path: "/v1/store/rekey", key: "-"}); w.Code != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", w.Code)
	}
}
