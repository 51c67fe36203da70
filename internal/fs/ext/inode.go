package ext

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Inode flags (i_flags).
const (
	inodeFlagExtents = 0x80000 // EXT4_EXTENTS_FL: i_block holds an extent tree
)

// Extent tree constants.
const (
	extentMagic    = 0xF30A // eh_magic
	extentMaxDepth = 5      // the kernel's EXT4_MAX_EXTENT_DEPTH
	// extentUninit is added to ee_len of an extent allocated but not written.
	extentUninit = 32768
)

// inode holds the fields of an on-disk inode that map its blocks; the comment
// on each names the on-disk field and its byte offset in the inode.
type inode struct {
	num   uint32   // the inode's number (not stored)
	mode  uint16   // i_mode, 0x00
	size  uint64   // i_size_lo 0x04, i_size_high 0x6C
	flags uint32   // i_flags, 0x20
	block [60]byte // i_block, 0x28: block pointers, an extent tree root or inline data
}

// readInode reads inode number ino.
func (f *filesystem) readInode(ino uint32) (*inode, error) {
	if ino == 0 || ino > f.sb.inodesCount {
		return nil, fmt.Errorf("inode %d of %d", ino, f.sb.inodesCount)
	}
	g, i := (ino-1)/f.sb.inodesPerGroup, (ino-1)%f.sb.inodesPerGroup
	off := int64(f.groups[g].inodeTable)*f.blockSize + int64(i)*f.inodeSize
	b := make([]byte, 128) // the fields used are in the first 128 bytes
	if err := readFull(f.r, f.size, b, off); err != nil {
		return nil, fmt.Errorf("reading inode %d: %w", ino, err)
	}
	le := binary.LittleEndian
	in := &inode{
		num:   ino,
		mode:  le.Uint16(b[0x00:]),
		size:  uint64(le.Uint32(b[0x04:])) | uint64(le.Uint32(b[0x6C:]))<<32,
		flags: le.Uint32(b[0x20:]),
	}
	copy(in.block[:], b[0x28:0x28+60])
	return in, nil
}

// blockRun maps n logical blocks of a file, from logical, to the physical
// blocks from physical on.
type blockRun struct {
	logical, physical, n uint64
}

// blockMap is a file's logical to physical block mapping, sorted by logical
// block; blocks it does not map are holes.
type blockMap []blockRun

// lookup returns the physical block of logical block l, and whether it is
// mapped.
func (m blockMap) lookup(l uint64) (uint64, bool) {
	i := sort.Search(len(m), func(i int) bool { return m[i].logical+m[i].n > l })
	if i == len(m) || m[i].logical > l {
		return 0, false
	}
	return m[i].physical + l - m[i].logical, true
}

// blockMap returns the mapping of in's first nblocks logical blocks, from its
// extent tree or its direct and indirect block pointers. Every physical block,
// and every block of the tree, is checked to lie inside the filesystem.
func (f *filesystem) blockMap(in *inode, nblocks uint64) (blockMap, error) {
	var m blockMap
	var err error
	if in.flags&inodeFlagExtents != 0 {
		err = f.extentTree(in.block[:], -1, nblocks, &m, new(int))
	} else {
		err = f.indirectMap(in.block[:], nblocks, &m)
	}
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", in.num, err)
	}
	return m, nil
}

// addRun appends a run to m, merging it with the last one when both are
// contiguous, after checking that its blocks are inside the filesystem and
// that it starts after the last run: both block maps are walked in logical
// order, so m stays sorted, and a damaged tree or pointer block cannot map a
// logical block twice (nor make m longer than the file).
func (f *filesystem) addRun(m *blockMap, logical, physical, n uint64) error {
	if physical < uint64(f.sb.firstDataBlock) || physical >= f.sb.blocksCount || f.sb.blocksCount-physical < n {
		return fmt.Errorf("blocks %d+%d outside the filesystem", physical, n)
	}
	if k := len(*m); k > 0 {
		last := &(*m)[k-1]
		if logical < last.logical+last.n {
			return fmt.Errorf("logical block %d mapped twice", logical)
		}
		if last.logical+last.n == logical && last.physical+last.n == physical {
			last.n += n
			return nil
		}
	}
	*m = append(*m, blockRun{logical, physical, n})
	return nil
}

// extentTree adds the extents of the extent tree node b to m (only those below
// logical block limit). depth is the depth the node must have, -1 for the root;
// nodes counts the blocks read, to bound the walk.
func (f *filesystem) extentTree(b []byte, depth int, limit uint64, m *blockMap, nodes *int) error {
	le := binary.LittleEndian
	if len(b) < 12 || le.Uint16(b[0:]) != extentMagic {
		return fmt.Errorf("bad extent header")
	}
	entries, d := int(le.Uint16(b[2:])), int(le.Uint16(b[6:]))
	if d > extentMaxDepth || (depth >= 0 && d != depth) || 12+12*entries > len(b) {
		return fmt.Errorf("bad extent node (depth %d, %d entries)", d, entries)
	}
	for i := range entries {
		e := b[12+12*i:]
		logical := uint64(le.Uint32(e[0:]))
		if logical >= limit {
			break
		}
		if d == 0 {
			n := uint64(le.Uint16(e[4:]))
			if n > extentUninit {
				n -= extentUninit
			}
			physical := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if n == 0 {
				continue
			}
			if err := f.addRun(m, logical, physical, min(n, limit-logical)); err != nil {
				return err
			}
			continue
		}
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		if child < uint64(f.sb.firstDataBlock) || child >= f.sb.blocksCount {
			return fmt.Errorf("extent node at block %d outside the filesystem", child)
		}
		// A tree mapping limit blocks has at most limit leaves, and fewer
		// index nodes than leaves.
		if *nodes++; uint64(*nodes) > 2*limit+extentMaxDepth {
			return fmt.Errorf("extent tree has more nodes than blocks")
		}
		nb := make([]byte, f.blockSize)
		if err := readFull(f.r, f.size, nb, int64(child)*f.blockSize); err != nil {
			return fmt.Errorf("reading extent node: %w", err)
		}
		if err := f.extentTree(nb, d-1, limit, m, nodes); err != nil {
			return err
		}
	}
	return nil
}

// indirectMap adds the first nblocks blocks mapped by the block pointers b
// (i_block: 12 direct, then single, double and triple indirect) to m.
func (f *filesystem) indirectMap(b []byte, nblocks uint64, m *blockMap) error {
	le := binary.LittleEndian
	perBlock := uint64(f.blockSize / 4)
	logical := uint64(0)
	for i := 0; i < 12 && logical < nblocks; i++ {
		if p := uint64(le.Uint32(b[4*i:])); p != 0 {
			if err := f.addRun(m, logical, p, 1); err != nil {
				return err
			}
		}
		logical++
	}
	span := perBlock // logical blocks under one pointer of the next level
	for level := 1; level <= 3 && logical < nblocks; level++ {
		p := uint64(le.Uint32(b[4*(11+level):]))
		if p != 0 {
			if err := f.indirectBlock(p, level, logical, nblocks, m); err != nil {
				return err
			}
		}
		logical += span
		span *= perBlock
	}
	return nil
}

// indirectBlock adds the blocks mapped by the indirect block p of the given
// level (1 single, 2 double, 3 triple), which maps logical blocks from first,
// to m, up to logical block limit.
func (f *filesystem) indirectBlock(p uint64, level int, first, limit uint64, m *blockMap) error {
	if p < uint64(f.sb.firstDataBlock) || p >= f.sb.blocksCount {
		return fmt.Errorf("indirect block %d outside the filesystem", p)
	}
	b := make([]byte, f.blockSize)
	if err := readFull(f.r, f.size, b, int64(p)*f.blockSize); err != nil {
		return fmt.Errorf("reading indirect block: %w", err)
	}
	perBlock := uint64(f.blockSize / 4)
	span := uint64(1)
	for range level - 1 {
		span *= perBlock
	}
	for i := uint64(0); i < perBlock && first+i*span < limit; i++ {
		q := uint64(binary.LittleEndian.Uint32(b[4*i:]))
		if q == 0 {
			continue
		}
		var err error
		if level == 1 {
			err = f.addRun(m, first+i, q, 1)
		} else {
			err = f.indirectBlock(q, level-1, first+i*span, limit, m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
