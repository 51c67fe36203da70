package localfs

import (
	"encoding/binary"
	"os"
)

// WriteSparse writes b at offset off of f unless b is all zeros, in which case it
// writes nothing and leaves a hole (or whatever f already holds there). A restore
// that writes a whole file this way must finish with f.Truncate(size): a file whose
// last chunk is zeros is otherwise too short. WriteSparse never punches holes into
// existing data, so f should be a new or truncated file.
func WriteSparse(f *os.File, off int64, b []byte) error {
	if IsZero(b) {
		return nil
	}
	_, err := f.WriteAt(b, off)
	return err
}

// IsZero reports whether every byte of b is zero. It compares eight bytes at a time.
func IsZero(b []byte) bool {
	for len(b) >= 64 {
		// Eight words at once: one branch per 64 bytes.
		if binary.LittleEndian.Uint64(b)|binary.LittleEndian.Uint64(b[8:])|
			binary.LittleEndian.Uint64(b[16:])|binary.LittleEndian.Uint64(b[24:])|
			binary.LittleEndian.Uint64(b[32:])|binary.LittleEndian.Uint64(b[40:])|
			binary.LittleEndian.Uint64(b[48:])|binary.LittleEndian.Uint64(b[56:64]) != 0 {
			return false
		}
		b = b[64:]
	}
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
