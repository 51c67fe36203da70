package localfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"cairn/internal/repo"
)

// ReadNode returns the metadata of the entry at path, whose os.Lstat is fi; the
// node's Name is fi.Name(). Content and Subtree are left empty for the caller.
//
// Every extended attribute is read (llistxattr, lgetxattr) and returned sorted by
// name; a filesystem without extended attributes gives none. When some part cannot be
// read (an attribute, a symlink's target) ReadNode still returns the node with
// everything else filled in, together with an error that lists each failure; a nil
// node is returned only when path cannot be stat'ed at all. A nil fi is looked up.
func ReadNode(path string, fi os.FileInfo) (*repo.Node, error) {
	if fi == nil {
		var err error
		if fi, err = os.Lstat(path); err != nil {
			return nil, err
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		st = new(syscall.Stat_t)
		if err := syscall.Lstat(path, st); err != nil {
			return nil, &os.PathError{Op: "lstat", Path: path, Err: err}
		}
	}
	n := &repo.Node{
		Name:     repo.RawString(fi.Name()),
		Mode:     uint32(st.Mode) & 07777,
		UID:      st.Uid,
		GID:      st.Gid,
		User:     userName(st.Uid),
		Group:    groupName(st.Gid),
		MTime:    st.Mtim.Nano(),
		ATime:    st.Atim.Nano(),
		CTime:    st.Ctim.Nano(),
		Inode:    uint64(st.Ino),
		DeviceID: uint64(st.Dev),
		Links:    uint64(st.Nlink),
	}
	var errs []error
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type = repo.NodeFile
		n.Size = uint64(st.Size)
	case unix.S_IFDIR:
		n.Type = repo.NodeDir
	case unix.S_IFLNK:
		n.Type = repo.NodeSymlink
		target, err := os.Readlink(path)
		if err != nil {
			errs = append(errs, err)
		}
		n.LinkTarget = repo.RawString(target)
	case unix.S_IFBLK:
		n.Type = repo.NodeDev
		n.Rdev = uint64(st.Rdev)
	case unix.S_IFCHR:
		n.Type = repo.NodeCharDev
		n.Rdev = uint64(st.Rdev)
	case unix.S_IFIFO:
		n.Type = repo.NodeFIFO
	case unix.S_IFSOCK:
		n.Type = repo.NodeSocket
	default:
		return nil, fmt.Errorf("%s: unknown file type %#o", path, st.Mode&unix.S_IFMT)
	}
	xattrs, err := readXattrs(path)
	if err != nil {
		errs = append(errs, err)
	}
	n.Xattrs = xattrs
	return n, errors.Join(errs...)
}

// readXattrs returns every extended attribute of path (not following a symlink),
// sorted by name. The attributes that could be read are returned even with an error.
func readXattrs(path string) ([]repo.Xattr, error) {
	var list []byte
	for {
		size, err := unix.Llistxattr(path, nil)
		if err == nil && size > 0 {
			list = make([]byte, size)
			size, err = unix.Llistxattr(path, list)
		}
		switch {
		case err == unix.ERANGE: // the list grew between the two calls
			continue
		case notSupported(err):
			return nil, nil
		case err != nil:
			return nil, &os.PathError{Op: "llistxattr", Path: path, Err: err}
		}
		list = list[:size]
		break
	}
	var names []string
	for _, name := range bytes.Split(list, []byte{0}) {
		if len(name) > 0 {
			names = append(names, string(name))
		}
	}
	sort.Strings(names)
	var (
		xattrs []repo.Xattr
		errs   []error
	)
	for _, name := range names {
		value, err := getXattr(path, name)
		switch {
		case err == unix.ENODATA: // removed since the listing
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("lgetxattr %s %s: %w", path, name, err))
			continue
		}
		xattrs = append(xattrs, repo.Xattr{Name: repo.RawString(name), Value: value})
	}
	return xattrs, errors.Join(errs...)
}

func getXattr(path, name string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		value := make([]byte, size)
		if size == 0 {
			return value, nil
		}
		size, err = unix.Lgetxattr(path, name, value)
		if err == unix.ERANGE { // the value grew between the two calls
			continue
		}
		if err != nil {
			return nil, err
		}
		return value[:size], nil
	}
}

func notSupported(err error) bool {
	return err == unix.ENOTSUP || err == unix.EOPNOTSUPP
}

// Create makes the entry n describes at path, which must not exist: a symlink, a
// block or character device (with n.Rdev), a FIFO or a socket. Regular files and
// directories are the caller's to create. The entry is made with mode 0600 (0777 for
// a symlink); ApplyMetadata sets the rest.
func Create(path string, n *repo.Node) error {
	var err error
	switch n.Type {
	case repo.NodeSymlink:
		return os.Symlink(string(n.LinkTarget), path)
	case repo.NodeDev:
		err = unix.Mknod(path, unix.S_IFBLK|0600, int(n.Rdev))
	case repo.NodeCharDev:
		err = unix.Mknod(path, unix.S_IFCHR|0600, int(n.Rdev))
	case repo.NodeFIFO:
		err = unix.Mkfifo(path, 0600)
	case repo.NodeSocket:
		err = unix.Mknod(path, unix.S_IFSOCK|0600, 0)
	default:
		return fmt.Errorf("localfs: cannot create %s: node type %q", path, n.Type)
	}
	if err != nil {
		return &os.PathError{Op: "mknod", Path: path, Err: err}
	}
	return nil
}

// ApplyMetadata gives the entry at path the metadata of n, in this order: owner
// (lchown with the numeric ids, only when running as root), extended attributes
// (each set with lsetxattr; attributes path already has are kept), permission bits
// (not for a symlink; after the owner because chown clears setuid, and after the
// ACLs because the mode sets the ACL mask), then access and modification times with
// nanoseconds, on a symlink itself rather than its target. Every step is tried; the
// first error is returned.
//
// Call it after the entry's content is written, and for a directory after all its
// entries are restored, since writing changes the times and may clear setuid and
// file capabilities.
func ApplyMetadata(path string, n *repo.Node) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if os.Geteuid() == 0 {
		if err := unix.Lchown(path, int(n.UID), int(n.GID)); err != nil {
			keep(&os.PathError{Op: "lchown", Path: path, Err: err})
		}
	}
	for _, x := range n.Xattrs {
		if err := unix.Lsetxattr(path, string(x.Name), x.Value, 0); err != nil {
			keep(fmt.Errorf("lsetxattr %s %s: %w", path, x.Name, err))
		}
	}
	if n.Type != repo.NodeSymlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, path, n.Mode&07777, 0); err != nil {
			keep(&os.PathError{Op: "chmod", Path: path, Err: err})
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.ATime), unix.NsecToTimespec(n.MTime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		keep(&os.PathError{Op: "utimensat", Path: path, Err: err})
	}
	return first
}

// SeekData returns the offset of the first byte of data at or after offset in f, as
// lseek with SEEK_DATA does, and io.EOF when there is no data from offset to the end
// of the file. f's offset is moved to the result. On a filesystem that cannot tell
// data from holes the whole file is data.
func SeekData(f *os.File, offset int64) (int64, error) {
	return seek(f, offset, unix.SEEK_DATA)
}

// SeekHole returns the offset of the first hole at or after offset in f, as lseek with
// SEEK_HOLE does; the end of the file counts as a hole, so the result is the file's
// size when there is none before it. It returns io.EOF when offset is at or past the
// end of the file. f's offset is moved to the result.
func SeekHole(f *os.File, offset int64) (int64, error) {
	return seek(f, offset, unix.SEEK_HOLE)
}

func seek(f *os.File, offset int64, whence int) (int64, error) {
	pos, err := f.Seek(offset, whence)
	if err == nil {
		return pos, nil
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return 0, err
	}
	switch {
	case errno == unix.ENXIO:
		return 0, io.EOF
	case errno == unix.EINVAL && offset >= 0, notSupported(errno):
		// No SEEK_DATA/SEEK_HOLE here: the file is all data.
		fi, serr := f.Stat()
		if serr != nil {
			return 0, serr
		}
		if offset >= fi.Size() {
			return 0, io.EOF
		}
		pos := offset
		if whence == unix.SEEK_HOLE {
			pos = fi.Size()
		}
		return f.Seek(pos, io.SeekStart)
	}
	return 0, err
}

// nameCache remembers user and group names by id, including ids without a name.
type nameCache struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

var names = nameCache{users: map[uint32]string{}, groups: map[uint32]string{}}

func userName(uid uint32) string {
	names.mu.Lock()
	defer names.mu.Unlock()
	if name, ok := names.users[uid]; ok {
		return name
	}
	var name string
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		name = u.Username
	}
	names.users[uid] = name
	return name
}

func groupName(gid uint32) string {
	names.mu.Lock()
	defer names.mu.Unlock()
	if name, ok := names.groups[gid]; ok {
		return name
	}
	var name string
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		name = g.Name
	}
	names.groups[gid] = name
	return name
}
