package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
)

const testEncKey2 = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"

// TestKeyRotation runs a rotation end to end on a real Redis: a daemon on
// key 1 creates and checks connections and hands out a link; a daemon with
// a wrong key is refused at start; one with key 2 and key 1 as an old key
// starts, re-encrypts every credential once asked (POST /v1/store/rekey)
// beside its worker, and keeps the old link working; then a daemon on key
// 2 alone starts and checks the connections, and one on key 1 alone is
// refused.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	o := redistest.Start(t).Client(t).Options()
	url := fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)
	start := func(key string, old ...string) (*daemon.Daemon, error) {
		cfg := baseConfig()
		cfg.RedisURL, cfg.EncryptionKey, cfg.EncryptionOldKeys = url, key, old
		cfg.APIKeys = []string{testAPIKey}
		cfg.Tick = "@every 1s"
		d, err := daemon.New(cfg, quietLogger(t), daemon.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			return nil, err
		}
		return d, nil
	}
	stop := func(d *daemon.Daemon) {
		if err := d.Stop(stopCtx(t)); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}

	d1, err := start(testEncKey)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d1.API().Addr()
	ids := apiConnections(t, base, apiCompany(t, base, "Acme").ID, 12)
	waitFor(t, base, ids, func(c api.Connection) bool { return c.Status == checks.ConnConnected })
	var lnk api.LinkResponse
	if code := doJSON(t, http.MethodPost, base+"/v1/connection/"+ids["0"]+"/link", testAPIKey, nil, &lnk); code != http.StatusCreated {
		t.Fatalf("link: %d", code)
	}
	stop(d1)

	if _, err := start(testEncKey2); err == nil || !strings.Contains(err.Error(), "cannot decrypt the stored credentials") {
		t.Fatalf("a daemon with another key: %v, want refused at start", err)
	}

	d2, err := start(testEncKey2, testEncKey)
	if err != nil {
		t.Fatal(err)
	}
	base = "http://" + d2.API().Addr()
	var rk api.RekeyResponse
	if code := doJSON(t, http.MethodPost, base+"/v1/store/rekey", testAPIKey, nil, &rk); code != http.StatusAccepted || !rk.Started {
		t.Fatalf("POST /v1/store/rekey: %d %+v", code, rk)
	}
	var st store.KeyStatus
	poll.WaitFor(t, 30*time.Second, "the re-encryption done", func() bool {
		return getJSON(t, base+"/v1/store/keys", testAPIKey, &st) == http.StatusOK && st.Rekey.Done
	})
	if len(st.InUse) != 1 || st.InUse[0] != st.Primary || st.Rekey.Rewritten < int64(len(ids)) {
		t.Fatalf("after the re-encryption: %+v", st)
	}
	// The link handed out before the rotation still works.
	if code := doJSON(t, http.MethodPatch, base+"/v1/link/credentials", "", api.LinkCredentialsRequest{Token: lnk.Token,
		Credentials: &checks.Credentials{Username: "user_good", Password: "new"}}, nil); code != http.StatusOK {
		t.Fatalf("an old link after the rotation: %d", code)
	}
	stop(d2)

	if _, err := start(testEncKey); err == nil || !strings.Contains(err.Error(), configs.EnvEncryptionKey) {
		t.Fatalf("a daemon on the old key alone after the rotation: %v, want refused", err)
	}
	d3, err := start(testEncKey2)
	if err != nil {
		t.Fatalf("a daemon on the new key alone: %v", err)
	}
	defer stop(d3)
	base = "http://" + d3.API().Addr()
	before := map[string]time.Time{}
	for _, id := range ids {
		var c api.Connection
		getJSON(t, base+"/v1/connection/"+id+"/details", testAPIKey, &c)
		before[id] = *c.LastCheckAt
		if code := doJSON(t, http.MethodPost, base+"/v1/connection/"+id+"/refresh", testAPIKey, nil, nil); code != http.StatusAccepted {
			t.Fatalf("refresh %s: %d", id, code)
		}
	}
	waitFor(t, base, ids, func(c api.Connection) bool {
		return c.LastCheckAt != nil && c.LastCheckAt.After(before[c.ID]) && c.Status == checks.ConnConnected
	})
}
