package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// cipherVersion prefixes every ciphertext so the format (and later a key
// rotation) can change without guessing.
const cipherVersion byte = 1

// Cipher encrypts credentials at rest with AES-256-GCM. The connection ID is
// the additional data, so a ciphertext copied onto another connection does
// not decrypt.
type Cipher struct {
	aead cipher.AEAD
}

// NewCipher returns a cipher for a 32-byte key.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes, want %d (give 64 hex characters or 44 base64 characters)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return &Cipher{aead: aead}, nil
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

// Seal encrypts plaintext bound to aad.
func (c *Cipher) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, c.aead.NonceSize(), 1+c.aead.NonceSize()+len(plaintext)+c.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	out := append([]byte{cipherVersion}, nonce...)
	return c.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a ciphertext made by Seal with the same aad.
func (c *Cipher) Open(ciphertext, aad []byte) ([]byte, error) {
	ns := c.aead.NonceSize()
	if len(ciphertext) < 1+ns+c.aead.Overhead() || ciphertext[0] != cipherVersion {
		return nil, errors.New("decrypt: ciphertext is malformed or of an unknown version")
	}
	pt, err := c.aead.Open(nil, ciphertext[1:1+ns], ciphertext[1+ns:], aad)
	if err != nil {
		return nil, errors.New("decrypt: authentication failed (wrong CHECKD_ENCRYPTION_KEY?)")
	}
	return pt, nil
}
