//go:build linux

package fat

// Helpers for tests on real filesystem images: make them, probe them, copy
// only their used bytes and compare their files. (The ntfs and swap packages
// have their own copies: each package's tests stand alone.) Files go in and
// out through mtools: the kernels these tests run on may have no vfat driver.

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
	"regexp"
	"sort"
	"strconv"
	"strings"
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

// run runs a command and returns its combined output; it fails t on error.
func run(t *testing.T, name string, args ...string) string {
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
// sha256 of its content.
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

// writeFiles writes into the FAT image img, with mtools: up to usrBytes of
// regular files from /usr/share/doc, random files of awkward sizes around
// clusterSize in nested folders, then 64 small random files filling most of
// the free space, and a filler for most of the rest; it deletes every other
// small file and writes a big file over about five holes, so that it is
// fragmented and the other holes stay free.
// It returns the tree of what it wrote, as hashTree gives it.
func writeFiles(t *testing.T, img string, usrBytes int64, clusterSize int64) map[string]string {
	t.Helper()
	stage := t.TempDir()
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
		dst := filepath.Join(stage, "usr", rel)
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
	for i, size := range []int64{0, 1, 511, 512, 513, cs - 1, cs, cs + 1, 3*cs + 7, 100 << 10} {
		random(filepath.Join(stage, "sizes", "deep", "er", "f"+string(rune('a'+i))+".bin"), size)
	}
	run(t, "mcopy", "-s", "-i", img, filepath.Join(stage, "usr"), filepath.Join(stage, "sizes"), "::/")

	small := freeBytes(t, img, cs) * 7 / 10 / 64 / cs * cs
	r := rand.New(rng(t))
	var names []string
	for i := range 64 {
		name := "s" + string(rune('A'+i/26)) + string(rune('a'+i%26))
		random(filepath.Join(stage, "frag", name), small-int64(r.IntN(int(cs))))
		names = append(names, name)
	}
	// Most of the space left goes to a filler, so that an allocator that
	// goes on from the last allocation (FAT32's FSInfo hint) soon wraps
	// around into the holes.
	random(filepath.Join(stage, "frag", "filler"), 1)
	run(t, "mcopy", "-s", "-i", img, filepath.Join(stage, "frag"), "::/")
	random(filepath.Join(stage, "frag", "filler"), max(freeBytes(t, img, cs)-2*small, 1))
	run(t, "mcopy", "-o", "-i", img, filepath.Join(stage, "frag", "filler"), "::/frag/")
	del := []string{"-i", img}
	for i, name := range names {
		if i%2 == 0 {
			del = append(del, "::/frag/"+name)
			if err := os.Remove(filepath.Join(stage, "frag", name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(t, "mdel", del...)
	random(filepath.Join(stage, "frag", "big"), small*9/2+123)
	run(t, "mcopy", "-i", img, filepath.Join(stage, "frag", "big"), "::/frag/")
	if chain := run(t, "mshowfat", "-i", img, "::/frag/big"); strings.Count(chain, "<") < 2 {
		t.Fatalf("frag/big is not fragmented: %s", chain)
	}
	return hashTree(t, stage)
}

// readFiles copies every file out of the FAT image img with mtools and
// returns their tree, as hashTree gives it.
func readFiles(t *testing.T, img string) map[string]string {
	t.Helper()
	out := t.TempDir()
	run(t, "mcopy", "-s", "-i", img, "::/*", out)
	return hashTree(t, out)
}

// fsckClusters runs fsck.vfat -n on img, failing t if it finds anything to
// repair, and returns the used and total cluster counts it reports.
func fsckClusters(t *testing.T, img string) (used, total int64) {
	t.Helper()
	out := run(t, "fsck.vfat", "-n", img)
	m := regexp.MustCompile(`(\d+)/(\d+) clusters`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("fsck.vfat -n %s: no cluster count in\n%s", img, out)
	}
	used, _ = strconv.ParseInt(m[1], 10, 64)
	total, _ = strconv.ParseInt(m[2], 10, 64)
	return used, total
}

// freeBytes returns the free space of the FAT image img.
func freeBytes(t *testing.T, img string, clusterSize int64) int64 {
	used, total := fsckClusters(t, img)
	return (total - used) * clusterSize
}
