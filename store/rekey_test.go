package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

func TestCipherKeys(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := mustKey(t), mustKey(t), mustKey(t)
	c1 := mustCipher(t, k1)
	c21 := mustCipher(t, k2, k1)
	aad := []byte("cn_x")
	v2, err := c1.Seal([]byte("secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	v1 := sealV1(t, k1, []byte("secret"), aad)
	for _, tc := range []struct {
		name string
		c    *Cipher
		ct   []byte
		ok   bool
		want string
	}{
		{"v2 under the primary", c1, v2, true, ""},
		{"v2 under an old key", c21, v2, true, ""},
		{"v1 under the primary", c1, v1, true, ""},
		{"v1 under an old key", c21, v1, true, ""},
		{"v2 under a key not configured", mustCipher(t, k3), v2, false, "not configured"},
		{"v1 under a key not configured", mustCipher(t, k3, k2), v1, false, "every configured key"},
		{"another connection's", c1, flipLast(v2), false, "authentication failed"},
		{"truncated", c1, v2[:10], false, "malformed"},
		{"unknown version", c1, append([]byte{9}, v2[1:]...), false, "unknown version"},
	} {
		pt, err := tc.c.Open(tc.ct, aad)
		if tc.ok != (err == nil) || (tc.ok && string(pt) != "secret") || (!tc.ok && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %q, %v", tc.name, pt, err)
		}
	}
	if !c1.current(v2) || c21.current(v2) || c1.current(v1) {
		t.Error("current: want true only for v2 under the primary key")
	}
	if c21.Fingerprint() != KeyFingerprint(k2) || !slices.Equal(c21.Fingerprints(), []string{KeyFingerprint(k2), KeyFingerprint(k1)}) {
		t.Errorf("fingerprints %v", c21.Fingerprints())
	}
	if c := mustCipher(t, k1, k1, k2, k2); len(c.Fingerprints()) != 2 {
		t.Errorf("a key given twice counts %d times", len(c.Fingerprints())-1)
	}
	if _, err := NewCipher(k1, k2[:5]); err == nil || !strings.Contains(err.Error(), "old encryption key 1") {
		t.Errorf("a short old key: %v", err)
	}
}

func TestRekeyMiniredis(t *testing.T) { runRekey(t, miniBackend) }
func TestRekeyRedis(t *testing.T)     { runRekey(t, realBackend) }

func runRekey(t *testing.T, b backend) {
	t.Run("a wrong key is refused at start", func(t *testing.T) {
		t.Parallel()
		f, key := newKeyFixture(t, b)
		k1 := f.s.cfg.Cipher
		if err := f.s.EnsureKeys(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.conn("user_good")
		wrong := f.storeWith(mustCipher(t, mustKey(t)))
		err := wrong.EnsureKeys(f.ctx)
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), k1.Fingerprint()) || !strings.Contains(err.Error(), "CHECKD_ENCRYPTION_KEY") {
			t.Fatalf("EnsureKeys with a wrong key: %v", err)
		}
		// A new key with the old one beside it is fine, and noted.
		k2 := mustKey(t)
		rot := f.storeWith(mustCipher(t, k2, key))
		if err := rot.EnsureKeys(f.ctx); err != nil {
			t.Fatal(err)
		}
		if st := f.keyStatus(rot); !slices.Contains(st.InUse, KeyFingerprint(k2)) || !slices.Contains(st.InUse, k1.Fingerprint()) {
			t.Fatalf("in use after the rotation's start: %v", st.InUse)
		}
		// The old key alone no longer is: something may be sealed with k2.
		if err := f.storeWith(mustCipher(t, key)).EnsureKeys(f.ctx); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("the old key alone after the new one was noted: %v", err)
		}
	})

	t.Run("a store from before the registry is checked by a sample", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		for i := range 5 {
			f.conn(fmt.Sprintf("u%d", i))
		}
		f.rdb.Del(f.ctx, f.s.kKeys()) // as before the registry
		if err := f.storeWith(mustCipher(t, mustKey(t))).EnsureKeys(f.ctx); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "5 of 5 sampled") {
			t.Fatalf("a wrong key on an unregistered store: %v", err)
		}
		if n, _ := f.rdb.Exists(f.ctx, f.s.kKeys()).Result(); n != 0 {
			t.Fatal("a refused key was noted")
		}
		if err := f.s.EnsureKeys(f.ctx); err != nil {
			t.Fatalf("the right key on an unregistered store: %v", err)
		}
		if st := f.keyStatus(f.s); !slices.Equal(st.InUse, []string{f.s.cfg.Cipher.Fingerprint()}) {
			t.Fatalf("in use: %v", st.InUse)
		}
	})

	t.Run("rotation, re-encryption beside workers, and a crash mid-run", func(t *testing.T) {
		t.Parallel()
		f, k1 := newKeyFixture(t, b)
		if err := f.s.EnsureKeys(f.ctx); err != nil {
			t.Fatal(err)
		}
		const n = 60
		ids := make([]string, n)
		for i := range ids {
			ids[i] = f.conn(fmt.Sprintf("user_%d", i)).ID
		}
		for _, id := range ids[:10] { // the first format, as stores from before rotation hold
			f.toV1(id, k1)
		}
		k2 := mustKey(t)
		a := f.storeWith(mustCipher(t, k2, k1)) // process A: the new key, the old one beside it
		bb := f.storeWith(mustCipher(t, k2, k1))
		if err := a.EnsureKeys(f.ctx); err != nil {
			t.Fatal(err)
		}
		if started, err := a.StartRekey(f.ctx); err != nil || !started {
			t.Fatalf("StartRekey: %v %v", started, err)
		}
		if started, _ := bb.StartRekey(f.ctx); started {
			t.Fatal("a second StartRekey restarted the run")
		}
		// Workers and an operator write meanwhile, through a store on the
		// new key, and each write's outcome is remembered.
		want := map[string]string{} // connection → the username its credentials must end with
		for i, id := range ids {
			want[id] = fmt.Sprintf("user_%d", i)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer stopWriters()
		var checked atomic.Int64
		for w := range 3 {
			wg.Go(func() {
				for i := w; ; i = (i + 3) % n {
					select {
					case <-stop:
						return
					default:
					}
					id := ids[i]
					tg, err := a.LoadCheck(f.ctx, id)
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := a.RecordCheck(f.ctx, tg, CheckResult{Attempt: fmt.Sprintf("w%d-%d", w, checked.Add(1)),
						StartedAt: f.clk.Now(), FinishedAt: f.clk.Now(), Result: ok()}); err != nil {
						t.Error(err)
						return
					}
					if i%7 == 0 {
						u := fmt.Sprintf("new_%d_%d", i, checked.Load())
						mu.Lock()
						if _, err := a.UpdateCredentials(f.ctx, id, checks.Credentials{Username: u}); err != nil {
							t.Error(err)
						} else {
							want[id] = u
						}
						mu.Unlock()
					}
				}
			})
		}
		// A "crashes" mid-run: its fifth script call fails (a claim, a
		// rewrite or a batch's end), and every later one.
		crashed := a.withClient(t, &failAfter{n: 4, cmd: "evalsha"})
		for i := 0; ; i++ {
			if _, err := crashed.RekeyStep(f.ctx, "A", time.Minute, 10); err != nil {
				break
			}
			if i > 10 {
				t.Fatal("A did not crash")
			}
		}
		// B waits for A's lease, then takes the run over where A's cursor
		// stands.
		if _, err := bb.RekeyStep(f.ctx, "B", time.Minute, 10); !errors.Is(err, ErrRekeyBusy) {
			t.Fatalf("B during A's lease: %v", err)
		}
		f.clk.Advance(time.Minute + time.Millisecond)
		var p RekeyProgress
		for i := 0; ; i++ {
			var err error
			if p, err = bb.RekeyStep(f.ctx, "B", time.Minute, 10); err != nil {
				t.Fatal(err)
			}
			if !p.Running || i > 100 {
				break
			}
		}
		stopWriters()
		// Some were rewritten by A before its crash, some by the writers'
		// credential updates: B rewrote the rest.
		if !p.Done || p.Blocked || p.Unreadable != 0 || p.Pass < 2 || p.Rewritten == 0 || p.Scanned < 2*n {
			t.Fatalf("the run ended: %+v; want done after at least two passes over %d connections", p, n)
		}
		st := f.keyStatus(bb)
		if !slices.Equal(st.InUse, []string{KeyFingerprint(k2)}) {
			t.Fatalf("keys in use after the run: %v, want the new one alone", st.InUse)
		}
		// The old key can go: a store on the new key alone starts and
		// reads every credential, and has what the writers last wrote.
		only := f.storeWith(mustCipher(t, k2))
		if err := only.EnsureKeys(f.ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			tg, err := only.LoadCheck(f.ctx, id)
			if err != nil {
				t.Fatalf("%s on the new key alone: %v", id, err)
			}
			if u := tg.Request.Credentials.Username; u != want[id] {
				t.Errorf("%s: username %q, want %q", id, u, want[id])
			}
			raw, _ := f.rdb.Get(f.ctx, f.s.kConn(id)).Result()
			r, _ := decodeConn(id, raw)
			if !only.cfg.Cipher.current(r.Cred) {
				t.Errorf("%s is not under the new key in the current format", id)
			}
		}
		if err := f.storeWith(mustCipher(t, k1)).EnsureKeys(f.ctx); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("the old key alone after the run: %v", err)
		}
		fx := &fixture{t: t, ctx: f.ctx, rdb: f.rdb, clk: f.clk, s: only}
		fx.invariants()
		if checked.Load() == 0 {
			t.Fatal("no check ran beside the re-encryption")
		}
	})

	t.Run("a write with an old key after the run makes it run again", func(t *testing.T) {
		t.Parallel()
		f, k1 := newKeyFixture(t, b)
		c := f.conn("user_good")
		k2 := mustKey(t)
		rot := f.storeWith(mustCipher(t, k2, k1))
		if err := rot.EnsureKeys(f.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := rot.StartRekey(f.ctx); err != nil {
			t.Fatal(err)
		}
		if p := f.rekeyAll(rot); !p.Done {
			t.Fatalf("first run: %+v", p)
		}
		// A process still on the old primary updates credentials.
		if _, err := f.s.UpdateCredentials(f.ctx, c.ID, checks.Credentials{Username: "late"}); err != nil {
			t.Fatal(err)
		}
		if st := f.keyStatus(rot); !slices.Contains(st.InUse, KeyFingerprint(k1)) {
			t.Fatalf("the old key's write was not noted: %v", st.InUse)
		}
		p := f.rekeyAll(rot)
		if !p.Done || p.Pass < 3 {
			t.Fatalf("after a late write: %+v; want another pass and done", p)
		}
		if st := f.keyStatus(rot); !slices.Equal(st.InUse, []string{KeyFingerprint(k2)}) {
			t.Fatalf("in use: %v", st.InUse)
		}
		if tg, err := f.storeWith(mustCipher(t, k2)).LoadCheck(f.ctx, c.ID); err != nil || tg.Request.Credentials.Username != "late" {
			t.Fatalf("the late write under the new key alone: %+v %v", tg, err)
		}
	})

	t.Run("credentials no key opens block the run until fixed", func(t *testing.T) {
		t.Parallel()
		f, k1 := newKeyFixture(t, b)
		good, lost := f.conn("user_good"), f.conn("user_lost")
		// lost was sealed by a key nobody has any more.
		stranger := f.storeWith(mustCipher(t, mustKey(t)))
		if _, err := stranger.UpdateCredentials(f.ctx, lost.ID, checks.Credentials{Username: "x"}); err != nil {
			t.Fatal(err)
		}
		f.rdb.HDel(f.ctx, f.s.kKeys(), stranger.cfg.Cipher.Fingerprint())
		k2 := mustKey(t)
		rot := f.storeWith(mustCipher(t, k2, k1))
		if _, err := rot.StartRekey(f.ctx); err != nil {
			t.Fatal(err)
		}
		p := f.rekeyAll(rot)
		if !p.Blocked || p.Done || p.Unreadable != 1 {
			t.Fatalf("with an unreadable credential: %+v; want blocked on 1", p)
		}
		if again, _ := rot.RekeyStep(f.ctx, "A", time.Minute, 10); !again.Blocked {
			t.Fatalf("a blocked run moved on by itself: %+v", again)
		}
		if _, err := rot.UpdateCredentials(f.ctx, lost.ID, checks.Credentials{Username: "fixed"}); err != nil {
			t.Fatal(err)
		}
		if started, err := rot.StartRekey(f.ctx); err != nil || !started {
			t.Fatalf("restart after the fix: %v %v", started, err)
		}
		if p := f.rekeyAll(rot); !p.Done {
			t.Fatalf("after the fix: %+v", p)
		}
		if _, err := f.storeWith(mustCipher(t, k2)).LoadCheck(f.ctx, good.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// rekeyAll runs steps as owner "A" until the run stops running.
func (f *fixture) rekeyAll(s *Store) RekeyProgress {
	f.t.Helper()
	for i := 0; i < 1000; i++ {
		p, err := s.RekeyStep(f.ctx, "A", time.Minute, 10)
		if err != nil {
			f.t.Fatal(err)
		}
		if !p.Running {
			return p
		}
	}
	f.t.Fatal("the run did not end in 1000 steps")
	return RekeyProgress{}
}

func (f *fixture) keyStatus(s *Store) KeyStatus {
	f.t.Helper()
	st, err := s.KeyStatus(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// storeWith is another process's store on the fixture's Redis and clock.
func (f *fixture) storeWith(c *Cipher) *Store {
	f.t.Helper()
	cfg := f.s.cfg
	cfg.Cipher = c
	s, err := New(f.rdb, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// newKeyFixture is a fixture whose store's key the test knows.
func newKeyFixture(t *testing.T, b backend) (*fixture, []byte) {
	t.Helper()
	k := mustKey(t)
	return newFixture(t, b, func(c *Config) { c.Cipher = mustCipher(t, k) }), k
}

// toV1 rewrites a connection's credentials in the first ciphertext format
// under key, as a store from before key IDs holds them.
func (f *fixture) toV1(id string, key []byte) {
	f.t.Helper()
	err := f.s.update(f.ctx, id, "", func(r *connRec) (*mutation, error) {
		pt, err := f.s.cfg.Cipher.Open(r.Cred, []byte(r.ID))
		if err != nil {
			return nil, err
		}
		r.Cred = sealV1(f.t, key, pt, []byte(r.ID))
		return &mutation{}, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// withClient is s over rdb wrapped with hook (its own client).
func (s *Store) withClient(t *testing.T, hook redis.Hook) *Store {
	t.Helper()
	c := redis.NewClient(s.rdb.(*redis.Client).Options())
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(hook)
	out, err := New(c, s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// failAfter fails every command named cmd after the first n, as a process
// dying mid-batch would leave it.
type failAfter struct {
	n    int
	cmd  string
	seen atomic.Int64
}

func (h *failAfter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failAfter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == h.cmd && h.seen.Add(1) > int64(h.n) {
			return errors.New("crashed")
		}
		return next(ctx, cmd)
	}
}
func (h *failAfter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func mustKey(t *testing.T) []byte {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCipher(t *testing.T, key []byte, old ...[]byte) *Cipher {
	t.Helper()
	c, err := NewCipher(key, old...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sealV1 seals in the first format: version 1, nonce, sealed; no key ID.
func sealV1(t testing.TB, key, pt, aad []byte) []byte {
	t.Helper()
	c, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead := c.keys[0].aead
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(append([]byte{cipherV1}, nonce...), nonce, pt, aad)
}

func flipLast(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-1] ^= 1
	return out
}
