// Package crypto seals and opens data with an AEAD, derives keys from passwords,
// and computes keyed content ids. It knows nothing of repositories.
package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size in bytes of each half of a Key.
const KeySize = 32

// Overhead is how many bytes Seal adds to a plaintext: the nonce and the tag.
const Overhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// ErrAuth is returned by Open when the data was not sealed by this key or was changed.
var ErrAuth = errors.New("ciphertext verification failed (wrong key or damaged data)")

// Key is a repository's master key: one half seals data, the other keys the content ids.
type Key struct {
	Encrypt [KeySize]byte
	MAC     [KeySize]byte

	once   sync.Once
	hasher *blake3.Hasher
	aead   aeadCipher
}

type aeadCipher interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// NewRandomKey returns a key made of fresh random bytes.
func NewRandomKey() (*Key, error) {
	k := &Key{}
	if _, err := rand.Read(k.Encrypt[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(k.MAC[:]); err != nil {
		return nil, err
	}
	return k, nil
}

// NewKey returns a key from its two halves.
func NewKey(encrypt, mac []byte) (*Key, error) {
	if len(encrypt) != KeySize || len(mac) != KeySize {
		return nil, fmt.Errorf("key halves must be %d bytes, got %d and %d", KeySize, len(encrypt), len(mac))
	}
	k := &Key{}
	copy(k.Encrypt[:], encrypt)
	copy(k.MAC[:], mac)
	return k, nil
}

func (k *Key) init() {
	k.once.Do(func() {
		h, err := blake3.NewKeyed(k.MAC[:])
		if err != nil {
			panic(err) // only on a wrong key length, which the type rules out
		}
		k.hasher = h
		a, err := chacha20poly1305.NewX(k.Encrypt[:])
		if err != nil {
			panic(err)
		}
		k.aead = a
	})
}

// ContentID returns the keyed BLAKE3 hash of data: equal data gives equal ids under one
// key, and the id reveals nothing about data to whoever lacks the key.
func (k *Key) ContentID(data []byte) [32]byte {
	k.init()
	h := k.hasher.Clone()
	_, _ = h.Write(data)
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// Seal appends nonce, ciphertext and tag of plaintext to dst and returns the result.
func (k *Key) Seal(dst, plaintext []byte) []byte {
	k.init()
	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	dst = append(dst, nonce[:]...)
	return k.aead.Seal(dst, nonce[:], plaintext, nil)
}

// Open appends the plaintext of sealed to dst, or returns ErrAuth if sealed was not
// made by Seal with this key or was changed since.
func (k *Key) Open(dst, sealed []byte) ([]byte, error) {
	k.init()
	if len(sealed) < Overhead {
		return nil, ErrAuth
	}
	nonce := sealed[:chacha20poly1305.NonceSizeX]
	out, err := k.aead.Open(dst, nonce, sealed[chacha20poly1305.NonceSizeX:], nil)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}
