//go:build linux

package ext

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkProbe probes 256 MiB ext4 images holding the test tree: with
// 4 KiB blocks (2 groups) and with 1 KiB blocks (32 groups).
func BenchmarkProbe(b *testing.B) {
	needTools(b, "mkfs.ext4")
	for _, c := range []struct{ name, bs string }{{"256MiB-4k", "4096"}, {"256MiB-1k", "1024"}} {
		b.Run(c.name, func(b *testing.B) {
			img := filepath.Join(b.TempDir(), "fs.img")
			randomFile(b, img, 256<<20, 7)
			run(b, "mkfs.ext4", "-F", "-q", "-E", "nodiscard", "-b", c.bs, "-d", sourceTree(b), img)
			benchProbe(b, img)
		})
	}
}

// BenchmarkProbe1TiB probes a fresh 1 TiB ext4 (8192 groups, flex_bg) in a
// sparse file; its groups without data are BLOCK_UNINIT, so it reads about
// one bitmap a flex group.
func BenchmarkProbe1TiB(b *testing.B) {
	needTools(b, "mkfs.ext4")
	img := filepath.Join(b.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(img, 1<<40); err != nil {
		b.Skip("no sparse 1 TiB file here:", err)
	}
	run(b, "mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", img)
	benchProbe(b, img)
}

func benchProbe(b *testing.B, img string) {
	f, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	var used int64
	for b.Loop() {
		a, err := Probe(f, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		used = a.UsedBytes()
	}
	b.ReportMetric(float64(used)/(1<<20), "usedMiB")
}
