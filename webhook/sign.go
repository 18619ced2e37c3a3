package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Headers of a message, as the Standard Webhooks specification names them.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// secretPrefix starts every endpoint secret.
const secretPrefix = "whsec_"

// secretBytes is the size of an endpoint secret's key: 24 bytes make 32
// base64 characters, without padding.
const secretBytes = 24

// NewSecret returns a new endpoint secret: whsec_ and the standard base64
// of 24 random bytes.
func NewSecret() (string, error) {
	var k [secretBytes]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", fmt.Errorf("webhook: make a secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(k[:]), nil
}

// Sign returns the webhook-signature header of body sent as message msgID
// at ts: "v1,<base64 HMAC-SHA256 of msgID.ts.body>" for each secret,
// space-separated (the current secret first; during a rotation's grace the
// previous one too, so a receiver holding either verifies). It signs with
// the Standard Webhooks reference library.
func Sign(msgID string, ts time.Time, body []byte, secrets []string) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return "", fmt.Errorf("webhook: endpoint secret: %w", err)
		}
		sig, err := wh.Sign(msgID, ts, body)
		if err != nil {
			return "", fmt.Errorf("webhook: sign %s: %w", msgID, err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
