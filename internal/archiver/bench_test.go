package archiver_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"

	"cairn/internal/archiver"
	"cairn/internal/benchtest"
	"cairn/internal/crypto"
	"cairn/internal/repo"
	"cairn/internal/storage/local"
)

// BenchmarkBackup backs up a 150 MiB tree (random, text and 3000 small files) into
// a new local repository, cold for the repository, warm for the source. Besides
// time and allocations it reports peak-heap-MiB, the most the heap held, which is
// what bounds the peak memory of a backup.
func BenchmarkBackup(b *testing.B) {
	ctx := context.Background()
	src := filepath.Join(b.TempDir(), "src")
	size := benchtest.Tree(b, src, 3, 24)
	defer debug.SetGCPercent(debug.SetGCPercent(25)) // as cmd/cairn runs
	b.SetBytes(size)
	b.ReportAllocs()
	var peak uint64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		st, err := local.Create(filepath.Join(b.TempDir(), fmt.Sprintf("repo%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		r, err := repo.Init(ctx, st, "pw", repo.Options{KDF: crypto.FastKDFParams})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
		stop := benchtest.PeakHeap()
		if _, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Host: "bench"}); err != nil {
			b.Fatal(err)
		}
		peak = max(peak, stop())
		b.StopTimer()
		_ = r.Close()
		_ = st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
