package restorer_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"cairn/internal/archiver"
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
	size := makeBenchTree(b, src)
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
				stop := peakHeap()
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

// makeBenchTree makes large random and text files and many small ones, and
// returns the bytes they hold.
func makeBenchTree(b *testing.B, dir string) int64 {
	b.Helper()
	rnd := rand.New(rand.NewSource(1))
	var total int64
	put := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	for i := range 2 {
		data := make([]byte, 20<<20+rnd.Intn(8<<20))
		rnd.Read(data)
		put(filepath.Join(dir, "random", fmt.Sprintf("r%d", i)), data)
	}
	words := []string{"backup", "chunk", "pack", "index", "tree", "snapshot", "restore", "the", "a", "of"}
	for i := range 2 {
		var text []byte
		for len(text) < 16<<20 {
			text = append(text, words[rnd.Intn(len(words))]...)
			text = append(text, ' ')
		}
		put(filepath.Join(dir, "text", fmt.Sprintf("t%d", i)), text)
	}
	for i := range 3000 {
		data := make([]byte, 64+rnd.Intn(32<<10))
		rnd.Read(data[:len(data)/2])
		put(filepath.Join(dir, "small", fmt.Sprintf("d%02d", i%30), fmt.Sprintf("f%04d", i)), data)
	}
	return total
}

// peakHeap samples the heap's live and not yet collected objects until stop is
// called, which returns the highest value seen.
func peakHeap() (stop func() uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}
