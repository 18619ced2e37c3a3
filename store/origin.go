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
// history entry and change event of the change names the actor. Changes
// made without one keep the plain causes and name the actor their cause
// implies: ActorCheck for a check, ActorSystem for anything else.
type Origin struct {
	// Channel replaces the "admin" of admin causes: lower-case letters,
	// e.g. "console".
	Channel string
	// Actor is who acted: the logged-in user (at most MaxActorLen bytes,
	// printable).
	Actor string
}

// Actors of the changes no API key or user makes.
const (
	// ActorLink is the actor of a change made through a single-use link
	// (its token authorized it).
	ActorLink = "link"
	// ActorCheck is the actor of a check's record: implied by the cause
	// "check", so the history stores nothing for it.
	ActorCheck = "check"
	// ActorSystem is the actor of a change made under no Origin: checkd's
	// own (the demo's data, a tool calling the store directly).
	ActorSystem = "system"
)

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

// WithActor is WithOrigin for a change through the API: the causes stay
// ("admin:deactivate"), the actor is recorded (the API key's name, or
// ActorLink).
func WithActor(ctx context.Context, actor string) (context.Context, error) {
	return WithOrigin(ctx, Origin{Channel: strings.TrimSuffix(adminCausePrefix, ":"), Actor: actor})
}

// ActorOf returns the actor ctx carries (WithOrigin, WithActor), "" when none.
func ActorOf(ctx context.Context) string {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o.Actor
}

// impliedActor is the actor of a change of cause c made under no Origin.
// The history stores no actor for it: an element without one reads as
// it (also one written before actors were recorded, which reads as
// ActorSystem unless a check's).
func impliedActor(c string) string {
	if c == CauseCheck {
		return ActorCheck
	}
	return ActorSystem
}

// cause is the cause c as recorded under o: an admin cause takes o's
// channel, any other stays.
func (o Origin) cause(c string) string {
	if action, ok := strings.CutPrefix(c, adminCausePrefix); ok {
		return o.Channel + ":" + action
	}
	return c
}

// originate applies the origin ctx carries to the history element and the
// change event of m: its channel to their causes, and its actor, or the
// one the cause implies when ctx carries none (impliedActor). A check's
// implied actor is left out of the history element (it reads back from
// the cause).
func (m *mutation) originate(ctx context.Context) {
	o, ok := ctx.Value(originKey{}).(Origin)
	actor := func(c string) string {
		if ok {
			return o.Actor
		}
		return impliedActor(c)
	}
	if m.history != nil {
		if ok {
			m.history.C = o.cause(m.history.C)
		}
		if a := actor(m.history.C); a != impliedActor(m.history.C) {
			m.history.B = a
		}
	}
	if m.event != nil {
		if ok {
			m.event.Cause = o.cause(m.event.Cause)
		}
		m.event.Actor = actor(m.event.Cause)
	}
	if m.change != nil {
		if ok {
			m.change.cause = o.cause(m.change.cause)
		}
		m.change.actor = actor(m.change.cause)
	}
}
