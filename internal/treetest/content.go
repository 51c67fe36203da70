//go:build linux

package treetest

import (
	"bytes"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// contentChunk is how much of each file content compares read at a time.
const contentChunk = 1 << 20

// content compares two regular files of equal size byte for byte; files of
// different sizes were already reported by meta.
func (c *comparer) content(rel string, st *[2]unix.Stat_t) {
	size := st[wantSide].Size
	if size != st[gotSide].Size || size == 0 {
		return
	}
	var files [2]*os.File
	for side := range 2 {
		f, err := openNoATime(c.path(side, rel), 0)
		if err != nil {
			c.addf(rel, "open in %s: %v", sideName[side], err)
			return
		}
		defer f.Close()
		files[side] = f
	}
	if c.buf[wantSide] == nil {
		c.buf = [2][]byte{make([]byte, contentChunk), make([]byte, contentChunk)}
	}
	off, err := firstDifference(files[wantSide], files[gotSide], size, c.buf)
	switch {
	case err != nil:
		c.addf(rel, "read content: %v", err)
	case off >= 0:
		c.addf(rel, "content differs at byte %d", off)
	}
}

// firstDifference returns the offset of the first byte where files a and b,
// both of the given size, differ, or -1 if they are equal. It reads a chunk
// at a time into buf's two buffers of equal length and skips ranges that are holes in both files (they read as
// zeros in both), so a mostly-hole file costs little to compare.
func firstDifference(a, b *os.File, size int64, buf [2][]byte) (int64, error) {
	bufA, bufB := buf[0], buf[1]
	for off := int64(0); off < size; {
		next := min(nextData(a, off, size), nextData(b, off, size))
		if next > off {
			off = next
			continue
		}
		n := int(min(int64(len(bufA)), size-off))
		if err := readFullAt(a, bufA[:n], off); err != nil {
			return 0, err
		}
		if err := readFullAt(b, bufB[:n], off); err != nil {
			return 0, err
		}
		if !bytes.Equal(bufA[:n], bufB[:n]) {
			for i := range n {
				if bufA[i] != bufB[i] {
					return off + int64(i), nil
				}
			}
		}
		off += int64(n)
	}
	return -1, nil
}

// nextData returns the offset of the first data at or after off in f: off
// itself if the filesystem cannot tell holes, size if only a hole follows.
func nextData(f *os.File, off, size int64) int64 {
	next, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		return size
	case err != nil:
		return off
	}
	return min(next, size)
}

// readFullAt fills p from f at off; a file shorter than off+len(p) is an error.
func readFullAt(f *os.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
