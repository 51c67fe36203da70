package storage_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cairn/internal/storage"
	"cairn/internal/storage/mem"
	"cairn/internal/storage/storagetest"
)

var errFlaky = errors.New("connection reset (injected)")

// flaky injects faults into a real storage: the first failFirst calls of each
// operation on each handle (or List of each type) fail with errFlaky. With
// afterDone, a failing Save or Remove does its work first and then reports the
// fault, and a failing List delivers one file before it fails. (Remove faults
// after the work are kept out of the conformance runs: the retry then honestly
// reports ErrNotExist, see Wrap.)
type flaky struct {
	storage.Storage
	failFirst       int
	afterDone       bool
	removeAfterDone bool

	mu    sync.Mutex
	calls map[string]int // by operation and handle
	total atomic.Int64
}

func newFlaky(s storage.Storage, failFirst int, afterDone bool) *flaky {
	return &flaky{Storage: s, failFirst: failFirst, afterDone: afterDone, calls: map[string]int{}}
}

// fail counts a call of op on key and reports whether it is to fail.
func (f *flaky) fail(op, key string) bool {
	f.total.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op+" "+key]++
	return f.calls[op+" "+key] <= f.failFirst
}

func (f *flaky) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !f.fail("save", h.String()) {
		return f.Storage.Save(ctx, h, data)
	}
	if f.afterDone {
		f.Storage.Save(ctx, h, data)
	}
	return errFlaky
}

func (f *flaky) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if f.fail("load", h.String()) {
		return nil, errFlaky
	}
	return f.Storage.Load(ctx, h, offset, length)
}

func (f *flaky) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if f.fail("stat", h.String()) {
		return storage.FileInfo{}, errFlaky
	}
	return f.Storage.Stat(ctx, h)
}

func (f *flaky) List(ctx context.Context, t storage.FileType, fn func(storage.FileInfo) error) error {
	if !f.fail("list", string(t)) {
		return f.Storage.List(ctx, t, fn)
	}
	if !f.afterDone {
		return errFlaky
	}
	delivered := false
	err := f.Storage.List(ctx, t, func(fi storage.FileInfo) error {
		if delivered {
			return errFlaky
		}
		delivered = true
		return fn(fi)
	})
	if err == nil {
		err = errFlaky
	}
	return err
}

func (f *flaky) Remove(ctx context.Context, h storage.Handle) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !f.fail("remove", h.String()) {
		return f.Storage.Remove(ctx, h)
	}
	if f.removeAfterDone {
		f.Storage.Remove(ctx, h)
	}
	return errFlaky
}

var fast = storage.WrapOptions{BaseDelay: time.Microsecond, MaxDelay: time.Millisecond}

func TestWrapConformance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failFirst int
		afterDone bool
		opts      storage.WrapOptions
	}{
		{"Limit1", 0, false, storage.WrapOptions{Connections: 1, Attempts: 1}},
		{"Limit4Retry", 0, false, storage.WrapOptions{Connections: 4, BaseDelay: time.Microsecond}},
		{"FaultsBefore", 2, false, fast},
		{"FaultsAfter", 1, true, storage.WrapOptions{Connections: 3, BaseDelay: time.Microsecond, MaxDelay: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Storage {
				return storage.Wrap(newFlaky(mem.New(), tc.failFirst, tc.afterDone), tc.opts)
			})
		})
	}
}

func TestRetryRecovers(t *testing.T) {
	ctx := context.Background()
	f := newFlaky(mem.New(), 3, false)
	var retries atomic.Int64
	opts := fast
	opts.OnRetry = func(op string, err error, wait time.Duration) {
		if !errors.Is(err, errFlaky) || op == "" {
			t.Errorf("OnRetry(%q, %v)", op, err)
		}
		retries.Add(1)
	}
	s := storage.Wrap(f, opts)
	h := storage.Handle{Type: storage.PackFile, Name: "abcd"}
	if err := s.Save(ctx, h, []byte("data")); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if b, err := s.Load(ctx, h, 1, 2); err != nil || string(b) != "at" {
		t.Fatalf("Load = %q, %v", b, err)
	}
	if fi, err := s.Stat(ctx, h); err != nil || fi.Size != 4 {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	n := 0
	if err := s.List(ctx, storage.PackFile, func(storage.FileInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("List: %d files, %v", n, err)
	}
	if err := s.Remove(ctx, h); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got, want := f.total.Load(), int64(5*4); got != want {
		t.Errorf("%d calls reached the provider, want %d (4 per operation)", got, want)
	}
	if got := retries.Load(); got != 5*3 {
		t.Errorf("OnRetry called %d times, want 15", got)
	}
}

func TestRetryGivesUp(t *testing.T) {
	f := newFlaky(mem.New(), 100, false)
	opts := fast
	opts.Attempts = 3
	s := storage.Wrap(f, opts)
	_, err := s.Stat(context.Background(), storage.Handle{Type: storage.KeyFile, Name: "k"})
	if !errors.Is(err, errFlaky) {
		t.Errorf("Stat: %v, want the injected error", err)
	}
	if got := f.total.Load(); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
}

func TestNoRetryOfPermanentErrors(t *testing.T) {
	ctx := context.Background()
	inner := mem.New()
	present := storage.Handle{Type: storage.IndexFile, Name: "present"}
	inner.Save(ctx, present, []byte("12345"))
	counter := newFlaky(inner, 0, false) // counts calls, injects nothing
	s := storage.Wrap(counter, storage.WrapOptions{BaseDelay: time.Hour})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	missing := storage.Handle{Type: storage.IndexFile, Name: "missing"}
	for name, call := range map[string]func() error{
		"Load missing":   func() error { _, err := s.Load(ctx, missing, 0, 0); return err },
		"Stat missing":   func() error { _, err := s.Stat(ctx, missing); return err },
		"Remove missing": func() error { return s.Remove(ctx, missing) },
		"Save existing":  func() error { return s.Save(ctx, present, []byte("x")) },
		"Load past end":  func() error { _, err := s.Load(ctx, present, 3, 5); return err },
		"invalid handle": func() error { _, err := s.Stat(ctx, storage.Handle{Type: storage.PackFile, Name: "a/b"}); return err },
		"cancelled":      func() error { _, err := s.Load(cancelled, present, 0, 0); return err },
		"List fn error":  func() error { return s.List(ctx, storage.IndexFile, func(storage.FileInfo) error { return errFlaky }) },
	} {
		before := counter.total.Load()
		start := time.Now()
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if n := counter.total.Load() - before; n != 1 {
			t.Errorf("%s: %d calls reached the provider, want 1", name, n)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v, as if it waited to retry", name, d)
		}
	}
}

func TestRetrySaveThatStoredBeforeFailing(t *testing.T) {
	ctx := context.Background()
	s := storage.Wrap(newFlaky(mem.New(), 1, true), fast)
	h := storage.Handle{Type: storage.SnapshotFile, Name: "s1"}
	if err := s.Save(ctx, h, []byte("snapshot")); err != nil {
		t.Errorf("Save whose failed attempt stored the file: %v", err)
	}
	// A different content under the same name is still refused.
	h2 := storage.Handle{Type: storage.SnapshotFile, Name: "s2"}
	inner := mem.New()
	inner.Save(ctx, h2, []byte("other"))
	s = storage.Wrap(newFlaky(inner, 1, false), fast)
	if err := s.Save(ctx, h2, []byte("mine")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Save over a different file after a failed attempt: %v, want ErrExists", err)
	}
}

func TestRetryRemoveThatRemovedBeforeFailing(t *testing.T) {
	ctx := context.Background()
	inner := mem.New()
	h := storage.Handle{Type: storage.LockFile, Name: "l1"}
	inner.Save(ctx, h, nil)
	f := newFlaky(inner, 1, false)
	f.removeAfterDone = true
	s := storage.Wrap(f, fast)
	if err := s.Remove(ctx, h); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Remove whose failed attempt removed the file: %v, want ErrNotExist", err)
	}
	if _, err := inner.Stat(ctx, h); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("the file is still there: %v", err)
	}
}

func TestRetryListGivesEachNameOnce(t *testing.T) {
	ctx := context.Background()
	inner := mem.New()
	want := map[string]bool{}
	for i := 0; i < 20; i++ {
		name := storagetest.RandomName()
		inner.Save(ctx, storage.Handle{Type: storage.LockFile, Name: name}, nil)
		want[name] = true
	}
	s := storage.Wrap(newFlaky(inner, 3, true), fast) // each failed attempt delivers one file
	got := map[string]int{}
	err := s.List(ctx, storage.LockFile, func(fi storage.FileInfo) error { got[fi.Name]++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	for name := range want {
		if got[name] != 1 {
			t.Errorf("fn saw %s %d times", name, got[name])
		}
	}
	if len(got) != len(want) {
		t.Errorf("fn saw %d names, want %d", len(got), len(want))
	}
}

func TestRetryBackoff(t *testing.T) {
	var waits []time.Duration
	opts := storage.WrapOptions{
		Attempts:  6,
		BaseDelay: time.Millisecond,
		MaxDelay:  5 * time.Millisecond,
		OnRetry:   func(_ string, _ error, wait time.Duration) { waits = append(waits, wait) },
	}
	s := storage.Wrap(newFlaky(mem.New(), 100, false), opts)
	s.Stat(context.Background(), storage.Handle{Type: storage.ConfigFile})
	want := []time.Duration{1, 2, 4, 5, 5}
	if len(waits) != len(want) {
		t.Fatalf("waited %v, want %d waits", waits, len(want))
	}
	for i, w := range waits {
		lo := want[i] * time.Millisecond
		if w < lo || w > lo+lo/4 {
			t.Errorf("wait %d was %v, want %v to %v", i, w, lo, lo+lo/4)
		}
	}
}

func TestRetryCancelledWhileWaiting(t *testing.T) {
	s := storage.Wrap(newFlaky(mem.New(), 100, false), storage.WrapOptions{BaseDelay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Load(ctx, storage.Handle{Type: storage.ConfigFile}, 0, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Load: %v, want the context's error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Load returned after %v, not when its context ended", d)
	}
}

// gauge is a storage whose Load takes a while and records how many run at once.
type gauge struct {
	storage.Storage
	now, max atomic.Int64
	release  chan struct{}
}

func (g *gauge) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	n := g.now.Add(1)
	defer g.now.Add(-1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			break
		}
	}
	<-g.release
	return g.Storage.Load(ctx, h, offset, length)
}

func TestConnectionLimit(t *testing.T) {
	ctx := context.Background()
	inner := mem.New()
	h := storage.Handle{Type: storage.PackFile, Name: "abcd"}
	inner.Save(ctx, h, []byte("data"))
	g := &gauge{Storage: inner, release: make(chan struct{})}
	s := storage.Wrap(g, storage.WrapOptions{Connections: 3, Attempts: 1})

	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			if _, err := s.Load(ctx, h, 0, 0); err != nil {
				t.Error(err)
			}
		})
	}
	// Three Loads get in; the others wait. A caller that gives up while waiting
	// gets its context's error.
	for g.now.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := s.Stat(short, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat while all connections are busy: %v, want the context's error", err)
	}
	cancel()
	// List is not limited.
	if err := s.List(ctx, storage.PackFile, func(storage.FileInfo) error { return nil }); err != nil {
		t.Errorf("List while all connections are busy: %v", err)
	}
	close(g.release)
	wg.Wait()
	if m := g.max.Load(); m != 3 {
		t.Errorf("%d Loads ran at once, want 3", m)
	}
}

func TestWrapNoOptionsKeepsData(t *testing.T) {
	s := storage.Wrap(mem.New(), storage.WrapOptions{})
	h := storage.Handle{Type: storage.KeyFile, Name: "k"}
	data := storagetest.RandomData(1000)
	if err := s.Save(context.Background(), h, data); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Load(context.Background(), h, 0, 0); err != nil || !bytes.Equal(b, data) {
		t.Errorf("Load = %d bytes, %v", len(b), err)
	}
}

// connStorage says how many pack saves it wants at once.
type connStorage struct {
	storage.Storage
	n int
}

func (c connStorage) Connections() int { return c.n }

func TestWrapKeepsConnections(t *testing.T) {
	for _, tt := range []struct{ inner, limit, want int }{
		{inner: 8, limit: 0, want: 8},  // retries only: the storage's own figure
		{inner: 8, limit: 4, want: 4},  // the limit caps it
		{inner: 2, limit: 16, want: 2}, // a limit above it changes nothing
	} {
		s := storage.Wrap(connStorage{mem.New(), tt.inner}, storage.WrapOptions{Connections: tt.limit})
		if got := storage.Connections(s); got != tt.want {
			t.Errorf("inner %d, limit %d: Connections = %d, want %d", tt.inner, tt.limit, got, tt.want)
		}
	}
}
