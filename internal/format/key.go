package format

import (
	"encoding/json"
	"fmt"
	"time"
)

// KeyFile is a password's entry in keys/: the master key sealed with a key derived
// from the password by Argon2id.
type KeyFile struct {
	Version   int       `json:"version"`
	Created   time.Time `json:"created"`
	Host      string    `json:"host,omitempty"`
	User      string    `json:"user,omitempty"`
	KDF       string    `json:"kdf"` // "argon2id"
	Time      uint32    `json:"time"`
	MemoryKiB uint32    `json:"memory_kib"`
	Threads   uint8     `json:"threads"`
	Salt      []byte    `json:"salt"`
	Data      []byte    `json:"data"` // sealed MasterKey JSON
}

// MasterKey is the plaintext inside KeyFile.Data.
type MasterKey struct {
	Encrypt []byte `json:"encrypt"`
	MAC     []byte `json:"mac"`
}

// EncodeKeyFile returns the JSON of k.
func EncodeKeyFile(k *KeyFile) ([]byte, error) { return json.MarshalIndent(k, "", "  ") }

// DecodeKeyFile parses and checks a key file.
func DecodeKeyFile(b []byte) (*KeyFile, error) {
	var k KeyFile
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if k.Version != Version {
		return nil, fmt.Errorf("key file: unsupported version %d", k.Version)
	}
	if k.KDF != "argon2id" {
		return nil, fmt.Errorf("key file: unknown KDF %q", k.KDF)
	}
	if len(k.Salt) < 16 || len(k.Data) == 0 {
		return nil, fmt.Errorf("key file: missing salt or data")
	}
	return &k, nil
}

// EncodeMasterKey returns the JSON of m.
func EncodeMasterKey(m *MasterKey) ([]byte, error) { return json.Marshal(m) }

// DecodeMasterKey parses a master key.
func DecodeMasterKey(b []byte) (*MasterKey, error) {
	var m MasterKey
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if len(m.Encrypt) != 32 || len(m.MAC) != 32 {
		return nil, fmt.Errorf("master key: wrong key lengths")
	}
	return &m, nil
}
