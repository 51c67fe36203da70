//go:build linux

package ext

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cfs "cairn/internal/fs"
)

// Helpers that make real filesystems with e2fsprogs and check Probe's answer
// against the tools' own.

// needTools skips the test unless every named program is installed.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not installed: .ci/run installs it", n)
		}
	}
}

// needRoot skips the test unless it runs as root (loop mounts).
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop mounts")
	}
}

// run runs a command and returns its standard output, failing the test on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// randomFile makes a file of size random bytes, seeded so runs are repeatable:
// free space in a test image is never zero, as on a real disk.
func randomFile(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'e', 'x', 't'})
	buf := make([]byte, 1<<20)
	for size > 0 {
		n := min(size, int64(len(buf)))
		_, _ = rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		size -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// probeFile runs Probe on the image file at path.
func probeFile(t testing.TB, path string) *cfs.Allocation {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	a, err := Probe(f, st.Size())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	return a
}

// dumpe2fsUsed returns, for every block of the filesystem at path, whether
// dumpe2fs does not list it as free, and the block size.
func dumpe2fsUsed(t testing.TB, path string) (used []bool, blockSize int64) {
	t.Helper()
	return parseDumpe2fs(t, run(t, "dumpe2fs", path))
}

// parseDumpe2fs reads dumpe2fs's output as dumpe2fsUsed.
func parseDumpe2fs(t testing.TB, out string) (used []bool, blockSize int64) {
	t.Helper()
	var blocks, cluster int64
	header := map[string]*int64{"Block count": &blocks, "Block size": &blockSize, "Cluster size": &cluster}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ":"); ok && header[k] != nil && used == nil {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("dumpe2fs %q: %v", line, err)
			}
			*header[k] = n
			continue
		}
		rest, ok := strings.CutPrefix(line, "  Free blocks:") // a group's, not the header's
		if !ok {
			continue
		}
		if used == nil {
			if blocks == 0 || blockSize == 0 {
				t.Fatal("dumpe2fs: no block count or size before the groups")
			}
			used = make([]bool, blocks)
			for i := range used {
				used[i] = true
			}
		}
		// With bigalloc, a range names the first blocks of its first and
		// last free clusters.
		ratio := int64(1)
		if cluster > blockSize {
			ratio = cluster / blockSize
		}
		for r := range strings.SplitSeq(rest, ",") {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			a, b, isRange := strings.Cut(r, "-")
			if !isRange {
				b = a
			}
			first, err1 := strconv.ParseInt(a, 10, 64)
			last, err2 := strconv.ParseInt(b, 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("dumpe2fs free range %q", r)
			}
			for i := first; i < min(last+ratio, blocks); i++ {
				used[i] = false
			}
		}
	}
	if used == nil {
		t.Fatal("dumpe2fs listed no groups")
	}
	return used, blockSize
}

// checkAgainstDumpe2fs checks, block by block, that a marks a block used iff
// dumpe2fs does not list it free, and that a's extents are well formed.
func checkAgainstDumpe2fs(t testing.TB, path string, a *cfs.Allocation) {
	t.Helper()
	want, bs := dumpe2fsUsed(t, path)
	if int64(a.BlockSize) != bs {
		t.Fatalf("BlockSize %d, dumpe2fs %d", a.BlockSize, bs)
	}
	if a.Size != int64(len(want))*bs {
		t.Fatalf("Size %d, dumpe2fs %d blocks of %d", a.Size, len(want), bs)
	}
	got := make([]bool, len(want))
	var prevEnd int64 = -1
	for _, e := range a.Used {
		if e.Off%bs != 0 || e.Len%bs != 0 || e.Len <= 0 || e.Off <= prevEnd || e.Off+e.Len > a.Size {
			t.Fatalf("extent %+v not block-aligned, sorted, merged and inside %d bytes (previous end %d)", e, a.Size, prevEnd)
		}
		prevEnd = e.Off + e.Len
		for b := e.Off / bs; b < (e.Off+e.Len)/bs; b++ {
			got[b] = true
		}
	}
	bad := 0
	for b := range want {
		if got[b] != want[b] {
			if bad < 20 {
				t.Errorf("block %d: Probe used=%v, dumpe2fs used=%v", b, got[b], want[b])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d blocks differ from dumpe2fs", bad, len(want))
	}
}

// journalExtent matches a run of debugfs's "stat <8>": "(l1-l2):p1-p2" or
// "(l):p"; tree and indirect blocks ("(IND):p") do not match.
var journalExtent = regexp.MustCompile(`\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?`)

// checkUnneeded checks a.Unneeded against e2fsprogs: the journal's blocks but
// its first, as debugfs maps them, up to dumpe2fs's journal length, when
// dumpe2fs shows an internal journal whose log starts at 0 on a filesystem
// without needs_recovery and fast commits; nothing otherwise. It returns
// whether the log is unneeded.
func checkUnneeded(t testing.TB, path string, a *cfs.Allocation) bool {
	t.Helper()
	hdr := map[string]string{}
	for line := range strings.SplitSeq(run(t, "dumpe2fs", "-h", path), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			hdr[k] = strings.TrimSpace(v)
		}
	}
	features := " " + hdr["Filesystem features"] + " "
	empty := strings.Contains(features, " has_journal ") && !strings.Contains(features, " needs_recovery ") &&
		!strings.Contains(features, " fast_commit ") && hdr["Journal inode"] == "8" && hdr["Journal start"] == "0"
	var want []cfs.Extent
	if empty {
		total, err := strconv.ParseUint(hdr["Total journal blocks"], 10, 64)
		if err != nil {
			t.Fatalf("dumpe2fs: total journal blocks %q", hdr["Total journal blocks"])
		}
		bs := int64(a.BlockSize)
		for _, m := range journalExtent.FindAllStringSubmatch(run(t, "debugfs", "-R", "stat <8>", path), -1) {
			l1, _ := strconv.ParseUint(m[1], 10, 64)
			l2, p1 := l1, uint64(0)
			if m[2] != "" {
				l2, _ = strconv.ParseUint(m[2], 10, 64)
			}
			p1, _ = strconv.ParseUint(m[3], 10, 64)
			for l := max(l1, 1); l <= l2 && l < total; l++ {
				want = append(want, cfs.Extent{Off: int64(p1+l-l1) * bs, Len: bs})
			}
		}
		want = cfs.Normalize(want, a.Size)
		if len(want) == 0 {
			t.Fatal("debugfs shows no journal blocks")
		}
	}
	if !slices.Equal(a.Unneeded, want) {
		t.Fatalf("unneeded %v, want the journal's log %v", a.Unneeded, want)
	}
	return empty
}

// checkJournalUsable mounts a copy of the stored extents (the journal's log
// zeros) read-write, writes a file and a folder through the journal, and
// checks that the result passes e2fsck -fn and holds the file.
func checkJournalUsable(t testing.TB, path string, a *cfs.Allocation) {
	t.Helper()
	cp := copyUsed(t, path, a)
	data := bytes.Repeat([]byte("written after the restore\n"), 5000)
	withMount(t, cp, "rw", func(dir string) {
		if err := os.Mkdir(filepath.Join(dir, "after-restore"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, "after-restore", "file"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil { // a commit into the zeroed log
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})
	run(t, "e2fsck", "-fn", cp)
	got, err := os.ReadFile(filepath.Join(mountRO(t, cp), "after-restore", "file"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file written after the restore reads back %d bytes (%v)", len(got), err)
	}
}

// checkBlkid checks a's Type, Label and UUID against blkid's.
func checkBlkid(t testing.TB, path string, a *cfs.Allocation) {
	t.Helper()
	out := run(t, "blkid", "-p", "-o", "export", path)
	kv := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	if a.Type != kv["TYPE"] || a.UUID != kv["UUID"] || a.Label != unescapeBlkid(kv["LABEL"]) {
		t.Fatalf("Probe: type %q label %q uuid %q; blkid: %v", a.Type, a.Label, a.UUID, kv)
	}
}

// unescapeBlkid undoes the shell escaping of blkid -o export (a backslash
// before special characters).
func unescapeBlkid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// copyUsed writes a copy of the image at src with only the extents an image
// stores (a's used extents but the unneeded ones), into a zero-filled (sparse)
// file of the same size, and returns its path.
func copyUsed(t testing.TB, src string, a *cfs.Allocation) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.img")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(st.Size()); err != nil {
		t.Fatal(err)
	}
	for _, e := range a.Stored() {
		if _, err := io.Copy(io.NewOffsetWriter(out, e.Off), io.NewSectionReader(in, e.Off, e.Len)); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// mountRO loop-mounts the image at path read-only on a new folder, unmounted
// when the test ends.
func mountRO(t testing.TB, path string) string {
	t.Helper()
	dir := t.TempDir()
	run(t, "mount", "-o", "loop,ro", path, dir)
	t.Cleanup(func() { umount(t, dir, true) })
	return dir
}

// umount unmounts dir. Another process on the machine may hold the mount
// briefly (one walking /tmp): it tries again for a while, then fails or, with
// lazy (a read-only mount), detaches the mount lazily.
func umount(t testing.TB, dir string, lazy bool) {
	t.Helper()
	var out []byte
	var err error
	for range 50 {
		if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !lazy {
		t.Fatalf("umount %s: %v\n%s", dir, err, out)
	}
	t.Logf("umount %s: %v\n%s; detaching it lazily", dir, err, out)
	if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
		t.Errorf("umount -l %s: %v\n%s", dir, err, out)
	}
}

// withMount loop-mounts the image at path with the given options, runs fn on
// the mount point and unmounts it again.
func withMount(t testing.TB, path, opts string, fn func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	run(t, "mount", "-o", "loop,"+opts, path, dir)
	defer umount(t, dir, false)
	fn(dir)
}

// treeDigest describes every entry under root: type, permissions, owner,
// size, modification time (of folders too, with dirTimes) and, for a file,
// the SHA-256 of its content or, for a symlink, its target.
func treeDigest(t testing.TB, root string, dirTimes bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d %d", info.Mode(), st.Uid, st.Gid, info.Size())
		if dirTimes || !info.IsDir() {
			desc += fmt.Sprintf(" %d", info.ModTime().UnixNano())
		}
		switch {
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			desc += " " + hex.EncodeToString(h.Sum(nil))
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkCopy is the end-to-end check: a copy of only the used extents passes
// e2fsck -fn and, when mounts are possible, holds every file of the original
// with the same content.
func checkCopy(t testing.TB, path string, a *cfs.Allocation, mountable bool) {
	t.Helper()
	cp := copyUsed(t, path, a)
	var out bytes.Buffer
	cmd := exec.Command("e2fsck", "-fn", cp)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("e2fsck -fn on the copy of the used extents: %v\n%s", err, out.String())
	}
	if !mountable || os.Geteuid() != 0 {
		return
	}
	orig := treeDigest(t, mountRO(t, path), true)
	copied := treeDigest(t, mountRO(t, cp), true)
	if len(orig) < 2 {
		t.Fatalf("original holds only %d entries", len(orig))
	}
	for p, d := range orig {
		if copied[p] != d {
			t.Errorf("%s: original %s, copy %s", p, d, copied[p])
		}
	}
	for p := range copied {
		if _, ok := orig[p]; !ok {
			t.Errorf("%s: only in the copy", p)
		}
	}
}

var (
	sourceOnce sync.Once
	sourceDir  string
	sourceErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sourceDir != "" {
		os.RemoveAll(sourceDir)
	}
	os.Exit(code)
}

// sourceTree returns a folder of files to put into test filesystems, made once
// for the test binary: small files in nested folders, one folder with many
// entries (hashed directory blocks), large random files, a sparse file,
// symlinks short and long, and up to 4 MiB of files copied from /usr/share.
func sourceTree(t testing.TB) string {
	t.Helper()
	sourceOnce.Do(func() {
		sourceDir, sourceErr = os.MkdirTemp("", "cairn-ext-src-")
		if sourceErr == nil {
			sourceErr = makeSourceTree(sourceDir)
		}
	})
	if sourceErr != nil {
		t.Fatal(sourceErr)
	}
	return sourceDir
}

func makeSourceTree(dir string) error {
	rng := rand.New(rand.NewChaCha8([32]byte{'s', 'r', 'c'}))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write := func(rel string, b []byte) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	}
	for i := range 150 {
		if err := write(fmt.Sprintf("small/d%d/e%d/f%d", i%7, i%3, i), data(rng.IntN(6000))); err != nil {
			return err
		}
	}
	for i := range 800 {
		if err := write(fmt.Sprintf("many/entry-with-a-longish-name-%04d", i), nil); err != nil {
			return err
		}
	}
	for i, n := range []int{300 << 10, 1 << 20, 3 << 20} {
		if err := write(fmt.Sprintf("big/b%d", i), data(n)); err != nil {
			return err
		}
	}
	sparse, err := os.Create(filepath.Join(dir, "big", "sparse"))
	if err != nil {
		return err
	}
	for _, off := range []int64{0, 5 << 20, 9<<20 + 123} {
		if _, err := sparse.WriteAt(data(70000), off); err != nil {
			sparse.Close()
			return err
		}
	}
	if err := sparse.Close(); err != nil {
		return err
	}
	if err := os.Symlink("small/d1", filepath.Join(dir, "short-link")); err != nil {
		return err
	}
	if err := os.Symlink(strings.Repeat("a-long-symlink-target/", 8), filepath.Join(dir, "long-link")); err != nil {
		return err
	}
	// Real files, to at most 4 MiB.
	var copied int64
	_ = filepath.WalkDir("/usr/share", func(p string, d fs.DirEntry, err error) error {
		if err != nil || copied > 4<<20 {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 1<<20 {
			return nil
		}
		copied += int64(len(b))
		return write(filepath.Join("usr", strings.TrimPrefix(p, "/usr/")), b)
	})
	return nil
}
