package localfs

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"cairn/internal/repo"
)

const (
	testUID = 1234
	testGID = 2345
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func setTimes(t *testing.T, path string, atime, mtime int64) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
}

func setfacl(t *testing.T, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("setfacl"); err != nil {
		t.Fatal("setfacl not installed (Debian package acl; .ci/run installs it)")
	}
	if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
		t.Fatalf("setfacl %q: %v\n%s", args, err, out)
	}
}

func getfacl(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("getfacl", "--omit-header", "--numeric", "--", path).Output()
	if err != nil {
		t.Fatalf("getfacl %s: %v", path, err)
	}
	return string(out)
}

func readNode(t *testing.T, path string) *repo.Node {
	t.Helper()
	fi, err := os.Lstat(path)
	must(t, err)
	n, err := ReadNode(path, fi)
	if err != nil {
		t.Fatalf("ReadNode %s: %v", path, err)
	}
	return n
}

func xattrValue(n *repo.Node, name string) []byte {
	for _, x := range n.Xattrs {
		if string(x.Name) == name {
			return x.Value
		}
	}
	return nil
}

// TestRoundTrip makes one entry of every type with every kind of metadata, reads it,
// recreates it elsewhere and checks that reading the copy gives the same node.
func TestRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown, mknod")
	}
	src := filepath.Join(t.TempDir(), "src")
	dst := filepath.Join(t.TempDir(), "dst")
	must(t, os.Mkdir(src, 0755))
	must(t, os.Mkdir(dst, 0755))

	const (
		badName   = "bad\xff\xfename"
		badTarget = "target\xc3\x28\x80"
	)
	at := func(name string) string { return filepath.Join(src, name) }

	// A setuid file with binary user xattrs and an access ACL.
	must(t, os.WriteFile(at("file"), []byte("hello, world\n"), 0600))
	must(t, os.Chown(at("file"), testUID, testGID))
	must(t, unix.Chmod(at("file"), 04755))
	must(t, unix.Lsetxattr(at("file"), "user.binary", []byte{0, 1, 2, 0xff, 0xfe, 0}, 0))
	must(t, unix.Lsetxattr(at("file"), "user.empty", nil, 0))
	must(t, unix.Lsetxattr(at("file"), "user.a", []byte("first by name"), 0))
	setfacl(t, "-m", "u:1234:rwx", at("file"))

	// A setgid, sticky directory with an access and a default ACL.
	must(t, os.Mkdir(at("dir"), 0700))
	must(t, os.Chown(at("dir"), testUID, testGID))
	must(t, unix.Chmod(at("dir"), 03755))
	setfacl(t, "-m", "u:1234:rwx,g:2345:rx", at("dir"))
	setfacl(t, "-d", "-m", "u:1234:rwx", at("dir"))
	must(t, unix.Lsetxattr(at("dir"), "user.dir", []byte{0x80}, 0))

	must(t, os.Symlink("file", at("link")))
	must(t, os.Symlink(badTarget, at("badlink")))
	must(t, unix.Mkfifo(at("fifo"), 0640))
	must(t, unix.Mknod(at("chardev"), unix.S_IFCHR|0666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(at("blockdev"), unix.S_IFBLK|0660, int(unix.Mkdev(7, 200))))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: at("socket"), Net: "unix"})
	must(t, err)
	l.SetUnlinkOnClose(false)
	must(t, l.Close())
	must(t, os.WriteFile(at(badName), []byte("name is not UTF-8"), 0644))
	must(t, os.WriteFile(at("hard1"), []byte("two names"), 0640))
	must(t, os.Link(at("hard1"), at("hard2")))

	names := []string{"file", "dir", "link", "badlink", "fifo", "chardev", "blockdev",
		"socket", badName, "hard1", "hard2"}
	for i, name := range names {
		must(t, os.Lchown(at(name), testUID, testGID))
		if name == "file" || name == "dir" { // chown cleared setuid and setgid
			must(t, unix.Chmod(at(name), map[string]uint32{"file": 04775, "dir": 03775}[name]))
		}
		// Odd nanoseconds, different for every entry.
		setTimes(t, at(name), 1500000000_987654321+int64(i)*1_000_000_007,
			1600000000_123456789+int64(i)*1_000_000_011)
	}

	// Read the sources and check what they should hold.
	nodes := map[string]*repo.Node{}
	for _, name := range names {
		nodes[name] = readNode(t, at(name))
	}
	wantType := map[string]string{
		"file": repo.NodeFile, "dir": repo.NodeDir, "link": repo.NodeSymlink,
		"badlink": repo.NodeSymlink, "fifo": repo.NodeFIFO, "chardev": repo.NodeCharDev,
		"blockdev": repo.NodeDev, "socket": repo.NodeSocket, badName: repo.NodeFile,
		"hard1": repo.NodeFile, "hard2": repo.NodeFile,
	}
	for name, n := range nodes {
		if n.Type != wantType[name] {
			t.Errorf("%q: type %q, want %q", name, n.Type, wantType[name])
		}
		if string(n.Name) != name {
			t.Errorf("%q: name %q", name, n.Name)
		}
		if n.UID != testUID || n.GID != testGID {
			t.Errorf("%q: owner %d:%d", name, n.UID, n.GID)
		}
		if n.MTime%1e9 == 0 || n.ATime%1e9 == 0 {
			t.Errorf("%q: times without nanoseconds: %d %d", name, n.ATime, n.MTime)
		}
	}
	if n := nodes["file"]; n.Mode != 04775 || n.Size != 13 || n.Links != 1 {
		t.Errorf("file: mode %o size %d links %d", n.Mode, n.Size, n.Links)
	}
	if n := nodes["dir"]; n.Mode != 03775 || n.Size != 0 || n.Links != 2 {
		t.Errorf("dir: mode %o size %d links %d", n.Mode, n.Size, n.Links)
	}
	if got := xattrValue(nodes["file"], "user.binary"); !bytes.Equal(got, []byte{0, 1, 2, 0xff, 0xfe, 0}) {
		t.Errorf("file: user.binary = %x", got)
	}
	var xnames []string
	for _, x := range nodes["file"].Xattrs {
		xnames = append(xnames, string(x.Name))
	}
	wantX := []string{"system.posix_acl_access", "user.a", "user.binary", "user.empty"}
	if !reflect.DeepEqual(xnames, wantX) {
		t.Errorf("file: xattrs %q, want %q (sorted)", xnames, wantX)
	}
	if xattrValue(nodes["dir"], "system.posix_acl_default") == nil {
		t.Errorf("dir: no default ACL in %v", nodes["dir"].Xattrs)
	}
	if n := nodes["link"]; n.LinkTarget != "file" || n.Mode != 0777 || n.Size != 0 {
		t.Errorf("link: target %q mode %o size %d", n.LinkTarget, n.Mode, n.Size)
	}
	if n := nodes["badlink"]; n.LinkTarget != badTarget {
		t.Errorf("badlink: target %q", n.LinkTarget)
	}
	if n := nodes["chardev"]; n.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("chardev: rdev %#x", n.Rdev)
	}
	if n := nodes["blockdev"]; n.Rdev != unix.Mkdev(7, 200) {
		t.Errorf("blockdev: rdev %#x", n.Rdev)
	}
	h1, h2 := nodes["hard1"], nodes["hard2"]
	if h1.Inode == 0 || h1.Inode != h2.Inode || h1.DeviceID != h2.DeviceID || h1.Links != 2 || h2.Links != 2 {
		t.Errorf("hardlinks: inode %d/%d dev %d/%d links %d/%d",
			h1.Inode, h2.Inode, h1.DeviceID, h2.DeviceID, h1.Links, h2.Links)
	}
	if nodes["file"].DeviceID == 0 || nodes["file"].CTime == 0 {
		t.Errorf("file: device %d ctime %d", nodes["file"].DeviceID, nodes["file"].CTime)
	}

	// Restore into dst as a restorer would.
	to := func(name string) string { return filepath.Join(dst, name) }
	for _, name := range names {
		n := nodes[name]
		switch {
		case name == "hard2":
			must(t, os.Link(to("hard1"), to(name)))
		case n.Type == repo.NodeFile:
			b, err := os.ReadFile(at(name))
			must(t, err)
			must(t, os.WriteFile(to(name), b, 0600))
		case n.Type == repo.NodeDir:
			must(t, os.Mkdir(to(name), 0700))
		default:
			must(t, Create(to(name), n))
		}
	}
	for _, name := range names {
		if err := ApplyMetadata(to(name), nodes[name]); err != nil {
			t.Errorf("ApplyMetadata %q: %v", name, err)
		}
	}

	// Read back and compare every field but those a copy cannot keep.
	for _, name := range names {
		got := readNode(t, to(name))
		want := *nodes[name]
		got.Inode, got.CTime, got.DeviceID = 0, 0, 0
		want.Inode, want.CTime, want.DeviceID = 0, 0, 0
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%q differs after restore:\n got %+v\nwant %+v", name, *got, want)
		}
	}
	if g1, g2 := readNode(t, to("hard1")), readNode(t, to("hard2")); g1.Inode != g2.Inode {
		t.Errorf("restored hardlinks are not one inode")
	}
	for _, name := range []string{"file", "dir", badName} {
		if s, d := getfacl(t, at(name)), getfacl(t, to(name)); s != d {
			t.Errorf("%q: getfacl differs:\nsource:\n%s\ncopy:\n%s", name, s, d)
		}
	}
	if acl := getfacl(t, to("dir")); !strings.Contains(acl, "default:user:1234:rwx") {
		t.Errorf("dir: restored ACL lacks the default entry:\n%s", acl)
	}
}

func TestCreateRejectsFilesAndDirs(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range []string{repo.NodeFile, repo.NodeDir, "bogus"} {
		if err := Create(filepath.Join(dir, "x"), &repo.Node{Type: typ}); err == nil {
			t.Errorf("Create of type %q succeeded", typ)
		}
	}
}

func TestApplyMetadataReturnsFirstErrorButTriesAll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(path, nil, 0600))
	n := &repo.Node{Type: repo.NodeFile, Mode: 0640, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		ATime: 1_000_000_001, MTime: 2_000_000_002,
		Xattrs: []repo.Xattr{{Name: "bogus.namespace", Value: []byte("x")}}}
	if err := ApplyMetadata(path, n); err == nil {
		t.Fatal("no error for an attribute in an unknown namespace")
	}
	got := readNode(t, path)
	if got.Mode != 0640 || got.ATime != n.ATime || got.MTime != n.MTime {
		t.Errorf("later steps not done: mode %o atime %d mtime %d", got.Mode, got.ATime, got.MTime)
	}
}

func TestReadNodeUserNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(path, nil, 0600))
	must(t, os.Chown(path, 0, 0))
	n := readNode(t, path)
	if n.User != "root" || n.Group != "root" {
		t.Errorf("owner names %q:%q, want root:root", n.User, n.Group)
	}
	// Without an os.FileInfo from Lstat, ReadNode does the lstat itself.
	n2, err := ReadNode(path, nil)
	must(t, err)
	if !reflect.DeepEqual(n, n2) {
		t.Errorf("ReadNode(path, nil) = %+v, want %+v", n2, n)
	}
}

// TestSparse: 1 MiB of data, a 100 MiB hole, then data at the end.
func TestSparse(t *testing.T) {
	const (
		mib     = 1 << 20
		dataEnd = mib
		tailOff = 101 * mib
		tailLen = 64 << 10
		size    = tailOff + tailLen
	)
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "src")
	f, err := os.Create(srcPath)
	must(t, err)
	defer func() { _ = f.Close() }()
	head := bytes.Repeat([]byte("head data "), mib/10+1)[:mib]
	tail := bytes.Repeat([]byte{0xa5}, tailLen)
	_, err = f.WriteAt(head, 0)
	must(t, err)
	_, err = f.WriteAt(tail, tailOff)
	must(t, err)

	type step struct {
		data   bool
		offset int64
		want   int64
		eof    bool
	}
	for _, s := range []step{
		{true, 0, 0, false},
		{false, 0, dataEnd, false},
		{true, 100, 100, false},
		{true, dataEnd, tailOff, false},
		{false, tailOff, size, false},
		{true, size - 1, size - 1, false},
		{true, size, 0, true},
		{false, size, 0, true},
	} {
		var got int64
		if s.data {
			got, err = SeekData(f, s.offset)
		} else {
			got, err = SeekHole(f, s.offset)
		}
		switch {
		case s.eof && !errors.Is(err, io.EOF):
			t.Errorf("seek data=%v from %d: %d, %v; want io.EOF", s.data, s.offset, got, err)
		case !s.eof && (err != nil || got != s.want):
			t.Errorf("seek data=%v from %d: %d, %v; want %d", s.data, s.offset, got, err, s.want)
		}
	}

	// Copy the whole file through WriteSparse as a restore would, zeros included.
	dstPath := filepath.Join(dir, "dst")
	out, err := os.Create(dstPath)
	must(t, err)
	defer func() { _ = out.Close() }()
	buf := make([]byte, 256<<10)
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		must(t, WriteSparse(out, off, buf[:n]))
		off += int64(n)
	}
	must(t, out.Truncate(size))

	var st unix.Stat_t
	must(t, unix.Fstat(int(out.Fd()), &st))
	allocated := st.Blocks * 512
	t.Logf("restored: size %d, allocated %d", st.Size, allocated)
	if st.Size != size {
		t.Errorf("size %d, want %d", st.Size, size)
	}
	if allocated > 4*mib {
		t.Errorf("allocated %d bytes for %d bytes of data", allocated, mib+tailLen)
	}
	got, err := os.ReadFile(dstPath)
	must(t, err)
	want, err := os.ReadFile(srcPath)
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Errorf("restored content differs")
	}

	// A file ending in zeros gets its length from Truncate alone.
	zpath := filepath.Join(dir, "zeros")
	z, err := os.Create(zpath)
	must(t, err)
	defer func() { _ = z.Close() }()
	must(t, WriteSparse(z, 0, []byte("x")))
	must(t, WriteSparse(z, 1, make([]byte, 4096)))
	if fi, _ := z.Stat(); fi.Size() != 1 {
		t.Errorf("zeros written: size %d, want 1", fi.Size())
	}
	must(t, z.Truncate(4097))
}

// TestReadNodeNoXattrs: a filesystem without extended attributes (procfs here; Linux
// lists none rather than failing with ENOTSUP) gives none, not an error.
func TestReadNodeNoXattrs(t *testing.T) {
	const path = "/proc/self/status"
	n, err := ReadNode(path, nil)
	if err != nil || n.Type != repo.NodeFile || len(n.Xattrs) != 0 {
		t.Errorf("ReadNode %s = %+v, %v", path, n, err)
	}
}
