//go:build linux || darwin

// Package mount is the FUSE binding of vfs: it shows every snapshot of a repository
// as a read-only folder. Layout under the mount point:
//
//	snapshots/ID/          one folder per snapshot (ID: its short id)
//	hosts/HOST/ID -> ../../snapshots/ID
//	tags/TAG/ID   -> ../../snapshots/ID
//	latest        -> snapshots/ID of the newest snapshot
//
// A file snapshot's folder holds its files with their metadata. An image snapshot's
// folder holds disk.img (the whole disk, for whole-disk images), partN.img (each
// partition, full size, random access, unused blocks read as zeros: loop-mountable)
// and partN/ (the files of each partition's filesystem, through the readers of
// internal/fs). Nothing is ever written.
package mount

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"cairn/internal/repo"
	"cairn/internal/snapshot"
)

// Options control a mount.
type Options struct {
	// AllowOther lets users other than the one mounting read the files.
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
}

// Mounted is a mounted repository.
type Mounted struct {
	server *fuse.Server
	dir    string
}

// Mount mounts r read-only at dir and returns once the mount is ready.
func Mount(ctx context.Context, r *repo.Repository, dir string, opts Options) (*Mounted, error) {
	m := &mounter{r: r, ctx: ctx}
	timeout := time.Hour // snapshots never change
	server, err := fs.Mount(dir, &rootNode{m: m}, &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NullPermissions: true, // a file of mode 0000 shows as such
		MountOptions: fuse.MountOptions{
			FsName: "cairn", Name: "cairn", AllowOther: opts.AllowOther, Debug: opts.Debug,
			Options: []string{"ro", "default_permissions"}, MaxReadAhead: 1 << 20,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	return &Mounted{server: server, dir: dir}, nil
}

// Wait blocks until the mount is unmounted (by Unmount or fusermount -u).
func (m *Mounted) Wait() { m.server.Wait() }

// Unmount unmounts; it fails while files are open.
func (m *Mounted) Unmount() error { return m.server.Unmount() }

// mounter holds what every node needs: the repository and the snapshot list.
type mounter struct {
	r   *repo.Repository
	ctx context.Context

	mu       sync.Mutex
	list     []snapshot.Entry
	listedAt time.Time
}

// snapshots returns the snapshots, newest last, listed again at most every 10 s.
func (m *mounter) snapshots() ([]snapshot.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.list != nil && time.Since(m.listedAt) < 10*time.Second {
		return m.list, nil
	}
	if err := m.r.LoadIndex(m.ctx); err != nil {
		return nil, err
	}
	list, err := snapshot.List(m.ctx, m.r, snapshot.Filter{})
	if err != nil {
		return nil, err
	}
	m.list, m.listedAt = list, time.Now()
	return list, nil
}

// inode returns the inode number a file of snapshot snap shows: for a file with
// several links, one number for all its names (from the snapshot and the source's
// device and inode), so that hard links stay hard links; 0 (a fresh number) else.
// The numbers keep the top bit clear, which go-fuse's own numbers set.
func (m *mounter) inode(snap repo.ID, n *repo.Node) uint64 {
	if n.Links < 2 || n.Type == repo.NodeDir {
		return 0
	}
	h := fnv.New64a()
	h.Write(snap[:])
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], n.DeviceID)
	binary.LittleEndian.PutUint64(b[8:], n.Inode)
	h.Write(b[:])
	return h.Sum64()&^(1<<63) | 1
}

func (m *mounter) find(short string) (snapshot.Entry, bool) {
	list, err := m.snapshots()
	if err != nil {
		return snapshot.Entry{}, false
	}
	for _, e := range list {
		if e.ID.Short() == short {
			return e, true
		}
	}
	return snapshot.Entry{}, false
}

func dirAttr(out *fuse.Attr, t time.Time) {
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 2
	setTime(out, t.UnixNano(), t.UnixNano(), t.UnixNano())
}

func setTime(out *fuse.Attr, m, a, c int64) {
	out.Mtime, out.Mtimensec = uint64(m/1e9), uint32(m%1e9)
	out.Atime, out.Atimensec = uint64(a/1e9), uint32(a%1e9)
	out.Ctime, out.Ctimensec = uint64(c/1e9), uint32(c%1e9)
}

// rootNode is the mount point: snapshots, hosts, tags and latest.
type rootNode struct {
	fs.Inode
	m *mounter
}

var _ = (fs.NodeLookuper)((*rootNode)(nil))

func (n *rootNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	dirAttr(&out.Attr, time.Now())
	return 0
}

func (n *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream([]fuse.DirEntry{
		{Name: "snapshots", Mode: syscall.S_IFDIR}, {Name: "hosts", Mode: syscall.S_IFDIR},
		{Name: "tags", Mode: syscall.S_IFDIR}, {Name: "latest", Mode: syscall.S_IFLNK},
	}), 0
}

func (n *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	switch name {
	case "snapshots":
		dirAttr(&out.Attr, time.Now())
		return n.NewInode(ctx, &snapshotsDir{m: n.m}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
	case "hosts", "tags":
		dirAttr(&out.Attr, time.Now())
		return n.NewInode(ctx, &groupsDir{m: n.m, byTag: name == "tags"}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
	case "latest":
		list, err := n.m.snapshots()
		if err != nil || len(list) == 0 {
			return nil, syscall.ENOENT
		}
		target := "snapshots/" + list[len(list)-1].ID.Short()
		out.Mode, out.Size = syscall.S_IFLNK|0o777, uint64(len(target))
		// A short timeout: latest changes when a backup runs.
		out.SetEntryTimeout(time.Second)
		out.SetAttrTimeout(time.Second)
		return n.NewInode(ctx, &linkNode{target: target}, fs.StableAttr{Mode: syscall.S_IFLNK}), 0
	}
	return nil, syscall.ENOENT
}

// snapshotsDir lists every snapshot by its short id.
type snapshotsDir struct {
	fs.Inode
	m *mounter
}

func (n *snapshotsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	list, err := n.m.snapshots()
	if err != nil {
		return nil, syscall.EIO
	}
	entries := make([]fuse.DirEntry, 0, len(list))
	for _, e := range list {
		entries = append(entries, fuse.DirEntry{Name: e.ID.Short(), Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(entries), 0
}

func (n *snapshotsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	e, ok := n.m.find(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	node, errno := snapshotNode(n.m, e)
	if errno != 0 {
		return nil, errno
	}
	dirAttr(&out.Attr, e.Time)
	return n.NewInode(ctx, node, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

// groupsDir lists hosts (or tags); each holds links to its snapshots.
type groupsDir struct {
	fs.Inode
	m     *mounter
	byTag bool
}

func (n *groupsDir) groups() map[string][]string {
	list, err := n.m.snapshots()
	if err != nil {
		return nil
	}
	g := map[string][]string{}
	for _, e := range list {
		keys := []string{e.Host}
		if n.byTag {
			keys = e.Tags
		}
		for _, k := range keys {
			if k != "" && k != "." && k != ".." {
				g[k] = append(g[k], e.ID.Short())
			}
		}
	}
	return g
}

func (n *groupsDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var names []string
	for k := range n.groups() {
		names = append(names, k)
	}
	sort.Strings(names)
	entries := make([]fuse.DirEntry, len(names))
	for i, k := range names {
		entries[i] = fuse.DirEntry{Name: k, Mode: syscall.S_IFDIR}
	}
	return fs.NewListDirStream(entries), 0
}

func (n *groupsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ids, ok := n.groups()[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	dirAttr(&out.Attr, time.Now())
	return n.NewInode(ctx, &linksDir{ids: ids}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

// linksDir holds one link per snapshot id, to ../../snapshots/ID.
type linksDir struct {
	fs.Inode
	ids []string
}

func (n *linksDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	entries := make([]fuse.DirEntry, len(n.ids))
	for i, id := range n.ids {
		entries[i] = fuse.DirEntry{Name: id, Mode: syscall.S_IFLNK}
	}
	return fs.NewListDirStream(entries), 0
}

func (n *linksDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	for _, id := range n.ids {
		if id == name {
			target := "../../snapshots/" + id
			out.Mode, out.Size = syscall.S_IFLNK|0o777, uint64(len(target))
			return n.NewInode(ctx, &linkNode{target: target}, fs.StableAttr{Mode: syscall.S_IFLNK}), 0
		}
	}
	return nil, syscall.ENOENT
}

// linkNode is a symlink of the mount's own layout.
type linkNode struct {
	fs.Inode
	target string
}

func (n *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) { return []byte(n.target), 0 }

func (n *linkNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode, out.Size = syscall.S_IFLNK|0o777, uint64(len(n.target))
	return 0
}
