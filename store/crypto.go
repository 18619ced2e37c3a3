package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// Ciphertext formats, told apart by their first byte:
//
//	1: version, nonce, sealed         (the first format: no key named; every
//	                                   configured key is tried)
//	2: version, key ID (4), nonce, sealed
//
// The key ID is the first four bytes of the key's fingerprint
// (KeyFingerprint), so a rotated store says which key opens each
// credential, and a rekey knows what is not under the primary key yet.
const (
	cipherV1 byte = 1
	cipherV2 byte = 2
	keyIDLen      = 4
)

// Cipher encrypts credentials at rest with AES-256-GCM: with its primary
// key, opening with the primary or any old key (a rotation in progress).
// The connection ID is the additional data, so a ciphertext copied onto
// another connection does not decrypt.
type Cipher struct {
	keys []cipherKey // the primary first, then the old keys
}

type cipherKey struct {
	fp   string // KeyFingerprint
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// NewCipher returns a cipher sealing with key (32 bytes) and opening with
// key or any of old: the keys of a rotation still under way (see
// Store.RekeyStep). A key given twice counts once.
func NewCipher(key []byte, old ...[]byte) (*Cipher, error) {
	c := &Cipher{}
	for i, k := range append([][]byte{key}, old...) {
		if len(k) != KeySize {
			what := "encryption key"
			if i > 0 {
				what = fmt.Sprintf("old encryption key %d", i)
			}
			return nil, fmt.Errorf("%s is %d bytes, want %d (give 64 hex characters or 44 base64 characters)", what, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("encryption key: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("encryption key: %w", err)
		}
		ck := cipherKey{fp: KeyFingerprint(k), aead: aead}
		if slices.ContainsFunc(c.keys, func(o cipherKey) bool { return o.fp == ck.fp }) {
			continue
		}
		fp, _ := hex.DecodeString(ck.fp)
		copy(ck.id[:], fp)
		c.keys = append(c.keys, ck)
	}
	return c, nil
}

// KeyFingerprint names a key without revealing it: 16 hex characters of
// an HMAC of a fixed text under the key. Redis keeps the fingerprints of
// the keys stored credentials are encrypted with, so a wrong key is
// refused at start (Store.EnsureKeys).
func KeyFingerprint(key []byte) string {
	return hex.EncodeToString(DeriveKey(key, "checkd credential key fingerprint v1")[:8])
}

// DeriveKey derives from master (the credential encryption key) the key of
// one purpose, named by a fixed text: an HMAC-SHA256 of it under master.
// One configured secret then serves several uses (link tokens, the
// console's sessions, key fingerprints) without two sharing a key.
func DeriveKey(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// Fingerprint is the primary key's fingerprint.
func (c *Cipher) Fingerprint() string { return c.keys[0].fp }

// Fingerprints are the fingerprints of every key, the primary first.
func (c *Cipher) Fingerprints() []string {
	out := make([]string, len(c.keys))
	for i, k := range c.keys {
		out[i] = k.fp
	}
	return out
}

// current reports whether ciphertext is sealed with the primary key in the
// current format (a rekey leaves it alone).
func (c *Cipher) current(ciphertext []byte) bool {
	return len(ciphertext) > 1+keyIDLen && ciphertext[0] == cipherV2 && [keyIDLen]byte(ciphertext[1:1+keyIDLen]) == c.keys[0].id
}

// ParseKey decodes a key given as 64 hex characters or as base64 (standard
// or URL alphabet, padded or not) of 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, errors.New("encryption key must be 32 bytes as 64 hex characters or base64 (generate one with: openssl rand -hex 32)")
}

// GenerateKey returns a fresh random key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate encryption key: %w", err)
	}
	return k, nil
}

// Seal encrypts plaintext bound to aad with the primary key.
func (c *Cipher) Seal(plaintext, aad []byte) ([]byte, error) {
	k := c.keys[0]
	ns := k.aead.NonceSize()
	out := make([]byte, 1+keyIDLen+ns, 1+keyIDLen+ns+len(plaintext)+k.aead.Overhead())
	out[0] = cipherV2
	copy(out[1:], k.id[:])
	nonce := out[1+keyIDLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a ciphertext made by Seal with the same aad, under
// whichever configured key sealed it; it also reports that key's
// fingerprint.
func (c *Cipher) Open(ciphertext, aad []byte) ([]byte, error) {
	pt, _, err := c.open(ciphertext, aad)
	return pt, err
}

func (c *Cipher) open(ciphertext, aad []byte) ([]byte, string, error) {
	ns, over := c.keys[0].aead.NonceSize(), c.keys[0].aead.Overhead()
	switch {
	case len(ciphertext) >= 1+keyIDLen+ns+over && ciphertext[0] == cipherV2:
		id := [keyIDLen]byte(ciphertext[1 : 1+keyIDLen])
		body := ciphertext[1+keyIDLen:]
		for _, k := range c.keys {
			if k.id != id {
				continue
			}
			pt, err := k.aead.Open(nil, body[:ns], body[ns:], aad)
			if err != nil {
				return nil, "", errors.New("decrypt: authentication failed (the credential was tampered with, or another key has the same ID)")
			}
			return pt, k.fp, nil
		}
		return nil, "", fmt.Errorf("decrypt: sealed with key %x…, which is not configured (CHECKD_ENCRYPTION_KEY or CHECKD_ENCRYPTION_OLD_KEYS)", id)
	case len(ciphertext) >= 1+ns+over && ciphertext[0] == cipherV1:
		for _, k := range c.keys {
			if pt, err := k.aead.Open(nil, ciphertext[1:1+ns], ciphertext[1+ns:], aad); err == nil {
				return pt, k.fp, nil
			}
		}
		return nil, "", errors.New("decrypt: authentication failed with every configured key (wrong CHECKD_ENCRYPTION_KEY?)")
	}
	return nil, "", errors.New("decrypt: ciphertext is malformed or of an unknown version")
}
