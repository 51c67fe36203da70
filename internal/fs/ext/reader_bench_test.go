//go:build linux

package ext

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	cfs "cairn/internal/fs"
)

// BenchmarkReader reads, through the file reader, a folder of 20000 files
// (listing it: every entry's inode and xattrs) and a 256 MiB file, from
// ext4 (extents) and ext3 (block pointers) images in the page cache. Each
// iteration opens a new reader (a cold cache); reads/op and MiB/op count the
// reads reaching the image.
func BenchmarkReader(b *testing.B) {
	needRoot(b)
	needTools(b, "mkfs.ext4", "mkfs.ext3")
	src := b.TempDir()
	randomFile(b, filepath.Join(src, "big"), 256<<20, 3)
	for _, fsType := range []string{"ext4", "ext3"} {
		img := filepath.Join(b.TempDir(), "fs.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Truncate(img, 400<<20); err != nil {
			b.Fatal(err)
		}
		run(b, "mkfs."+fsType, "-F", "-q", "-b", "4096", "-N", "30000", "-d", src, img)
		withMount(b, img, "rw", func(dir string) {
			if err := os.Mkdir(filepath.Join(dir, "folder"), 0o755); err != nil {
				b.Fatal(err)
			}
			for i := range 20000 {
				f, err := os.Create(filepath.Join(dir, "folder", fmt.Sprintf("file-%05d.txt", i)))
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
		f, err := os.Open(img)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			b.Fatal(err)
		}
		cr := &countingReader{r: f}
		open := func(b *testing.B) (cfs.Reader, map[string]*cfs.Entry) {
			rd, err := Open(cr, st.Size())
			if err != nil {
				b.Fatal(err)
			}
			root, err := rd.Root()
			if err != nil {
				b.Fatal(err)
			}
			list, err := rd.ReadDir(root)
			if err != nil {
				b.Fatal(err)
			}
			m := map[string]*cfs.Entry{}
			for _, e := range list {
				m[e.Name] = e
			}
			return rd, m
		}

		b.Run(fsType+"/ReadDir-20000", func(b *testing.B) {
			cr.reset()
			n := 0
			for b.Loop() {
				rd, m := open(b)
				list, err := rd.ReadDir(m["folder"])
				if err != nil {
					b.Fatal(err)
				}
				n = len(list)
			}
			if n != 20000 {
				b.Fatalf("%d entries", n)
			}
			cr.report(b)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20000, "ns/entry")
		})
		for _, piece := range []int{1 << 20, 4 << 10} {
			b.Run(fmt.Sprintf("%s/Read-256MiB-in-%dKiB", fsType, piece>>10), func(b *testing.B) {
				buf := make([]byte, piece)
				b.SetBytes(256 << 20)
				cr.reset()
				for b.Loop() {
					rd, m := open(b)
					r, err := rd.Open(m["big"])
					if err != nil {
						b.Fatal(err)
					}
					for off := int64(0); ; off += int64(piece) {
						if _, err := r.ReadAt(buf, off); err == io.EOF {
							break
						} else if err != nil {
							b.Fatal(err)
						}
					}
				}
				cr.report(b)
			})
		}
	}
}

// countingReader counts the reads through it and their bytes.
type countingReader struct {
	r            io.ReaderAt
	reads, bytes atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	c.bytes.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

func (c *countingReader) reset() { c.reads.Store(0); c.bytes.Store(0) }

func (c *countingReader) report(b *testing.B) {
	b.ReportMetric(float64(c.reads.Load())/float64(b.N), "reads/op")
	b.ReportMetric(float64(c.bytes.Load())/float64(b.N)/(1<<20), "MiB-read/op")
}
