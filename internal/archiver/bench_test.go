package archiver_test

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
	"cairn/internal/storage/local"
)

// benchTree makes a tree like bench/files.sh's, scaled down: large random files
// (incompressible), large text files (compressible) and many small files; it
// returns the bytes it holds.
func benchTree(b *testing.B, dir string) int64 {
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
	for i := range 3 {
		data := make([]byte, 24<<20+rnd.Intn(8<<20))
		rnd.Read(data)
		put(filepath.Join(dir, "random", fmt.Sprintf("r%d", i)), data)
	}
	words := []string{"backup", "chunk", "pack", "index", "tree", "snapshot", "restore", "the", "a", "of"}
	for i := range 3 {
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

// BenchmarkBackup backs up a 150 MiB tree (random, text and 3000 small files) into
// a new local repository, cold for the repository, warm for the source. Besides
// time and allocations it reports peak-heap-MiB, the most the heap held, which is
// what bounds the peak memory of a backup.
func BenchmarkBackup(b *testing.B) {
	ctx := context.Background()
	src := filepath.Join(b.TempDir(), "src")
	size := benchTree(b, src)
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
		stop := peakHeap()
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
