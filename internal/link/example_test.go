package link_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/link"
)

// ExampleSigner issues a link token for a connection, verifies it, and
// sees it expire. Spending Claims.Nonce (store.UseOnce) makes it single-use.
func ExampleSigner() {
	master := []byte("the 32-byte credential encryption key")
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	s, err := link.NewSigner(link.DeriveKey(master), time.Hour, clk)
	if err != nil {
		log.Fatal(err)
	}
	tok, exp, err := s.Sign("cn_0123456789abcdef")
	if err != nil {
		log.Fatal(err)
	}
	c, err := s.Verify(tok)
	fmt.Println(c.Subject, c.Expires.Equal(exp), err)

	_, err = s.Verify(tok[:len(tok)-1])
	fmt.Println(errors.Is(err, link.ErrTampered))

	clk.Advance(time.Hour)
	_, err = s.Verify(tok)
	fmt.Println(errors.Is(err, link.ErrExpired))
	// Output:
	// cn_0123456789abcdef true <nil>
	// true
	// true
}
