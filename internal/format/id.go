package format

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// IDSize is the length of an ID in bytes.
const IDSize = 32

// ID names a blob or a repository file: the keyed hash of its plaintext (blobs) or of
// its stored bytes (files).
type ID [IDSize]byte

// String returns the id as 64 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, the form shown to people.
func (id ID) Short() string { return id.String()[:8] }

// IsNull reports whether id is all zero, the value of no id.
func (id ID) IsNull() bool { return id == ID{} }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("invalid id %q: want %d hex digits", s, 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid id %q: %w", s, err)
	}
	return id, nil
}

// MarshalJSON writes the id as a hex string.
func (id ID) MarshalJSON() ([]byte, error) { return json.Marshal(id.String()) }

// UnmarshalJSON reads a hex string.
func (id *ID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseID(s)
	if err != nil {
		return err
	}
	*id = p
	return nil
}
