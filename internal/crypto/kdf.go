package crypto

import (
	"fmt"
	"time"

	"golang.org/x/crypto/argon2"
)

// KDFParams are the Argon2id settings that turn a password into a key.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// FastKDFParams are cheap settings for tests; never use them for real data.
var FastKDFParams = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// The largest Argon2id settings DeriveKey accepts: twice the passes and 16 times
// the memory that TuneKDF ever picks, so that a key file planted in a repository
// cannot make opening it take hours or exhaust the machine's memory.
const (
	MaxKDFTime      = 100
	MaxKDFMemoryKiB = 1 << 20 // 1 GiB
)

// DeriveKey returns the key wrapping key derived from password and salt; it
// refuses settings above MaxKDFTime and MaxKDFMemoryKiB.
func DeriveKey(password string, salt []byte, p KDFParams) (*Key, error) {
	if p.Time == 0 || p.MemoryKiB < 8 || p.Threads == 0 {
		return nil, fmt.Errorf("invalid KDF parameters %+v", p)
	}
	if p.Time > MaxKDFTime || p.MemoryKiB > MaxKDFMemoryKiB {
		return nil, fmt.Errorf("KDF parameters too large: %+v (at most %d passes and %d MiB)", p, MaxKDFTime, MaxKDFMemoryKiB>>10)
	}
	b := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 2*KeySize)
	return NewKey(b[:KeySize], b[KeySize:])
}

// TuneKDF returns Argon2id parameters with 64 MiB of memory and as many passes as
// take about target on this machine (at least one).
func TuneKDF(target time.Duration) KDFParams {
	p := KDFParams{Time: 1, MemoryKiB: 64 << 10, Threads: 4}
	start := time.Now()
	argon2.IDKey([]byte("tune"), make([]byte, 16), p.Time, p.MemoryKiB, p.Threads, 2*KeySize)
	one := time.Since(start)
	if one <= 0 {
		one = time.Millisecond
	}
	n := uint32(target / one)
	if n < 1 {
		n = 1
	}
	if n > 50 {
		n = 50
	}
	p.Time = n
	return p
}
