//go:build linux

package ntfs

// Helpers for tests on real filesystem images: make them, probe them, copy
// only their used bytes, mount them with ntfs-3g and compare their files.
// (The fat and swap packages have their own copies: each package's tests
// stand alone.)

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	cfs "cairn/internal/fs"
)

// requireRoot skips t unless it runs as root with every tool installed.
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop mounts")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: .ci/run installs it", tool)
		}
	}
}

// runCmd runs a command and returns its combined output; it fails t on error.
func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rng returns a random source seeded from t's name, so runs are repeatable.
func rng(t *testing.T) *rand.ChaCha8 {
	h := fnv.New64a()
	io.WriteString(h, t.Name())
	var seed [32]byte
	copy(seed[:], h.Sum(nil))
	return rand.NewChaCha8(seed)
}

// randomImage creates a file of size bytes of random data in a temporary
// folder: free space on a real disk is not zero either.
func randomImage(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rng(t), size); err != nil {
		t.Fatal(err)
	}
	return img
}

// blkid returns one tag of blkid's low-level probe of img, "" if unset.
func blkid(t *testing.T, img, tag string) string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "value", "-s", tag, img).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
			return "" // no such tag
		}
		t.Fatalf("blkid %s: %v", img, err)
	}
	return strings.TrimRight(string(out), "\n")
}

// probeFile probes the image file img and checks the allocation's invariants.
func probeFile(t *testing.T, img string, probe func(io.ReaderAt, int64) (*cfs.Allocation, error)) *cfs.Allocation {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	a, err := probe(f, st.Size())
	if err != nil {
		t.Fatalf("Probe %s: %v", img, err)
	}
	checkInvariants(t, a, st.Size())
	return a
}

// copyUsed writes a file of src's size holding only a's used extents of src,
// zeros elsewhere, and returns its name.
func copyUsed(t *testing.T, src string, a *cfs.Allocation) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.img")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(st.Size()); err != nil {
		t.Fatal(err)
	}
	for _, e := range a.Used {
		if _, err := io.Copy(io.NewOffsetWriter(out, e.Off), io.NewSectionReader(in, e.Off, e.Len)); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// hashTree returns, for every entry under root, its kind and, for files, the
// sha256 of its content and of each named stream (user.* extended attribute).
func hashTree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = "symlink " + target
		case d.IsDir():
			m[rel] = "dir"
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			m[rel] = "file " + hex.EncodeToString(sum[:])
		}
		for name, v := range xattrs(t, p) {
			sum := sha256.Sum256(v)
			m[rel+" stream "+name] = hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// compareTrees fails t unless the trees have the same entries.
func compareTrees(t *testing.T, want, got map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, k+": want "+v+", got "+got[k])
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, k+": unexpected "+v)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%d differences, the first: %s", len(diffs), strings.Join(diffs[:min(10, len(diffs))], "\n"))
	}
}

// mount mounts the NTFS image img with ntfs-3g (opts as its -o, "" for none)
// and returns the mount point; it is unmounted when t ends.
func mount(t *testing.T, img, opts string) string {
	t.Helper()
	mnt := t.TempDir()
	args := []string{img, mnt}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	runCmd(t, "ntfs-3g", args...)
	t.Cleanup(func() { unmount(t, mnt) })
	return mnt
}

// unmount unmounts mnt if it is mounted.
func unmount(t *testing.T, mnt string) {
	t.Helper()
	if exec.Command("mountpoint", "-q", mnt).Run() != nil {
		return
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Errorf("umount %s: %v\n%s", mnt, err, out)
	}
}

// xattrs returns the user.* extended attributes of p: its named streams.
func xattrs(t *testing.T, p string) map[string][]byte {
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	m := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		sz, err := syscall.Getxattr(p, name, nil)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		v := make([]byte, sz)
		if _, err := syscall.Getxattr(p, name, v); err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		m[name] = v
	}
	return m
}

// writeFiles writes into dir, a mounted NTFS volume: up to usrBytes of
// regular files from /usr/share/doc, random files of awkward sizes around
// clusterSize in nested folders, a file with two named streams, a sparse
// file, compressed files (if compress), then fragmented files (see below).
// It returns the tree of what it wrote, as hashTree gives it.
func writeFiles(t *testing.T, dir string, usrBytes, clusterSize int64, compress bool) map[string]string {
	t.Helper()
	random := func(p string, size int64) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.CopyN(f, rng(t), size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil { // closed: a failed test still unmounts
			t.Fatalf("write %s: %v", p, err)
		}
	}
	var usr int64
	filepath.WalkDir("/usr/share/doc", func(p string, d fs.DirEntry, err error) error {
		if err != nil || usr > usrBytes {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || usr+int64(len(b)) > usrBytes {
			return nil
		}
		rel, _ := filepath.Rel("/usr/share", p)
		dst := filepath.Join(dir, "usr", rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		usr += int64(len(b))
		return nil
	})
	cs := clusterSize
	for i, size := range []int64{0, 1, 511, 512, 513, 700, 1500, cs - 1, cs, cs + 1, 3*cs + 7, 100 << 10} {
		random(filepath.Join(dir, "sizes", "deep", "er", "f"+string(rune('a'+i))+".bin"), size)
	}

	// Named streams: a small one (resident in the MFT record) and a big one.
	streams := filepath.Join(dir, "streams.txt")
	random(streams, 1000)
	small := make([]byte, 100)
	big := make([]byte, min(5*cs+17, 60000)) // Linux caps xattrs at 64 KiB
	rng(t).Read(small)
	rng(t).Read(big)
	for name, v := range map[string][]byte{"user.small": small, "user.big": big} {
		if err := syscall.Setxattr(streams, name, v, 0); err != nil {
			t.Fatalf("setxattr %s: %v", name, err)
		}
	}

	// A sparse file: data, a hole of many clusters, data.
	sp, err := os.Create(filepath.Join(dir, "sparse.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close() // a failed test still unmounts
	if _, err := io.CopyN(sp, rng(t), 3*cs); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Seek(64*cs, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(sp, rng(t), 2*cs+5); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	if compress {
		// Files made in a folder with the compressed attribute (0x800)
		// are compressed; repetitive content compresses.
		cdir := filepath.Join(dir, "compressed")
		if err := os.Mkdir(cdir, 0o755); err != nil {
			t.Fatal(err)
		}
		runCmd(t, "setfattr", "-h", "-v", "0x00000800", "-n", "system.ntfs_attrib_be", cdir)
		text := strings.Repeat("cairn compresses this line well enough. ", 4000)
		if err := os.WriteFile(filepath.Join(cdir, "text.txt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		random(filepath.Join(cdir, "random.bin"), 200<<10)
	}

	free := func() int64 {
		syscall.Sync()
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Bavail) * st.Bsize
	}
	// ntfs-3g allocates from the largest free range it finds, so a file
	// is fragmented only when all free space is in holes. First the holes
	// of one-cluster files, every other one deleted, with a filler taking
	// the rest: a file over them has hundreds of fragments (too many runs
	// for one MFT record: an attribute list).
	// Files of 2 KiB or more are never resident in their MFT record.
	margin := max(16*cs, 1<<20) // left free for metadata
	tinySize := (2048 + cs - 1) / cs * cs
	tiny := min(600, free()/10/tinySize)
	r := rand.New(rng(t))
	var tinies []string
	for i := range tiny {
		p := filepath.Join(dir, "frag", "tiny", strconv.FormatInt(i, 10))
		random(p, tinySize-int64(r.IntN(int(cs/2))))
		tinies = append(tinies, p)
	}
	filler := filepath.Join(dir, "frag", "filler")
	random(filler, max(free()-margin, 1))
	removeEveryOther(t, tinies)
	random(filepath.Join(dir, "frag", "many"), max(free()-2*margin, 1)+100)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Then 64 small files filling most of the space, a filler for the
	// rest, every other small file deleted, and a big file over about five
	// of their holes, leaving the other holes free.
	smallSize := free() * 6 / 10 / 64 / cs * cs
	var smalls []string
	for i := range 64 {
		p := filepath.Join(dir, "frag", "s"+string(rune('A'+i/26))+string(rune('a'+i%26)))
		random(p, smallSize-int64(r.IntN(int(cs))))
		smalls = append(smalls, p)
	}
	random(filler, max(free()-margin, 1))
	removeEveryOther(t, smalls)
	random(filepath.Join(dir, "frag", "big"), smallSize*9/2+123)
	return hashTree(t, dir)
}

// removeEveryOther removes the files of names with an even index.
func removeEveryOther(t *testing.T, names []string) {
	t.Helper()
	for i, p := range names {
		if i%2 == 0 {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
}
