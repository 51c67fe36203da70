package archiver

import (
	"context"
	"fmt"
	"sync"
)

// chunkRing is the memory that chunks travel in from the readers to the savers: one
// buffer, handed out in turn as a ring. The bytes in flight are bounded by its size,
// nothing is allocated per chunk, and chunks of every size share the same memory
// (buffers pooled by size instead would keep a set of every size seen). A reader
// that finds the ring full waits for the savers to give back the oldest chunks.
type chunkRing struct {
	mu      sync.Mutex
	buf     []byte
	regions []ringRegion    // handed out and not yet freed up to the tail, oldest first
	first   uint64          // sequence number of regions[0]
	next    uint64          // sequence number of the next region
	ticket  uint64          // next waiting reader's turn
	serving uint64          // whose turn it is
	gaveUp  map[uint64]bool // turns of callers that stopped waiting
	changed chan struct{}   // closed and replaced whenever the ring changes
}

type ringRegion struct {
	off, end int
	freed    bool
}

// chunkBuf is a chunk's bytes in the ring.
type chunkBuf struct {
	data []byte
	seq  uint64
}

func newChunkRing(size int) *chunkRing {
	return &chunkRing{buf: make([]byte, size), gaveUp: map[uint64]bool{}, changed: make(chan struct{})}
}

// get returns n bytes of the ring, waiting, in turn with other callers, until they
// are free; it fails when ctx is done or n is larger than the ring.
func (r *chunkRing) get(ctx context.Context, n int) (chunkBuf, error) {
	if n > len(r.buf) {
		return chunkBuf{}, fmt.Errorf("a chunk of %d bytes is larger than the chunk memory (%d bytes)", n, len(r.buf))
	}
	n = max(n, 1)
	r.mu.Lock()
	turn := r.ticket
	r.ticket++
	for {
		if r.serving == turn {
			if off, ok := r.fit(n); ok {
				r.regions = append(r.regions, ringRegion{off: off, end: off + n})
				seq := r.next
				r.next++
				r.serving++
				r.passTurns()
				r.broadcast() // the next in turn may fit too
				r.mu.Unlock()
				return chunkBuf{data: r.buf[off : off+n : off+n], seq: seq}, nil
			}
		}
		wait := r.changed
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			r.mu.Lock()
			r.gaveUp[turn] = true
			r.passTurns()
			r.mu.Unlock()
			return chunkBuf{}, ctx.Err()
		}
		r.mu.Lock()
	}
}

// passTurns moves the turn past callers that gave up. Call it under mu.
func (r *chunkRing) passTurns() {
	for r.gaveUp[r.serving] {
		delete(r.gaveUp, r.serving)
		r.serving++
		r.broadcast()
	}
}

// fit returns where n free bytes start: after the newest region, or at the start of
// the ring when they do not fit before its end. Call it under mu.
func (r *chunkRing) fit(n int) (int, bool) {
	if len(r.regions) == 0 {
		return 0, true
	}
	tail, head := r.regions[0].off, r.regions[len(r.regions)-1].end
	if head > tail { // in use: [tail, head)
		if len(r.buf)-head >= n {
			return head, true
		}
		return 0, n <= tail
	}
	// wrapped, in use: [tail, end of ring) and [0, head)
	return head, tail-head >= n
}

// put gives back a chunk from get.
func (r *chunkRing) put(b chunkBuf) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.regions[b.seq-r.first].freed = true
	i := 0
	for i < len(r.regions) && r.regions[i].freed {
		i++
	}
	if i > 0 {
		r.regions = append(r.regions[:0], r.regions[i:]...)
		r.first += uint64(i)
		r.broadcast()
	}
}

func (r *chunkRing) broadcast() {
	close(r.changed)
	r.changed = make(chan struct{})
}
