package store

import (
	"errors"
	"strings"
	"testing"
)

func TestAPIKeysMiniredis(t *testing.T) { runAPIKeys(t, miniBackend) }
func TestAPIKeysRedis(t *testing.T)     { runAPIKeys(t, realBackend) }

func runAPIKeys(t *testing.T, b backend) {
	t.Parallel()
	f := newFixture(t, b, nil)
	k, secret, err := f.s.CreateAPIKey(f.ctx, APIKey{Name: "billing-sync", Scopes: []string{"write", "read", "read"},
		Companies: []string{f.co.ID, f.co.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, APIKeyPrefix) || len(secret) != len(APIKeyPrefix)+43 {
		t.Errorf("secret %q: want %s and 43 base64url characters", secret, APIKeyPrefix)
	}
	if k.Name != "billing-sync" || strings.Join(k.Scopes, ",") != "read,write" || len(k.Companies) != 1 || !k.CreatedAt.Equal(t0) {
		t.Errorf("created %+v", k)
	}

	got, err := f.s.APIKeyBySecret(f.ctx, secret)
	if err != nil || got.Name != k.Name || strings.Join(got.Scopes, ",") != "read,write" || got.Companies[0] != f.co.ID || !got.CreatedAt.Equal(t0) {
		t.Errorf("APIKeyBySecret = %+v, %v; want %+v", got, err, k)
	}
	for _, wrong := range []string{"", secret[:len(secret)-1], "x" + secret[1:], strings.TrimPrefix(secret, APIKeyPrefix)} {
		if _, err := f.s.APIKeyBySecret(f.ctx, wrong); !errors.Is(err, ErrNotFound) {
			t.Errorf("APIKeyBySecret(%q) = %v, want ErrNotFound", wrong, err)
		}
	}

	// Nothing in Redis holds the secret, or its random part.
	keys, err := f.rdb.Keys(f.ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		if typ, _ := f.rdb.Type(f.ctx, key).Result(); typ != "hash" {
			continue
		}
		m, err := f.rdb.HGetAll(f.ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		for field, v := range m {
			if strings.Contains(field+v, strings.TrimPrefix(secret, APIKeyPrefix)) {
				t.Errorf("%s holds the key in %s", key, field)
			}
		}
	}

	if _, _, err := f.s.CreateAPIKey(f.ctx, APIKey{Name: "billing-sync", Scopes: []string{"read"}}); !errors.Is(err, ErrExists) {
		t.Errorf("a second key of one name: %v, want ErrExists", err)
	}
	for _, bad := range []APIKey{
		{Name: "", Scopes: []string{"read"}},
		{Name: "Upper", Scopes: []string{"read"}},
		{Name: "-dash", Scopes: []string{"read"}},
		{Name: "a b", Scopes: []string{"read"}},
		{Name: strings.Repeat("a", MaxAPIKeyNameLen+1), Scopes: []string{"read"}},
		{Name: ActorLink, Scopes: []string{"read"}},
		{Name: ActorSystem, Scopes: []string{"read"}},
		{Name: ActorCheck, Scopes: []string{"read"}},
		{Name: "bootstrap-1", Scopes: []string{"read"}},
		{Name: "no-scopes"},
	} {
		if _, _, err := f.s.CreateAPIKey(f.ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAPIKey(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := f.s.CreateAPIKey(f.ctx, APIKey{Name: "other", Scopes: []string{"read"}, Companies: []string{"co_0000000000000000"}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a key for an unknown company: %v, want ErrNotFound", err)
	}

	_, secret2, err := f.s.CreateAPIKey(f.ctx, APIKey{Name: "a.ops_1", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.s.ListAPIKeys(f.ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a.ops_1" || list[1].Name != "billing-sync" || list[0].Companies != nil {
		t.Errorf("ListAPIKeys = %+v, %v", list, err)
	}

	if err := f.s.DeleteAPIKey(f.ctx, "billing-sync"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.APIKeyBySecret(f.ctx, secret); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted key: %v, want ErrNotFound", err)
	}
	if err := f.s.DeleteAPIKey(f.ctx, "billing-sync"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting it again: %v, want ErrNotFound", err)
	}
	if k, err := f.s.APIKeyBySecret(f.ctx, secret2); err != nil || k.Name != "a.ops_1" {
		t.Errorf("the other key after the deletion: %+v, %v", k, err)
	}
	// The name is free again, for a new secret.
	if _, secret3, err := f.s.CreateAPIKey(f.ctx, APIKey{Name: "billing-sync", Scopes: []string{"read"}}); err != nil || secret3 == secret {
		t.Errorf("re-creating a deleted name: %v (same secret: %v)", err, secret3 == secret)
	}
	if n, _ := f.rdb.HLen(f.ctx, f.s.kAPIKeyHashes()).Result(); n != 2 {
		t.Errorf("%d stored hashes, want 2", n)
	}
}
