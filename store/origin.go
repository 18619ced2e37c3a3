package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/checkd/checkd/internal/termtext"
)

// Origin says through what and by whom an admin change was made. A change
// made under a context carrying one (WithOrigin) records it: the causes of
// admin actions name the channel instead of "admin" ("console:deactivate"
// for CauseDeactivated), in the history and in the change event, and each
// history entry the change writes names the actor. Changes made without
// one keep the plain causes and record no actor, as before.
type Origin struct {
	// Channel replaces the "admin" of admin causes: lower-case letters,
	// e.g. "console".
	Channel string
	// Actor is who acted: the logged-in user (at most MaxActorLen bytes,
	// printable).
	Actor string
}

// MaxActorLen bounds Origin.Actor: it is stored with every history entry
// of the change.
const MaxActorLen = 64

// adminCausePrefix starts every cause an admin action records.
const adminCausePrefix = "admin:"

type originKey struct{}

// WithOrigin returns ctx carrying o for the store's writes made under it.
// It refuses (ErrInvalid) a channel that is not lower-case letters and an
// actor that is empty, too long or holds characters unsafe on a terminal
// (history is printed by checkctl).
func WithOrigin(ctx context.Context, o Origin) (context.Context, error) {
	if o.Channel == "" || strings.TrimFunc(o.Channel, func(r rune) bool { return r >= 'a' && r <= 'z' }) != "" {
		return ctx, fmt.Errorf("%w: origin channel %q must be lower-case letters", ErrInvalid, o.Channel)
	}
	if o.Actor == "" || len(o.Actor) > MaxActorLen || strings.ContainsFunc(o.Actor, termtext.Unsafe) {
		return ctx, fmt.Errorf("%w: origin actor %q must be 1 to %d bytes without control characters", ErrInvalid, o.Actor, MaxActorLen)
	}
	return context.WithValue(ctx, originKey{}, o), nil
}

// cause is the cause c as recorded under o: an admin cause takes o's
// channel, any other stays.
func (o Origin) cause(c string) string {
	if action, ok := strings.CutPrefix(c, adminCausePrefix); ok {
		return o.Channel + ":" + action
	}
	return c
}

// originate applies the origin ctx carries, if any, to the history element
// and the change event of m.
func (m *mutation) originate(ctx context.Context) {
	o, ok := ctx.Value(originKey{}).(Origin)
	if !ok {
		return
	}
	if m.history != nil {
		m.history.C, m.history.B = o.cause(m.history.C), o.Actor
	}
	if m.event != nil {
		m.event.Cause = o.cause(m.event.Cause)
	}
	if m.change != nil {
		m.change.cause = o.cause(m.change.cause)
	}
}
