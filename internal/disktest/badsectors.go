//go:build linux

package disktest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// BadSectors serves the file at path, through a FUSE mount, as a disk with bad
// sectors: a read that touches one of the runs [off, off+n) fails with EIO, as a
// failing disk's does, and every other read returns the file's bytes. It returns
// the served file's path and a function that heals the disk (no read fails after
// it). The mount goes when the test ends.
func BadSectors(t *testing.T, path string, bad [][2]int64) (string, func()) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	file := &badFile{f: f, size: st.Size(), bad: bad}
	root := &badRoot{file: file}
	dir := t.TempDir()
	server, err := fs.Mount(dir, root, &fs.Options{MountOptions: fuse.MountOptions{
		FsName: "badsectors", Options: []string{"ro"}, MaxReadAhead: 0,
	}})
	if err != nil {
		t.Fatalf("mount the disk with bad sectors: %v", err)
	}
	t.Cleanup(func() { _ = server.Unmount() })
	return filepath.Join(dir, "disk.img"), file.heal
}

type badRoot struct {
	fs.Inode
	file *badFile
}

var _ = (fs.NodeOnAdder)((*badRoot)(nil))

func (r *badRoot) OnAdd(ctx context.Context) {
	r.AddChild("disk.img", r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

type badFile struct {
	fs.Inode
	f    *os.File
	size int64

	mu  sync.Mutex
	bad [][2]int64
}

var (
	_ = (fs.NodeGetattrer)((*badFile)(nil))
	_ = (fs.NodeOpener)((*badFile)(nil))
	_ = (fs.NodeReader)((*badFile)(nil))
)

func (b *badFile) heal() {
	b.mu.Lock()
	b.bad = nil
	b.mu.Unlock()
}

func (b *badFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(b.size)
	return 0
}

// Open asks for direct I/O: every read reaches Read as asked, without the page
// cache reading around it.
func (b *badFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (b *badFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	b.mu.Lock()
	for _, r := range b.bad {
		if off < r[0]+r[1] && r[0] < off+int64(len(dest)) {
			b.mu.Unlock()
			return nil, syscall.EIO
		}
	}
	b.mu.Unlock()
	n, err := b.f.ReadAt(dest, off)
	if n == 0 && err != nil {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(dest[:n]), 0
}
