package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestCheckTask(t *testing.T) {
	t.Parallel()
	slot := time.UnixMilli(1767225600123)
	task, err := NewCheckTask("cn_abc", slot, ReasonScheduled)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeCheckConnection {
		t.Fatalf("type %q", task.Type())
	}
	if id := CheckTaskID("cn_abc", slot); id != "check:cn_abc:1767225600123" {
		t.Fatalf("task ID %q", id)
	}
	p, err := ParseCheckPayload(task.Payload())
	if err != nil || p.ConnectionID != "cn_abc" || p.Slot != slot.UnixMilli() || p.Reason != ReasonScheduled {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	if strings.Contains(string(task.Payload()), "password") {
		t.Fatal("payload mentions credentials")
	}
}

func FuzzParseCheckPayload(f *testing.F) {
	f.Add([]byte(`{"connectionId":"cn_x","slot":1,"reason":"scheduled"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseCheckPayload(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if p.ConnectionID == "" {
			t.Fatal("accepted a payload without a connection ID")
		}
	})
}

// FuzzParseCanonical: the fast path agrees with encoding/json on every
// input it accepts, and accepts what NewCheckTask writes for plain IDs.
func FuzzParseCanonical(f *testing.F) {
	f.Add([]byte(`{"connectionId":"cn_x","slot":1767225600123,"reason":"scheduled"}`), "cn_x", int64(0), "refresh")
	f.Add([]byte(`{"connectionId":"cn_x","slot":-0,"reason":""}`), "", int64(-1), "")
	f.Add([]byte(`{"connectionId":"a\"b","slot":01,"reason":"x"} `), "cn_\u00e9<>&", int64(9223372036854775807), "\x00")
	f.Add([]byte(`{"connectionId":"cn_x","slot":99999999999999999999,"reason":"x"}`), "cn_y", int64(-9223372036854775808), "x")
	f.Fuzz(func(t *testing.T, b []byte, id string, slot int64, reason string) {
		if p, ok := parseCanonical(b); ok {
			var want CheckPayload
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast path accepted %q, which encoding/json rejects: %v", b, err)
			}
			if p != want {
				t.Fatalf("%q: fast path %+v, encoding/json %+v", b, p, want)
			}
		}
		task, err := NewCheckTask(id, time.UnixMilli(slot), reason)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := parseCanonical(task.Payload())
		plain := func(s string) bool {
			for i := 0; i < len(s); i++ {
				if s[i] < 0x20 || s[i] > 0x7e || strings.ContainsRune(`"\\<>&`, rune(s[i])) {
					return false
				}
			}
			return true
		}
		if plain(id) && plain(reason) {
			if want := (CheckPayload{ConnectionID: id, Slot: slot, Reason: reason}); !ok || p != want {
				t.Fatalf("NewCheckTask(%q, %d, %q) wrote %q: fast path %+v, %v", id, slot, reason, task.Payload(), p, ok)
			}
		}
	})
}

func BenchmarkParseCheckPayload(b *testing.B) {
	task, err := NewCheckTask("cn_0123456789abcdef", time.UnixMilli(1767225600123), ReasonScheduled)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCheckPayload(task.Payload()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRegisterQueues: every queue is listed (empty) before any task, as
// asynq's Inspector, asynqmon and the metrics read it, and the set is the
// one asynq itself writes a queue's first task into.
func TestRegisterQueues(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if got, err := insp.Queues(); err != nil || len(got) != 0 {
		t.Fatalf("queues before: %v %v", got, err)
	}
	for range 2 { // idempotent
		if err := RegisterQueues(context.Background(), rdb); err != nil {
			t.Fatal(err)
		}
	}
	got, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(AllQueues))
	if !slices.Equal(got, want) {
		t.Fatalf("queues after RegisterQueues = %v, want %v", got, want)
	}
	for _, q := range AllQueues {
		info, err := insp.GetQueueInfo(q)
		if err != nil || info.Size != 0 || info.Paused {
			t.Errorf("queue %s: %+v %v; want an empty running queue", q, info, err)
		}
	}
	// asynq registers a queue with its first task in the same set.
	task, err := NewCheckTask("cn_abc", time.UnixMilli(1), ReasonScheduled, asynq.Queue("asynq-own"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(rdb).Enqueue(task); err != nil {
		t.Fatal(err)
	}
	if ok, err := rdb.SIsMember(context.Background(), asynqQueuesKey, "asynq-own").Result(); err != nil || !ok {
		t.Fatalf("asynq did not list its queue in %s (%v): the key is not asynq's", asynqQueuesKey, err)
	}
}

// FuzzParseDeliverCanonical: the fast path of a webhook:deliver payload
// agrees with encoding/json on every input it accepts, and accepts what
// NewWebhookDeliverTask writes for plain IDs.
func FuzzParseDeliverCanonical(f *testing.F) {
	f.Add([]byte(`{"m":"msg_cn_x_2_u","e":"ep_x","t":"scheduled"}`), "msg_x", "ep_y", "resend")
	f.Add([]byte(`{"m":"a\"b","e":"","t":"x"} `), "m\u00e9<>&", "", "\x00")
	f.Add([]byte(`{"e":"x","m":"y","t":"z"}`), "a", "b", "c")
	f.Fuzz(func(t *testing.T, b []byte, m, e, trigger string) {
		if p, ok := parseDeliverCanonical(b); ok {
			var want WebhookDeliverPayload
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast path accepted %q, which encoding/json rejects: %v", b, err)
			}
			if p != want {
				t.Fatalf("%q: fast path %+v, encoding/json %+v", b, p, want)
			}
		}
		in := WebhookDeliverPayload{MessageID: m, EndpointID: e, Trigger: trigger}
		task, err := NewWebhookDeliverTask(in, "n")
		if err != nil {
			t.Fatal(err)
		}
		plain := func(s string) bool {
			for i := 0; i < len(s); i++ {
				if s[i] < 0x20 || s[i] > 0x7e || strings.ContainsRune(`"\\<>&`, rune(s[i])) {
					return false
				}
			}
			return true
		}
		if p, ok := parseDeliverCanonical(task.Payload()); plain(m) && plain(e) && plain(trigger) && (!ok || p != in) {
			t.Fatalf("NewWebhookDeliverTask(%+v) wrote %q: fast path %+v, %v", in, task.Payload(), p, ok)
		}
		var want WebhookDeliverPayload // as JSON stores it (invalid UTF-8 replaced)
		if err := json.Unmarshal(task.Payload(), &want); err != nil {
			t.Fatal(err)
		}
		if got, err := ParseWebhookDeliverPayload(task.Payload()); (err == nil) != (m != "" && e != "" && trigger != "") || err == nil && got != want {
			t.Fatalf("ParseWebhookDeliverPayload(%q) = %+v, %v", task.Payload(), got, err)
		}
	})
}

// dequeueKeys are the keys asynq v0.26's dequeue script gets for queue q
// (internal/rdb.Dequeue: pending list, paused flag, active list, lease set).
func dequeueKeys(q string) []string {
	p := "asynq:{" + q + "}:"
	return []string{p + "pending", p + "paused", p + "active", p + "lease"}
}

// TestIsDequeue proves IsDequeue recognises asynq's dequeue script by its
// keys and nothing else: not asynq's other scripts (whose keys also name
// a queue's pending list or active list), not a wrong number of keys, not
// keys of two queues, not keys outside asynq's namespace.
func TestIsDequeue(t *testing.T) {
	t.Parallel()
	const id = "check:c1:1772442000000"
	tests := []struct {
		name string
		keys []string
		want bool
	}{
		{"dequeue, default queue", dequeueKeys("default"), true},
		{"dequeue, critical queue", dequeueKeys("critical"), true},
		{"dequeue, queue name with a colon", dequeueKeys("a:b"), true},
		{"forward scheduled", []string{"asynq:{default}:scheduled", "asynq:{default}:pending"}, false},
		{"forward retry", []string{"asynq:{default}:retry", "asynq:{default}:pending"}, false},
		{"enqueue", []string{"asynq:{default}:t:" + id, "asynq:{default}:pending"}, false},
		{"done", []string{"asynq:{default}:active", "asynq:{default}:lease", "asynq:{default}:t:" + id,
			"asynq:{default}:processed:2026-03-02", "asynq:{default}:processed"}, false},
		{"requeue", []string{"asynq:{default}:active", "asynq:{default}:lease", "asynq:{default}:pending",
			"asynq:{default}:t:" + id}, false},
		{"no keys", nil, false},
		{"pending only", dequeueKeys("default")[:1], false},
		{"three of the four", dequeueKeys("default")[:3], false},
		{"one key too many", append(dequeueKeys("default"), "asynq:{default}:extra"), false},
		{"paused of another queue", []string{"asynq:{default}:pending", "asynq:{critical}:paused",
			"asynq:{default}:active", "asynq:{default}:lease"}, false},
		{"active of another queue", []string{"asynq:{default}:pending", "asynq:{default}:paused",
			"asynq:{critical}:active", "asynq:{default}:lease"}, false},
		{"lease of another queue", []string{"asynq:{default}:pending", "asynq:{default}:paused",
			"asynq:{default}:active", "asynq:{critical}:lease"}, false},
		{"queue name a prefix of the other", []string{"asynq:{default}:pending", "asynq:{default2}:paused",
			"asynq:{default2}:active", "asynq:{default2}:lease"}, false},
		{"paused and active swapped", []string{"asynq:{default}:pending", "asynq:{default}:active",
			"asynq:{default}:paused", "asynq:{default}:lease"}, false},
		{"not asynq's namespace", []string{"checkd:{default}:pending", "checkd:{default}:paused",
			"checkd:{default}:active", "checkd:{default}:lease"}, false},
		{"no hash tag", []string{"asynq:default:pending", "asynq:default:paused", "asynq:default:active",
			"asynq:default:lease"}, false},
		{"unrelated keys", []string{"a", "b", "c", "d"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsDequeue(tt.keys); got != tt.want {
				t.Errorf("IsDequeue(%q) = %v, want %v", tt.keys, got, tt.want)
			}
		})
	}
}
