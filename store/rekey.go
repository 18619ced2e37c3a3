package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Encryption keys and their rotation.
//
// The key registry (P keys) holds the fingerprint of every key a stored
// credential may be sealed with, each with the value of a sequence (#seq)
// at the last write that sealed with it: a credential write notes its key
// in the same atomic step (the commit script), and every process notes its
// primary key when it starts (EnsureKeys). A process whose keys do not
// include every registered one is refused at start, instead of failing
// every check on decryption.
//
// A rotation configures a new primary key with the old ones beside it:
// new writes seal with the new key, reads open with whichever sealed them.
// StartRekey then starts a run toward the primary key, and RekeyStep does
// it, one SCAN batch at a time, resumable (its cursor and counts are in P
// rekey, under a lease, so another process holding the same keys takes
// over a crashed one's run; a run starts only on request, so processes
// still on an older primary never pull it back) and safe
// beside workers and admins: each rewrite is the usual compare-and-set,
// which touches neither status, history, events nor generation, so a
// concurrent write simply wins and is looked at again. A pass that finds
// nothing left to rewrite ends the run: the old keys it holds are dropped
// from the registry unless a write sealed with one since the pass began
// (then another pass runs), and the old keys can be removed from the
// configuration.

// ErrWrongKey reports configured encryption keys that cannot open the
// credentials the store holds.
var ErrWrongKey = errors.New("the configured encryption keys cannot decrypt the stored credentials")

// seqField is the registry's sequence field; fingerprints are hex, so it
// never collides with one.
const seqField = "#seq"

// ensureKeysScript checks the configured keys against the registry and
// notes the primary. It returns {"ok"}, {"missing", fingerprints...} (keys
// stored credentials may be sealed with that are not configured), or
// {"unregistered"} (connections exist but no key was ever noted: a store
// from before the registry).
//
// KEYS: keys (the registry), counts (connections per status)
// ARGV: primary fingerprint, the other configured fingerprints...
var ensureKeysScript = redis.NewScript(`
local known = {}
for i = 1, #ARGV do known[ARGV[i]] = true end
local used = redis.call('HKEYS', KEYS[1])
local missing = {}
for _, fp in ipairs(used) do
  if fp ~= '#seq' and not known[fp] then missing[#missing + 1] = fp end
end
if #missing > 0 then
  table.insert(missing, 1, 'missing')
  return missing
end
if #used == 0 then
  local n = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do n = n + tonumber(v) end
  if n > 0 then return {'unregistered'} end
end
redis.call('HSET', KEYS[1], ARGV[1], redis.call('HINCRBY', KEYS[1], '#seq', 1))
return {'ok'}
`)

// registerScript notes keys found to open stored credentials.
//
// KEYS: keys (the registry)
// ARGV: fingerprints...
var registerScript = redis.NewScript(`
for i = 1, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], redis.call('HINCRBY', KEYS[1], '#seq', 1))
end
return 1
`)

// unregisteredSample is how many stored credentials EnsureKeys tries to
// open in a store from before the registry.
const unregisteredSample = 32

// EnsureKeys refuses configured keys that cannot open what the store holds
// (an error wrapping ErrWrongKey, naming the missing fingerprints) and
// notes the primary key as in use. A store from before the key registry
// is checked by opening a sample of its credentials. Call it once at start,
// before anything seals a credential.
func (s *Store) EnsureKeys(ctx context.Context) error {
	fps := s.cfg.Cipher.Fingerprints()
	for range 2 {
		res, err := ensureKeysScript.Run(ctx, s.rdb, []string{s.kKeys(), s.kCounts()}, toAny(fps)...).StringSlice()
		if err != nil {
			return fmt.Errorf("check encryption keys: %w", err)
		}
		switch res[0] {
		case "ok":
			return nil
		case "missing":
			return fmt.Errorf("%w: they are sealed with key(s) %s, and the configured keys are %s: set CHECKD_ENCRYPTION_KEY to the key this store was encrypted with, or keep a rotated-away key in CHECKD_ENCRYPTION_OLD_KEYS until the re-encryption reports done",
				ErrWrongKey, strings.Join(res[1:], ", "), strings.Join(fps, ", "))
		}
		if err := s.registerFromSample(ctx); err != nil {
			return err
		}
	}
	return fmt.Errorf("check encryption keys: the key registry %s stays empty", s.kKeys())
}

// registerFromSample opens a sample of stored credentials and notes the
// keys that opened them; one that opens with no configured key refuses the
// keys.
func (s *Store) registerFromSample(ctx context.Context) error {
	var keys []string
	for cursor := uint64(0); len(keys) < unregisteredSample; {
		// SCAN may return few keys, or none, per call on a sparse keyspace.
		more, next, err := s.rdb.Scan(ctx, cursor, s.kConnPattern(), 10*unregisteredSample).Result()
		if err != nil {
			return fmt.Errorf("check encryption keys: %w", err)
		}
		keys, cursor = append(keys, more...), next
		if cursor == 0 {
			break
		}
	}
	keys = keys[:min(len(keys), unregisteredSample)]
	used, failed := map[string]bool{}, 0
	for _, k := range keys {
		raw, err := s.rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check encryption keys: %w", err)
		}
		r, err := decodeConn(s.connIDOf(k), raw)
		if err != nil {
			return fmt.Errorf("check encryption keys: %w", err)
		}
		if _, fp, err := s.cfg.Cipher.open(r.Cred, []byte(r.ID)); err == nil {
			used[fp] = true
		} else {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d sampled credentials open with none of the configured keys (%s): set CHECKD_ENCRYPTION_KEY to the key this store was encrypted with",
			ErrWrongKey, failed, len(keys), strings.Join(s.cfg.Cipher.Fingerprints(), ", "))
	}
	fps := make([]string, 0, len(used)+1)
	for fp := range used {
		fps = append(fps, fp)
	}
	fps = append(fps, s.cfg.Cipher.Fingerprint())
	if err := registerScript.Run(ctx, s.rdb, []string{s.kKeys()}, toAny(fps)...).Err(); err != nil {
		return fmt.Errorf("check encryption keys: %w", err)
	}
	return nil
}

// KeyStatus is the state of the encryption keys: what KeyStatus and
// RekeyStep report.
type KeyStatus struct {
	// Primary is the fingerprint of the key new credentials are sealed with.
	Primary string `json:"primary"`
	// InUse are the fingerprints of the keys a stored credential may be
	// sealed with, by the registry, sorted. Once it holds Primary alone,
	// old keys can be removed from the configuration.
	InUse []string `json:"inUse"`
	// Rekey is the re-encryption's progress.
	Rekey RekeyProgress `json:"rekey"`
}

// RekeyProgress is where a re-encryption stands.
type RekeyProgress struct {
	// Target is the fingerprint of the key it seals with ("" before any).
	Target string `json:"target,omitempty"`
	// Pass counts SCAN passes over the connections, from 1.
	Pass int `json:"pass,omitempty"`
	// Scanned and Rewritten count connections looked at and re-encrypted
	// over every pass (a batch redone after a crash counts twice).
	Scanned   int64 `json:"scanned"`
	Rewritten int64 `json:"rewritten"`
	// Unreadable counts connections of the current pass whose credentials
	// no configured key opens.
	Unreadable int64 `json:"unreadable"`
	// Running is set while a run is under way (not done, not blocked).
	Running bool `json:"running"`
	// Done is set once a pass found nothing left to rewrite and the old
	// keys were dropped from the registry.
	Done bool `json:"done"`
	// Blocked is set when a pass found credentials no configured key
	// opens: the run stops there. Configure the key that sealed them (or
	// give those connections new credentials) and start it again.
	Blocked bool `json:"blocked,omitempty"`
}

// KeyStatus reads the key registry and the re-encryption's progress.
func (s *Store) KeyStatus(ctx context.Context) (KeyStatus, error) {
	var reg, st *redis.MapStringStringCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		reg = p.HGetAll(ctx, s.kKeys())
		st = p.HGetAll(ctx, s.kRekey())
		return nil
	}); err != nil {
		return KeyStatus{}, fmt.Errorf("read encryption key status: %w", err)
	}
	out := KeyStatus{Primary: s.cfg.Cipher.Fingerprint(), InUse: []string{}, Rekey: rekeyProgress(st.Val())}
	for fp := range reg.Val() {
		if fp != seqField {
			out.InUse = append(out.InUse, fp)
		}
	}
	slices.Sort(out.InUse)
	return out, nil
}

func rekeyProgress(m map[string]string) RekeyProgress {
	n := func(f string) int64 {
		v, _ := strconv.ParseInt(m[f], 10, 64)
		return v
	}
	p := RekeyProgress{Target: m["target"], Pass: int(n("pass")), Scanned: n("scanned"), Rewritten: n("rewritten"),
		Unreadable: n("unreadable"), Done: m["done"] != "", Blocked: m["blocked"] != ""}
	p.Running = p.Target != "" && !p.Done && !p.Blocked
	return p
}

// ErrRekeyBusy reports a re-encryption step refused because another
// process holds the run's lease.
var ErrRekeyBusy = errors.New("another process is re-encrypting the credentials")

// rekeyStartScript starts a run toward a target key, unless one toward it
// is under way; it returns "started" or "running".
//
// KEYS: rekey (the run's state), keys (the registry)
// ARGV: target fingerprint, now (ms)
var rekeyStartScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'target') == ARGV[1] and redis.call('HEXISTS', KEYS[1], 'done') == 0
    and redis.call('HEXISTS', KEYS[1], 'blocked') == 0 then
  return 'running'
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'target', ARGV[1], 'started', ARGV[2], 'cursor', '0', 'pass', 1, 'scanned', 0,
  'rewritten', 0, 'found', 0, 'unreadable', 0, 'passStart', redis.call('HGET', KEYS[2], '#seq') or '0')
return 'started'
`)

// StartRekey starts a re-encryption of every credential under the primary
// key (a run, kept in Redis; the RekeyStep calls of processes holding this
// primary key do it), unless one toward this key is under way. It reports
// whether it started one.
func (s *Store) StartRekey(ctx context.Context) (bool, error) {
	res, err := rekeyStartScript.Run(ctx, s.rdb, []string{s.kRekey(), s.kKeys()}, s.cfg.Cipher.Fingerprint(), ms(s.cfg.Clock.Now())).Text()
	if err != nil {
		return false, fmt.Errorf("start re-encryption: %w", err)
	}
	return res == "started", nil
}

// rekeyClaimScript takes (or renews) the lease of the run toward the
// caller's primary key and returns the run's state as a flat list of
// field, value pairs; {"idle"} when there is no run toward that key,
// {"busy", owner} while another owner's lease runs. A finished run whose
// old keys a write has noted again since starts another pass.
//
// KEYS: rekey (the run's state), keys (the registry)
// ARGV: owner, now (ms), lease end (ms), target fingerprint, the other
// configured fingerprints...
var rekeyClaimScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'target') ~= ARGV[4] then return {'idle'} end
if redis.call('HEXISTS', KEYS[1], 'done') == 1 then
  for i = 5, #ARGV do
    if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
      redis.call('HDEL', KEYS[1], 'done')
      redis.call('HINCRBY', KEYS[1], 'pass', 1)
      redis.call('HSET', KEYS[1], 'cursor', '0', 'found', 0, 'unreadable', 0,
        'passStart', redis.call('HGET', KEYS[2], '#seq') or '0')
      break
    end
  end
end
if redis.call('HEXISTS', KEYS[1], 'done') == 1 or redis.call('HEXISTS', KEYS[1], 'blocked') == 1 then
  return redis.call('HGETALL', KEYS[1])
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] and tonumber(redis.call('HGET', KEYS[1], 'until')) > tonumber(ARGV[2]) then
  return {'busy', owner}
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'until', ARGV[3])
return redis.call('HGETALL', KEYS[1])
`)

// rekeyAdvanceScript records a batch and moves the cursor, ending the pass
// when the cursor is back at 0. It returns {"ok"}, {"lost"} (the lease
// went to another process, whose cursor stands), {"done"} or {"blocked"}.
//
// KEYS: rekey (the run's state), keys (the registry)
// ARGV: owner, next cursor, scanned, rewritten, unreadable, now (ms), the
// old fingerprints the owner holds...
var rekeyAdvanceScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {'lost'} end
redis.call('HINCRBY', KEYS[1], 'scanned', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'rewritten', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'found', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'unreadable', ARGV[5])
redis.call('HSET', KEYS[1], 'cursor', ARGV[2])
if ARGV[2] ~= '0' then return {'ok'} end
local found = tonumber(redis.call('HGET', KEYS[1], 'found'))
if tonumber(redis.call('HGET', KEYS[1], 'unreadable')) > 0 and found == 0 then
  redis.call('HSET', KEYS[1], 'blocked', ARGV[6])
  redis.call('HDEL', KEYS[1], 'owner', 'until')
  return {'blocked'}
end
if found == 0 then
  local start = tonumber(redis.call('HGET', KEYS[1], 'passStart'))
  local left = 0
  for i = 7, #ARGV do
    local seq = redis.call('HGET', KEYS[2], ARGV[i])
    if seq then
      if tonumber(seq) <= start then redis.call('HDEL', KEYS[2], ARGV[i]) else left = left + 1 end
    end
  end
  if left == 0 then
    redis.call('HSET', KEYS[1], 'done', ARGV[6])
    redis.call('HDEL', KEYS[1], 'owner', 'until')
    return {'done'}
  end
end
redis.call('HINCRBY', KEYS[1], 'pass', 1)
redis.call('HSET', KEYS[1], 'found', 0, 'unreadable', 0, 'passStart', redis.call('HGET', KEYS[2], '#seq') or '0')
return {'ok'}
`)

// RekeyStep does one batch of the run toward the primary key that
// StartRekey started: it re-encrypts the batch's credentials under the
// primary key, as owner (a name unique to the calling process) holding the
// run's lease for lease; see the section comment at the top of this file.
// It returns the progress after the batch (Running unset once the run is
// done or blocked, or when there is no run toward this key), or an error
// wrapping ErrRekeyBusy while another owner's lease runs. After Done it
// does nothing, unless a credential was sealed with an old key since: then
// it runs another pass.
func (s *Store) RekeyStep(ctx context.Context, owner string, lease time.Duration, batch int) (RekeyProgress, error) {
	if owner == "" || lease <= 0 || batch <= 0 {
		return RekeyProgress{}, errors.New("store: rekey: an owner, a positive lease and a positive batch are required")
	}
	now := s.cfg.Clock.Now()
	fps := s.cfg.Cipher.Fingerprints()
	keys := []string{s.kRekey(), s.kKeys()}
	claimArgs := append([]any{owner, ms(now), ms(now.Add(lease))}, toAny(fps)...)
	res, err := rekeyClaimScript.Run(ctx, s.rdb, keys, claimArgs...).StringSlice()
	if err != nil {
		return RekeyProgress{}, fmt.Errorf("rekey: claim: %w", err)
	}
	switch {
	case len(res) == 1 && res[0] == "idle":
		return RekeyProgress{}, nil
	case len(res) == 2 && res[0] == "busy":
		return RekeyProgress{}, fmt.Errorf("%w (%s)", ErrRekeyBusy, res[1])
	}
	st := map[string]string{}
	for i := 0; i+1 < len(res); i += 2 {
		st[res[i]] = res[i+1]
	}
	if p := rekeyProgress(st); !p.Running {
		return p, nil
	}
	cursor, _ := strconv.ParseUint(st["cursor"], 10, 64)
	ids, next, err := s.rdb.Scan(ctx, cursor, s.kConnPattern(), int64(batch)).Result()
	if err != nil {
		return RekeyProgress{}, fmt.Errorf("rekey: scan: %w", err)
	}
	var rewritten, unreadable int64
	if len(ids) > 0 {
		raws, err := s.rdb.MGet(ctx, ids...).Result()
		if err != nil {
			return RekeyProgress{}, fmt.Errorf("rekey: read: %w", err)
		}
		for i, k := range ids {
			raw, ok := raws[i].(string)
			if !ok {
				continue // gone since the scan
			}
			done, err := s.rekeyOne(ctx, s.connIDOf(k), raw)
			switch {
			case errors.Is(err, errUnreadable):
				unreadable++
			case err != nil:
				return RekeyProgress{}, err // the cursor stands: the batch is redone
			case done:
				rewritten++
			}
		}
	}
	adv := append([]any{owner, next, len(ids), rewritten, unreadable, ms(now)}, toAny(fps[1:])...)
	out, err := rekeyAdvanceScript.Run(ctx, s.rdb, keys, adv...).StringSlice()
	if err != nil {
		return RekeyProgress{}, fmt.Errorf("rekey: record progress: %w", err)
	}
	if out[0] == "lost" {
		return RekeyProgress{}, fmt.Errorf("%w (the lease ran out during a batch; raise it)", ErrRekeyBusy)
	}
	m, err := s.rdb.HGetAll(ctx, s.kRekey()).Result()
	if err != nil {
		return RekeyProgress{}, fmt.Errorf("rekey: read progress: %w", err)
	}
	return rekeyProgress(m), nil
}

// errUnreadable marks a credential no configured key opens.
var errUnreadable = errors.New("credentials open with no configured key")

// rekeyOne re-encrypts one connection's credentials under the primary key
// unless they are already; it reports whether it wrote.
func (s *Store) rekeyOne(ctx context.Context, id, raw string) (bool, error) {
	wrote := false
	err := s.update(ctx, id, raw, func(r *connRec) (*mutation, error) {
		wrote = false
		if s.cfg.Cipher.current(r.Cred) {
			return nil, nil
		}
		pt, _, err := s.cfg.Cipher.open(r.Cred, []byte(r.ID))
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w: %w", r.ID, errUnreadable, err)
		}
		if r.Cred, err = s.cfg.Cipher.Seal(pt, []byte(r.ID)); err != nil {
			return nil, err
		}
		wrote = true
		// Nothing else changes: no status, history, event or generation,
		// so a check under way is still recorded.
		return &mutation{sealedWith: s.cfg.Cipher.Fingerprint()}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return wrote, err
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
