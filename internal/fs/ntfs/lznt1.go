package ntfs

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// Compressed attributes. Their data is cut into compression units of
// 2^CompUnit clusters (16 in practice); the runlist maps each unit as one of:
//
//   - all its clusters: the unit is stored as it is;
//   - none (sparse): the unit is zeros;
//   - some clusters, the rest sparse: the clusters hold the unit compressed
//     with LZNT1.
//
// LZNT1 cuts the data into chunks of 4096 bytes, each stored as a 16-bit
// header (bits 0-11: the chunk's stored size minus 3, header included; bit
// 15: compressed) and either the 4096 bytes as they are or groups of a flag
// byte and eight tokens: a literal byte for a flag bit of 0, for a 1 a 16-bit
// back reference whose split between offset and length depends on how far
// into the chunk it is (12 bits of length at the start, down to 4). A header
// of 0 ends the data; a chunk that decompresses to less than 4096 bytes is
// padded with zeros.

// lzntChunk is the uncompressed size of an LZNT1 chunk.
const lzntChunk = 4096

// maxUnitSize bounds a compression unit (64 KiB with 4 KiB clusters, as
// Windows and ntfs-3g make them).
const maxUnitSize = 4 << 20

var errLZNT1 = fmt.Errorf("%w: bad LZNT1 data", errCorrupt)

// decompressLZNT1 decompresses src into dst, which it fills: what the data
// does not cover is zeros. Data for more than len(dst) bytes is an error.
func decompressLZNT1(dst, src []byte) error {
	out := 0
	for len(src) >= 2 {
		h := int(src[0]) | int(src[1])<<8
		if h == 0 {
			break
		}
		size := h&0x0FFF + 3
		if size > len(src) {
			return fmt.Errorf("%w: chunk of %d bytes, %d left", errLZNT1, size, len(src))
		}
		chunk := src[2:size]
		src = src[size:]
		if out+lzntChunk > len(dst) {
			return fmt.Errorf("%w: more than %d bytes", errLZNT1, len(dst))
		}
		d := dst[out : out+lzntChunk]
		out += lzntChunk
		if h&0x8000 == 0 {
			if len(chunk) != lzntChunk {
				return fmt.Errorf("%w: stored chunk of %d bytes", errLZNT1, len(chunk))
			}
			copy(d, chunk)
			continue
		}
		pos := 0 // in d
		for i := 0; i < len(chunk); {
			flags := chunk[i]
			i++
			for bit := 0; bit < 8 && i < len(chunk); bit++ {
				if flags&(1<<bit) == 0 {
					if pos == lzntChunk {
						return fmt.Errorf("%w: chunk past %d bytes", errLZNT1, lzntChunk)
					}
					d[pos] = chunk[i]
					pos++
					i++
					continue
				}
				if i+2 > len(chunk) {
					return fmt.Errorf("%w: truncated back reference", errLZNT1)
				}
				tok := int(chunk[i]) | int(chunk[i+1])<<8
				i += 2
				// The offset takes as many bits as pos-1 needs, at
				// least 4; the length the rest of 16.
				lenBits := 12
				for p := pos - 1; p >= 0x10; p >>= 1 {
					lenBits--
				}
				back := tok>>lenBits + 1
				n := tok&(1<<lenBits-1) + 3
				if back > pos || pos+n > lzntChunk {
					return fmt.Errorf("%w: back reference of %d bytes from %d at %d", errLZNT1, n, back, pos)
				}
				for k := range n { // overlapping copies repeat bytes
					d[pos+k] = d[pos-back+k]
				}
				pos += n
			}
		}
		clear(d[pos:])
	}
	clear(dst[out:])
	return nil
}

// compressedReader reads a compressed attribute's data, a unit at a time.
type compressedReader struct {
	rr       *runReader // the runs and sizes; its data is the stored clusters
	unit     int64      // clusters per compression unit
	unitSize int64

	mu        sync.Mutex
	cached    int64 // the unit in buf, -1 if none
	buf, comp []byte
}

// newCompressedReader returns a reader of the data of a compressed attribute
// whose runs rr holds, with compression units of 2^compUnit clusters.
func (v *volume) newCompressedReader(rr *runReader, compUnit uint8) (*compressedReader, error) {
	if compUnit == 0 || compUnit > 16 || v.clusterSize<<compUnit > maxUnitSize {
		return nil, fmt.Errorf("compression units of 2^%d clusters of %d bytes", compUnit, v.clusterSize)
	}
	unit := int64(1) << compUnit
	return &compressedReader{rr: rr, unit: unit, unitSize: unit * v.clusterSize, cached: -1}, nil
}

// Size reports the size of the data.
func (c *compressedReader) Size() int64 { return c.rr.dataSize }

// ReadAt reads len(p) bytes of the data at off, or fewer and io.EOF at its
// end. Units stored as they are read straight into p; compressed units are
// read whole, decompressed, and the last one kept.
func (c *compressedReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("ntfs: negative offset")
	}
	size := c.rr.dataSize
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p, eof = p[:size-off], io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= c.rr.initSize {
			clear(p[n:])
			n = len(p)
			break
		}
		u := pos / c.unitSize
		within := pos - u*c.unitSize
		chunk := p[n : n+int(min(int64(len(p)-n), c.unitSize-within, c.rr.initSize-pos))]
		if err := c.readUnit(chunk, u, within); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, eof
}

// readUnit fills p with unit u's data from byte within of it.
func (c *compressedReader) readUnit(p []byte, u, within int64) error {
	stored, holes, mapped := c.unitRuns(u)
	switch {
	case holes == 0:
		// Stored as it is: the runReader reads the clusters.
		_, err := c.rr.ReadAt(p, u*c.unitSize+within)
		if err == io.EOF {
			err = nil
		}
		return err
	case stored == 0:
		clear(p)
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != u {
		c.cached = -1
		if c.buf == nil {
			c.buf = make([]byte, c.unitSize)
		}
		cs := c.rr.vol.clusterSize
		if int64(cap(c.comp)) < stored*cs {
			c.comp = make([]byte, stored*cs)
		}
		c.comp = c.comp[:stored*cs]
		pos := int64(0)
		for _, r := range mapped {
			if err := readAt(c.rr.vol.r, c.comp[pos:pos+r.Len*cs], r.LCN*cs); err != nil {
				return err
			}
			pos += r.Len * cs
		}
		if err := decompressLZNT1(c.buf, c.comp); err != nil {
			return fmt.Errorf("compression unit %d: %w", u, err)
		}
		c.cached = u
	}
	copy(p, c.buf[within:])
	return nil
}

// unitRuns returns how many clusters of unit u the runlist maps to stored
// clusters and how many to holes, and the stored clusters as runs, in order.
// A unit without holes is stored as it is (the last unit of the data may be
// mapped only in part).
func (c *compressedReader) unitRuns(u int64) (stored, holes int64, mapped []run) {
	first, end := u*c.unit, (u+1)*c.unit
	runs := c.rr.runs
	i := sort.Search(len(runs), func(i int) bool { return runs[i].VCN+runs[i].Len > first })
	for ; i < len(runs) && runs[i].VCN < end; i++ {
		r := runs[i]
		lo, hi := max(r.VCN, first), min(r.VCN+r.Len, end)
		if r.LCN == sparse {
			holes += hi - lo
			continue
		}
		stored += hi - lo
		mapped = append(mapped, run{VCN: lo, LCN: r.LCN + lo - r.VCN, Len: hi - lo})
	}
	return stored, holes, mapped
}
