package ext

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// Inode flags (i_flags).
const (
	inodeFlagEncrypt  = 0x800      // EXT4_ENCRYPT_FL: content and names are encrypted
	inodeFlagHugeFile = 0x40000    // EXT4_HUGE_FILE_FL: i_blocks counts filesystem blocks, not sectors
	inodeFlagExtents  = 0x80000    // EXT4_EXTENTS_FL: i_block holds an extent tree
	inodeFlagEAInode  = 0x200000   // EXT4_EA_INODE_FL: the inode holds an xattr value
	inodeFlagInline   = 0x10000000 // EXT4_INLINE_DATA_FL: content in i_block and the system.data xattr
)

// File types, the high 4 bits of i_mode.
const (
	modeTypeMask = 0xF000
	modeFIFO     = 0x1000
	modeCharDev  = 0x2000
	modeDir      = 0x4000
	modeBlockDev = 0x6000
	modeRegular  = 0x8000
	modeSymlink  = 0xA000
	modeSocket   = 0xC000
)

// Extent tree constants.
const (
	extentMagic    = 0xF30A // eh_magic
	extentMaxDepth = 5      // the kernel's EXT4_MAX_EXTENT_DEPTH
	// extentUninit is added to ee_len of an extent allocated but not written.
	extentUninit = 32768
)

// inodeBaseSize is the size of the original (revision 0) inode; larger inodes
// add i_extra_isize bytes of fields after it, then in-inode xattrs.
const inodeBaseSize = 128

// inode holds the fields of an on-disk inode; the comment on each names the
// on-disk field and its byte offset in the inode. Probe uses only the fields
// that map its blocks; the file reader uses them all.
type inode struct {
	num      uint32   // the inode's number (not stored)
	mode     uint16   // i_mode, 0x00: file type and permissions
	uid      uint32   // i_uid 0x02, l_i_uid_high 0x78
	gid      uint32   // i_gid 0x18, l_i_gid_high 0x7A
	size     uint64   // i_size_lo 0x04, i_size_high 0x6C (regular files, or any with largedir)
	atime    int64    // i_atime 0x08, i_atime_extra 0x8C: nanoseconds since the epoch
	ctime    int64    // i_ctime 0x0C, i_ctime_extra 0x84
	mtime    int64    // i_mtime 0x10, i_mtime_extra 0x88
	links    uint16   // i_links_count, 0x1A
	blocks   uint64   // i_blocks_lo 0x1C, l_i_blocks_high 0x74 (huge_file): in 512-byte sectors
	flags    uint32   // i_flags, 0x20
	block    [60]byte // i_block, 0x28: block pointers, an extent tree root or inline data
	fileACL  uint64   // i_file_acl_lo 0x68, l_i_file_acl_high 0x76: the external xattr block
	extraLen int      // i_extra_isize, 0x80: bytes of fields after the first 128
	// xattrArea is the in-inode xattr space, after the extra fields, when it
	// starts with the xattr magic number: a copy, not shared with any cache.
	xattrArea []byte
}

// readInode reads inode number ino (its first 128 bytes: the fields that map
// its blocks).
func (f *filesystem) readInode(ino uint32) (*inode, error) {
	off, err := f.inodeOffset(ino)
	if err != nil {
		return nil, err
	}
	b := make([]byte, inodeBaseSize)
	if err := readFull(f.r, f.size, b, off); err != nil {
		return nil, fmt.Errorf("reading inode %d: %w", ino, err)
	}
	return f.parseInode(ino, b)
}

// inodeOffset returns the byte offset of inode ino in the partition.
func (f *filesystem) inodeOffset(ino uint32) (int64, error) {
	if ino == 0 || ino > f.sb.inodesCount {
		return 0, fmt.Errorf("inode %d of %d", ino, f.sb.inodesCount)
	}
	g, i := (ino-1)/f.sb.inodesPerGroup, (ino-1)%f.sb.inodesPerGroup
	return int64(f.groups[g].inodeTable)*f.blockSize + int64(i)*f.inodeSize, nil
}

// parseInode decodes inode ino from b: its first 128 bytes, or the whole
// inode (s_inode_size bytes) with its extra fields and in-inode xattrs.
func (f *filesystem) parseInode(ino uint32, b []byte) (*inode, error) {
	le := binary.LittleEndian
	in := &inode{
		num:     ino,
		mode:    le.Uint16(b[0x00:]),
		uid:     uint32(le.Uint16(b[0x02:])) | uint32(le.Uint16(b[0x78:]))<<16,
		gid:     uint32(le.Uint16(b[0x18:])) | uint32(le.Uint16(b[0x7A:]))<<16,
		size:    uint64(le.Uint32(b[0x04:])),
		links:   le.Uint16(b[0x1A:]),
		blocks:  uint64(le.Uint32(b[0x1C:])),
		flags:   le.Uint32(b[0x20:]),
		fileACL: uint64(le.Uint32(b[0x68:])) | uint64(le.Uint16(b[0x76:]))<<32,
	}
	// As the kernel's ext4_isize: i_size_high is the size's high half for
	// regular files, and for folders only with largedir (it was i_dir_acl).
	if in.mode&modeTypeMask == modeRegular || f.sb.incompat(incompatLargeDir) {
		in.size |= uint64(le.Uint32(b[0x6C:])) << 32
	}
	if f.sb.rocompat(rocompatHugeFile) {
		in.blocks |= uint64(le.Uint16(b[0x74:])) << 32
		if in.flags&inodeFlagHugeFile != 0 {
			in.blocks *= uint64(f.blockSize / 512)
		}
	}
	copy(in.block[:], b[0x28:0x28+60])
	var atimeX, ctimeX, mtimeX uint32
	if len(b) > inodeBaseSize {
		in.extraLen = int(le.Uint16(b[0x80:]))
		if in.extraLen%4 != 0 || inodeBaseSize+in.extraLen > len(b) {
			return nil, fmt.Errorf("%d extra bytes in a %d-byte inode", in.extraLen, len(b))
		}
		// Each extra field counts only if i_extra_isize covers it.
		field := func(off int) uint32 {
			if off+4 <= inodeBaseSize+in.extraLen {
				return le.Uint32(b[off:])
			}
			return 0
		}
		ctimeX, mtimeX, atimeX = field(0x84), field(0x88), field(0x8C)
		x := b[inodeBaseSize+in.extraLen:]
		if len(x) >= 4 && le.Uint32(x) == xattrMagic {
			in.xattrArea = append([]byte(nil), x[4:]...)
		}
	}
	in.atime = decodeTime(le.Uint32(b[0x08:]), atimeX)
	in.ctime = decodeTime(le.Uint32(b[0x0C:]), ctimeX)
	in.mtime = decodeTime(le.Uint32(b[0x10:]), mtimeX)
	return in, nil
}

// decodeTime returns the nanoseconds since the epoch of an inode timestamp:
// base is signed seconds; the low 2 bits of extra extend them by multiples
// of 2^32 (the kernel's ext4_decode_extra_time), its other 30 bits are
// nanoseconds. Times past the year 2262 saturate.
func decodeTime(base, extra uint32) int64 {
	sec := int64(int32(base)) + int64(extra&3)<<32
	ns := int64(extra >> 2)
	if sec >= math.MaxInt64/1_000_000_000-1 {
		return math.MaxInt64
	}
	return sec*1e9 + ns
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
