package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// API keys created at runtime (POST /v1/keys). The store keeps each key's
// SHA-256, never the key: it is shown once, when created. A plain SHA-256
// suffices where a password would need a slow hash, because a key is 256
// random bits, which no guessing can reach; it also lets a request's key
// be found with one HGET.

// APIKeyPrefix starts every key CreateAPIKey makes, so a key checkd did not
// make is refused without asking Redis (and a leaked one is recognizable
// in a secret scanner).
const APIKeyPrefix = "ckd_"

// MaxAPIKeyNameLen bounds an API key's name, which is recorded as the
// actor of every change the key makes (MaxActorLen).
const MaxAPIKeyNameLen = MaxActorLen

// ErrExists means the thing to create exists already.
var ErrExists = errors.New("already exists")

// APIKey is a runtime API key as stored: what it may do, never the key.
type APIKey struct {
	// Name identifies the key (unique) and is the actor of every change
	// it makes: lower-case letters, digits, '.', '_' and '-', starting
	// with a letter or digit, at most MaxAPIKeyNameLen bytes; not one of
	// the actors link, check and system, nor starting with "bootstrap".
	Name string `json:"name"`
	// Scopes are what the key may do (the API's read, write, admin,
	// webhooks); the store keeps them as given.
	Scopes []string `json:"scopes"`
	// Companies, when not empty, are the only companies whose data the
	// key may see.
	Companies []string `json:"companies,omitempty"`
	// CreatedAt is when the key was made.
	CreatedAt time.Time `json:"createdAt"`
}

// apiKeyRec is an APIKey's stored form (P akh's value).
type apiKeyRec struct {
	Name      string   `json:"n"`
	Scopes    []string `json:"s"`
	Companies []string `json:"co,omitempty"`
	CreatedAt int64    `json:"ca"`
}

// APIKeyNameProblem says what is wrong with a key's name, "" when nothing.
func APIKeyNameProblem(name string) string {
	switch {
	case name == "" || len(name) > MaxAPIKeyNameLen:
		return fmt.Sprintf("name must be 1 to %d bytes", MaxAPIKeyNameLen)
	case strings.TrimFunc(name, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
	}) != "":
		return "name may hold only lower-case letters, digits, '.', '_' and '-'"
	case !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= '0' && name[0] <= '9'):
		return "name must start with a letter or a digit"
	case name == ActorLink || name == ActorCheck || name == ActorSystem || strings.HasPrefix(name, "bootstrap"):
		return fmt.Sprintf("name %q is reserved (link, check, system and bootstrap* name other actors)", name)
	}
	return ""
}

// hashAPIKey is the stored form of a key: its SHA-256, in hex.
func hashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// apiKeyCreateScript stores a new key unless its name is taken.
//
//	KEYS[1] -> P ak, name → hash
//	KEYS[2] -> P akh, hash → the key's record
//	ARGV[1] -> the name
//	ARGV[2] -> the key's hash
//	ARGV[3] -> its record (JSON)
//
// Returns 1 when stored, 0 when the name is taken.
var apiKeyCreateScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
`)

// apiKeyDeleteScript removes a key by name.
//
//	KEYS[1] -> P ak, name → hash
//	KEYS[2] -> P akh, hash → the key's record
//	ARGV[1] -> the name
//
// Returns 1 when removed, 0 when there is no key of that name.
var apiKeyDeleteScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then
  return 0
end
redis.call('HDEL', KEYS[2], h)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`)

// CreateAPIKey makes a key for k (its CreatedAt is set): it returns the
// key as stored and the secret, which nothing keeps: hand it to the
// caller once. It refuses (ErrInvalid) a bad name, no scopes, or a
// company that does not exist, and (ErrExists) a name in use.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, string, error) {
	if p := APIKeyNameProblem(k.Name); p != "" {
		return APIKey{}, "", fmt.Errorf("%w: %s", ErrInvalid, p)
	}
	if len(k.Scopes) == 0 {
		return APIKey{}, "", fmt.Errorf("%w: a key needs at least one scope", ErrInvalid)
	}
	k.Scopes = sortedUnique(k.Scopes)
	k.Companies = sortedUnique(k.Companies)
	for _, co := range k.Companies {
		if _, err := s.GetCompany(ctx, co); err != nil {
			return APIKey{}, "", fmt.Errorf("key %s: %w", k.Name, err)
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return APIKey{}, "", fmt.Errorf("make key %s: %w", k.Name, err)
	}
	secret := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	k.CreatedAt = fromMS(ms(s.cfg.Clock.Now()))
	rec, err := json.Marshal(apiKeyRec{Name: k.Name, Scopes: k.Scopes, Companies: k.Companies, CreatedAt: ms(k.CreatedAt)})
	if err != nil {
		return APIKey{}, "", fmt.Errorf("encode key %s: %w", k.Name, err)
	}
	n, err := apiKeyCreateScript.Run(ctx, s.rdb, []string{s.kAPIKeys(), s.kAPIKeyHashes()}, k.Name, hashAPIKey(secret), rec).Int()
	if err != nil {
		return APIKey{}, "", fmt.Errorf("store key %s: %w", k.Name, err)
	}
	if n == 0 {
		return APIKey{}, "", fmt.Errorf("key %q: %w: pick another name, or delete the old key first", k.Name, ErrExists)
	}
	return k, secret, nil
}

// sortedUnique is vs sorted, without duplicates (nil when empty).
func sortedUnique(vs []string) []string {
	if len(vs) == 0 {
		return nil
	}
	out := slices.Clone(vs)
	slices.Sort(out)
	return slices.Compact(out)
}

// APIKeyBySecret returns the key whose secret this is: ErrNotFound when
// there is none (never made, or deleted). It reads Redis on every call
// (one HGET), so a deleted key stops working at once in every process.
func (s *Store) APIKeyBySecret(ctx context.Context, secret string) (APIKey, error) {
	if !strings.HasPrefix(secret, APIKeyPrefix) {
		return APIKey{}, fmt.Errorf("API key: %w", ErrNotFound)
	}
	raw, err := s.rdb.HGet(ctx, s.kAPIKeyHashes(), hashAPIKey(secret)).Result()
	if errors.Is(err, redis.Nil) {
		return APIKey{}, fmt.Errorf("API key: %w", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("read API key: %w", err)
	}
	return decodeAPIKey(raw)
}

func decodeAPIKey(raw string) (APIKey, error) {
	var r apiKeyRec
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return APIKey{}, fmt.Errorf("decode stored API key: %w", err)
	}
	return APIKey{Name: r.Name, Scopes: r.Scopes, Companies: r.Companies, CreatedAt: fromMS(r.CreatedAt)}, nil
}

// ListAPIKeys returns every runtime key, by name.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	m, err := s.rdb.HGetAll(ctx, s.kAPIKeyHashes()).Result()
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	out := make([]APIKey, 0, len(m))
	for _, raw := range m {
		k, err := decodeAPIKey(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b APIKey) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteAPIKey removes the key of that name (ErrNotFound when there is
// none): requests with it are refused from then on, in every process.
func (s *Store) DeleteAPIKey(ctx context.Context, name string) error {
	n, err := apiKeyDeleteScript.Run(ctx, s.rdb, []string{s.kAPIKeys(), s.kAPIKeyHashes()}, name).Int()
	if err != nil {
		return fmt.Errorf("delete key %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("API key %q: %w", name, ErrNotFound)
	}
	return nil
}
