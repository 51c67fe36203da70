package fat

import (
	"bytes"
	"io"
	"testing"
)

// fuzzMaxSize bounds the partition size the fuzz target claims.
const fuzzMaxSize = 64 << 20

// zeroPadded reads data, then zeros up to size: the start of a partition
// whose rest is empty.
type zeroPadded struct {
	data []byte
	size int64
}

func (z zeroPadded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= z.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := z.size - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	if off < int64(len(z.data)) {
		copy(p[:n], z.data[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// FuzzProbe probes the start of a partition, as it is and zero-padded to a
// claimed size: an error or a sane allocation, never a panic.
func FuzzProbe(f *testing.F) {
	for _, name := range []string{"fat12", "fat16", "fat32", "fat32small"} {
		img := testImage(f, name)
		a, err := probeBytes(img)
		if err != nil {
			f.Fatal(err)
		}
		// The seed is the image's first sectors, up to the end of its last
		// used extent (the rest is zero) or 64 KiB, small enough to mutate
		// quickly; the fuzz target pads it with zeros.
		last := a.Used[len(a.Used)-1]
		seed := bytes.TrimRight(img[:min(last.Off+last.Len, 64<<10)], "\x00")
		f.Add(seed, int64(len(img)))
		f.Add(seed[:512], int64(len(img)))
	}
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		if a, err := probeBytes(data); err == nil {
			checkInvariants(t, a, int64(len(data)))
		}
		size = max(size, int64(len(data)))
		if size > fuzzMaxSize {
			size = fuzzMaxSize
		}
		if a, err := Probe(zeroPadded{data, size}, size); err == nil {
			checkInvariants(t, a, size)
		}
	})
}
