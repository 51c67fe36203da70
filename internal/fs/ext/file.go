package ext

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
)

// fileReader reads a regular file's content through its block map.
type fileReader struct {
	r    *reader
	m    *blockMapper
	size int64
	ino  uint32
	path string
}

// openFile returns the content of the regular file (or ea_inode) in: its
// inline data, or a reader through its block map.
func (r *reader) openFile(in *inode, path string) (io.ReaderAt, error) {
	if in.flags&inodeFlagEncrypt != 0 {
		return nil, errors.New("encrypted file")
	}
	if in.flags&inodeFlagInline != 0 {
		data, err := r.inlineData(in)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(data), nil
	}
	maxSize := uint64(math.MaxInt64)
	if n := r.maxLogical(in); n < maxSize/uint64(r.f.blockSize) {
		maxSize = n * uint64(r.f.blockSize)
	}
	if in.size > maxSize {
		return nil, fmt.Errorf("size %d larger than its block map can address (%d)", in.size, maxSize)
	}
	return &fileReader{r: r, m: &blockMapper{r: r, in: in}, size: int64(in.size), ino: in.num, path: path}, nil
}

// Size returns the file's size in bytes.
func (fr *fileReader) Size() int64 { return fr.size }

// ReadAt reads len(p) bytes of the file from off, as io.ReaderAt: fewer, with
// io.EOF, at the end of the file. Holes and unwritten extents read as zeros;
// each run of contiguous blocks is one read of the partition.
func (fr *fileReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, inodeError(fr.ino, fr.path, fmt.Errorf("read at negative offset %d", off))
	}
	if off >= fr.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), fr.size-off))
	bs := fr.r.f.blockSize
	done := 0
	for done < want {
		pos := off + int64(done)
		l, within := uint64(pos/bs), pos%bs
		phys, n, mapped, err := fr.m.find(l)
		if err != nil {
			return done, inodeError(fr.ino, fr.path, err)
		}
		n = min(n, uint64(want-done)/uint64(bs)+2) // n*bs must not overflow
		k := int(min(int64(n)*bs-within, int64(want-done)))
		if mapped {
			if err := fr.r.readAt(p[done:done+k], int64(phys)*bs+within); err != nil {
				return done, inodeError(fr.ino, fr.path, fmt.Errorf("reading data: %w", err))
			}
		} else {
			clear(p[done : done+k])
		}
		done += k
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}
