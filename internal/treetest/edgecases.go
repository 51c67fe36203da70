//go:build linux

// Package treetest builds file trees full of edge cases and compares two trees
// in every piece of metadata a backup must keep, for round-trip tests of backup
// and restore. It needs Linux and, for most of it, root.
//
// The package imports no other cairn package, so tests of any package can use it:
//
//	treetest.MakeEdgeCases(t, src, treetest.EdgeOptions{SparseSize: 64 << 20})
//	// ... back up src, restore it into dst ...
//	treetest.RequireEqual(t, src, dst, treetest.CompareOptions{})
package treetest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// EdgeOptions tunes MakeEdgeCases. The zero value asks for the defaults.
type EdgeOptions struct {
	// SparseSize is the apparent size of the sparse files; 0 means 3 GiB.
	// It must be at least 4 MiB.
	SparseSize int64
	// Seed seeds the random file content: the same seed gives the same bytes.
	Seed uint64
}

// DefaultSparseSize is the sparse files' size when EdgeOptions.SparseSize is 0.
const DefaultSparseSize = 3 << 30

// BigFileSize is the size of the dense random file "files/big".
const BigFileSize = 20 << 20

// sparseExtent is the length of each written region of a sparse file.
const sparseExtent = 256 << 10

// Times that MakeEdgeCases gives the entries: entry i gets mtime
// mtimeBase+i s and atime atimeBase+i s, each with an odd, non-round
// nanosecond part.
//
// The atimes lie in the future on purpose. Under the default relatime mount
// option Linux updates an atime that is not newer than the ctime whenever the
// entry is read, and readlink(2) always counts as a read; a future atime is
// never updated, so backing up the tree (or comparing it) leaves it as it was
// and a restore can be checked against it to the nanosecond.
var (
	mtimeBase = time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	atimeBase = time.Date(2091, 7, 8, 9, 10, 11, 0, time.UTC)
)

// MakeEdgeCases fills dir (empty, or created if missing) with a tree of edge
// cases for backup round trips, and calls t.Fatal if any part cannot be made.
// Run it as root on a filesystem with xattrs and POSIX ACLs (ext4, xfs, btrfs, tmpfs).
//
// The tree holds, by top-level folder:
//   - names/: unicode names (NFC and NFD spellings of "café" side by side),
//     names that are not valid UTF-8 (a file and a folder), a newline, a
//     backslash, a leading dash, a hidden name and a 255-byte name;
//   - files/: a 0-byte file, small random files and a 20 MiB random file "big";
//   - sparse/: "sparse" with data at the start, middle (at an unaligned offset)
//     and end and holes between, "tail-hole" whose data is followed by a hole,
//     and "all-hole" with no data, each of size opts.SparseSize; the holes are
//     never written;
//   - modes/: files with modes 0400, 0000, 04755, 02755 and a sticky 01777 folder;
//   - owners/: entries owned by 1234:2345 (a file, a folder and a symlink) and
//     a file owned by 0:0;
//   - xattr/: a file and a folder with user.* xattrs, binary (bytes 0..255),
//     empty and 2000-byte values;
//   - acl/: a file with an access ACL, a folder with access and default ACLs,
//     and a file and folder inside it that inherited the default ACL;
//   - hardlinks/: one inode under three names in different folders and a
//     pair in one folder;
//   - links/: symlinks relative, absolute, dangling, a loop (loop-a, loop-b),
//     a self loop, one to a folder, one whose target is not valid UTF-8 and one
//     with a 2000-byte target;
//   - special/: a fifo, a char device (1, 3) and a block device (7, 200);
//   - empty/ and empty-0700/: empty folders (modes 0755 and 0700);
//   - deep/: a file 40 folders down, its path over 1000 bytes long;
//   - many/: 2000 small files.
//
// Every entry, dir itself included, then gets its own mtime and atime with a
// nanosecond part (set without following symlinks, folders last and deepest
// first); see mtimeBase and atimeBase. The content depends only on opts.
func MakeEdgeCases(t testing.TB, dir string, opts EdgeOptions) {
	t.Helper()
	if opts.SparseSize == 0 {
		opts.SparseSize = DefaultSparseSize
	}
	if opts.SparseSize < 4<<20 {
		t.Fatalf("treetest: SparseSize %d is under 4 MiB", opts.SparseSize)
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], opts.Seed)
	b := &builder{t: t, root: dir, rnd: rand.NewChaCha8(seed)}
	b.mkdir("", 0o755)
	b.names()
	b.files()
	b.sparse(opts.SparseSize)
	b.modes()
	b.owners()
	b.xattrs()
	b.acls()
	b.hardlinks()
	b.symlinks()
	b.specials()
	b.empties()
	b.deep()
	b.many()
	setEdgeTimes(t, dir)
}

// builder makes the entries of an edge-case tree under root, failing t on
// any error. Paths given to its methods are relative to root.
type builder struct {
	t    testing.TB
	root string
	rnd  *rand.ChaCha8
}

func (b *builder) path(rel string) string {
	if rel == "" {
		return b.root
	}
	return b.root + "/" + rel
}

func (b *builder) check(err error, what string) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("treetest: %s: %v", what, err)
	}
}

// random returns n pseudo-random bytes from the builder's seeded stream.
func (b *builder) random(n int) []byte {
	p := make([]byte, n)
	b.rnd.Read(p)
	return p
}

// intn returns a pseudo-random int in [0, n).
func (b *builder) intn(n int) int {
	return int(b.rnd.Uint64() % uint64(n))
}

// mkdir makes folder rel (and missing parents) and sets its mode exactly,
// regardless of the umask.
func (b *builder) mkdir(rel string, mode uint32) {
	b.t.Helper()
	b.check(os.MkdirAll(b.path(rel), 0o755), "mkdir")
	b.chmod(rel, mode)
}

// file writes file rel with data and sets its mode exactly.
func (b *builder) file(rel string, data []byte, mode uint32) {
	b.t.Helper()
	b.check(os.WriteFile(b.path(rel), data, 0o600), "write file")
	b.chmod(rel, mode)
}

func (b *builder) chmod(rel string, mode uint32) {
	b.t.Helper()
	b.check(unix.Chmod(b.path(rel), mode), "chmod")
}

func (b *builder) chown(rel string, uid, gid int) {
	b.t.Helper()
	b.check(os.Lchown(b.path(rel), uid, gid), "lchown")
}

func (b *builder) symlink(target, rel string) {
	b.t.Helper()
	b.check(os.Symlink(target, b.path(rel)), "symlink")
}

func (b *builder) setxattr(rel, name string, value []byte) {
	b.t.Helper()
	b.check(unix.Lsetxattr(b.path(rel), name, value, 0), "setxattr "+name)
}

func (b *builder) run(name string, args ...string) {
	b.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	b.check(err, fmt.Sprintf("%s %q: %s", name, args, out))
}

func (b *builder) names() {
	b.mkdir("names", 0o755)
	for _, name := range []string{
		"résumé.txt",
		"日本語",
		"emoji-🎉📦",
		"caf\u00e9",  // NFC
		"cafe\u0301", // NFD: looks the same, other bytes
		"bad\xff\xfename",
		"line\nbreak",
		"back\\slash",
		"-dash",
		".hidden",
		"with space",
		strings.Repeat("n", 255),
	} {
		b.file("names/"+name, []byte(name+"\n"), 0o644)
	}
	b.mkdir("names/dir\xc3\x28", 0o755)
	b.file("names/dir\xc3\x28/inner\x80", []byte("inner\n"), 0o644)
}

func (b *builder) files() {
	b.mkdir("files", 0o755)
	b.file("files/empty", nil, 0o644)
	for i := range 10 {
		b.file(fmt.Sprintf("files/small-%02d", i), b.random(1+b.intn(8192)), 0o644)
	}
	f, err := os.OpenFile(b.path("files/big"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	b.check(err, "create big file")
	for range BigFileSize / (1 << 20) {
		_, err = f.Write(b.random(1 << 20))
		b.check(err, "write big file")
	}
	b.check(f.Close(), "close big file")
}

// sparse makes the sparse files by Truncate and WriteAt, never writing holes.
func (b *builder) sparse(size int64) {
	b.mkdir("sparse", 0o755)
	b.sparseFile("sparse/sparse", size, 0, size/2+4097, size-sparseExtent)
	b.sparseFile("sparse/tail-hole", size, 0)
	b.sparseFile("sparse/all-hole", size)
}

// sparseFile makes file rel of the given size with sparseExtent random bytes
// at each of offsets and holes everywhere else.
func (b *builder) sparseFile(rel string, size int64, offsets ...int64) {
	b.t.Helper()
	f, err := os.OpenFile(b.path(rel), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	b.check(err, "create sparse file")
	b.check(f.Truncate(size), "truncate sparse file")
	for _, off := range offsets {
		_, err = f.WriteAt(b.random(sparseExtent), off)
		b.check(err, "write sparse file")
	}
	b.check(f.Close(), "close sparse file")
}

// modes makes entries whose mode bits are easy to lose. Mode is set after
// any chown, since chown clears setuid and setgid.
func (b *builder) modes() {
	b.mkdir("modes", 0o755)
	b.file("modes/ro-0400", []byte("read only\n"), 0o400)
	b.file("modes/none-0000", []byte("no access\n"), 0)
	b.file("modes/setuid-04755", []byte("#!/bin/sh\n"), 0o4755)
	b.file("modes/setgid-02755", []byte("#!/bin/sh\n"), 0o2755)
	b.mkdir("modes/sticky-01777", 0o1777)
}

func (b *builder) owners() {
	b.mkdir("owners", 0o755)
	b.file("owners/uid1234-gid2345", []byte("owned by 1234:2345\n"), 0o644)
	b.chown("owners/uid1234-gid2345", 1234, 2345)
	b.file("owners/root", []byte("owned by 0:0\n"), 0o644)
	b.chown("owners/root", 0, 0)
	b.mkdir("owners/dir-1234", 0o750)
	b.chown("owners/dir-1234", 1234, 2345)
	b.chmod("owners/dir-1234", 0o750)
	b.symlink("uid1234-gid2345", "owners/link-1234")
	b.chown("owners/link-1234", 1234, 2345)
}

func (b *builder) xattrs() {
	b.mkdir("xattr", 0o755)
	binaryValue := make([]byte, 256)
	for i := range binaryValue {
		binaryValue[i] = byte(i)
	}
	b.file("xattr/file", []byte("has xattrs\n"), 0o644)
	b.setxattr("xattr/file", "user.binary", binaryValue)
	b.setxattr("xattr/file", "user.empty", nil)
	b.setxattr("xattr/file", "user.big", b.random(2000))
	b.mkdir("xattr/dir", 0o755)
	b.setxattr("xattr/dir", "user.dir", []byte("folder value\x00with nul"))
}

// acls sets POSIX ACLs with setfacl; the inherited entries are made after
// the default ACL so that the kernel gives them ACLs of their own.
func (b *builder) acls() {
	b.mkdir("acl", 0o755)
	b.file("acl/file", []byte("has an ACL\n"), 0o640)
	b.run("setfacl", "-m", "u:1234:rw-,g:2345:r--", b.path("acl/file"))
	b.mkdir("acl/dir", 0o750)
	b.run("setfacl", "-m", "u:1234:rwx,g:2345:r-x,"+
		"d:u::rwx,d:g::r-x,d:o::---,d:u:1234:r-x,d:g:2345:rwx", b.path("acl/dir"))
	b.check(os.WriteFile(b.path("acl/dir/inherited"), []byte("inherited ACL\n"), 0o640), "write file")
	b.check(os.Mkdir(b.path("acl/dir/sub"), 0o750), "mkdir")
}

func (b *builder) hardlinks() {
	b.mkdir("hardlinks/a", 0o755)
	b.mkdir("hardlinks/b", 0o755)
	b.mkdir("hardlinks/pair", 0o755)
	b.file("hardlinks/a/one", []byte("one inode, three names\n"), 0o644)
	b.check(os.Link(b.path("hardlinks/a/one"), b.path("hardlinks/b/two")), "link")
	b.check(os.Link(b.path("hardlinks/a/one"), b.path("hardlinks/three")), "link")
	b.file("hardlinks/pair/x", []byte("one inode, two names\n"), 0o600)
	b.check(os.Link(b.path("hardlinks/pair/x"), b.path("hardlinks/pair/y")), "link")
}

func (b *builder) symlinks() {
	b.mkdir("links", 0o755)
	b.symlink("../files/small-00", "links/relative")
	b.symlink("/usr/bin/env", "links/absolute")
	b.symlink("no/such/file", "links/dangling")
	b.symlink("loop-b", "links/loop-a")
	b.symlink("loop-a", "links/loop-b")
	b.symlink("self", "links/self")
	b.symlink("../empty", "links/to-folder")
	b.symlink("bad\xff\xfetarget", "links/bad-target")
	b.symlink(strings.Repeat("long/", 400), "links/long-target")
}

func (b *builder) specials() {
	b.mkdir("special", 0o755)
	b.check(unix.Mkfifo(b.path("special/fifo"), 0o644), "mkfifo")
	b.check(unix.Mknod(b.path("special/char-1-3"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))), "mknod c")
	b.check(unix.Mknod(b.path("special/block-7-200"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))), "mknod b")
	b.chmod("special/fifo", 0o644)
	b.chmod("special/char-1-3", 0o666)
	b.chmod("special/block-7-200", 0o660)
}

func (b *builder) empties() {
	b.mkdir("empty", 0o755)
	b.mkdir("empty-0700", 0o700)
}

// deep makes a file 40 folders down whose path is over 1000 bytes long.
func (b *builder) deep() {
	rel := "deep"
	for i := range 40 {
		rel += fmt.Sprintf("/level-%02d-%s", i, strings.Repeat("d", 16))
	}
	b.mkdir(rel, 0o755)
	rel += "/leaf"
	if len(rel) <= 1000 {
		b.t.Fatalf("treetest: deep path is only %d bytes", len(rel))
	}
	b.file(rel, []byte("deep leaf\n"), 0o644)
}

func (b *builder) many() {
	b.mkdir("many", 0o755)
	for i := range 2000 {
		data := append([]byte(fmt.Sprintf("file %d\n", i)), b.random(b.intn(64))...)
		b.file(fmt.Sprintf("many/f%04d", i), data, 0o644)
	}
}

// setEdgeTimes gives every entry under root, root included, its own mtime
// and atime: non-folders first in walk order, then folders deepest first.
func setEdgeTimes(t testing.TB, root string) {
	t.Helper()
	var files, dirs []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		} else {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("treetest: walk %s: %v", root, err)
	}
	slices.SortStableFunc(dirs, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	for i, p := range append(files, dirs...) {
		if err := setTimes(p, edgeTime(atimeBase, i), edgeTime(mtimeBase, i)); err != nil {
			t.Fatalf("treetest: %v", err)
		}
	}
}

// edgeTime returns base plus i seconds and an odd nanosecond part that
// differs for each i.
func edgeTime(base time.Time, i int) time.Time {
	return base.Add(time.Duration(i)*time.Second + time.Duration(123456789+2*i))
}

// setTimes sets the atime and mtime of p, without following a symlink.
func setTimes(p string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %q: %w", p, err)
	}
	return nil
}
