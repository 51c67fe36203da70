// Package chunker cuts streams into chunks: content-defined (FastCDC) for files, so
// that an insertion moves only the chunks around it, and fixed-size for disk images,
// so that chunks stay aligned to filesystem blocks.
package chunker

import (
	"errors"
	"fmt"
	"io"
	"runtime"
)

// Chunk is one piece of a stream. Data is valid only until the next call of Next.
type Chunk struct {
	Offset uint64
	Data   []byte
}

// Chunker returns the chunks of a stream in order, then io.EOF.
type Chunker interface {
	Next() (Chunk, error)
}

// Sizes are the content-defined chunker's minimum, average and maximum chunk sizes.
type Sizes struct {
	Min, Avg, Max int
}

// DefaultSizes are the sizes for files: 512 KiB, 1 MiB, 8 MiB.
var DefaultSizes = Sizes{Min: 512 << 10, Avg: 1 << 20, Max: 8 << 20}

// CDC is a content-defined chunker (FastCDC with normalized chunking): a gear hash
// rolls over the data, and a chunk ends where the hash's top bits are all zero, with
// a stricter condition before the average size and a looser one after it. The gear
// table comes from a seed, so that chunk boundaries reveal nothing to those who do
// not know it. A CDC reads ahead only as far as it needs to find the next cut, so its
// buffer is a few average chunks, not twice the maximum; Reset reuses it.
type CDC struct {
	table        [256]uint64
	min, avg     int
	max          int
	maskS, maskL uint64

	rd         io.Reader
	buf        []byte  // small or *large
	small      []byte  // this chunker's own buffer for small streams
	large      *[]byte // a shared large buffer while chunking a large stream
	start, end int     // unread data is buf[start:end]
	eof        bool
	off        uint64
	scanPos    int    // how far into buf[start:] the search for the next cut got
	scanFP     uint64 // the gear hash at scanPos
}

// NewCDC returns a content-defined chunker over r with a gear table from seed. A nil
// r gives a chunker that holds no buffer until Reset.
func NewCDC(r io.Reader, s Sizes, seed uint64) (*CDC, error) {
	if s.Min < 64 || s.Min > s.Avg || s.Avg > s.Max || s.Avg&(s.Avg-1) != 0 {
		return nil, fmt.Errorf("chunker: invalid sizes %d/%d/%d (the average must be a power of two)", s.Min, s.Avg, s.Max)
	}
	bits := 0
	for 1<<bits < s.Avg {
		bits++
	}
	const normalization = 2
	c := &CDC{
		min: s.Min, avg: s.Avg, max: s.Max,
		maskS: topBits(bits + normalization),
		maskL: topBits(bits - normalization),
	}
	// splitmix64 fills the gear table from the seed.
	x := seed
	for i := range c.table {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		c.table[i] = z ^ (z >> 31)
	}
	if r != nil {
		c.Reset(r, -1)
	}
	return c, nil
}

func topBits(n int) uint64 { return ^uint64(0) << (64 - n) }

// Reset makes c chunk r from its start. size is how long r is, or -1 if unknown:
// a small stream gets a small buffer, a large one shares large buffers with other
// chunkers, so that many chunkers of small files hold little memory.
func (c *CDC) Reset(r io.Reader, size int64) {
	c.rd, c.start, c.end, c.eof, c.off = r, 0, 0, false, 0
	c.scanPos, c.scanFP = 0, 0
	c.Release()
	switch {
	case size >= 0 && size < smallBuf:
		if c.small == nil {
			c.small = make([]byte, smallBuf)
		}
		c.buf = c.small
	default:
		var bp *[]byte
		select {
		case bp = <-largeBufs:
		default:
		}
		if bp == nil {
			b := make([]byte, min(c.max, max(4*c.avg, smallBuf)))
			bp = &b
		}
		c.large, c.buf = bp, *bp
	}
}

// Release gives back the large buffer c may hold; call it when a stream is done.
func (c *CDC) Release() {
	if c.large != nil {
		if *c.large != nil {
			select {
			case largeBufs <- c.large:
			default: // enough kept already
			}
		}
		c.large, c.buf = nil, nil
	}
}

// smallBuf is the buffer of a chunker of a stream shorter than it: read whole at once.
const smallBuf = 1 << 20

// largeBufs keeps a few large buffers for large streams, so that they are reused
// rather than left to the garbage collector. A buffer is made only when a large
// stream needs one and none is free, so there are never more than large streams
// chunked at once.
var largeBufs = make(chan *[]byte, runtime.GOMAXPROCS(0))

// Next returns the next chunk; its Data is valid until the next call.
func (c *CDC) Next() (Chunk, error) {
	for {
		data := c.buf[c.start:c.end]
		if c.eof && len(data) == 0 {
			return Chunk{}, io.EOF
		}
		// The cut is final once the data reaches the maximum chunk size or the end
		// of the stream; before that only a cut found inside the data is.
		n, ok := c.cut(data, c.eof || len(data) >= c.max)
		if ok {
			ch := Chunk{Offset: c.off, Data: data[:n]}
			c.start += n
			c.off += uint64(n)
			c.scanPos, c.scanFP = 0, 0
			return ch, nil
		}
		if err := c.fill(); err != nil {
			return Chunk{}, err
		}
	}
}

// fill reads more of the stream into the buffer, making room first by moving the
// unread data to the front or, when the unread data fills the buffer, by growing it
// (never beyond the maximum chunk size, since a cut is final by then).
func (c *CDC) fill() error {
	if c.start > 0 && len(c.buf)-c.end < len(c.buf)/2 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	if c.end == len(c.buf) {
		if c.large != nil {
			// Chunks this long are rare: the grown buffer is not kept for the
			// next stream, and the one it replaces is not kept alongside it.
			*c.large = nil
		}
		nb := make([]byte, min(max(2*len(c.buf), smallBuf), c.max))
		c.end = copy(nb, c.buf[c.start:c.end])
		c.start = 0
		c.buf = nb
	}
	m, err := io.ReadFull(c.rd, c.buf[c.end:])
	c.end += m
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		c.eof = true
	} else if err != nil {
		return err
	}
	return nil
}

// cut returns the length of the chunk at the start of data and true, or false if
// data ends before a cut and final is false: then the next call, with more data,
// goes on from where this one stopped. A final cut ends at most at the maximum size.
func (c *CDC) cut(data []byte, final bool) (int, bool) {
	if len(data) <= c.min {
		return len(data), final
	}
	n := min(len(data), c.max)
	normal := min(n, c.avg)
	i, fp := c.scanPos, c.scanFP
	if i < c.min {
		i, fp = c.min, 0
	}
	for ; i < normal; i++ {
		fp = (fp << 1) + c.table[data[i]]
		if fp&c.maskS == 0 {
			return i + 1, true
		}
	}
	for ; i < n; i++ {
		fp = (fp << 1) + c.table[data[i]]
		if fp&c.maskL == 0 {
			return i + 1, true
		}
	}
	if final {
		return n, true
	}
	c.scanPos, c.scanFP = i, fp
	return 0, false
}

type fixed struct {
	r    io.Reader
	buf  []byte
	off  uint64
	done bool
}

// NewFixed returns a chunker that cuts r into chunks of exactly size bytes (the last
// one may be shorter).
func NewFixed(r io.Reader, size int) Chunker {
	return &fixed{r: r, buf: make([]byte, size)}
}

func (f *fixed) Next() (Chunk, error) {
	if f.done {
		return Chunk{}, io.EOF
	}
	n, err := io.ReadFull(f.r, f.buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		f.done = true
		err = nil
	}
	if err != nil {
		return Chunk{}, err
	}
	if n == 0 {
		return Chunk{}, io.EOF
	}
	c := Chunk{Offset: f.off, Data: f.buf[:n]}
	f.off += uint64(n)
	return c, nil
}
