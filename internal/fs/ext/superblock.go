package ext

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"cairn/internal/fs"
)

// superblockOffset is where the superblock starts, whatever the block size;
// superblockSize is its length.
const (
	superblockOffset = 1024
	superblockSize   = 1024
	magic            = 0xEF53
)

// Feature flags (s_feature_compat, s_feature_incompat, s_feature_ro_compat).
// Only those that change where things are, or the name blkid gives the
// filesystem, are named.
const (
	compatHasJournal   = 0x0004 // COMPAT_HAS_JOURNAL: an internal (or external) journal
	compatSparseSuper2 = 0x0200 // COMPAT_SPARSE_SUPER2: backups only in s_backup_bgs

	incompatFiletype   = 0x0002 // INCOMPAT_FILETYPE: directory entries hold the file type
	incompatRecover    = 0x0004 // INCOMPAT_RECOVER: the journal needs replaying
	incompatJournalDev = 0x0008 // INCOMPAT_JOURNAL_DEV: this is an external journal
	incompatMetaBG     = 0x0010 // INCOMPAT_META_BG: split group descriptor table
	incompat64Bit      = 0x0080 // INCOMPAT_64BIT: 64-bit block numbers, s_desc_size descriptors
	incompatCsumSeed   = 0x2000 // INCOMPAT_CSUM_SEED: metadata checksums seeded by s_checksum_seed
	incompatLargeDir   = 0x4000 // INCOMPAT_LARGEDIR: folders over 2 GiB, 3-level htrees

	rocompatSparseSuper  = 0x0001 // RO_COMPAT_SPARSE_SUPER: backups in groups 0, 1, 3^n, 5^n, 7^n
	rocompatLargeFile    = 0x0002 // RO_COMPAT_LARGE_FILE
	rocompatBtreeDir     = 0x0004 // RO_COMPAT_BTREE_DIR
	rocompatHugeFile     = 0x0008 // RO_COMPAT_HUGE_FILE: 48-bit i_blocks, in blocks with EXT4_HUGE_FILE_FL
	rocompatGdtCsum      = 0x0010 // RO_COMPAT_GDT_CSUM: descriptor checksums, uninit groups
	rocompatBigalloc     = 0x0200 // RO_COMPAT_BIGALLOC: bitmaps count clusters, not blocks
	rocompatMetadataCsum = 0x0400 // RO_COMPAT_METADATA_CSUM: crc32c everywhere, uninit groups

	// ext3Incompat and ext3ROCompat are the features ext3 knows (as blkid
	// defines them): a filesystem with any other is ext4.
	ext3Incompat = incompatFiletype | incompatRecover | incompatMetaBG
	ext3ROCompat = rocompatSparseSuper | rocompatLargeFile | rocompatBtreeDir

	// knownIncompat is every incompatible feature that Probe has no need to
	// understand or that it handles: the rest (and unknown ones) may change the
	// layout, so a filesystem with them is refused.
	knownIncompat = 0x0001 | // COMPRESSION (never in Linux; layout unchanged)
		incompatFiletype | incompatRecover | incompatJournalDev | incompatMetaBG |
		0x0040 | // EXTENTS
		incompat64Bit |
		0x0100 | // MMP: its block is in the bitmap
		0x0200 | // FLEX_BG: handled, descriptors are trusted wherever they point
		0x0400 | // EA_INODE
		0x1000 | // DIRDATA
		0x2000 | // CSUM_SEED
		0x4000 | // LARGEDIR
		0x8000 | // INLINE_DATA
		0x10000 | // ENCRYPT
		0x20000 // CASEFOLD
)

// Group descriptor flags (bg_flags).
const (
	bgBlockUninit = 0x0002 // EXT4_BG_BLOCK_UNINIT: the block bitmap was never written
)

// superblock holds the fields of the ext2/3/4 superblock that Probe uses; the
// comment on each names the on-disk field and its byte offset in the superblock.
type superblock struct {
	inodesCount      uint32    // s_inodes_count, 0x00
	blocksCount      uint64    // s_blocks_count_lo 0x04, s_blocks_count_hi 0x150 (64bit only)
	firstDataBlock   uint32    // s_first_data_block, 0x14: the block group 0 starts at
	logBlockSize     uint32    // s_log_block_size, 0x18: block size is 1024 << this
	logClusterSize   uint32    // s_log_cluster_size, 0x1C: cluster size is 1024 << this (bigalloc)
	blocksPerGroup   uint32    // s_blocks_per_group, 0x20
	clustersPerGroup uint32    // s_clusters_per_group, 0x24: bits in a block bitmap (bigalloc)
	inodesPerGroup   uint32    // s_inodes_per_group, 0x28
	magic            uint16    // s_magic, 0x38: 0xEF53
	revLevel         uint32    // s_rev_level, 0x4C: 0 is the original format, 128-byte inodes
	firstIno         uint32    // s_first_ino, 0x54 (revision 1 on; 11 before): the first inode of files
	inodeSize        uint16    // s_inode_size, 0x58 (revision 1 on)
	featureCompat    uint32    // s_feature_compat, 0x5C
	featureIncompat  uint32    // s_feature_incompat, 0x60
	featureROCompat  uint32    // s_feature_ro_compat, 0x64
	uuid             [16]byte  // s_uuid, 0x68
	volumeName       [16]byte  // s_volume_name, 0x78: NUL-padded
	reservedGDT      uint16    // s_reserved_gdt_blocks, 0xCE: blocks after each descriptor table copy kept for growth
	journalInum      uint32    // s_journal_inum, 0xE0: the journal's inode, normally 8; 0 for an external journal
	descSize         uint16    // s_desc_size, 0xFE: group descriptor size with 64bit
	firstMetaBG      uint32    // s_first_meta_bg, 0x104: first descriptor block in meta_bg layout
	backupBGs        [2]uint32 // s_backup_bgs, 0x24C: the groups holding backups with sparse_super2
	checksumSeed     uint32    // s_checksum_seed, 0x270: with csum_seed, the seed of metadata checksums
}

// parseSuperblock decodes the 1024 bytes of a superblock; it checks only the
// magic number (checkGeometry checks the rest).
func parseSuperblock(b []byte) (*superblock, error) {
	if len(b) < superblockSize {
		return nil, fmt.Errorf("ext: superblock: %w", fs.ErrUnknown)
	}
	le := binary.LittleEndian
	sb := &superblock{
		inodesCount:      le.Uint32(b[0x00:]),
		blocksCount:      uint64(le.Uint32(b[0x04:])),
		firstDataBlock:   le.Uint32(b[0x14:]),
		logBlockSize:     le.Uint32(b[0x18:]),
		logClusterSize:   le.Uint32(b[0x1C:]),
		blocksPerGroup:   le.Uint32(b[0x20:]),
		clustersPerGroup: le.Uint32(b[0x24:]),
		inodesPerGroup:   le.Uint32(b[0x28:]),
		magic:            le.Uint16(b[0x38:]),
		revLevel:         le.Uint32(b[0x4C:]),
		firstIno:         11,
		inodeSize:        le.Uint16(b[0x58:]),
		featureCompat:    le.Uint32(b[0x5C:]),
		featureIncompat:  le.Uint32(b[0x60:]),
		featureROCompat:  le.Uint32(b[0x64:]),
		reservedGDT:      le.Uint16(b[0xCE:]),
		journalInum:      le.Uint32(b[0xE0:]),
		descSize:         le.Uint16(b[0xFE:]),
		firstMetaBG:      le.Uint32(b[0x104:]),
	}
	if sb.magic != magic {
		return nil, fmt.Errorf("ext: no superblock magic: %w", fs.ErrUnknown)
	}
	if sb.revLevel > 0 {
		sb.firstIno = le.Uint32(b[0x54:])
	}
	copy(sb.uuid[:], b[0x68:0x78])
	copy(sb.volumeName[:], b[0x78:0x88])
	sb.backupBGs[0] = le.Uint32(b[0x24C:])
	sb.backupBGs[1] = le.Uint32(b[0x250:])
	sb.checksumSeed = le.Uint32(b[0x270:])
	if sb.incompat(incompat64Bit) {
		sb.blocksCount |= uint64(le.Uint32(b[0x150:])) << 32
	}
	return sb, nil
}

func (sb *superblock) compat(f uint32) bool   { return sb.featureCompat&f != 0 }
func (sb *superblock) incompat(f uint32) bool { return sb.featureIncompat&f != 0 }
func (sb *superblock) rocompat(f uint32) bool { return sb.featureROCompat&f != 0 }

// typeName is the name blkid gives the filesystem: ext4 when it has any
// feature ext3 lacks, else ext3 with a journal and ext2 without.
func (sb *superblock) typeName() string {
	switch {
	case sb.featureIncompat&^ext3Incompat != 0 || sb.featureROCompat&^ext3ROCompat != 0:
		return "ext4"
	case sb.compat(compatHasJournal):
		return "ext3"
	default:
		return "ext2"
	}
}

// label is the volume name, up to its first NUL.
func (sb *superblock) label() string {
	n := 0
	for n < len(sb.volumeName) && sb.volumeName[n] != 0 {
		n++
	}
	return string(sb.volumeName[:n])
}

// uuidString is s_uuid in the canonical lowercase 8-4-4-4-12 form.
func (sb *superblock) uuidString() string {
	u := sb.uuid
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// groupDesc is one group descriptor: where a group's bitmaps and inode table
// are. The low halves are in every descriptor, the high halves only in the
// 64-byte (or larger) descriptors of a 64bit filesystem.
type groupDesc struct {
	blockBitmap uint64 // bg_block_bitmap_lo 0x00, bg_block_bitmap_hi 0x20
	inodeBitmap uint64 // bg_inode_bitmap_lo 0x04, bg_inode_bitmap_hi 0x24
	inodeTable  uint64 // bg_inode_table_lo 0x08, bg_inode_table_hi 0x28
	flags       uint16 // bg_flags 0x12: INODE_UNINIT, BLOCK_UNINIT, ITABLE_ZEROED
	// bitmapCsum is the block bitmap's crc32c with metadata_csum:
	// bg_block_bitmap_csum_lo 0x18, and bg_block_bitmap_csum_hi 0x38 in
	// descriptors of 64 bytes or more (only the low 16 bits are kept in smaller
	// ones).
	bitmapCsum uint32
}

// parseGroupDesc decodes one descriptor of len(b) bytes (32, or s_desc_size).
func parseGroupDesc(b []byte) groupDesc {
	le := binary.LittleEndian
	d := groupDesc{
		blockBitmap: uint64(le.Uint32(b[0x00:])),
		inodeBitmap: uint64(le.Uint32(b[0x04:])),
		inodeTable:  uint64(le.Uint32(b[0x08:])),
		flags:       le.Uint16(b[0x12:]),
		bitmapCsum:  uint32(le.Uint16(b[0x18:])),
	}
	if len(b) >= 64 {
		d.bitmapCsum |= uint32(le.Uint16(b[0x38:])) << 16
		d.blockBitmap |= uint64(le.Uint32(b[0x20:])) << 32
		d.inodeBitmap |= uint64(le.Uint32(b[0x24:])) << 32
		d.inodeTable |= uint64(le.Uint32(b[0x28:])) << 32
	}
	return d
}

// filesystem is an ext2/3/4 filesystem opened for reading: its superblock, the
// geometry derived from it, and its group descriptors, all checked against the
// partition's size.
type filesystem struct {
	r    io.ReaderAt
	size int64 // of the partition
	sb   *superblock

	blockSize     int64  // bytes a block
	clusterRatio  uint64 // blocks a cluster (1 without bigalloc)
	groupCount    uint32
	descSize      int64  // bytes a group descriptor
	descPerBlock  uint32 // group descriptors a block
	descBlocks    uint64 // blocks of the whole descriptor table
	inodeSize     int64
	inodeTableLen uint64 // blocks of each group's inode table
	groups        []groupDesc

	warnings []string // damage worked around (Allocation.Warnings)
}

// open reads and checks the superblock and group descriptors on r, a partition
// of size bytes. It returns an error wrapping fs.ErrUnknown when there is no
// ext superblock at all.
func open(r io.ReaderAt, size int64) (*filesystem, error) {
	if size < superblockOffset+superblockSize {
		return nil, fmt.Errorf("ext: partition of %d bytes: %w", size, fs.ErrUnknown)
	}
	buf := make([]byte, superblockSize)
	if err := readFull(r, size, buf, superblockOffset); err != nil {
		return nil, fmt.Errorf("ext: reading superblock: %w", err)
	}
	sb, err := parseSuperblock(buf)
	if err != nil {
		return nil, err
	}
	if sb.incompat(incompatJournalDev) {
		return nil, fmt.Errorf("ext: external journal device, not a filesystem: %w", fs.ErrUnknown)
	}
	f := &filesystem{r: r, size: size, sb: sb}
	if err := f.checkGeometry(); err != nil {
		return nil, fmt.Errorf("ext: corrupt superblock: %w", err)
	}
	if err := f.readGroupDescs(); err != nil {
		return nil, fmt.Errorf("ext: %w", err)
	}
	return f, nil
}

// checkGeometry checks the superblock's numbers against each other and against
// the partition's size, and derives the geometry from them.
func (f *filesystem) checkGeometry() error {
	sb := f.sb
	if sb.logBlockSize > 6 {
		return fmt.Errorf("block size 1024<<%d", sb.logBlockSize)
	}
	f.blockSize = 1024 << sb.logBlockSize
	if unknown := sb.featureIncompat &^ knownIncompat; unknown != 0 {
		return fmt.Errorf("unsupported incompatible features %#x", unknown)
	}

	f.clusterRatio = 1
	clusters := sb.blocksPerGroup
	if sb.rocompat(rocompatBigalloc) {
		if sb.logClusterSize < sb.logBlockSize || sb.logClusterSize-sb.logBlockSize > 16 {
			return fmt.Errorf("cluster size 1024<<%d with block size %d", sb.logClusterSize, f.blockSize)
		}
		f.clusterRatio = 1 << (sb.logClusterSize - sb.logBlockSize)
		clusters = sb.clustersPerGroup
		if uint64(clusters)*f.clusterRatio != uint64(sb.blocksPerGroup) {
			return fmt.Errorf("%d blocks a group is not %d clusters of %d blocks", sb.blocksPerGroup, clusters, f.clusterRatio)
		}
	}
	// mke2fs makes groups of 256 blocks at least: fewer would only make a
	// damaged superblock cost more memory.
	if sb.blocksPerGroup < 256 || clusters < 8 || clusters%8 != 0 || int64(clusters) > 8*f.blockSize {
		return fmt.Errorf("%d blocks (%d clusters) a group with %d-byte blocks", sb.blocksPerGroup, clusters, f.blockSize)
	}

	var wantFirst uint32
	if f.blockSize == 1024 && f.clusterRatio == 1 {
		wantFirst = 1
	}
	if sb.firstDataBlock != wantFirst {
		return fmt.Errorf("first data block %d, want %d", sb.firstDataBlock, wantFirst)
	}
	if sb.blocksCount <= uint64(sb.firstDataBlock) {
		return fmt.Errorf("%d blocks", sb.blocksCount)
	}
	if sb.blocksCount > uint64(f.size/f.blockSize) {
		return fmt.Errorf("filesystem of %d blocks of %d bytes is larger than its partition of %d bytes",
			sb.blocksCount, f.blockSize, f.size)
	}
	groups := (sb.blocksCount - uint64(sb.firstDataBlock) + uint64(sb.blocksPerGroup) - 1) / uint64(sb.blocksPerGroup)
	if groups > 1<<32-1 {
		return fmt.Errorf("%d block groups", groups)
	}
	f.groupCount = uint32(groups)

	if sb.inodesPerGroup == 0 || int64(sb.inodesPerGroup) > 8*f.blockSize {
		return fmt.Errorf("%d inodes a group", sb.inodesPerGroup)
	}
	if uint64(sb.inodesCount) != uint64(sb.inodesPerGroup)*groups {
		return fmt.Errorf("%d inodes is not %d groups of %d", sb.inodesCount, groups, sb.inodesPerGroup)
	}
	f.inodeSize = 128
	if sb.revLevel > 0 {
		f.inodeSize = int64(sb.inodeSize)
		if f.inodeSize < 128 || f.inodeSize > f.blockSize || f.inodeSize&(f.inodeSize-1) != 0 {
			return fmt.Errorf("inode size %d", f.inodeSize)
		}
	}
	f.inodeTableLen = (uint64(sb.inodesPerGroup)*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)

	f.descSize = 32
	if sb.incompat(incompat64Bit) {
		f.descSize = int64(sb.descSize)
		if f.descSize < 64 || f.descSize > 1024 || f.descSize&(f.descSize-1) != 0 {
			return fmt.Errorf("group descriptor size %d", f.descSize)
		}
	}
	f.descPerBlock = uint32(f.blockSize / f.descSize)
	f.descBlocks = (groups + uint64(f.descPerBlock) - 1) / uint64(f.descPerBlock)
	if sb.incompat(incompatMetaBG) {
		if uint64(sb.firstMetaBG) > f.descBlocks {
			return fmt.Errorf("first meta_bg %d of %d descriptor blocks", sb.firstMetaBG, f.descBlocks)
		}
	} else if f.gdtBlock()+f.descBlocks+uint64(sb.reservedGDT) > sb.blocksCount {
		return fmt.Errorf("%d descriptor blocks and %d reserved past the end", f.descBlocks, sb.reservedGDT)
	}
	return nil
}

// gdtBlock is the first block of the primary group descriptor table: the block
// after the one holding the superblock.
func (f *filesystem) gdtBlock() uint64 {
	return superblockOffset/uint64(f.blockSize) + 1
}

// groupFirstBlock is the first block of group g.
func (f *filesystem) groupFirstBlock(g uint32) uint64 {
	return uint64(f.sb.firstDataBlock) + uint64(g)*uint64(f.sb.blocksPerGroup)
}

// groupBlocks is the number of blocks in group g: blocks_per_group, except for
// a shorter last group.
func (f *filesystem) groupBlocks(g uint32) uint64 {
	first := f.groupFirstBlock(g)
	return min(uint64(f.sb.blocksPerGroup), f.sb.blocksCount-first)
}

// hasSuper reports whether group g holds a copy of the superblock (and, outside
// meta_bg, of the descriptor table), as e2fsprogs' ext2fs_bg_has_super.
func (f *filesystem) hasSuper(g uint32) bool {
	if g == 0 {
		return true
	}
	if f.sb.compat(compatSparseSuper2) {
		return g == f.sb.backupBGs[0] || g == f.sb.backupBGs[1]
	}
	if g <= 1 || !f.sb.rocompat(rocompatSparseSuper) {
		return true
	}
	if g%2 == 0 {
		return false
	}
	return isPower(g, 3) || isPower(g, 5) || isPower(g, 7)
}

// isPower reports whether g is a power of base.
func isPower(g, base uint32) bool {
	n := uint64(1)
	for n < uint64(g) {
		n *= uint64(base)
	}
	return n == uint64(g)
}

// metaBGDescBlock returns the block holding the descriptors of meta group m
// (groups m*D to m*D+D-1) in the meta_bg layout: in the first group of the
// meta group, after its superblock backup if it has one.
func (f *filesystem) metaBGDescBlock(m uint64) uint64 {
	g := uint32(m * uint64(f.descPerBlock))
	b := f.groupFirstBlock(g)
	if f.hasSuper(g) {
		b++
	}
	if g == 0 && f.blockSize == 1024 && f.clusterRatio > 1 {
		b++ // block 0 is the boot block, the superblock is in block 1
	}
	return b
}

// readGroupDescs reads and checks every group descriptor.
func (f *filesystem) readGroupDescs() error {
	sb := f.sb
	// The table's blocks: the primary table, or with meta_bg its first
	// s_first_meta_bg blocks and one block a meta group after.
	blocks := make([]uint64, 0, f.descBlocks)
	if sb.incompat(incompatMetaBG) {
		for i := uint64(0); i < uint64(sb.firstMetaBG); i++ {
			blocks = append(blocks, f.gdtBlock()+i)
		}
		for m := uint64(sb.firstMetaBG); m < f.descBlocks; m++ {
			blocks = append(blocks, f.metaBGDescBlock(m))
		}
	} else {
		for i := uint64(0); i < f.descBlocks; i++ {
			blocks = append(blocks, f.gdtBlock()+i)
		}
	}

	f.groups = make([]groupDesc, 0, f.groupCount)
	buf := make([]byte, f.blockSize*int64(min(f.descBlocks, maxReadBlocks(f.blockSize))))
	for i := 0; i < len(blocks); {
		// Read runs of consecutive blocks at once.
		n := 1
		for i+n < len(blocks) && blocks[i+n] == blocks[i]+uint64(n) && int64(n+1)*f.blockSize <= int64(len(buf)) {
			n++
		}
		if blocks[i]+uint64(n) > sb.blocksCount {
			return fmt.Errorf("group descriptor block %d past the end", blocks[i]+uint64(n)-1)
		}
		b := buf[:int64(n)*f.blockSize]
		if err := readFull(f.r, f.size, b, int64(blocks[i])*f.blockSize); err != nil {
			return fmt.Errorf("reading group descriptors: %w", err)
		}
		for len(b) > 0 && uint32(len(f.groups)) < f.groupCount {
			f.groups = append(f.groups, parseGroupDesc(b[:f.descSize]))
			b = b[f.descSize:]
		}
		i += n
	}
	for g, d := range f.groups {
		if err := f.checkGroupDesc(uint32(g), d); err != nil {
			return err
		}
	}
	return nil
}

// checkGroupDesc checks that group g's bitmaps and inode table lie inside the
// filesystem.
func (f *filesystem) checkGroupDesc(g uint32, d groupDesc) error {
	n := f.sb.blocksCount
	first := max(uint64(f.sb.firstDataBlock), 1)
	switch {
	case d.blockBitmap < first || d.blockBitmap >= n:
		return fmt.Errorf("group %d: block bitmap at block %d outside the filesystem", g, d.blockBitmap)
	case d.inodeBitmap < first || d.inodeBitmap >= n:
		return fmt.Errorf("group %d: inode bitmap at block %d outside the filesystem", g, d.inodeBitmap)
	case d.inodeTable < first || d.inodeTable > n || n-d.inodeTable < f.inodeTableLen:
		return fmt.Errorf("group %d: inode table at block %d outside the filesystem", g, d.inodeTable)
	}
	return nil
}

// maxRead is the most bytes read at once.
const maxRead = 4 << 20

// maxReadBlocks is the most blocks of size bs read at once.
func maxReadBlocks(bs int64) uint64 { return uint64(maxRead / bs) }

// errShort is returned when the partition ends before a structure does.
var errShort = errors.New("unexpected end of partition")

// readFull fills b from r at off, checking the read against the partition's
// size.
func readFull(r io.ReaderAt, size int64, b []byte, off int64) error {
	if off < 0 || off > size || int64(len(b)) > size-off {
		return fmt.Errorf("%d bytes at %d: %w", len(b), off, errShort)
	}
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = errShort
	}
	return fmt.Errorf("%d bytes at %d: %w", len(b), off, err)
}
