package ext

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"cairn/internal/fs"
)

// rootIno is the root folder's inode.
const rootIno = 2

// reader reads the files of an ext2/3/4 filesystem; see Open.
type reader struct {
	f       *filesystem
	cache   *blockCache
	overlay *journalOverlay // the journal's committed copies; nil for none
}

// node is the handle of an entry in Entry.Sys: the reader it came from, its
// path (for errors), its inode and its folder's node (nil for the root).
type node struct {
	r      *reader
	path   string
	in     *inode
	parent *node
}

// Open opens the ext2, ext3 or ext4 filesystem on r, a partition of size
// bytes, for reading its files. It returns an error wrapping fs.ErrUnknown
// when r holds no ext superblock.
//
// The reader follows extent trees (of any depth up to the kernel's 5) and
// block pointers (direct, single, double and triple indirect), 64-bit block
// numbers, linear and hashed folders (reading every block of a hashed folder
// in order: its index blocks look like empty entries), inline data (small
// files, folders and symlinks kept in the inode and its system.data xattr),
// fast and slow symlinks, device nodes (old and new encodings), huge_file
// block counts, nanosecond timestamps with their epoch bits, 32-bit owners
// and xattrs in the inode, in an xattr block and in ea_inode inodes, with
// their namespace prefixes (user., trusted., security.,
// system.posix_acl_access and _default; the filesystem's own system.data is
// not listed, as getxattr(2) does not list it). POSIX ACLs are given in the
// xattr form of getxattr(2), not ext4's compact on-disk form. Holes and
// unwritten extents read as zeros. Entry.Inode is the inode number, equal for
// hard links, and Entry.Links the link count; Entry.Sys is the reader's own
// handle (entries without it are found again by Entry.Inode). A filesystem
// that needs recovery is read as after replaying its journal (replay.go);
// a journal that cannot be read makes Open fail, as it makes mount(8) fail.
//
// It does not verify metadata checksums (metadata_csum, gdt_csum, journal
// checksums), does not replay fast commits, and refuses encrypted files and
// folders. Nothing read is trusted: inode numbers, block numbers, extent
// trees, folder entries, xattrs and sizes are checked before use, and a
// damaged structure is an error naming the inode and path, never a panic, a
// loop or an allocation beyond what the partition holds. Names holding '/'
// or NUL, and empty ones, are errors; "." and ".." are skipped.
//
// Metadata (inode tables, folders, tree nodes, xattr blocks) is read in
// aligned 64 KiB chunks, the last 64 of them (4 MiB) kept in a cache; file
// content is read straight into the caller's buffer, one read a run of
// contiguous blocks. The reader is safe for concurrent use.
func Open(r io.ReaderAt, size int64) (fs.Reader, error) {
	return openReader(r, size, cacheChunkSize, cacheChunks)
}

// openReader is Open with a cache of chunks chunks of chunkSize bytes.
func openReader(r io.ReaderAt, size, chunkSize int64, chunks int) (*reader, error) {
	f, err := open(r, size)
	if err != nil {
		return nil, err
	}
	if f.sb.firstIno < 11 {
		return nil, fmt.Errorf("ext: corrupt superblock: first inode %d", f.sb.firstIno)
	}
	rd := &reader{f: f}
	if rd.overlay, err = f.replayJournal(); err != nil {
		return nil, fmt.Errorf("ext: replaying the journal: %w", err)
	}
	rd.cache = newBlockCache(f, chunkSize, chunks, rd.readAt)
	return rd, nil
}

// block returns block b (shared with the cache: not to be modified); the
// caller has checked that b is inside the filesystem.
func (r *reader) block(b uint64) ([]byte, error) {
	return r.cache.block(b)
}

// inode reads and decodes inode ino.
func (r *reader) inode(ino uint32) (*inode, error) {
	off, err := r.f.inodeOffset(ino)
	if err != nil {
		return nil, err
	}
	b, err := r.block(uint64(off / r.f.blockSize))
	if err != nil {
		return nil, fmt.Errorf("reading inode %d: %w", ino, err)
	}
	within := off % r.f.blockSize
	return r.f.parseInode(ino, b[within:within+r.f.inodeSize])
}

// inodeError is an error about inode ino at path.
func inodeError(ino uint32, path string, err error) error {
	if path == "" {
		return fmt.Errorf("ext: inode %d: %w", ino, err)
	}
	return fmt.Errorf("ext: inode %d (%s): %w", ino, path, err)
}

// Root returns the root folder, named "/".
func (r *reader) Root() (*fs.Entry, error) {
	in, err := r.inode(rootIno)
	if err != nil {
		return nil, inodeError(rootIno, "/", err)
	}
	return r.entry(in, "/", "/", nil)
}

// entry makes the Entry of inode in, named name at path, in the folder of
// node parent.
func (r *reader) entry(in *inode, name, path string, parent *node) (*fs.Entry, error) {
	e := &fs.Entry{
		Name:  name,
		Mode:  uint32(in.mode & 0o7777),
		UID:   in.uid,
		GID:   in.gid,
		Size:  int64(in.size),
		MTime: in.mtime,
		ATime: in.atime,
		CTime: in.ctime,
		Inode: uint64(in.num),
		Links: uint64(in.links),
		Sys:   &node{r: r, path: path, in: in, parent: parent},
	}
	fail := func(err error) (*fs.Entry, error) { return nil, inodeError(in.num, path, err) }
	if in.mode == 0 || in.links == 0 {
		return fail(errors.New("unused inode (deleted)"))
	}
	if in.size > math.MaxInt64 {
		return fail(fmt.Errorf("size %d", in.size))
	}
	switch in.mode & modeTypeMask {
	case modeRegular:
		e.Type = fs.TypeFile
	case modeDir:
		e.Type = fs.TypeDir
	case modeSymlink:
		e.Type = fs.TypeSymlink
		target, err := r.linkTarget(in, path)
		if err != nil {
			return fail(err)
		}
		e.LinkTarget = target
	case modeCharDev, modeBlockDev:
		e.Type = fs.TypeCharDev
		if in.mode&modeTypeMask == modeBlockDev {
			e.Type = fs.TypeDev
		}
		e.Rdev = deviceNumber(in.block[:])
	case modeFIFO:
		e.Type = fs.TypeFIFO
	case modeSocket:
		e.Type = fs.TypeSocket
	default:
		return fail(fmt.Errorf("unknown file type in mode %#o", in.mode))
	}
	x, err := r.xattrs(in, path)
	if err != nil {
		return fail(err)
	}
	e.Xattrs = x
	return e, nil
}

// deviceNumber decodes a device node's number from i_block, as the kernel:
// the old 8:8 encoding in the first word if it is not zero, else the new
// 12:20 encoding in the second; the result is the number stat(2) gives
// (glibc's makedev).
func deviceNumber(b []byte) uint64 {
	le := binary.LittleEndian
	var major, minor uint64
	if old := le.Uint32(b); old != 0 {
		major, minor = uint64(old>>8&0xFF), uint64(old&0xFF)
	} else {
		dev := le.Uint32(b[4:])
		major, minor = uint64(dev&0xFFF00>>8), uint64(dev&0xFF|dev>>12&0xFFF00)
	}
	return major&0xFFF<<8 | major&^0xFFF<<32 | minor&0xFF | minor&^0xFF<<12
}

// maxLinkTarget is the longest symlink target (PATH_MAX less its NUL).
const maxLinkTarget = 4095

// linkTarget returns a symlink's target: in i_block for a fast symlink (one
// without data blocks), else in its inline data or its first block. As the
// kernel, the target ends at the first NUL, within i_size bytes.
func (r *reader) linkTarget(in *inode, path string) (string, error) {
	var b []byte
	switch {
	case in.flags&inodeFlagEncrypt != 0:
		return "", errors.New("encrypted symlink")
	case in.flags&inodeFlagInline != 0:
		data, err := r.inlineData(in)
		if err != nil {
			return "", err
		}
		b = data
	case r.fastSymlink(in):
		b = in.block[:]
		if in.size >= uint64(len(in.block)) {
			return "", fmt.Errorf("fast symlink of %d bytes", in.size)
		}
	default:
		if in.size > maxLinkTarget || in.size >= uint64(r.f.blockSize) {
			return "", fmt.Errorf("symlink of %d bytes", in.size)
		}
		phys, _, mapped, err := (&blockMapper{r: r, in: in}).find(0)
		if err != nil {
			return "", err
		}
		if !mapped {
			return "", errors.New("symlink without a block")
		}
		if b, err = r.block(phys); err != nil {
			return "", fmt.Errorf("reading symlink block: %w", err)
		}
	}
	if in.size > uint64(len(b)) || in.size > maxLinkTarget {
		return "", fmt.Errorf("symlink of %d bytes in %d", in.size, len(b))
	}
	b = b[:in.size]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), nil
}

// fastSymlink reports whether the symlink in keeps its target in i_block: as
// the kernel's ext4_inode_is_fast_symlink, when it has no blocks but its
// xattr block.
func (r *reader) fastSymlink(in *inode) bool {
	if in.flags&inodeFlagEAInode != 0 {
		return in.size > 0 && in.size < uint64(len(in.block))
	}
	var xattrSectors uint64
	if in.fileACL != 0 {
		xattrSectors = uint64(r.f.blockSize) * r.f.clusterRatio / 512
	}
	return in.blocks == xattrSectors
}

// inlineData returns the inline content of in: i_block then the value of
// its system.data xattr (in the inode), at most i_size bytes.
func (r *reader) inlineData(in *inode) ([]byte, error) {
	data := slices.Clone(in.block[:])
	if in.xattrArea != nil {
		raw, err := parseXattrs(in.xattrArea, 0, 0, nil)
		if err != nil {
			return nil, fmt.Errorf("in-inode xattrs: %w", err)
		}
		for _, x := range raw {
			if x.index == xattrIndexSystem && x.name == "data" && x.inum == 0 {
				data = append(data, x.value...)
				break
			}
		}
	}
	if in.size > uint64(len(data)) {
		return nil, fmt.Errorf("inline data of %d bytes, size %d", len(data), in.size)
	}
	return data[:in.size], nil
}

// handle returns the node of e: its own, or, for an entry this reader did not
// make, one read from e.Inode.
func (r *reader) handle(e *fs.Entry) (*node, error) {
	if e == nil {
		return nil, errors.New("ext: no entry")
	}
	if n, ok := e.Sys.(*node); ok && n.r == r {
		return n, nil
	}
	if e.Inode == 0 || e.Inode > math.MaxUint32 {
		return nil, fmt.Errorf("ext: %s: no inode", e.Name)
	}
	in, err := r.inode(uint32(e.Inode))
	if err != nil {
		return nil, inodeError(uint32(e.Inode), e.Name, err)
	}
	return &node{r: r, path: e.Name, in: in}, nil
}

// ReadDir returns the entries of folder dir, sorted by name (bytewise),
// without "." and "..". When the folder itself cannot be read it returns no
// entries and the error. When only some entries are damaged (a block of the
// folder, an entry's name or inode, its xattrs or symlink target, an entry
// that would make a folder its own ancestor, a name given twice), it returns
// the others with an error naming each damaged one, as os.File.ReadDir
// returns what it read with its error.
func (r *reader) ReadDir(dir *fs.Entry) ([]*fs.Entry, error) {
	n, err := r.handle(dir)
	if err != nil {
		return nil, err
	}
	in := n.in
	if in.mode&modeTypeMask != modeDir {
		return nil, inodeError(in.num, n.path, errors.New("not a folder"))
	}
	if in.flags&inodeFlagEncrypt != 0 {
		return nil, inodeError(in.num, n.path, errors.New("encrypted folder"))
	}
	dents, damaged, err := r.dirEntries(in)
	if err != nil {
		return nil, inodeError(in.num, n.path, err)
	}
	var errs []error
	for _, err := range damaged {
		errs = append(errs, inodeError(in.num, n.path, err))
	}
	// Read the inodes in inode order: neighbours share inode table blocks.
	slices.SortFunc(dents, func(a, b dirent) int { return cmp.Compare(a.ino, b.ino) })
	out := make([]*fs.Entry, 0, len(dents))
	for _, d := range dents {
		e, err := r.child(n, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *fs.Entry) int { return strings.Compare(a.Name, b.Name) })
	out = slices.CompactFunc(out, func(a, b *fs.Entry) bool {
		if a.Name == b.Name {
			errs = append(errs, inodeError(in.num, n.path, fmt.Errorf("two entries named %q (inodes %d and %d)", a.Name, a.Inode, b.Inode)))
			return true
		}
		return false
	})
	return out, joinErrors(errs)
}

// child returns the entry of d in the folder of node n.
func (r *reader) child(n *node, d dirent) (*fs.Entry, error) {
	p := childPath(n.path, d.name)
	if d.ino != rootIno && (d.ino < r.f.sb.firstIno || d.ino > r.f.sb.inodesCount) {
		return nil, inodeError(n.in.num, n.path, fmt.Errorf("entry %q names inode %d", d.name, d.ino))
	}
	in, err := r.inode(d.ino)
	if err != nil {
		return nil, inodeError(d.ino, p, err)
	}
	e, err := r.entry(in, d.name, p, n)
	if err != nil {
		return nil, err
	}
	if e.Type == fs.TypeDir {
		// A folder that is its own ancestor would make every walk endless.
		for a := n; a != nil; a = a.parent {
			if a.in.num == in.num {
				return nil, inodeError(in.num, p, fmt.Errorf("folder loop: it is also %s", a.path))
			}
		}
	}
	return e, nil
}

// maxErrors is the most errors joinErrors lists one by one.
const maxErrors = 10

// joinErrors joins errs (nil for none), listing at most maxErrors of them.
func joinErrors(errs []error) error {
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors:maxErrors], fmt.Errorf("and %d more damaged entries", len(errs)-maxErrors))
	}
	return errors.Join(errs...)
}

// childPath is the path of name in the folder at dir.
func childPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// Open returns the content of regular file file.
func (r *reader) Open(file *fs.Entry) (io.ReaderAt, error) {
	n, err := r.handle(file)
	if err != nil {
		return nil, err
	}
	if n.in.mode&modeTypeMask != modeRegular {
		return nil, inodeError(n.in.num, n.path, errors.New("not a regular file"))
	}
	fr, err := r.openFile(n.in, n.path)
	if err != nil {
		return nil, inodeError(n.in.num, n.path, err)
	}
	return fr, nil
}
