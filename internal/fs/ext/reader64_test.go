//go:build linux

package ext

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// blockImage is a huge, mostly empty partition: the blocks in its map, zeros
// elsewhere.
type blockImage struct {
	bs     int64
	blocks map[uint64][]byte
}

func (m *blockImage) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for i := off / m.bs; i*m.bs < off+int64(len(p)); i++ {
		if b, ok := m.blocks[uint64(i)]; ok {
			lo, hi := max(off, i*m.bs), min(off+int64(len(p)), (i+1)*m.bs)
			copy(p[lo-off:hi-off], b[lo-i*m.bs:])
		}
	}
	return len(p), nil
}

// TestReader64BitBlocks reads a file whose extent tree node, data and xattr
// block lie past block 2^32, on a filesystem of 2^36 blocks (256 TiB): too
// large to make for a test, so the filesystem is put together in memory.
func TestReader64BitBlocks(t *testing.T) {
	const bs = 4096
	le := binary.LittleEndian
	img := &blockImage{bs: bs, blocks: map[uint64][]byte{}}
	block := func(n uint64) []byte {
		b := make([]byte, bs)
		img.blocks[n] = b
		return b
	}
	var (
		leaf  uint64 = 1<<33 + 5
		data1 uint64 = 1<<34 + 7 // 3 blocks, logical 0-2
		data2 uint64 = 1<<35 + 1 // 1 block, logical 10
		xattr uint64 = 1<<33 + 9
	)
	for i := range uint64(3) {
		copy(block(data1+i), bytes.Repeat([]byte{byte('a' + i)}, bs))
	}
	copy(block(data2), bytes.Repeat([]byte{'z'}, bs))
	copy(block(data2+1), bytes.Repeat([]byte{'!'}, bs)) // under an unwritten extent

	extent := func(b []byte, logical uint32, n uint16, phys uint64) {
		le.PutUint32(b, logical)
		le.PutUint16(b[4:], n)
		le.PutUint16(b[6:], uint16(phys>>32))
		le.PutUint32(b[8:], uint32(phys))
	}
	l := block(leaf)
	le.PutUint16(l, extentMagic)
	le.PutUint16(l[2:], 3)
	le.PutUint16(l[4:], 340)
	extent(l[12:], 0, 3, data1)
	extent(l[24:], 10, 1, data2)
	extent(l[36:], 11, 1+extentUninit, data2+1)

	x := block(xattr)
	le.PutUint32(x, xattrMagic)
	le.PutUint32(x[8:], 1)
	x[32], x[33] = 3, 1 // "user.big"
	le.PutUint16(x[34:], 4000)
	le.PutUint32(x[40:], 5)
	copy(x[48:], "big")
	copy(x[4000:], "value")

	in := &inode{num: 12, mode: modeRegular | 0o644, links: 1, size: 12*bs - 100, flags: inodeFlagExtents, fileACL: xattr}
	le.PutUint16(in.block[0:], extentMagic)
	le.PutUint16(in.block[2:], 1)
	le.PutUint16(in.block[4:], 4)
	le.PutUint16(in.block[6:], 1)
	le.PutUint32(in.block[12+4:], uint32(leaf))
	le.PutUint16(in.block[12+8:], uint16(leaf>>32))

	const blocks = 1 << 36
	f := &filesystem{r: img, size: blocks * bs, blockSize: bs, clusterRatio: 1, inodeSize: 256,
		sb: &superblock{blocksCount: blocks, firstIno: 11, featureIncompat: incompat64Bit}}
	r := &reader{f: f}
	r.cache = newBlockCache(f, cacheChunkSize, 8, r.readAt)

	e, err := r.entry(in, "big", "/big", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Xattrs) != 1 || e.Xattrs[0].Name != "user.big" || string(e.Xattrs[0].Value) != "value" {
		t.Fatalf("xattrs %v", e.Xattrs)
	}
	fr, err := r.Open(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(fr, 0, e.Size))
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Join([][]byte{
		bytes.Repeat([]byte{'a'}, bs), bytes.Repeat([]byte{'b'}, bs), bytes.Repeat([]byte{'c'}, bs),
		make([]byte, 7*bs), bytes.Repeat([]byte{'z'}, bs), make([]byte, bs-100),
	}, nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("content differs (%d bytes, want %d)", len(got), len(want))
	}
}
