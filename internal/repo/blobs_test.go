package repo

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn/internal/crypto"
	"cairn/internal/storage"
	"cairn/internal/storage/mem"
)

// gatedStorage is the memory storage with pack saves held until the gate opens, or
// failed with fail once it is set; it counts the pack saves under way.
type gatedStorage struct {
	storage.Storage
	gate     chan struct{}
	fail     atomic.Pointer[error]
	inFlight atomic.Int32
}

func (g *gatedStorage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if h.Type == storage.PackFile {
		g.inFlight.Add(1)
		defer g.inFlight.Add(-1)
		<-g.gate
		if err := g.fail.Load(); err != nil {
			return *err
		}
	}
	return g.Storage.Save(ctx, h, data)
}

func newGatedRepo(t *testing.T) (*Repository, *gatedStorage) {
	t.Helper()
	st := &gatedStorage{Storage: mem.New(), gate: make(chan struct{})}
	r, err := Init(context.Background(), st, "pw", Options{KDF: crypto.FastKDFParams, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, st
}

func (p *packers) bufsMade() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bufs
}

// saveRandomBlobs saves n incompressible blobs of size bytes from each of savers
// goroutines and returns their data by id; done counts the saves that returned.
func saveRandomBlobs(ctx context.Context, r *Repository, savers, n, size int, done *atomic.Int32) (map[ID][]byte, chan error) {
	var mu sync.Mutex
	blobs := map[ID][]byte{}
	errc := make(chan error, savers*n)
	var wg sync.WaitGroup
	for s := range savers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(s)))
			for range n {
				b := make([]byte, size)
				rnd.Read(b)
				id, _, err := r.SaveBlob(ctx, DataBlob, b)
				done.Add(1)
				if err != nil {
					errc <- err
					continue
				}
				mu.Lock()
				blobs[id] = b
				mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		close(errc)
	}()
	return blobs, errc
}

// A storage slower than the savers makes them wait: the data packs in memory stay
// at one open pack and one for each upload, however many savers there are.
func TestDataPacksInMemoryAreBounded(t *testing.T) {
	ctx := context.Background()
	r, st := newGatedRepo(t)
	p := r.packer
	var done atomic.Int32
	blobs, errc := saveRandomBlobs(ctx, r, 6, 10, 200<<10, &done)

	// With uploads held, the savers fill the packs there are buffers for and stop.
	stalled := false
	for last, same := int32(-1), 0; !stalled; time.Sleep(5 * time.Millisecond) {
		if n := done.Load(); n == last && st.inFlight.Load() == int32(cap(p.uploads)) {
			same++
			stalled = same == 40
		} else {
			last, same = n, 0
		}
		if done.Load() == 60 {
			t.Fatal("every save returned while no pack could be stored")
		}
	}
	if n, most := p.bufsMade(), cap(p.uploads)+1; n > most {
		t.Fatalf("%d data pack buffers made, want at most %d (one open, one per upload)", n, most)
	}

	close(st.gate)
	for err := range errc {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.bufsMade(); n != 0 {
		t.Fatalf("%d data pack buffers kept after Flush", n)
	}
	for id, want := range blobs {
		got, err := r.LoadBlob(ctx, DataBlob, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("blob %s: wrong content", id.Short())
		}
	}
}

// When a pack cannot be stored, savers waiting for a pack buffer are not left
// waiting: every save returns, with the storage's error.
func TestFailedUploadReleasesWaitingSavers(t *testing.T) {
	ctx := context.Background()
	r, st := newGatedRepo(t)
	boom := errors.New("disk on fire")
	st.fail.Store(&boom)
	var done atomic.Int32
	_, errc := saveRandomBlobs(ctx, r, 6, 10, 200<<10, &done)
	for st.inFlight.Load() < int32(cap(r.packer.uploads)) {
		time.Sleep(time.Millisecond)
	}
	close(st.gate)
	failed := 0
	timeout := time.After(30 * time.Second)
	for {
		select {
		case err, ok := <-errc:
			if !ok {
				if failed == 0 {
					t.Fatal("no save reported the storage's error")
				}
				if err := r.Flush(ctx); !errors.Is(err, boom) {
					t.Fatalf("Flush after a failed upload: %v, want the storage's error", err)
				}
				return
			}
			if !errors.Is(err, boom) {
				t.Fatalf("save failed with %v, want the storage's error", err)
			}
			failed++
		case <-timeout:
			t.Fatalf("%d of 60 saves returned; the others wait forever", done.Load())
		}
	}
}
