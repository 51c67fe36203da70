package ext

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"slices"

	"cairn/internal/fs"
)

// Probe recognises an ext2, ext3 or ext4 filesystem on r, a partition of size
// bytes, and returns what it uses, read from its block bitmaps: every block a
// bitmap marks, the metadata of groups whose bitmap was never written, the
// boot block and superblock, and, when the journal needs replaying, the blocks
// its logged bitmaps mark. It returns an error wrapping fs.ErrUnknown when r
// holds no ext superblock (or an external journal's), and another error when
// it does but the filesystem is damaged, larger than its partition, or uses a
// layout Probe does not know. It reads r only, with reads of up to 4 MiB.
//
// The log area of an empty journal (emptyJournalLog) is used but Unneeded.
func Probe(r io.ReaderAt, size int64) (*fs.Allocation, error) {
	f, err := open(r, size)
	if err != nil {
		return nil, err
	}
	used, err := f.usedExtents()
	if err != nil {
		return nil, fmt.Errorf("ext: %w", err)
	}
	return &fs.Allocation{
		Type:      f.sb.typeName(),
		Label:     f.sb.label(),
		UUID:      f.sb.uuidString(),
		BlockSize: int(f.blockSize),
		Size:      f.fsSize(),
		Used:      used,
		Unneeded:  fs.Intersect(f.emptyJournalLog(), used),
		Warnings:  f.warnings,
	}, nil
}

// fsSize is the filesystem's size in bytes.
func (f *filesystem) fsSize() int64 { return int64(f.sb.blocksCount) * f.blockSize }

// usedExtents returns the byte extents of every block the filesystem uses: the
// boot area and superblock, every group's metadata (superblock and descriptor
// backups, bitmaps, inode table), the blocks each initialised group's block
// bitmap marks, and, when the journal needs replaying, the blocks the bitmap
// copies in its log mark.
func (f *filesystem) usedExtents() ([]fs.Extent, error) {
	u := &usedList{blockSize: f.blockSize, clusterRatio: f.clusterRatio}
	// The boot area and the superblock; with 1 KiB blocks, block 0 is not in
	// any group.
	boot := max(superblockOffset+superblockSize, int64(f.sb.firstDataBlock)*f.blockSize)
	u.addBlocks(0, uint64((boot+f.blockSize-1)/f.blockSize))
	for g := range f.groupCount {
		f.addGroupMetadata(u, g)
	}
	if err := f.addBitmaps(u); err != nil {
		return nil, err
	}
	if f.sb.incompat(incompatRecover) {
		if err := f.addJournalBitmaps(u); err != nil {
			return nil, err
		}
	}
	return fs.Normalize(u.ext, f.fsSize()), nil
}

// addGroupMetadata marks group g's fixed metadata used, wherever it lies: the
// superblock and descriptor table backups in the group (as e2fsprogs'
// ext2fs_reserve_super_and_bgd), and its bitmaps and inode table. An
// initialised bitmap marks these blocks too; for a BLOCK_UNINIT group they
// are all that is used.
func (f *filesystem) addGroupMetadata(u *usedList, g uint32) {
	sb := f.sb
	start := f.groupFirstBlock(g)
	if start == 0 && f.blockSize == 1024 {
		start = 1 // bigalloc with 1 KiB blocks: block 0 is the boot block
	}
	super := f.hasSuper(g)
	if super {
		u.addBlocks(start, 1)
	}
	metaGroup := uint64(g / f.descPerBlock)
	if !sb.incompat(incompatMetaBG) || metaGroup < uint64(sb.firstMetaBG) {
		if super {
			n := f.descBlocks + uint64(sb.reservedGDT)
			if sb.incompat(incompatMetaBG) {
				n = uint64(sb.firstMetaBG)
			}
			if start+1 < sb.blocksCount {
				u.addBlocks(start+1, min(n, sb.blocksCount-(start+1)))
			}
		}
	} else if i := g % f.descPerBlock; i == 0 || i == 1 || i == f.descPerBlock-1 {
		b := start
		if super {
			b++
		}
		u.addBlocks(b, 1)
	}
	d := f.groups[g]
	u.addBlocks(d.blockBitmap, 1)
	u.addBlocks(d.inodeBitmap, 1)
	u.addBlocks(d.inodeTable, f.inodeTableLen)
}

// uninit reports whether group g's block bitmap was never written. The flag
// counts only on a filesystem with group descriptor checksums, as in the
// kernel and e2fsprogs.
func (f *filesystem) uninit(g uint32) bool {
	csum := f.sb.rocompat(rocompatGdtCsum) || f.sb.rocompat(rocompatMetadataCsum)
	return csum && f.groups[g].flags&bgBlockUninit != 0
}

// bitmapBits is the number of valid bits in group g's block bitmap: one a
// cluster of the group; the last group's bitmap covers only the clusters that
// exist.
func (f *filesystem) bitmapBits(g uint32) int {
	return int((f.groupBlocks(g) + f.clusterRatio - 1) / f.clusterRatio)
}

// addBitmaps reads the block bitmap of every initialised group and marks the
// blocks it says are used. Bitmaps are read in the order they lie on disk,
// neighbours in one read (flex_bg packs them together).
func (f *filesystem) addBitmaps(u *usedList) error {
	type bitmapLoc struct {
		block uint64
		group uint32
	}
	var locs []bitmapLoc
	for g := range f.groupCount {
		if !f.uninit(g) {
			locs = append(locs, bitmapLoc{f.groups[g].blockBitmap, g})
		}
	}
	slices.SortFunc(locs, func(a, b bitmapLoc) int {
		return cmp.Or(cmp.Compare(a.block, b.block), cmp.Compare(a.group, b.group))
	})

	maxBlocks := maxReadBlocks(f.blockSize)
	var buf []byte
	for i := 0; i < len(locs); {
		first, end := locs[i].block, locs[i].block+1
		j := i + 1
		for j < len(locs) && locs[j].block <= end && locs[j].block+1-first <= maxBlocks {
			end = max(end, locs[j].block+1)
			j++
		}
		n := int64(end-first) * f.blockSize
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if err := readFull(f.r, f.size, b, int64(first)*f.blockSize); err != nil {
			return fmt.Errorf("reading block bitmaps: %w", err)
		}
		for _, l := range locs[i:j] {
			off := int64(l.block-first) * f.blockSize
			bitmap := b[off : off+f.blockSize]
			if !f.bitmapSumOK(l.group, bitmap) {
				// A bitmap that fails its checksum may say a used block is free:
				// every block of the group counts as used, so that nothing is lost.
				start := f.groupFirstBlock(l.group)
				u.addBlocks(start, f.groupBlocks(l.group))
				f.warnings = append(f.warnings, fmt.Sprintf("the block bitmap of group %d (block %d) fails its checksum: all %d blocks of the group are stored", l.group, l.block, f.groupBlocks(l.group)))
				continue
			}
			f.addBitmap(u, l.group, bitmap)
		}
		i = j
	}
	return nil
}

// bitmapSumOK reports whether group g's block bitmap matches the checksum in its
// descriptor, as the kernel's ext4_block_bitmap_csum_verify checks it: crc32c of
// the bitmap's clusters_per_group/8 bytes, seeded from the filesystem. It is true
// on a filesystem without metadata_csum.
func (f *filesystem) bitmapSumOK(g uint32, bitmap []byte) bool {
	if !f.sb.rocompat(rocompatMetadataCsum) {
		return true
	}
	n := min(int(f.sb.clustersPerGroup/8), len(bitmap))
	sum := crc32cRaw(f.csumSeed(), bitmap[:n])
	want := f.groups[g].bitmapCsum
	if f.descSize < 0x3C { // no bg_block_bitmap_csum_hi
		sum &= 0xFFFF
	}
	return sum == want
}

// csumSeed is the seed of the filesystem's metadata checksums: s_checksum_seed
// with csum_seed, else the crc32c of the UUID (the kernel's s_csum_seed).
func (f *filesystem) csumSeed() uint32 {
	if f.sb.incompat(incompatCsumSeed) {
		return f.sb.checksumSeed
	}
	return crc32cRaw(^uint32(0), f.sb.uuid[:])
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32cRaw is the kernel's crc32c_le: crc32c of p from crc, without the
// inversions before and after that hash/crc32 applies.
func crc32cRaw(crc uint32, p []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli, p)
}

// addBitmap marks the blocks of group g that bitmap, its block bitmap, says
// are used.
func (f *filesystem) addBitmap(u *usedList, g uint32, bitmap []byte) {
	start := f.groupFirstBlock(g)
	bitRuns(bitmap, f.bitmapBits(g), func(i, n int) {
		u.addBlocks(start+uint64(i)*f.clusterRatio, uint64(n)*f.clusterRatio)
	})
}

// bitRuns calls fn(start, n) for each run of set bits among the first nbits
// bits of bitmap (bit i is bit i%8 of byte i/8), in order.
func bitRuns(bitmap []byte, nbits int, fn func(start, n int)) {
	nbits = min(nbits, 8*len(bitmap))
	for i := 0; i < nbits; {
		i = nextBit(bitmap, i, nbits, true)
		if i >= nbits {
			return
		}
		j := nextBit(bitmap, i, nbits, false)
		fn(i, j-i)
		i = j
	}
}

// nextBit returns the first bit at or after i, below n, that is set (or clear,
// with set false), or n if there is none.
func nextBit(bitmap []byte, i, n int, set bool) int {
	for i < n {
		w := word(bitmap, i/64)
		if !set {
			w = ^w
		}
		w &= ^uint64(0) << (i % 64)
		if w != 0 {
			return min(i&^63+bits.TrailingZeros64(w), n)
		}
		i = i&^63 + 64
	}
	return n
}

// word returns the k'th 64-bit little-endian word of bitmap, zero-padded past
// its end.
func word(bitmap []byte, k int) uint64 {
	off := 8 * k
	if off+8 <= len(bitmap) {
		return binary.LittleEndian.Uint64(bitmap[off:])
	}
	var b [8]byte
	copy(b[:], bitmap[off:])
	return binary.LittleEndian.Uint64(b[:])
}

// usedList collects used extents, merging each with the last one when they
// touch, so that runs of blocks added in order stay one extent.
type usedList struct {
	blockSize    int64
	clusterRatio uint64 // used blocks are rounded out to whole clusters
	ext          []fs.Extent
}

// addBlocks marks n blocks from block first used, whole clusters with
// bigalloc. The caller has checked that they lie inside the filesystem.
func (u *usedList) addBlocks(first, n uint64) {
	if n == 0 {
		return
	}
	end := first + n
	if r := u.clusterRatio; r > 1 {
		first -= first % r
		end += (r - end%r) % r
	}
	u.addBytes(int64(first)*u.blockSize, int64(end-first)*u.blockSize)
}

// addBytes marks n bytes from off used.
func (u *usedList) addBytes(off, n int64) {
	if k := len(u.ext); k > 0 {
		last := &u.ext[k-1]
		if last.Off <= off && off <= last.Off+last.Len {
			last.Len = max(last.Len, off+n-last.Off)
			return
		}
	}
	u.ext = append(u.ext, fs.Extent{Off: off, Len: n})
}
