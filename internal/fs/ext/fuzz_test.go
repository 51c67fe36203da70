//go:build linux

package ext

import (
	"encoding/binary"
	"io"
	"testing"

	"cairn/internal/fs"
)

// FuzzProbe feeds Probe damaged filesystems. Each input is a sparse image:
// records of a 4-byte offset, a 2-byte length and that many bytes, zeros
// elsewhere, read as a partition of size bytes. The seeds are the bytes Probe
// reads of the real images in testdata, so mutations land in the structures it
// parses. Probe must never panic, hang or allocate without bound, and any
// allocation it returns must be well formed.
func FuzzProbe(f *testing.F) {
	for _, s := range loadSeeds(f) {
		f.Add(seedRecords(f, s), uint32(s.size))
	}
	f.Fuzz(func(t *testing.T, data []byte, size uint32) {
		sz := int64(size % (64 << 20)) // bounds the work on one input
		r := sparseImage{records(data), sz}
		a, err := Probe(r, sz)
		if err != nil {
			if a != nil {
				t.Fatal("an allocation with the error")
			}
			return
		}
		checkAllocation(t, a, sz)
	})
}

// seedRecords returns the sparse image of what Probe reads of s.
func seedRecords(t testing.TB, s seedImage) []byte {
	t.Helper()
	rec := &recorder{r: padded{s.data, s.size}}
	if _, err := Probe(rec, s.size); err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	var out []byte
	for _, e := range fs.Normalize(rec.reads, s.size) {
		for off := e.Off; off < e.Off+e.Len; off += 1 << 15 {
			n := min(e.Off+e.Len-off, 1<<15)
			out = binary.LittleEndian.AppendUint32(out, uint32(off))
			out = binary.LittleEndian.AppendUint16(out, uint16(n))
			out = append(out, padded{s.data, s.size}.bytes(off, n)...)
		}
	}
	return out
}

func (p padded) bytes(off, n int64) []byte {
	b := make([]byte, n)
	_, _ = p.ReadAt(b, off)
	return b
}

// recorder notes every range read through it.
type recorder struct {
	r     io.ReaderAt
	reads []fs.Extent
}

func (r *recorder) ReadAt(b []byte, off int64) (int, error) {
	r.reads = append(r.reads, fs.Extent{Off: off, Len: int64(len(b))})
	return r.r.ReadAt(b, off)
}

type record struct {
	off  int64
	data []byte
}

// maxRecords bounds the records of a sparse image, and so the cost of each
// read of it.
const maxRecords = 256

// records decodes a sparse image; a truncated last record is cut short.
func records(in []byte) []record {
	var out []record
	for len(in) >= 6 && len(out) < maxRecords {
		off, n := int64(binary.LittleEndian.Uint32(in)), int(binary.LittleEndian.Uint16(in[4:]))
		in = in[6:]
		n = min(n, len(in))
		out = append(out, record{off, in[:n]})
		in = in[n:]
	}
	return out
}

// sparseImage reads records over zeros, as a partition of size bytes; later
// records win where they overlap.
type sparseImage struct {
	recs []record
	size int64
}

func (s sparseImage) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), s.size-off))
	clear(b[:n])
	for _, r := range s.recs {
		lo, hi := max(off, r.off), min(off+int64(n), r.off+int64(len(r.data)))
		if lo < hi {
			copy(b[lo-off:hi-off], r.data[lo-r.off:])
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
