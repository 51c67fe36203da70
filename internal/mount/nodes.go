//go:build linux || darwin

package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cairn/internal/imager"
	"cairn/internal/repo"
	"cairn/internal/snapshot"
	"cairn/internal/vfs"
)

// snapshotNode returns the folder node of a snapshot.
func snapshotNode(m *mounter, e snapshot.Entry) (fs.InodeEmbedder, syscall.Errno) {
	root, err := vfs.Root(m.r, e.Snapshot)
	if err != nil {
		return nil, syscall.EIO
	}
	if e.Kind == repo.KindImage {
		return &imageDir{m: m, snap: e.Snapshot, id: e.ID, root: root}, 0
	}
	return &vfsDir{m: m, entry: root, snap: e.ID}, 0
}

// fileMode returns the FUSE mode of a node: its type and permission bits.
func fileMode(n *repo.Node) uint32 {
	t := uint32(syscall.S_IFREG)
	switch n.Type {
	case repo.NodeDir:
		t = syscall.S_IFDIR
	case repo.NodeSymlink:
		t = syscall.S_IFLNK
	case repo.NodeDev:
		t = syscall.S_IFBLK
	case repo.NodeCharDev:
		t = syscall.S_IFCHR
	case repo.NodeFIFO:
		t = syscall.S_IFIFO
	case repo.NodeSocket:
		t = syscall.S_IFSOCK
	}
	return t | n.Mode&0o7777
}

func nodeAttr(out *fuse.Attr, n *repo.Node) {
	out.Mode = fileMode(n)
	out.Size = n.Size
	if n.Type == repo.NodeSymlink {
		out.Size = uint64(len(n.LinkTarget))
	}
	out.Blocks = (out.Size + 511) / 512
	out.Uid, out.Gid = n.UID, n.GID
	out.Nlink = uint32(max(n.Links, 1))
	out.Rdev = uint32(n.Rdev)
	setTime(out, n.MTime, n.ATime, n.CTime)
}

// vfsDir is a folder of a snapshot's tree.
type vfsDir struct {
	fs.Inode
	m     *mounter
	entry *vfs.Entry
	snap  repo.ID // the snapshot the folder is in

	once sync.Once
	kids map[string]*vfs.Entry
	list []fuse.DirEntry
	err  error
}

func (n *vfsDir) load(ctx context.Context) error {
	n.once.Do(func() {
		// A folder with damaged entries (inside an image of a damaged
		// filesystem) shows the others; one that cannot be read at all fails.
		kids, err := n.entry.Children(n.m.ctx)
		if err != nil && len(kids) == 0 {
			n.err = err
			return
		}
		n.kids = make(map[string]*vfs.Entry, len(kids))
		for _, k := range kids {
			n.kids[k.Name()] = k
			n.list = append(n.list, fuse.DirEntry{Name: k.Name(), Mode: fileMode(k.Node)})
		}
	})
	return n.err
}

func (n *vfsDir) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	nodeAttr(&out.Attr, n.entry.Node)
	return 0
}

func (n *vfsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if err := n.load(ctx); err != nil {
		return nil, syscall.EIO
	}
	return fs.NewListDirStream(n.list), 0
}

func (n *vfsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if err := n.load(ctx); err != nil {
		return nil, syscall.EIO
	}
	k, ok := n.kids[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	nodeAttr(&out.Attr, k.Node)
	var child fs.InodeEmbedder
	switch k.Node.Type {
	case repo.NodeDir:
		child = &vfsDir{m: n.m, entry: k, snap: n.snap}
	case repo.NodeFile:
		child = &vfsFile{m: n.m, entry: k}
	default:
		child = &vfsOther{entry: k}
	}
	return n.NewInode(ctx, child, fs.StableAttr{Mode: fileMode(k.Node) & syscall.S_IFMT, Ino: n.m.inode(n.snap, k.Node)}), 0
}

// vfsFile is a regular file of a snapshot.
type vfsFile struct {
	fs.Inode
	m     *mounter
	entry *vfs.Entry
}

func (n *vfsFile) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	nodeAttr(&out.Attr, n.entry.Node)
	return 0
}

// fileHandle is one open of a file; its reader is safe for concurrent reads, so
// the kernel's read-ahead requests run at once.
type fileHandle struct {
	r io.ReaderAt
}

func (n *vfsFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EROFS
	}
	f, err := n.entry.Open(n.m.ctx)
	if err != nil {
		return nil, 0, syscall.EIO
	}
	return &fileHandle{r: f}, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *vfsFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return readHandle(fh, dest, off)
}

func readHandle(fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*fileHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	k, err := h.r.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// vfsOther is a symlink, device, fifo or socket of a snapshot.
type vfsOther struct {
	fs.Inode
	entry *vfs.Entry
}

func (n *vfsOther) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	nodeAttr(&out.Attr, n.entry.Node)
	return 0
}

func (n *vfsOther) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.entry.Node.Type != repo.NodeSymlink {
		return nil, syscall.EINVAL
	}
	return []byte(n.entry.Node.LinkTarget), 0
}

// imageDir is an image snapshot: disk.img, partN.img and partN/.
type imageDir struct {
	fs.Inode
	m    *mounter
	snap *repo.Snapshot
	id   repo.ID
	root *vfs.Entry
}

func (n *imageDir) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	dirAttr(&out.Attr, n.snap.Time)
	return 0
}

// images returns the raw image files of the snapshot by name.
func (n *imageDir) images() map[string]func() io.ReaderAt {
	img := n.snap.Image
	out := map[string]func() io.ReaderAt{}
	if img.WholeDisk {
		out["disk.img"] = func() io.ReaderAt { return imager.NewReader(n.m.ctx, n.m.r, img) }
	}
	for _, reg := range img.Regions {
		if reg.Partition != nil {
			out[fmt.Sprintf("part%d.img", reg.Partition.Number)] = func() io.ReaderAt { return imager.NewRegionReader(n.m.ctx, n.m.r, reg) }
		}
	}
	return out
}

func (n *imageDir) sizeOf(name string) int64 {
	img := n.snap.Image
	if name == "disk.img" {
		return img.Size
	}
	for _, reg := range img.Regions {
		if reg.Partition != nil && fmt.Sprintf("part%d.img", reg.Partition.Number) == name {
			return reg.Size
		}
	}
	return 0
}

func (n *imageDir) folders() map[string]*vfs.Entry {
	out := map[string]*vfs.Entry{}
	if !n.snap.Image.WholeDisk {
		out["part0"] = n.root
		return out
	}
	kids, err := n.root.Children(n.m.ctx)
	if err != nil {
		return out
	}
	for _, k := range kids {
		out[k.Name()] = k
	}
	return out
}

func (n *imageDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var entries []fuse.DirEntry
	for name := range n.images() {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
	}
	for name := range n.folders() {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR})
	}
	sortDirEntries(entries)
	return fs.NewListDirStream(entries), 0
}

func (n *imageDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if open, ok := n.images()[name]; ok {
		size := n.sizeOf(name)
		out.Mode, out.Size, out.Nlink = syscall.S_IFREG|0o444, uint64(size), 1
		out.Blocks = (uint64(size) + 511) / 512
		setTime(&out.Attr, n.snap.Time.UnixNano(), n.snap.Time.UnixNano(), n.snap.Time.UnixNano())
		return n.NewInode(ctx, &rawFile{open: open, size: size, t: n.snap.Time.UnixNano()}, fs.StableAttr{Mode: syscall.S_IFREG}), 0
	}
	if e, ok := n.folders()[name]; ok {
		nodeAttr(&out.Attr, e.Node)
		return n.NewInode(ctx, &vfsDir{m: n.m, entry: e, snap: n.id}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
	}
	return nil, syscall.ENOENT
}

// rawFile is disk.img or partN.img: the image's bytes, zeros where nothing is stored.
type rawFile struct {
	fs.Inode
	open func() io.ReaderAt
	size int64
	t    int64
}

func (n *rawFile) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode, out.Size, out.Nlink = syscall.S_IFREG|0o444, uint64(n.size), 1
	out.Blocks = (uint64(n.size) + 511) / 512
	setTime(&out.Attr, n.t, n.t, n.t)
	return 0
}

func (n *rawFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EROFS
	}
	return &fileHandle{r: n.open()}, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *rawFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return readHandle(fh, dest, off)
}

func sortDirEntries(e []fuse.DirEntry) {
	sort.Slice(e, func(i, j int) bool { return e[i].Name < e[j].Name })
}
