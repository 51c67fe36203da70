package restorer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"

	"cairn/internal/archiver"
	"cairn/internal/benchtest"
	"cairn/internal/crypto"
	"cairn/internal/repo"
	"cairn/internal/restorer"
	"cairn/internal/storage/local"
	"cairn/internal/vfs"
)

// BenchmarkRestore restores a 100 MiB tree (random and text files, 3000 small
// files) from a local repository into a new folder, pack by pack as the restore
// command does and file by file as for image snapshots. Besides time and
// allocations it reports peak-heap-MiB, the most the heap held.
func BenchmarkRestore(b *testing.B) {
	ctx := context.Background()
	defer debug.SetGCPercent(debug.SetGCPercent(25)) // as cmd/cairn runs
	src := filepath.Join(b.TempDir(), "src")
	size := benchtest.Tree(b, src, 2, 20)
	st, err := local.Create(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(ctx, st, "pw", repo.Options{KDF: crypto.FastKDFParams})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	res, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Host: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	root, err := vfs.Root(r, res.Snapshot)
	if err != nil {
		b.Fatal(err)
	}
	e, err := root.Lookup(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		repo *repo.Repository
	}{{"by-pack", r}, {"by-file", nil}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			var peak uint64
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				target := filepath.Join(b.TempDir(), fmt.Sprint(i))
				runtime.GC()
				b.StartTimer()
				stop := benchtest.PeakHeap()
				res, err := restorer.Restore(ctx, e, src, restorer.Options{Target: target, Repository: mode.repo})
				peak = max(peak, stop())
				if err != nil || len(res.Errors) > 0 {
					b.Fatal(err, res.Errors)
				}
				b.StopTimer()
				if err := os.RemoveAll(target); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
