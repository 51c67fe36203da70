//go:build linux

package ext

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	cfs "cairn/internal/fs"
)

// Tests of the file reader on real filesystems: a tree of every kind of file
// goes into filesystems made by mke2fs -d (e2fsprogs' writer) or copied in by
// the kernel, then the kernel adds what -d cannot carry (nanosecond times,
// a 50000-entry hashed folder, unwritten extents); the reader's view of each
// is compared, entry by entry and byte by byte, with the kernel's view of the
// same image mounted read-only.

// fileTreeSparseSize is the size of the sparse file past 4 GiB.
const fileTreeSparseSize = 4<<30 + 8<<20 + 12345

// bigFolderEntries is the number of files in the folder the kernel fills.
const bigFolderEntries = 50000

var (
	fileTreeOnce sync.Once
	fileTreeDir  string
	fileTreeErr  error
)

// fileTree returns a folder holding every kind of file the reader must read,
// made once for the test binary (as root: it makes devices and gives files
// to other owners).
func fileTree(t testing.TB) string {
	t.Helper()
	needRoot(t)
	fileTreeOnce.Do(func() {
		fileTreeDir, fileTreeErr = os.MkdirTemp("", "cairn-ext-files-")
		if fileTreeErr == nil {
			fileTreeErr = makeFileTree(fileTreeDir)
		}
	})
	if fileTreeErr != nil {
		t.Fatal(fileTreeErr)
	}
	return fileTreeDir
}

// makeFileTree fills dir: regular files of sizes around every boundary of the
// block maps (inline, direct, single and double indirect), a file with holes,
// a sparse file past 4 GiB (triple indirect blocks, 64-bit sizes), a file of
// 1500 separate extents (an extent tree of depth 2), nested folders,
// symlinks of every length class, hard links, a fifo, a socket, devices in
// both encodings, unicode and non-UTF-8 names, xattrs small and large,
// access and default ACLs, setuid, setgid and sticky modes, and owners past
// 16 bits.
func makeFileTree(dir string) error {
	rng := rand.New(rand.NewChaCha8([32]byte{'f', 'i', 'l', 'e', 's'}))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var firstErr error
	check := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	path := func(rel string) string { return filepath.Join(dir, rel) }
	write := func(rel string, b []byte) {
		check(os.MkdirAll(filepath.Dir(path(rel)), 0o755))
		check(os.WriteFile(path(rel), b, 0o644))
	}
	sh := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			check(fmt.Errorf("%s %v: %v: %s", name, args, err, out))
		}
	}

	for _, n := range []int{0, 1, 59, 60, 61, 100, 1023, 1024, 1025, 4095, 4096, 4097,
		12*1024 - 1, 12*1024 + 1, 12*4096 + 1, 268*1024 + 5, 1<<20 + 3, 4<<20 + 4097, 5<<20 + 7} {
		write(fmt.Sprintf("sizes/s%d", n), data(n))
	}

	// Holes: data, a hole, data, a hole to the end.
	f, err := os.Create(path("holes"))
	check(err)
	_, err = f.WriteAt(data(5000), 0)
	check(err)
	_, err = f.WriteAt(data(3), 1<<20)
	check(err)
	check(f.Truncate(3 << 20))
	check(f.Close())

	// Past 4 GiB: data at the start, at 2 GiB, past 4 GiB, and at the end.
	f, err = os.Create(path("sparse-4g"))
	check(err)
	for _, off := range []int64{0, 2 << 30, 4<<30 + 100, 4<<30 + 5<<20, fileTreeSparseSize - 7} {
		_, err = f.WriteAt(data(7), off)
		check(err)
	}
	check(f.Close())

	// 1500 extents: 4 KiB of data every 8 KiB.
	f, err = os.Create(path("fragmented"))
	check(err)
	for i := range 1500 {
		_, err = f.WriteAt(data(4096), int64(i)*8192)
		check(err)
	}
	check(f.Close())

	write("nested/a/b/c/d/e/f/g/deep.txt", []byte("deep\n"))
	for i := range 150 {
		write(fmt.Sprintf("nested/many/%d/f%d", i%5, i), data(rng.IntN(3000)))
	}

	for name, target := range map[string]string{
		"link-short":    "sizes/s1",
		"link-59":       strings.Repeat("x", 59),
		"link-60":       strings.Repeat("y", 60),
		"link-long":     strings.Repeat("a-long-symlink-target/", 10),
		"link-900":      strings.Repeat("z", 900),
		"link-dangling": "/nowhere/at/all",
		"nested/up":     "../sizes",
	} {
		check(os.Symlink(target, path(name)))
	}

	check(os.Link(path("sizes/s100"), path("hard1")))
	check(os.Link(path("sizes/s100"), path("nested/hard2")))
	check(os.Link(path("sizes/s4097"), path("nested/a/hard3")))

	check(syscall.Mkfifo(path("fifo"), 0o640))
	check(syscall.Mknod(path("char-null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	check(syscall.Mknod(path("block-sda1"), syscall.S_IFBLK|0o660, int(unix.Mkdev(8, 1))))
	check(syscall.Mknod(path("char-big"), syscall.S_IFCHR|0o600, int(unix.Mkdev(300, 70000)))) // the new encoding
	if l, err := net.Listen("unix", path("socket")); err == nil {
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	} else {
		check(err)
	}

	write("names/ünïcödé-名前-🙂", []byte("unicode\n"))
	write("names/\xff\xfe-not-utf8-\x80", []byte("bytes\n"))
	write("names/with space and 'quote'", nil)
	write("names/"+strings.Repeat("n", 255), []byte("longest name\n"))
	write("names/.hidden", nil)
	write("names/...", nil)

	write("xattr/small", []byte("x"))
	check(unix.Setxattr(path("xattr/small"), "user.one", []byte("1"), 0))
	check(unix.Setxattr(path("xattr/small"), "user.empty", nil, 0))
	check(unix.Setxattr(path("xattr/small"), "trusted.t", []byte("trusted value"), 0))
	check(unix.Setxattr(path("xattr/small"), "security.s", []byte("sec"), 0))
	write("xattr/big", []byte("y"))
	check(unix.Setxattr(path("xattr/big"), "user.big", bytes.Repeat([]byte("0123456789"), 70), 0))
	check(unix.Setxattr(path("xattr/big"), "user.small", []byte("s"), 0))
	write("xattr/acl", []byte("acl"))
	sh("setfacl", "-m", "u:1234:rwx,g:5678:r,u:70000:w,m:rwx", path("xattr/acl"))
	check(os.Mkdir(path("xattr/acl-dir"), 0o750))
	sh("setfacl", "-m", "u:1234:rx", "-d", "-m", "u:1234:rwx,g:99:r", path("xattr/acl-dir"))
	check(os.Mkdir(path("xattr/dir-with-xattr"), 0o755))
	check(unix.Setxattr(path("xattr/dir-with-xattr"), "user.dir", []byte("on a folder"), 0))

	for name, mode := range map[string]uint32{
		"modes/setuid": 0o4755, "modes/setgid": 0o2751, "modes/none": 0, "modes/all": 0o777,
		"modes/setuid-setgid-sticky": 0o7777,
	} {
		write(name, []byte(name))
		check(unix.Chmod(path(name), mode))
	}
	check(os.Mkdir(path("modes/sticky-dir"), 0o755))
	check(unix.Chmod(path("modes/sticky-dir"), 0o1777))

	for name, id := range map[string][2]int{"owners/high": {70000, 80000}, "owners/nobody": {65534, 65534},
		"owners/huge": {3000000000, 3000000001}, "owners/one-two": {1, 2}} {
		write(name, []byte(name))
		check(os.Lchown(path(name), id[0], id[1]))
	}
	check(os.Symlink("high", path("owners/link")))
	check(os.Lchown(path("owners/link"), 123456, 654321))
	return firstErr
}

// fileTimes are the times (atime, mtime in nanoseconds) the kernel sets on
// files of every filesystem: nanoseconds, before 1970, past 2038 (the epoch
// bits) and at the edges of 32-bit seconds.
var fileTimes = map[string][2]int64{
	"sizes/s1":             {1700000001_987654321, 1700000000_123456789},
	"sizes/s4097":          {-1, 1_000000001},
	"nested":               {1234567890_000000001, 1600000000_999999999},
	"link-short":           {1500000000_000000005, 1500000000_500000000},
	"owners/high":          {-315619200_000000000 + 500000000, -1_000000000}, // 1960
	"modes/setuid":         {4102444800_000000001, 4102444800_123456789},     // 2100
	"modes/none":           {(1<<31 - 1) * 1_000000000, 1 << 31 * 1_000000000},
	"names/...":            {(1<<32 + 5) * 1_000000000, 6000000000_000000007}, // 2160
	"xattr/dir-with-xattr": {0, 7},
}

// kernelFixup writes, on the filesystem mounted rw at mnt, what mke2fs -d
// cannot: the times in fileTimes, a folder of bigFolderEntries files (a
// hashed folder with index nodes), and a file with unwritten extents (where
// the filesystem has extents).
func kernelFixup(t testing.TB, mnt string) {
	t.Helper()
	big := filepath.Join(mnt, "big-folder")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range bigFolderEntries {
		f, err := os.OpenFile(filepath.Join(big, fmt.Sprintf("entry-%05d", i)), os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if i%5000 == 0 {
			fmt.Fprintf(f, "entry %d\n", i)
		}
		f.Close()
	}

	f, err := os.Create(filepath.Join(mnt, "prealloc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 1<<20); err == nil {
		// Unwritten extents past the end too, then written data between.
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 1<<20, 1<<20); err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("written "), 4000), 300000); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// A value larger than a block: in its own inode with ea_inode, refused
	// elsewhere.
	huge := bytes.Repeat([]byte("a large xattr value "), 1000)
	if err := unix.Setxattr(filepath.Join(mnt, "xattr/small"), "user.huge", huge, 0); err != nil &&
		!errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.E2BIG) {
		t.Fatal(err)
	}

	for rel, tm := range fileTimes {
		ts := []unix.Timespec{unix.NsecToTimespec(tm[0]), unix.NsecToTimespec(tm[1])}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(mnt, rel), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

// readerCase is one filesystem to read.
type readerCase struct {
	name string
	mkfs string
	args []string
	// kernel copies the tree in through a mount instead of mke2fs -d.
	kernel bool
	// check asserts that the filesystem holds the structures the case is
	// there to test.
	check func(t *testing.T, s *structures)
}

var readerCases = []readerCase{
	{name: "ext4", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-O", "64bit,metadata_csum,huge_file"},
		check: func(t *testing.T, s *structures) {
			s.want(t, "extents", "extent-depth-2", "htree", "xattr-block", "fast-symlink", "slow-symlink")
		}},
	{name: "ext4-inline", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-O", "inline_data"},
		check: func(t *testing.T, s *structures) { s.want(t, "inline-file", "inline-dir", "extents") }},
	{name: "ext4-ea_inode", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-O", "ea_inode"},
		check: func(t *testing.T, s *structures) { s.want(t, "ea-inode") }},
	{name: "ext4-1k", mkfs: "mkfs.ext4", args: []string{"-b", "1024"},
		check: func(t *testing.T, s *structures) { s.want(t, "extent-depth-2", "htree", "dx-node") }},
	{name: "ext4-kernel", mkfs: "mkfs.ext4", args: []string{"-b", "4096"}, kernel: true,
		check: func(t *testing.T, s *structures) { s.want(t, "extents", "unwritten", "htree") }},
	{name: "ext3", mkfs: "mkfs.ext3", args: []string{"-b", "4096"},
		check: func(t *testing.T, s *structures) {
			s.want(t, "indirect", "double-indirect", "triple-indirect", "htree")
		}},
	{name: "ext2", mkfs: "mkfs.ext2", args: []string{"-b", "4096"},
		check: func(t *testing.T, s *structures) { s.want(t, "indirect", "triple-indirect") }},
	{name: "ext2-1k-128", mkfs: "mkfs.ext2", args: []string{"-b", "1024", "-I", "128"},
		check: func(t *testing.T, s *structures) {
			s.want(t, "indirect", "double-indirect", "triple-indirect", "htree", "dx-node", "128-byte-inodes")
		}},
}

// makeReaderFS makes the filesystem of case c in a sparse image file, fixed up
// by the kernel, and returns its path.
func makeReaderFS(t *testing.T, c readerCase) string {
	t.Helper()
	src := fileTree(t)
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 160<<20); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-F", "-q", "-N", "60000"}, c.args...)
	if !c.kernel {
		args = append(args, "-d", src)
	}
	run(t, c.mkfs, append(args, img)...)
	withMount(t, img, "rw", func(dir string) {
		if c.kernel {
			run(t, "cp", "-a", src+"/.", dir)
		}
		kernelFixup(t, dir)
	})
	return img
}

// TestReaderMatchesKernel reads every filesystem of readerCases through the
// reader and through the kernel (a read-only loop mount of the same image)
// and compares them entry by entry: names (and their order), type, mode,
// owner, size, the three times in nanoseconds, inode number (so hard links
// are one inode), link count, device number, symlink target, xattrs, and the
// content of every file byte for byte, read in large pieces and at odd
// offsets and lengths.
func TestReaderMatchesKernel(t *testing.T) {
	needRoot(t)
	needTools(t, "mkfs.ext4", "mkfs.ext3", "mkfs.ext2", "setfacl", "cp")
	fileTree(t)
	for _, c := range readerCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			img := makeReaderFS(t, c)
			run(t, "e2fsck", "-fn", img)
			mnt := mountRO(t, img)
			rd := openImage(t, img)
			s := compareTree(t, rd, mnt)
			t.Logf("%d entries, %d bytes of content compared; structures: %v", s.entries, s.bytes, s.keys())
			if s.entries < bigFolderEntries+200 {
				t.Errorf("only %d entries compared", s.entries)
			}
			s.want(t, cfs.TypeSymlink, cfs.TypeFIFO, cfs.TypeSocket, cfs.TypeCharDev, cfs.TypeDev, "hard-link",
				"system.posix_acl_access", "system.posix_acl_default")
			c.check(t, s)
		})
	}
}

// openImage opens the reader on the image file at path, closed when the test
// ends.
func openImage(t testing.TB, path string) cfs.Reader {
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
	rd, err := Open(f, st.Size())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return rd
}

// structures counts the on-disk structures met while reading a filesystem.
type structures struct {
	entries  int
	bytes    int64
	seen     map[string]int
	got, exp []byte // buffers for content
}

func (s *structures) keys() []string {
	var k []string
	for n, c := range s.seen {
		k = append(k, fmt.Sprintf("%s=%d", n, c))
	}
	slices.Sort(k)
	return k
}

// want fails the test unless each named structure was met.
func (s *structures) want(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if s.seen[n] == 0 {
			t.Errorf("no %s in the filesystem: the case does not test what it should (%v)", n, s.keys())
		}
	}
}

// note records the structures of entry e's inode.
func (s *structures) note(rd cfs.Reader, e *cfs.Entry) {
	n := e.Sys.(*node)
	in, f := n.in, n.r.f
	le := func(i int) uint32 {
		b := in.block[4*i:]
		return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	if f.inodeSize == 128 {
		s.seen["128-byte-inodes"]++
	}
	if e.Type != cfs.TypeFile && e.Type != cfs.TypeDir {
		s.seen[e.Type]++
	}
	if e.Links > 1 && e.Type == cfs.TypeFile {
		s.seen["hard-link"]++
	}
	for _, x := range e.Xattrs {
		if strings.HasPrefix(x.Name, "system.posix_acl") {
			s.seen[x.Name]++
		}
		if len(x.Value) > int(f.blockSize) {
			s.seen["ea-inode"]++
		}
	}
	if in.fileACL != 0 {
		s.seen["xattr-block"]++
	}
	if in.flags&0x1000 != 0 {
		s.seen["htree"]++
		// A dx_root's indirect_levels byte (at 0x1E of the folder's first block).
		m := &blockMapper{r: n.r, in: in}
		if phys, _, ok, err := m.find(0); err == nil && ok {
			if b, err := n.r.block(phys); err == nil && b[0x1E] > 0 {
				s.seen["dx-node"]++
			}
		}
	}
	switch {
	case in.flags&inodeFlagInline != 0:
		if e.Type == cfs.TypeDir {
			s.seen["inline-dir"]++
		} else {
			s.seen["inline-file"]++
		}
	case e.Type == cfs.TypeSymlink:
		if n.r.fastSymlink(in) {
			s.seen["fast-symlink"]++
		} else {
			s.seen["slow-symlink"]++
		}
	case in.flags&inodeFlagExtents != 0:
		s.seen["extents"]++
		if d := int(in.block[6]) | int(in.block[7])<<8; d >= 2 {
			s.seen["extent-depth-2"]++
		}
		if e.Type == cfs.TypeFile && extentsUnwritten(n.r, in) {
			s.seen["unwritten"]++
		}
	case e.Type == cfs.TypeFile || e.Type == cfs.TypeDir:
		if le(12) != 0 {
			s.seen["indirect"]++
		}
		if le(13) != 0 {
			s.seen["double-indirect"]++
		}
		if le(14) != 0 {
			s.seen["triple-indirect"]++
		}
	}
}

// extentsUnwritten reports whether the root leaf (or its first leaf) of in's
// extent tree holds an unwritten extent.
func extentsUnwritten(r *reader, in *inode) bool {
	node := in.block[:]
	for range extentMaxDepth + 1 {
		h, err := parseExtentHeader(node)
		if err != nil {
			return false
		}
		if h.depth == 0 {
			for i := range h.entries {
				e := node[12+12*i:]
				if int(e[4])|int(e[5])<<8 > extentUninit {
					return true
				}
			}
			return false
		}
		e := node[12:]
		child := uint64(binary.LittleEndian.Uint16(e[8:]))<<32 | uint64(binary.LittleEndian.Uint32(e[4:]))
		if node, err = r.block(child); err != nil {
			return false
		}
	}
	return false
}

// compareTree walks the reader and the mount at mnt together and fails the
// test at each difference.
func compareTree(t *testing.T, rd cfs.Reader, mnt string) *structures {
	t.Helper()
	s := &structures{seen: map[string]int{}, got: make([]byte, 1<<20), exp: make([]byte, 1<<20)}
	root, err := rd.Root()
	if err != nil {
		t.Fatalf("Root: %v", err)
	}
	var walk func(e *cfs.Entry, rel string)
	walk = func(e *cfs.Entry, rel string) {
		s.entries++
		s.note(rd, e)
		compareEntry(t, rd, e, filepath.Join(mnt, rel), rel, s)
		if e.Type != cfs.TypeDir {
			return
		}
		list, err := rd.ReadDir(e)
		if err != nil {
			t.Errorf("%s: ReadDir: %v", rel, err)
			return
		}
		kernel, err := os.ReadDir(filepath.Join(mnt, rel))
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, c := range list {
			got = append(got, c.Name)
		}
		for _, k := range kernel {
			want = append(want, k.Name())
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: names %q, kernel %q", rel, trimList(got), trimList(want))
			return
		}
		for _, c := range list {
			walk(c, filepath.Join(rel, c.Name))
		}
	}
	walk(root, ".")
	return s
}

func trimList(l []string) []string {
	if len(l) > 20 {
		return append(l[:20:20], fmt.Sprintf("... %d more", len(l)-20))
	}
	return l
}

// compareEntry compares e with what the kernel says of path.
func compareEntry(t *testing.T, rd cfs.Reader, e *cfs.Entry, path, rel string, s *structures) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	types := map[uint32]string{unix.S_IFREG: cfs.TypeFile, unix.S_IFDIR: cfs.TypeDir, unix.S_IFLNK: cfs.TypeSymlink,
		unix.S_IFCHR: cfs.TypeCharDev, unix.S_IFBLK: cfs.TypeDev, unix.S_IFIFO: cfs.TypeFIFO, unix.S_IFSOCK: cfs.TypeSocket}
	want := cfs.Entry{
		Name: e.Name, Type: types[st.Mode&unix.S_IFMT], Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
		Size: st.Size, MTime: st.Mtim.Nano(), ATime: st.Atim.Nano(), CTime: st.Ctim.Nano(),
		Inode: st.Ino, Links: st.Nlink, Rdev: st.Rdev,
	}
	got := *e
	got.LinkTarget, got.Xattrs, got.Sys = "", nil, nil
	if !entriesEqual(&got, &want) {
		t.Errorf("%s:\n reader %+v\n kernel %+v", rel, got, want)
	}
	if e.Type == cfs.TypeSymlink {
		target, err := os.Readlink(path)
		if err != nil {
			t.Fatal(err)
		}
		if e.LinkTarget != target {
			t.Errorf("%s: target %q, kernel %q", rel, e.LinkTarget, target)
		}
	}
	if x := kernelXattrs(t, path); !xattrsEqual(e.Xattrs, x) {
		t.Errorf("%s: xattrs\n reader %v\n kernel %v", rel, e.Xattrs, x)
	}
	if e.Type == cfs.TypeFile {
		s.bytes += compareContent(t, rd, e, path, rel, s.got, s.exp)
	} else if _, err := rd.Open(e); err == nil {
		t.Errorf("%s: Open of a %s", rel, e.Type)
	}
}

// entriesEqual compares the fields of a and b but LinkTarget, Xattrs and Sys.
func entriesEqual(a, b *cfs.Entry) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.MTime == b.MTime && a.ATime == b.ATime && a.CTime == b.CTime &&
		a.Inode == b.Inode && a.Links == b.Links && a.Rdev == b.Rdev
}

// kernelXattrs returns the xattrs of path as the kernel lists them, sorted.
func kernelXattrs(t *testing.T, path string) []cfs.Xattr {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatal(err)
	}
	var out []cfs.Xattr
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			t.Fatalf("%s: getxattr %s: %v", path, name, err)
		}
		out = append(out, cfs.Xattr{Name: name, Value: v[:m]})
	}
	slices.SortFunc(out, func(a, b cfs.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func xattrsEqual(a, b []cfs.Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y cfs.Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}

// compareContent compares file e's content through the reader with the
// kernel's: all of it in 1 MiB pieces (where the kernel reports a hole, by
// checking the reader gives zeros), then at odd offsets and lengths, across
// the end too. It returns the bytes compared.
func compareContent(t *testing.T, rd cfs.Reader, e *cfs.Entry, path, rel string, got, want []byte) int64 {
	t.Helper()
	r, err := rd.Open(e)
	if err != nil {
		t.Errorf("%s: Open: %v", rel, err)
		return 0
	}
	kf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	size := e.Size
	if size == 0 {
		if n, err := r.ReadAt(got[:1], 0); n != 0 || err != io.EOF {
			t.Errorf("%s: ReadAt of an empty file: %d, %v", rel, n, err)
		}
		return 0
	}
	// In a large file, what the kernel maps no blocks to must read as
	// zeros; the rest is compared.
	var data []extentRange
	if size > 64<<20 {
		data = kernelExtents(t, kf, size)
	} else {
		data = []extentRange{{0, size}}
	}
	off := int64(0)
	for _, d := range append(data, extentRange{size, 0}) {
		for off < d.off {
			n := int(min(int64(len(got)), d.off-off))
			if gn, err := r.ReadAt(got[:n], off); gn != n || (err != nil && (err != io.EOF || off+int64(n) != size)) {
				t.Errorf("%s: ReadAt(%d bytes at %d): %d, %v", rel, n, off, gn, err)
				return off
			}
			if !allZero(got[:n]) {
				t.Errorf("%s: hole at %d holds data", rel, off)
				return off
			}
			off += int64(n)
		}
		for off < d.off+d.len {
			n := int(min(int64(len(got)), d.off+d.len-off))
			gn, gerr := r.ReadAt(got[:n], off)
			wn, werr := kf.ReadAt(want[:n], off)
			if gn != n || wn != n || (gerr != nil && gerr != io.EOF) || werr != nil && werr != io.EOF {
				t.Errorf("%s: ReadAt(%d bytes at %d): reader %d, %v; kernel %d, %v", rel, n, off, gn, gerr, wn, werr)
				return off
			}
			if !bytes.Equal(got[:n], want[:n]) {
				t.Errorf("%s: content differs in %d bytes at %d", rel, n, off)
				return off
			}
			off += int64(n)
		}
	}
	// Odd offsets and lengths, some across the end.
	rng := rand.New(rand.NewPCG(uint64(e.Inode), uint64(size)))
	for range 6 {
		off := rng.Int64N(size+3) | 1
		n := rng.IntN(70000) | 1
		gn, gerr := r.ReadAt(got[:n], off)
		wn, werr := kf.ReadAt(want[:n], off)
		if gn != wn || (gerr == io.EOF) != (werr == io.EOF) || (gerr != nil && gerr != io.EOF) || !bytes.Equal(got[:gn], want[:wn]) {
			t.Errorf("%s: ReadAt(%d bytes at %d): reader %d, %v; kernel %d, %v", rel, n, off, gn, gerr, wn, werr)
		}
	}
	return size
}

// extentRange is a range of bytes of a file.
type extentRange struct{ off, len int64 }

// kernelExtents returns the byte ranges of f, a file of size bytes, that the
// kernel maps to blocks (FS_IOC_FIEMAP; for block-mapped files too), merged
// and clipped to size.
func kernelExtents(t *testing.T, f *os.File, size int64) []extentRange {
	t.Helper()
	const (
		fiemapIoctl  = 0xC020660B // FS_IOC_FIEMAP
		headerSize   = 32
		extentSize   = 56
		extentsABuf  = 256
		fiemapLast   = 0x1 // FIEMAP_EXTENT_LAST
		fiemapSyncFl = 0x1 // FIEMAP_FLAG_SYNC
	)
	le := binary.LittleEndian
	var out []extentRange
	start := uint64(0)
	for {
		buf := make([]byte, headerSize+extentSize*extentsABuf)
		le.PutUint64(buf[0:], start)
		le.PutUint64(buf[8:], ^uint64(0)-start)
		le.PutUint32(buf[16:], fiemapSyncFl)
		le.PutUint32(buf[24:], extentsABuf)
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fiemapIoctl, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
			t.Fatalf("FIEMAP: %v", errno)
		}
		n := int(le.Uint32(buf[20:]))
		if n == 0 {
			break
		}
		last := false
		for i := range n {
			e := buf[headerSize+extentSize*i:]
			off, length := int64(le.Uint64(e[0:])), int64(le.Uint64(e[16:]))
			end := min(off+length, size)
			if k := len(out); k > 0 && out[k-1].off+out[k-1].len >= off {
				out[k-1].len = max(out[k-1].len, end-out[k-1].off)
			} else if off < end {
				out = append(out, extentRange{off, end - off})
			}
			start = uint64(off + length)
			last = le.Uint32(e[40:])&fiemapLast != 0
		}
		if last || n < extentsABuf {
			break
		}
	}
	return out
}

var zeros = make([]byte, 1<<20)

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// TestReaderReplaysJournal reads filesystems imaged while mounted, whose
// journals hold committed metadata newer than that in place: the reader,
// replaying the journal in memory, must see what the kernel sees after
// replaying it (on a copy).
func TestReaderReplaysJournal(t *testing.T) {
	needTools(t, "mkfs.ext4", "mkfs.ext3", "dumpe2fs")
	needRoot(t)
	cases := []mkfsCase{
		{name: "ext4", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "4096"}},
		{name: "ext3-1k", mkfs: "mkfs.ext3", args: []string{"-b", "1024"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for try := range 4 {
				snap := unreplayedImage(t, c, 200+uint64(10*i+try))
				rd := openImage(t, snap).(*reader)
				stale := staleBlocks(t, rd)
				if stale == 0 {
					t.Logf("try %d: nothing in the journal is newer than in place", try)
					continue
				}
				replayed := filepath.Join(t.TempDir(), "replayed.img")
				run(t, "cp", "--sparse=always", snap, replayed)
				withMount(t, replayed, "rw", func(string) {}) // the kernel replays the journal
				s := compareTree(t, rd, mountRO(t, replayed))
				t.Logf("%d blocks in the journal, %d of them newer than in place; %d entries compared",
					len(rd.overlay.targets), stale, s.entries)
				return
			}
			t.Fatal("the journal never held newer blocks: the test proves nothing")
		})
	}
}

// staleBlocks returns the number of blocks whose copy in rd's journal overlay
// differs from the block in place.
func staleBlocks(t *testing.T, rd *reader) int {
	t.Helper()
	if rd.overlay == nil {
		return 0
	}
	bs := rd.f.blockSize
	inPlace, replayed := make([]byte, bs), make([]byte, bs)
	n := 0
	for _, b := range rd.overlay.targets {
		if err := readFull(rd.f.r, rd.f.size, inPlace, int64(b)*bs); err != nil {
			t.Fatal(err)
		}
		if err := rd.readAt(replayed, int64(b)*bs); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(inPlace, replayed) {
			n++
		}
	}
	return n
}
