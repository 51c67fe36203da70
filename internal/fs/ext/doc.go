// Package ext reads the ext2, ext3 and ext4 filesystems found inside disk images.
//
// Probe recognises the filesystem by its superblock and returns, from the
// filesystem's own block bitmaps, the bytes it uses: the imager stores only
// those. Open returns an fs.Reader of its files, folders, links and special
// files, with their metadata, for browsing and restoring files from an image
// snapshot without mounting it. Nothing on the input is trusted: every number
// read from it is checked against the partition's size before it is used, and
// damaged structures are errors, never panics.
//
// The on-disk layout (all numbers little-endian), as the kernel's
// Documentation/filesystems/ext4 and e2fsprogs describe it:
//
//   - The superblock is 1024 bytes at byte 1024 of the partition, whatever the
//     block size (superblock.go names each field used).
//   - The partition is cut into blocks of 1 KiB to 64 KiB, and the blocks from
//     s_first_data_block on into block groups of s_blocks_per_group blocks; the
//     last group may be shorter.
//   - The group descriptor table follows the superblock's block (block 2 with
//     1 KiB blocks, block 1 otherwise); each descriptor locates its group's block
//     bitmap, inode bitmap and inode table. With flex_bg those lie anywhere,
//     usually packed into the first group of each flex group. With meta_bg the
//     table is split: from group s_first_meta_bg*D on (D descriptors a block),
//     each run of D groups keeps its one descriptor block in its first, second
//     and last group.
//   - Some groups hold a backup of the superblock and of the descriptor table
//     (followed by s_reserved_gdt_blocks reserved for online growth): every group
//     without sparse_super; groups 0, 1 and the powers of 3, 5 and 7 with it;
//     group 0 and s_backup_bgs with sparse_super2.
//   - A block bitmap has one bit a block (a cluster, with bigalloc), bit i of
//     byte i/8 for the group's block i. A group flagged BLOCK_UNINIT (with
//     gdt_csum or metadata_csum) has no bitmap written: its only used blocks are
//     its backups and the bitmaps and inode tables placed in it.
//   - A filesystem whose journal still has to be replayed (needs_recovery) may
//     have committed newer copies of its bitmaps in the journal; Probe adds every
//     block those copies mark used (journal.go). The journal is a file (inode 8)
//     whose blocks an extent tree or block pointers map (inode.go).
//
// The file reader (Open) adds:
//
//   - Inodes (inode.go): s_inode_size bytes each, numbered from 1, inode n
//     at index (n-1) % s_inodes_per_group of group (n-1) / s_inodes_per_group's
//     inode table. The first 128 bytes are the original inode; i_extra_isize
//     bytes of extra fields follow (nanoseconds and epoch bits of the times),
//     then in-inode xattrs.
//   - Block maps (bmap.go): an extent tree (a 12-byte header and 12-byte
//     entries, the root in i_block, index nodes above leaves, at most 5
//     levels) or 15 block pointers (12 direct, then single, double and triple
//     indirect blocks of 32-bit pointers). Both are read lazily, a leaf or a
//     block of pointers at a time.
//   - Folders (dir.go): chains of entries in each block; hashed folders are
//     read as linear ones. Inline data (inline_data) keeps small files,
//     folders and symlinks in i_block and the system.data xattr.
//   - Xattrs (xattr.go): in the inode and in one external block; POSIX ACLs
//     converted from ext4's compact form to the xattr form.
//   - The journal (replay.go): a filesystem flagged needs_recovery is read as
//     the kernel would see it after replaying its journal.
//
// Block bitmaps are checked against their metadata_csum checksum: a bitmap
// that fails it may call used blocks free, so its whole group counts as used
// and Allocation.Warnings says so. Other metadata checksums (gdt_csum, inodes,
// extents, folders, journal) are not verified: every structure is checked for
// what the reader needs instead.
//
// superblock.go holds the superblock and group descriptors and the geometry
// derived from them, alloc.go the used-block map, reader.go the file reader,
// cache.go the cache of metadata chunks it reads through.
package ext
