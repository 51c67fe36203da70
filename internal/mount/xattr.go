//go:build linux || darwin

package mount

import (
	"context"
	"syscall"

	"cairn/internal/repo"
	"cairn/internal/vfs"
)

// getxattr copies the value of attribute name of n into dest, or says how large it
// is when dest is empty, as getxattr(2) does.
func getxattr(n *repo.Node, name string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range n.Xattrs {
		if string(x.Name) != name {
			continue
		}
		if len(dest) == 0 {
			return uint32(len(x.Value)), 0
		}
		if len(dest) < len(x.Value) {
			return uint32(len(x.Value)), syscall.ERANGE
		}
		return uint32(copy(dest, x.Value)), 0
	}
	return 0, syscall.ENODATA
}

// listxattr writes the NUL-terminated names of n's attributes into dest, as
// listxattr(2) does.
func listxattr(n *repo.Node, dest []byte) (uint32, syscall.Errno) {
	var size int
	for _, x := range n.Xattrs {
		size += len(x.Name) + 1
	}
	if len(dest) == 0 {
		return uint32(size), 0
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	i := 0
	for _, x := range n.Xattrs {
		i += copy(dest[i:], x.Name)
		dest[i] = 0
		i++
	}
	return uint32(size), 0
}

type xattrs struct{ entry *vfs.Entry }

func (x xattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(x.entry.Node, attr, dest)
}

func (x xattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(x.entry.Node, dest)
}

func (n *vfsDir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return xattrs{n.entry}.Getxattr(ctx, attr, dest)
}

func (n *vfsDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return xattrs{n.entry}.Listxattr(ctx, dest)
}

func (n *vfsFile) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return xattrs{n.entry}.Getxattr(ctx, attr, dest)
}

func (n *vfsFile) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return xattrs{n.entry}.Listxattr(ctx, dest)
}

func (n *vfsOther) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return xattrs{n.entry}.Getxattr(ctx, attr, dest)
}

func (n *vfsOther) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return xattrs{n.entry}.Listxattr(ctx, dest)
}
