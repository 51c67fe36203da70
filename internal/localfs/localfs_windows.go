package localfs

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/windows"

	"cairn/internal/repo"
)

// ReadNode returns the metadata of the entry at path, whose os.Lstat is fi; the
// node's Name is fi.Name(). On Windows that is what os.FileInfo gives: the type, the
// mode bits Go reports, the size of a file, the modification and access times, and a
// symlink's target. There are no owners, link counts or extended attributes.
// Content and Subtree are left empty for the caller. A nil fi is looked up.
func ReadNode(path string, fi os.FileInfo) (*repo.Node, error) {
	if fi == nil {
		var err error
		if fi, err = os.Lstat(path); err != nil {
			return nil, err
		}
	}
	m := fi.Mode()
	n := &repo.Node{
		Name:  repo.RawString(fi.Name()),
		Mode:  uint32(m.Perm()),
		MTime: fi.ModTime().UnixNano(),
		Links: 1,
	}
	if m&os.ModeSetuid != 0 {
		n.Mode |= 04000
	}
	if m&os.ModeSetgid != 0 {
		n.Mode |= 02000
	}
	if m&os.ModeSticky != 0 {
		n.Mode |= 01000
	}
	n.ATime = n.MTime
	if d, ok := fi.Sys().(*syscall.Win32FileAttributeData); ok {
		n.ATime = d.LastAccessTime.Nanoseconds()
	}
	var err error
	if m&os.ModeIrregular != 0 && m.IsDir() {
		// A junction or mount point: kept as a symlink to its target, so that a
		// walk does not follow it.
		if target, rerr := os.Readlink(path); rerr == nil {
			n.Type = repo.NodeSymlink
			n.LinkTarget = repo.RawString(target)
			return n, nil
		}
	}
	switch {
	case m&os.ModeSymlink != 0:
		n.Type = repo.NodeSymlink
		var target string
		target, err = os.Readlink(path)
		n.LinkTarget = repo.RawString(target)
	case m.IsDir():
		n.Type = repo.NodeDir
	case m.IsRegular():
		n.Type = repo.NodeFile
		n.Size = uint64(fi.Size())
	case m&os.ModeNamedPipe != 0:
		n.Type = repo.NodeFIFO
	case m&os.ModeSocket != 0:
		n.Type = repo.NodeSocket
	case m&os.ModeCharDevice != 0:
		n.Type = repo.NodeCharDev
	case m&os.ModeDevice != 0:
		n.Type = repo.NodeDev
	default:
		// Other reparse points (deduplicated or cloud files): read as files.
		n.Type = repo.NodeFile
		n.Size = uint64(fi.Size())
	}
	return n, err
}

// Create makes the entry n describes at path, which must not exist. On Windows only
// symlinks can be made (which needs the privilege to create them or developer mode).
func Create(path string, n *repo.Node) error {
	if n.Type == repo.NodeSymlink {
		return os.Symlink(string(n.LinkTarget), path)
	}
	return fmt.Errorf("localfs: cannot create %s: node type %q is not supported on Windows", path, n.Type)
}

// ApplyMetadata gives the entry at path the mode bits of n (on Windows only the
// owner's write bit matters: without it the file is read-only; not for a symlink),
// then its access and modification times (on a symlink itself). Owners and extended
// attributes are not restored. Both steps are tried; the first error is returned.
// Call it after the content is written, and for a directory after its entries.
func ApplyMetadata(path string, n *repo.Node) error {
	var first error
	if n.Type != repo.NodeSymlink {
		first = os.Chmod(path, os.FileMode(n.Mode&0777))
	}
	if err := setTimes(path, n.ATime, n.MTime); err != nil && first == nil {
		first = err
	}
	return first
}

// setTimes sets the access and modification times of path without following a
// symlink or junction.
func setTimes(path string, atime, mtime int64) error {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return &os.PathError{Op: "chtimes", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, windows.FILE_WRITE_ATTRIBUTES,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil,
		windows.OPEN_EXISTING,
		windows.FILE_FLAG_OPEN_REPARSE_POINT|windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return &os.PathError{Op: "chtimes", Path: path, Err: err}
	}
	a := windows.NsecToFiletime(atime)
	m := windows.NsecToFiletime(mtime)
	err = windows.SetFileTime(h, nil, &a, &m)
	if cerr := windows.CloseHandle(h); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "chtimes", Path: path, Err: err}
	}
	return nil
}

// SeekData returns offset when it is before the end of f, and io.EOF otherwise: on
// Windows every byte of a file is treated as data. f's offset is moved to the result.
func SeekData(f *os.File, offset int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if offset >= fi.Size() {
		return 0, io.EOF
	}
	return f.Seek(offset, io.SeekStart)
}

// SeekHole returns the size of f, the only hole Windows reports here, and io.EOF when
// offset is at or past the end. f's offset is moved to the result.
func SeekHole(f *os.File, offset int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if offset >= fi.Size() {
		return 0, io.EOF
	}
	return f.Seek(fi.Size(), io.SeekStart)
}
