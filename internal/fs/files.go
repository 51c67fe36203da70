package fs

import "io"

// Entry types, as in a snapshot's tree.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
	TypeDev     = "dev"
	TypeCharDev = "chardev"
	TypeFIFO    = "fifo"
	TypeSocket  = "socket"
)

// Entry is one file, folder, link or special file of a filesystem, with the
// metadata its filesystem keeps; fields a filesystem has no notion of stay zero.
type Entry struct {
	Name       string // one path element; never "", ".", ".." and never holds '/' or NUL
	Type       string
	Mode       uint32 // permission bits with setuid, setgid and sticky (07777)
	UID, GID   uint32
	Size       int64
	MTime      int64 // nanoseconds since the Unix epoch
	ATime      int64
	CTime      int64
	Inode      uint64 // inode or MFT record number; equal for hard links
	Links      uint64
	Rdev       uint64 // device number of a device node
	LinkTarget string
	Xattrs     []Xattr
	// Sys is the reader's own handle of the entry (where its data is).
	Sys any
}

// Xattr is one extended attribute (or, on NTFS, a named data stream).
type Xattr struct {
	Name  string
	Value []byte
}

// Reader reads the files of one filesystem, read-only. Its methods are safe for
// concurrent use. Damaged structures give an error that names the path or inode,
// never a panic or an endless loop.
type Reader interface {
	// Root returns the root folder.
	Root() (*Entry, error)
	// ReadDir returns a folder's entries, sorted by name, without "." and "..".
	ReadDir(dir *Entry) ([]*Entry, error)
	// Open returns the content of a regular file, Size bytes long.
	Open(file *Entry) (io.ReaderAt, error)
}
