package store

import (
	"context"
	"fmt"
	"time"
)

// One-time tokens: a name spent once (a link token's nonce), kept until
// the token it belongs to expires.

// UseOnce spends a single-use name (a link token's nonce) until until: the
// first call returns true, every later one false.
func (s *Store) UseOnce(ctx context.Context, name string, until time.Time) (bool, error) {
	ttl := time.Until(until)
	if ttl < time.Second {
		ttl = time.Second
	}
	ok, err := s.rdb.SetNX(ctx, s.kOnce(name), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("spend single-use token: %w", err)
	}
	return ok, nil
}

// Spent reports whether UseOnce has spent name (and its time has not run
// out), without spending it: what a link's page asks before showing a form.
func (s *Store) Spent(ctx context.Context, name string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.kOnce(name)).Result()
	if err != nil {
		return false, fmt.Errorf("read single-use token: %w", err)
	}
	return n > 0, nil
}
