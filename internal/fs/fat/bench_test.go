//go:build linux

package fat

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// countingReader counts the reads of an image and their bytes.
type countingReader struct {
	r            io.ReaderAt
	reads, bytes atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	c.bytes.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

// benchCmd runs a command for a benchmark, failing b on error.
func benchCmd(b *testing.B, name string, args ...string) {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// BenchmarkReader lists a folder of 5000 files with long names (with a
// fresh reader each time: no FAT cached) and reads a 64 MiB file
// sequentially in 256 KiB reads, from a 128 MiB FAT32 volume with 1 KiB
// clusters filled with mtools. It reports the reads of the image and their
// bytes per operation.
func BenchmarkReader(b *testing.B) {
	for _, tool := range []string{"mkfs.vfat", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not installed: .ci/run installs it", tool)
		}
	}
	dir := b.TempDir()
	img, src := filepath.Join(dir, "fat.img"), filepath.Join(dir, "src")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(img, 128<<20); err != nil {
		b.Fatal(err)
	}
	benchCmd(b, "mkfs.vfat", "-F", "32", "-s", "2", img)
	if err := os.MkdirAll(filepath.Join(src, "many"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 5000 {
		if err := os.WriteFile(filepath.Join(src, "many", fmt.Sprintf("f%04d, a file with a long name.txt", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	benchCmd(b, "mcopy", "-s", "-i", img, filepath.Join(src, "many"), filepath.Join(src, "big.bin"), "::/")

	f, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cr := &countingReader{r: f}
	setup, err := Open(f, 128<<20)
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(cr.reads.Load())/float64(b.N), "reads/op")
		b.ReportMetric(float64(cr.bytes.Load())/float64(b.N), "readbytes/op")
	}
	b.Run("ReadDir5000", func(b *testing.B) {
		many := lookup(b, setup, "many")
		cr.reads.Store(0)
		cr.bytes.Store(0)
		for b.Loop() {
			rd, err := Open(cr, 128<<20)
			if err != nil {
				b.Fatal(err)
			}
			list, err := rd.ReadDir(many)
			if err != nil || len(list) != 5000 {
				b.Fatalf("%d entries, %v", len(list), err)
			}
		}
		report(b)
	})
	b.Run("Read64MiB", func(b *testing.B) {
		e := lookup(b, setup, "big.bin")
		rd, err := Open(cr, 128<<20)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 256<<10)
		b.SetBytes(e.Size)
		cr.reads.Store(0)
		cr.bytes.Store(0)
		for b.Loop() {
			r, err := rd.Open(e)
			if err != nil {
				b.Fatal(err)
			}
			for off := int64(0); off < e.Size; off += int64(len(buf)) {
				if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
					b.Fatal(err)
				}
			}
		}
		report(b)
	})
}
