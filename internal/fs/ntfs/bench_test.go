//go:build linux

package ntfs

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
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// BenchmarkReader lists a folder of 5000 files (with a fresh reader each
// time: no MFT record cached) and reads a 64 MiB file, and a compressed one,
// sequentially in 256 KiB reads, from a 128 MiB volume filled through
// ntfs-3g. It reports the reads of the image and their bytes per operation.
func BenchmarkReader(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: ntfs-3g mounts")
	}
	for _, tool := range []string{"mkntfs", "ntfs-3g", "setfattr"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not installed: .ci/run installs it", tool)
		}
	}
	dir := b.TempDir()
	img, mnt := filepath.Join(dir, "ntfs.img"), filepath.Join(dir, "mnt")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(img, 128<<20); err != nil {
		b.Fatal(err)
	}
	benchCmd(b, "mkntfs", "-F", "-Q", img)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	benchCmd(b, "ntfs-3g", img, mnt, "-o", "compression")
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", mnt).Run()
		}
	}()
	if err := os.Mkdir(filepath.Join(mnt, "many"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 5000 {
		if err := os.WriteFile(filepath.Join(mnt, "many", fmt.Sprintf("file number %04d.txt", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	if err := os.WriteFile(filepath.Join(mnt, "big.bin"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "c"), 0o755); err != nil {
		b.Fatal(err)
	}
	benchCmd(b, "setfattr", "-v", "0x00000800", "-n", "system.ntfs_attrib_be", filepath.Join(mnt, "c"))
	text := []byte(strings.Repeat("cairn reads compressed files, a unit at a time. ", 64<<20/48+1)[:64<<20])
	if err := os.WriteFile(filepath.Join(mnt, "c", "text.txt"), text, 0o644); err != nil {
		b.Fatal(err)
	}
	benchCmd(b, "umount", mnt)
	mounted = false

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
	for _, p := range []string{"big.bin", "c/text.txt"} {
		b.Run("Read64MiB/"+p, func(b *testing.B) {
			e := lookup(b, setup, p)
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
}
