package repo

import (
	"context"
	"errors"
	"math/rand"
	"strings"
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

// loadCounter counts the loads of pack files.
type loadCounter struct {
	storage.Storage
	loads atomic.Int32
}

func (c *loadCounter) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if h.Type == storage.PackFile {
		c.loads.Add(1)
	}
	return c.Storage.Load(ctx, h, offset, length)
}

// ReadBlobs gives every wanted blob of a pack, in offset order, from one load when
// they lie together; a damaged blob fails alone, a missing pack fails each blob.
func TestReadBlobs(t *testing.T) {
	ctx := context.Background()
	st := &loadCounter{Storage: mem.New()}
	r, err := Init(ctx, st, "pw", Options{KDF: crypto.FastKDFParams, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rnd := rand.New(rand.NewSource(1))
	want := map[ID][]byte{}
	for i := range 40 {
		b := make([]byte, 1+rnd.Intn(300<<10))
		if i%2 == 0 {
			rnd.Read(b)
		} else {
			for j := range b {
				b[j] = byte(j / 1000) // compressible
			}
		}
		id, _, err := r.SaveBlob(ctx, DataBlob, b)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = b
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	packs := map[ID][]PackBlob{}
	for id := range want {
		l, _ := r.LookupBlob(DataBlob, id)
		packs[l.Pack] = append(packs[l.Pack], PackBlob{Type: DataBlob, ID: id, Offset: l.Offset, Length: l.Length, RawLength: l.RawLength})
	}
	if len(packs) < 3 {
		t.Fatalf("only %d packs; the test needs several", len(packs))
	}
	for pack, blobs := range packs {
		st.loads.Store(0)
		last := int64(-1)
		got := 0
		err := r.ReadBlobs(ctx, pack, blobs, func(b PackBlob, data []byte, err error) error {
			if err != nil {
				return err
			}
			if int64(b.Offset) <= last {
				t.Errorf("blob at %d after one at %d: not in offset order", b.Offset, last)
			}
			last = int64(b.Offset)
			if string(data) != string(want[b.ID]) {
				t.Errorf("blob %s: wrong content", b.ID.Short())
			}
			got++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != len(blobs) {
			t.Fatalf("%d of %d blobs given", got, len(blobs))
		}
		if n := st.loads.Load(); n != 1 {
			t.Fatalf("a pack's blobs took %d loads, want 1", n)
		}
	}

	// Damage one blob of a pack: it alone fails.
	var pack ID
	var blobs []PackBlob
	for p, b := range packs {
		if len(b) >= 2 {
			pack, blobs = p, b
			break
		}
	}
	h := storage.Handle{Type: storage.PackFile, Name: pack.String()}
	raw, err := st.Load(ctx, h, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := blobs[0]
	raw[bad.Offset+bad.Length/2] ^= 1
	if err := st.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, h, raw); err != nil {
		t.Fatal(err)
	}
	failed := map[ID]bool{}
	err = r.ReadBlobs(ctx, pack, blobs, func(b PackBlob, data []byte, err error) error {
		if err != nil {
			failed[b.ID] = true
		} else if string(data) != string(want[b.ID]) {
			t.Errorf("blob %s: wrong content", b.ID.Short())
		}
		return nil
	})
	if err != nil || len(failed) != 1 || !failed[bad.ID] {
		t.Fatalf("damaged blob: ReadBlobs %v, failed %d blobs, want only the damaged one", err, len(failed))
	}

	// A missing pack fails every blob, with the storage's error.
	if err := st.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = r.ReadBlobs(ctx, pack, blobs, func(b PackBlob, data []byte, err error) error {
		if !storage.IsNotExist(err) {
			t.Errorf("blob of a missing pack: %v, want not-exist", err)
		}
		n++
		return nil
	})
	if err != nil || n != len(blobs) {
		t.Fatalf("missing pack: ReadBlobs %v, %d of %d blobs reported", err, n, len(blobs))
	}

	// An error from fn stops ReadBlobs.
	stop := errors.New("stop")
	n = 0
	err = r.ReadBlobs(ctx, pack, blobs, func(PackBlob, []byte, error) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("fn's error: ReadBlobs %v after %d calls, want stop after 1", err, n)
	}
}

// wordText returns n bytes of text made of a few thousand random words: it
// compresses better at zstd's better level than at its default.
func wordText(rnd *rand.Rand, n int) []byte {
	words := make([]string, 3000)
	for i := range words {
		w := make([]byte, 2+rnd.Intn(9))
		for j := range w {
			w[j] = byte('a' + rnd.Intn(26))
		}
		words[i] = string(w)
	}
	var b []byte
	for len(b) < n {
		b = append(b, words[int(float64(len(words))*rnd.Float64()*rnd.Float64())]...)
		b = append(b, ' ')
	}
	return b[:n]
}

func TestCopyBlobsKeepsStoredCompression(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	r, err := Init(ctx, st, "pw", Options{KDF: crypto.FastKDFParams, PackSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rnd := rand.New(rand.NewSource(7))
	large := wordText(rnd, 6<<20)
	small := wordText(rnd, 100<<10)
	largeID, smallID := r.BlobID(large), r.BlobID(small)
	if _, err := r.SaveBlobCompressed(ctx, DataBlob, largeID, large, CompressLarge); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveBlobWithID(ctx, DataBlob, smallID, small); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := r.LookupBlob(DataBlob, largeID)
	if n := len(r.compress(r.enc, nil, large)) + crypto.Overhead; n == int(before.Length) {
		t.Fatalf("the default level stores the large blob in %d bytes too: the test cannot tell a copy from a recompression", n)
	}
	smallBefore, _ := r.LookupBlob(DataBlob, smallID)
	if smallBefore.Pack != before.Pack {
		t.Fatal("the two blobs are in different packs")
	}
	blobs, err := r.LoadPackHeader(ctx, before.Pack)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CopyBlobs(ctx, before.Pack, blobs); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.RewriteIndex(ctx, func(p ID) bool { return p != before.Pack }); err != nil {
		t.Fatal(err)
	}
	if err := r.RemovePack(ctx, before.Pack); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[ID]struct {
		data []byte
		loc  BlobLocation
	}{largeID: {large, before}, smallID: {small, smallBefore}} {
		after, ok := r.LookupBlob(DataBlob, id)
		if !ok || after.Pack == before.Pack {
			t.Fatalf("blob %s not in a new pack: %+v", id.Short(), after)
		}
		if after.Length != want.loc.Length {
			t.Errorf("blob %s stored in %d bytes after the copy, %d before: compressed anew", id.Short(), after.Length, want.loc.Length)
		}
		got, err := r.LoadBlob(ctx, DataBlob, id)
		if err != nil || string(got) != string(want.data) {
			t.Errorf("blob %s after the copy: %v (content equal: %v)", id.Short(), err, string(got) == string(want.data))
		}
	}

	// A damaged blob stops the copy with an error that names it.
	loc, _ := r.LookupBlob(DataBlob, largeID)
	h := storage.Handle{Type: storage.PackFile, Name: loc.Pack.String()}
	data, err := st.Load(ctx, h, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	data = append([]byte(nil), data...)
	data[loc.Offset+100] ^= 1
	if err := st.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	blobs, err = r.LoadPackHeader(ctx, loc.Pack)
	if err != nil {
		t.Fatal(err)
	}
	err = r.CopyBlobs(ctx, loc.Pack, blobs)
	if err == nil || !strings.Contains(err.Error(), largeID.Short()) {
		t.Fatalf("copy of a damaged blob: %v, want an error naming %s", err, largeID.Short())
	}
}
