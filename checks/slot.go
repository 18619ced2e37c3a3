package checks

import (
	"hash/fnv"
	"time"
)

// SlotOffset is a connection's fixed place in the check cycle: a stable hash
// of its ID spread over the interval, so connections created together do not
// all come due together.
func SlotOffset(connectionID string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(connectionID))
	// fnv's low bits are weak for short similar IDs; fold the high half in.
	v := h.Sum64()
	v ^= v >> 29
	v *= 0xbf58476d1ce4e5b9
	v ^= v >> 32
	// Whole milliseconds: the due index scores and task IDs are in ms.
	ms := uint64(interval / time.Millisecond)
	if ms == 0 {
		return 0
	}
	return time.Duration(v%ms) * time.Millisecond
}

// NextSlot is the first slot of the connection strictly after t: the time
// t' > t with t' ≡ SlotOffset (mod interval), counting from the Unix epoch.
func NextSlot(connectionID string, t time.Time, interval time.Duration) time.Time {
	if interval <= 0 {
		return t
	}
	off := int64(SlotOffset(connectionID, interval))
	iv := int64(interval)
	n := t.UnixNano()
	base := n - mod(n, iv) + off
	if base <= n {
		base += iv
	}
	return time.Unix(0, base).UTC()
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
