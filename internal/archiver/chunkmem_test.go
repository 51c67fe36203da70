package archiver

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// Many readers and savers at once: the chunks out at any time never overlap (each
// keeps the bytes written into it) and never hold more than the ring.
func TestChunkRingRegionsNeverOverlap(t *testing.T) {
	const size = 1 << 20
	r := newChunkRing(size)
	ctx := context.Background()
	queue := make(chan chunkBuf, 16)
	var out sync.Mutex
	held, peak := 0, 0
	var readers, savers sync.WaitGroup
	for g := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rnd := rand.New(rand.NewSource(int64(g)))
			for range 500 {
				n := 1 + rnd.Intn(size/3)
				if rnd.Intn(50) == 0 {
					n = size // now and then, the whole ring
				}
				b, err := r.get(ctx, n)
				if err != nil {
					t.Error(err)
					return
				}
				if len(b.data) != n {
					t.Errorf("asked for %d bytes, got %d", n, len(b.data))
				}
				out.Lock()
				held += n
				peak = max(peak, held)
				out.Unlock()
				fill(b.data, byte(b.seq))
				queue <- b
			}
		}()
	}
	for range 3 {
		savers.Add(1)
		go func() {
			defer savers.Done()
			for b := range queue {
				time.Sleep(time.Duration(rand.Intn(20)) * time.Microsecond)
				if i := check(b.data, byte(b.seq)); i >= 0 {
					t.Errorf("chunk %d: byte %d was overwritten while the chunk was out", b.seq, i)
				}
				out.Lock()
				held -= len(b.data)
				out.Unlock()
				r.put(b)
			}
		}()
	}
	readers.Wait()
	close(queue)
	savers.Wait()
	if peak > size {
		t.Fatalf("%d bytes out at once in a ring of %d", peak, size)
	}
	if len(r.regions) != 0 {
		t.Fatalf("%d regions left after every chunk came back", len(r.regions))
	}
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v + byte(i)
	}
}

func check(b []byte, v byte) int {
	for i := range b {
		if b[i] != v+byte(i) {
			return i
		}
	}
	return -1
}

// A chunk that does not fit waits for the oldest ones to come back, and callers are
// served in turn: a small chunk asked for later does not pass a large one waiting.
func TestChunkRingWaitsInTurn(t *testing.T) {
	r := newChunkRing(100)
	ctx := context.Background()
	a, _ := r.get(ctx, 60)
	type served struct {
		what string
		seq  uint64
	}
	got := make(chan served, 2)
	go func() {
		b, err := r.get(ctx, 70)
		if err == nil {
			got <- served{"large", b.seq}
			r.put(b)
		}
	}()
	waitWaiting(t, r, 1)
	go func() {
		b, err := r.get(ctx, 10) // would fit now, but it is not its turn
		if err == nil {
			got <- served{"small", b.seq}
			r.put(b)
		}
	}()
	waitWaiting(t, r, 2)
	select {
	case g := <-got:
		t.Fatalf("%s chunk served while the ring was full", g.what)
	case <-time.After(50 * time.Millisecond):
	}
	r.put(a)
	x, y := <-got, <-got
	if x.what == "small" {
		x, y = y, x
	}
	if x.seq > y.seq {
		t.Fatalf("the small chunk asked for later was served first")
	}
}

// waitWaiting waits until n callers have taken a turn in r.
func waitWaiting(t *testing.T, r *chunkRing, n uint64) {
	t.Helper()
	for range 1000 {
		r.mu.Lock()
		waiting := r.ticket - r.serving
		r.mu.Unlock()
		if waiting >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d callers waiting", n)
}

// A caller that stops waiting gives its turn up: those after it are still served.
func TestChunkRingCancelledWaitPassesTurn(t *testing.T) {
	r := newChunkRing(100)
	a, _ := r.get(context.Background(), 90)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.get(ctx, 50)
		errc <- err
	}()
	waitWaiting(t, r, 1)
	done := make(chan chunkBuf, 1)
	go func() {
		b, err := r.get(context.Background(), 5)
		if err != nil {
			t.Error(err)
		}
		done <- b
	}()
	waitWaiting(t, r, 2)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get: %v", err)
	}
	select {
	case b := <-done:
		r.put(b)
	case <-time.After(5 * time.Second):
		t.Fatal("the caller after a cancelled one was never served")
	}
	r.put(a)
}

func TestChunkRingRefusesChunkLargerThanRing(t *testing.T) {
	r := newChunkRing(100)
	if _, err := r.get(context.Background(), 101); err == nil {
		t.Fatal("a chunk larger than the ring was accepted")
	}
}
