// Package benchtest gives go test benchmarks what measuring a backup or a restore
// needs: a test tree like bench/files.sh's, scaled down, and the heap's peak.
package benchtest

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// Tree makes, under dir, large random files (incompressible) of randomMiB
// MiB plus up to 8 MiB each, as many text files (compressible) of 16 MiB, and 3000
// small files of up to 32 KiB, half random; the same bytes for the same
// arguments. It returns the bytes they hold.
func Tree(tb testing.TB, dir string, large, randomMiB int) int64 {
	tb.Helper()
	rnd := rand.New(rand.NewSource(1))
	var total int64
	put := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		total += int64(len(data))
	}
	for i := range large {
		data := make([]byte, randomMiB<<20+rnd.Intn(8<<20))
		rnd.Read(data)
		put(filepath.Join(dir, "random", fmt.Sprintf("r%d", i)), data)
	}
	words := []string{"backup", "chunk", "pack", "index", "tree", "snapshot", "restore", "the", "a", "of"}
	for i := range large {
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

// PeakHeap samples the heap's live and not yet collected objects until stop is
// called, which returns the highest value seen.
func PeakHeap() (stop func() uint64) {
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
