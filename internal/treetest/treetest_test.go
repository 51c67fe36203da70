//go:build linux

package treetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// testSparseSize keeps the package's own tests fast.
const testSparseSize = 64 << 20

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown, mknod, O_NOATIME on others' files")
	}
}

var (
	edgeOnce sync.Once
	edgeTmp  string // the temporary folder holding the shared edge tree
	edgeDir  string // the shared edge tree, set once it is complete
)

// edgeTree returns a tree made once by MakeEdgeCases for the tests that only
// read it or copy it; TestMain removes it.
func edgeTree(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	edgeOnce.Do(func() {
		var err error
		if edgeTmp, err = os.MkdirTemp("", "treetest-edge-"); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(edgeTmp, "src")
		MakeEdgeCases(t, dir, EdgeOptions{SparseSize: testSparseSize, Seed: 7})
		edgeDir = dir
	})
	if edgeDir == "" {
		t.Fatal("the shared edge tree could not be made")
	}
	return edgeDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if edgeTmp != "" {
		os.RemoveAll(edgeTmp)
	}
	os.Exit(code)
}

// cpTree copies src to a new folder with cp -a, keeping holes, and returns it.
func cpTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	return dst
}

func TestEdgeCasesContent(t *testing.T) {
	src := edgeTree(t)
	lstat := func(rel string) *unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, rel), &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	if st := lstat("sparse/sparse"); st.Size != testSparseSize || st.Blocks*512 > 2<<20 {
		t.Errorf("sparse file: size %d, allocated %d", st.Size, st.Blocks*512)
	}
	if st := lstat("files/big"); st.Size != BigFileSize {
		t.Errorf("big file size %d", st.Size)
	}
	if st := lstat("modes/setuid-04755"); st.Mode&07777 != 04755 {
		t.Errorf("setuid mode %#o", st.Mode&07777)
	}
	if st := lstat("modes/sticky-01777"); st.Mode&07777 != 01777 {
		t.Errorf("sticky mode %#o", st.Mode&07777)
	}
	if st := lstat("owners/link-1234"); st.Uid != 1234 || st.Gid != 2345 {
		t.Errorf("symlink owner %d:%d", st.Uid, st.Gid)
	}
	if st := lstat("special/block-7-200"); st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(7, 200) {
		t.Errorf("block device mode %#o rdev %#x", st.Mode, st.Rdev)
	}
	if st := lstat("hardlinks/b/two"); st.Nlink != 3 {
		t.Errorf("hardlink count %d", st.Nlink)
	}
	if st := lstat("links/loop-a"); st.Mtim.Nsec%2 != 1 || st.Atim.Sec < 3000000000 {
		t.Errorf("symlink times mtime %v atime %v", st.Mtim, st.Atim)
	}
	if st := lstat(""); st.Mtim.Nsec%2 != 1 {
		t.Errorf("root mtime %v", st.Mtim)
	}
	if _, err := os.Lstat(filepath.Join(src, "names/bad\xff\xfename")); err != nil {
		t.Error(err)
	}
	if target, err := os.Readlink(filepath.Join(src, "links/bad-target")); err != nil || target != "bad\xff\xfetarget" {
		t.Errorf("bad target %q, %v", target, err)
	}
	value := make([]byte, 300)
	n, err := unix.Lgetxattr(filepath.Join(src, "xattr/file"), "user.binary", value)
	if err != nil || n != 256 || value[0] != 0 || value[255] != 255 {
		t.Errorf("user.binary: %d bytes, %v", n, err)
	}
	out, err := exec.Command("getfacl", "-p", filepath.Join(src, "acl/dir")).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("default:user:1234:r-x")) {
		t.Errorf("getfacl: %v: %s", err, out)
	}
	deepest := ""
	filepath.WalkDir(filepath.Join(src, "deep"), func(p string, _ os.DirEntry, _ error) error {
		deepest = p
		return nil
	})
	if rel, _ := filepath.Rel(src, deepest); len(rel) <= 1000 || strings.Count(rel, "/") != 41 {
		t.Errorf("deepest path %d bytes, %d levels", len(rel), strings.Count(rel, "/"))
	}
	if names, _ := os.ReadDir(filepath.Join(src, "many")); len(names) != 2000 {
		t.Errorf("many/ holds %d files", len(names))
	}
}

func TestMakeEdgeCasesDeterministic(t *testing.T) {
	src := edgeTree(t)
	again := filepath.Join(t.TempDir(), "again")
	MakeEdgeCases(t, again, EdgeOptions{SparseSize: testSparseSize, Seed: 7})
	RequireEqual(t, src, again, CompareOptions{})
}

func TestCompareCopyEqual(t *testing.T) {
	src := edgeTree(t)
	dst := cpTree(t, src)
	RequireEqual(t, src, dst, CompareOptions{})
	// Comparing must not disturb either tree, atimes included.
	RequireEqual(t, src, dst, CompareOptions{})
	RequireEqual(t, dst, src, CompareOptions{})
}

func TestCompareSelf(t *testing.T) {
	src := edgeTree(t)
	RequireEqual(t, src, src, CompareOptions{})
}

// keepTimes runs change on the entry at p and then puts back the times of p
// and of its folder, so that a planted difference is not also an mtime one.
func keepTimes(t *testing.T, p string, change func()) {
	t.Helper()
	var st, parent unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Dir(p), &parent); err != nil {
		t.Fatal(err)
	}
	change()
	for _, e := range []struct {
		path string
		st   *unix.Stat_t
	}{{p, &st}, {filepath.Dir(p), &parent}} {
		ts := []unix.Timespec{e.st.Atim, e.st.Mtim}
		err := unix.UtimesNanoAt(unix.AT_FDCWD, e.path, ts, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v: %s", name, args, err, out)
	}
}

// planted is a change made to one entry of a copy of the edge tree.
type planted struct {
	name  string
	rel   string // the entry changed, relative to the copy's root
	plant func(t *testing.T, p string)
	want  string // some difference must contain this
	// every difference the change causes contains this; empty means want
	every string
}

// plantedChanges are changes that Compare must find, on distinct entries so
// that all of them fit in one copy.
var plantedChanges = []planted{
	{name: "one byte of the big file", rel: "files/big", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := []byte{0}
			if _, err := f.ReadAt(b, 12345678); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{b[0] ^ 1}, 12345678); err != nil {
				t.Fatal(err)
			}
		})
	}, want: `"files/big": content differs at byte 12345678`},
	{name: "mode", rel: "files/small-03", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { chmod(t, p, 0o600) })
	}, want: `"files/small-03": mode: want 0644, got 0600`},
	{name: "setgid bit", rel: "modes/setgid-02755", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { chmod(t, p, 0o755) })
	}, want: `"modes/setgid-02755": mode: want 02755, got 0755`},
	{name: "uid", rel: "owners/root", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { lchown(t, p, 1, -1) })
	}, want: `"owners/root": uid: want 0, got 1`},
	{name: "gid of a symlink", rel: "owners/link-1234", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { lchown(t, p, -1, 7) })
	}, want: `"owners/link-1234": gid: want 2345, got 7`},
	{name: "xattr value", rel: "xattr/file", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() {
			if err := unix.Lsetxattr(p, "user.binary", []byte{0, 1, 2}, 0); err != nil {
				t.Fatal(err)
			}
		})
	}, want: `"xattr/file": xattr "user.binary": want`},
	{name: "ACL", rel: "acl/file", plant: func(t *testing.T, p string) {
		// The ACL mask shows as the group bits, so the mode changes too.
		keepTimes(t, p, func() { run(t, "setfacl", "-m", "u:1234:r--", p) })
	}, want: `"acl/file": xattr "system.posix_acl_access"`, every: `"acl/file": `},
	{name: "default ACL", rel: "acl/dir", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { run(t, "setfacl", "-k", p) })
	}, want: `"acl/dir": xattr "system.posix_acl_default": missing in got`},
	{name: "mtime ns of a symlink", rel: "links/loop-a", plant: func(t *testing.T, p string) {
		shiftTimes(t, p, 0, 1)
	}, want: `"links/loop-a": mtime: want`},
	{name: "atime ns of a folder", rel: "empty", plant: func(t *testing.T, p string) {
		shiftTimes(t, p, 1, 0)
	}, want: `"empty": atime: want`},
	{name: "broken hardlink", rel: "hardlinks/b/two", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { replaceByCopy(t, p, "--sparse=auto") })
	}, want: `"hardlinks/b/two": hardlinks: want linked with ["hardlinks/a/one" "hardlinks/three"], got linked with nothing`,
		every: `hardlinks: want linked with`},
	{name: "filled-in hole", rel: "sparse/sparse", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { replaceByCopy(t, p, "--sparse=never") })
	}, want: `"sparse/sparse": not sparse`},
	{name: "missing file", rel: "many/f0100", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { remove(t, p) })
	}, want: `"many/f0100": missing in got`},
	{name: "invalid UTF-8 name made valid", rel: "names/bad\xff\xfename", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() {
			if err := os.Rename(p, filepath.Join(filepath.Dir(p), "bad\ufffd\ufffdname")); err != nil {
				t.Fatal(err)
			}
		})
	}, want: `"names/bad\xff\xfename": missing in got`, every: `"names/bad`},
	{name: "extra file", rel: "names/.hidden", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() { writeFile(t, filepath.Join(filepath.Dir(p), "extra")) })
	}, want: `"names/extra": extra in got`},
	{name: "symlink target", rel: "links/relative", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() {
			remove(t, p)
			if err := os.Symlink("../files/small-01", p); err != nil {
				t.Fatal(err)
			}
		})
	}, want: `"links/relative": symlink target: want "../files/small-00", got "../files/small-01"`},
	{name: "type", rel: "special/fifo", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() {
			remove(t, p)
			writeFile(t, p)
			chmod(t, p, 0o644)
		})
	}, want: `"special/fifo": type: want fifo, got regular file`},
	{name: "device number", rel: "special/char-1-3", plant: func(t *testing.T, p string) {
		keepTimes(t, p, func() {
			remove(t, p)
			if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
				t.Fatal(err)
			}
			chmod(t, p, 0o666)
		})
	}, want: `"special/char-1-3": device: want 1,3, got 1,5`},
	{name: "deep file content", rel: "deep", plant: func(t *testing.T, p string) {
		leaf := ""
		filepath.WalkDir(p, func(p string, _ os.DirEntry, _ error) error {
			leaf = p
			return nil
		})
		keepTimes(t, leaf, func() {
			if err := os.WriteFile(leaf, []byte("deep leaf!"), 0); err != nil {
				t.Fatal(err)
			}
		})
	}, want: `/leaf": content differs at byte 9`},
}

func TestCompareFindsPlanted(t *testing.T) {
	src := edgeTree(t)
	dst := cpTree(t, src)
	for _, c := range plantedChanges {
		c.plant(t, filepath.Join(dst, c.rel))
	}
	diffs := Compare(t, src, dst, CompareOptions{})
	for _, c := range plantedChanges {
		if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, c.want) }) {
			t.Errorf("%s: no difference contains %q", c.name, c.want)
		}
	}
	for _, d := range diffs {
		explained := slices.ContainsFunc(plantedChanges, func(c planted) bool {
			every := c.every
			if every == "" {
				every = c.want
			}
			return strings.Contains(d, every)
		})
		if !explained {
			t.Errorf("difference not planted: %s", d)
		}
	}
	t.Logf("all differences:\n%s", strings.Join(diffs, "\n"))
}

// TestCompareOptions checks that each option hides its kind of difference
// and only that.
func TestCompareOptions(t *testing.T) {
	src := edgeTree(t)
	dst := cpTree(t, src)
	shiftTimes(t, filepath.Join(dst, "files/empty"), -5e9, 0)
	keepTimes(t, filepath.Join(dst, "sparse/tail-hole"), func() {
		replaceByCopy(t, filepath.Join(dst, "sparse/tail-hole"), "--sparse=never")
	})
	keepTimes(t, dst, func() { chmod(t, dst, 0o700) })

	all := CompareOptions{IgnoreATime: true, IgnoreSparse: true, IgnoreRootMeta: true}
	if diffs := Compare(t, src, dst, all); len(diffs) > 0 {
		t.Errorf("all ignored, got %q", diffs)
	}
	for _, tc := range []struct {
		opts CompareOptions
		want []string
	}{
		{CompareOptions{}, []string{`".": mode`, `"files/empty": atime`, `"sparse/tail-hole": not sparse`}},
		{CompareOptions{IgnoreATime: true}, []string{`".": mode`, `"sparse/tail-hole": not sparse`}},
		{CompareOptions{IgnoreSparse: true}, []string{`".": mode`, `"files/empty": atime`}},
		{CompareOptions{IgnoreRootMeta: true}, []string{`"files/empty": atime`, `"sparse/tail-hole": not sparse`}},
	} {
		diffs := Compare(t, src, dst, tc.opts)
		if len(diffs) != len(tc.want) {
			t.Errorf("%+v: got %q, want %q", tc.opts, diffs, tc.want)
			continue
		}
		for i, d := range diffs {
			if !strings.HasPrefix(d, tc.want[i]) {
				t.Errorf("%+v: got %q, want %q", tc.opts, diffs, tc.want)
				break
			}
		}
	}
}

// shiftTimes moves the atime and mtime of p by the given nanoseconds.
func shiftTimes(t *testing.T, p string, atime, mtime int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{
		unix.NsecToTimespec(st.Atim.Nano() + atime),
		unix.NsecToTimespec(st.Mtim.Nano() + mtime),
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// replaceByCopy replaces file p by a cp -a copy of it (a new inode with the
// same content and metadata), copied with the given --sparse option.
func replaceByCopy(t *testing.T, p, sparse string) {
	t.Helper()
	run(t, "cp", "-a", sparse, p, p+".tmp")
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, p string, mode uint32) {
	t.Helper()
	if err := unix.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func lchown(t *testing.T, p string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCopyUsr(t *testing.T) {
	requireRoot(t)
	const max = 30 << 20
	a := filepath.Join(t.TempDir(), "usr")
	CopyUsr(t, a, max)
	var sum int64
	var count int
	filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			info, _ := d.Info()
			sum += info.Size()
			count++
		}
		return nil
	})
	if sum > max || sum < max/2 || count == 0 {
		t.Errorf("copied %d files, %d bytes; want about %d", count, sum, max)
	}
	t.Logf("copied %d files, %d bytes", count, sum)
	// The copy is deterministic: a second one is equal but for the root's
	// own times, and a cp -a of it is equal in everything.
	b := filepath.Join(t.TempDir(), "usr")
	CopyUsr(t, b, max)
	RequireEqual(t, a, b, CompareOptions{IgnoreRootMeta: true})
	RequireEqual(t, a, cpTree(t, a), CompareOptions{})
}

func TestDefaultSparseSize(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("makes a second edge tree")
	}
	dir := t.TempDir()
	MakeEdgeCases(t, dir, EdgeOptions{})
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "sparse/sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != DefaultSparseSize || st.Blocks*512 > 2<<20 {
		t.Errorf("size %d, allocated %d", st.Size, st.Blocks*512)
	}
	RequireEqual(t, dir, cpTree(t, dir), CompareOptions{})
}

// TestCompareKeepsSymlinkATime checks that Compare puts back the atime that
// readlink(2) changes on a symlink whose atime is in the past.
func TestCompareKeepsSymlinkATime(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	past := unix.NsecToTimespec(1_000_000_000_123_456_789)
	ts := []unix.Timespec{past, past}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, link, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if diffs := Compare(t, dir, dir, CompareOptions{}); len(diffs) > 0 {
			t.Errorf("self compare: %q", diffs)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(link, &st); err != nil {
		t.Fatal(err)
	}
	if st.Atim != past || st.Mtim != past {
		t.Errorf("times changed to atime %v mtime %v", st.Atim, st.Mtim)
	}
}
