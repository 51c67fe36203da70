//go:build linux

package swap

// Helpers for tests on real swap areas: make them, probe them and copy only
// their used bytes. (The fat and ntfs packages have their own copies: each
// package's tests stand alone.)

import (
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cfs "cairn/internal/fs"
)

// requireTools skips t unless every tool is installed (mkswap and blkid work
// on image files without root).
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
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
