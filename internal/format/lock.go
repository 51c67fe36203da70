package format

import (
	"encoding/json"
	"fmt"
	"time"
)

// Lock is the plaintext of a file in locks/: who holds the repository, how.
type Lock struct {
	Time      time.Time `json:"time"` // when written; refreshed by writing a new file
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	User      string    `json:"user,omitempty"`
}

// EncodeLock returns the JSON of l.
func EncodeLock(l *Lock) ([]byte, error) { return json.Marshal(l) }

// DecodeLock parses a lock.
func DecodeLock(b []byte) (*Lock, error) {
	var l Lock
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if l.Time.IsZero() {
		return nil, fmt.Errorf("lock: no time")
	}
	return &l, nil
}
