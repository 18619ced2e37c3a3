package tasks

import (
	"errors"
	"strings"
	"testing"
	"time"
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
