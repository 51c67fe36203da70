// Package chunker cuts streams into chunks: content-defined (FastCDC) for files, so
// that an insertion moves only the chunks around it, and fixed-size for disk images,
// so that chunks stay aligned to filesystem blocks.
package chunker

import (
	"errors"
	"fmt"
	"io"

	"github.com/jotfs/fastcdc-go"
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

type cdc struct {
	c *fastcdc.Chunker
}

// NewCDC returns a content-defined chunker over r.
func NewCDC(r io.Reader, s Sizes) (Chunker, error) {
	c, err := fastcdc.NewChunker(r, fastcdc.Options{MinSize: s.Min, AverageSize: s.Avg, MaxSize: s.Max})
	if err != nil {
		return nil, fmt.Errorf("chunker: %w", err)
	}
	return &cdc{c: c}, nil
}

func (c *cdc) Next() (Chunk, error) {
	ch, err := c.c.Next()
	if err != nil {
		return Chunk{}, err
	}
	return Chunk{Offset: uint64(ch.Offset), Data: ch.Data}, nil
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
