// Package storagetest is the conformance suite of storage.Storage: every provider and
// wrapper runs Run from its tests, and a provider is done when it passes.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"
	"testing"

	"cairn/internal/storage"
)

// Run checks the contract of storage.Storage (see its doc comment) on storages made
// by newStorage, which must return a new, empty storage each call and arrange its
// cleanup with t.Cleanup. Each aspect is a subtest.
func Run(t *testing.T, newStorage func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Storage)
	}{
		{"SaveLoad", testSaveLoad},
		{"LoadRange", testLoadRange},
		{"Stat", testStat},
		{"SaveExisting", testSaveExisting},
		{"Missing", testMissing},
		{"List", testList},
		{"ListStops", testListStops},
		{"Remove", testRemove},
		{"InvalidHandles", testInvalidHandles},
		{"Concurrent", testConcurrent},
		{"ConcurrentSameName", testConcurrentSameName},
		{"Large", testLarge},
		{"Empty", testEmpty},
		{"Cancelled", testCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStorage(t)
			if s.Location() == "" {
				t.Error("Location() is empty")
			}
			tt.fn(t, s)
		})
	}
}

// RandomName returns a random 64-digit hex name, like a content id.
func RandomName() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RandomData returns n random bytes.
func RandomData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func save(t *testing.T, s storage.Storage, h storage.Handle, data []byte) {
	t.Helper()
	if err := s.Save(context.Background(), h, data); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
}

func load(t *testing.T, s storage.Storage, h storage.Handle, offset, length int64) []byte {
	t.Helper()
	b, err := s.Load(context.Background(), h, offset, length)
	if err != nil {
		t.Fatalf("Load(%v, %d, %d): %v", h, offset, length, err)
	}
	return b
}

func testSaveLoad(t *testing.T, s storage.Storage) {
	for _, ft := range storage.FileTypes {
		h := storage.Handle{Type: ft, Name: RandomName()}
		if ft == storage.ConfigFile {
			h.Name = ""
		}
		data := RandomData(1000 + len(ft))
		save(t, s, h, data)
		if got := load(t, s, h, 0, 0); !bytes.Equal(got, data) {
			t.Errorf("Load(%v) returned %d bytes differing from the %d saved", h, len(got), len(data))
		}
	}
	// A name that is not hex, and a one-character name, are valid too.
	for _, name := range []string{"Not-Hex_zz", "x"} {
		h := storage.Handle{Type: storage.PackFile, Name: name}
		save(t, s, h, []byte(name))
		if got := load(t, s, h, 0, 0); string(got) != name {
			t.Errorf("Load(%v) = %q, want %q", h, got, name)
		}
	}
}

func testLoadRange(t *testing.T, s storage.Storage) {
	h := storage.Handle{Type: storage.PackFile, Name: RandomName()}
	data := RandomData(4096)
	save(t, s, h, data)
	size := int64(len(data))
	for _, r := range []struct{ offset, length int64 }{
		{0, 0}, {0, 1}, {0, size}, {1, 0}, {100, 200}, {size - 1, 1}, {size - 1, 0}, {size, 0}, {4000, 96},
	} {
		want := data[r.offset:]
		if r.length > 0 {
			want = data[r.offset : r.offset+r.length]
		}
		if got := load(t, s, h, r.offset, r.length); !bytes.Equal(got, want) {
			t.Errorf("Load(offset %d, length %d) returned %d bytes, not the %d expected", r.offset, r.length, len(got), len(want))
		}
	}
	for _, r := range []struct{ offset, length int64 }{
		{size + 1, 0}, {size, 1}, {size - 1, 2}, {0, size + 1}, {-1, 0}, {0, -1}, {1 << 62, 1 << 62},
	} {
		b, err := s.Load(context.Background(), h, r.offset, r.length)
		if err == nil {
			t.Errorf("Load(offset %d, length %d) of a %d-byte file returned %d bytes and no error", r.offset, r.length, size, len(b))
		} else if !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Load(offset %d, length %d) of a %d-byte file: error %q does not match ErrInvalid", r.offset, r.length, size, err)
		}
	}
}

func testStat(t *testing.T, s storage.Storage) {
	for _, n := range []int{0, 1, 17, 65536} {
		h := storage.Handle{Type: storage.IndexFile, Name: RandomName()}
		save(t, s, h, RandomData(n))
		fi, err := s.Stat(context.Background(), h)
		if err != nil {
			t.Fatalf("Stat(%v): %v", h, err)
		}
		if fi.Size != int64(n) || fi.Name != h.Name {
			t.Errorf("Stat(%v) = %+v, want size %d", h, fi, n)
		}
	}
	h := storage.Handle{Type: storage.ConfigFile}
	save(t, s, h, []byte("config"))
	if fi, err := s.Stat(context.Background(), h); err != nil || fi.Size != 6 || fi.Name != "" {
		t.Errorf("Stat(config) = %+v, %v; want size 6 and an empty name", fi, err)
	}
}

func testSaveExisting(t *testing.T, s storage.Storage) {
	for _, h := range []storage.Handle{
		{Type: storage.ConfigFile},
		{Type: storage.PackFile, Name: RandomName()},
		{Type: storage.LockFile, Name: RandomName()},
	} {
		orig := RandomData(300)
		save(t, s, h, orig)
		for _, other := range [][]byte{RandomData(300), RandomData(10), nil} {
			err := s.Save(context.Background(), h, other)
			if !errors.Is(err, storage.ErrExists) {
				t.Errorf("second Save(%v): error %v, want one matching ErrExists", h, err)
			}
		}
		if got := load(t, s, h, 0, 0); !bytes.Equal(got, orig) {
			t.Errorf("Load(%v) after a refused Save: the original content changed", h)
		}
	}
}

func testMissing(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	save(t, s, storage.Handle{Type: storage.KeyFile, Name: "present"}, []byte("x"))
	for _, h := range []storage.Handle{
		{Type: storage.ConfigFile},
		{Type: storage.PackFile, Name: RandomName()},
		{Type: storage.SnapshotFile, Name: RandomName()},
		{Type: storage.IndexFile, Name: "present"}, // same name, other type
	} {
		if _, err := s.Load(ctx, h, 0, 0); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%v) of a missing file: error %v, want one matching fs.ErrNotExist", h, err)
		}
		if _, err := s.Load(ctx, h, 10, 5); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%v, 10, 5) of a missing file: error %v, want one matching fs.ErrNotExist", h, err)
		}
		if _, err := s.Stat(ctx, h); !errors.Is(err, fs.ErrNotExist) || !storage.IsNotExist(err) {
			t.Errorf("Stat(%v) of a missing file: error %v, want one matching fs.ErrNotExist", h, err)
		}
		if err := s.Remove(ctx, h); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Remove(%v) of a missing file: error %v, want one matching fs.ErrNotExist", h, err)
		}
	}
}

// listAll returns name -> size of every file of type t.
func listAll(t *testing.T, s storage.Storage, ft storage.FileType) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := s.List(context.Background(), ft, func(fi storage.FileInfo) error {
		if _, dup := got[fi.Name]; dup {
			t.Errorf("List(%s) gave %q twice", ft, fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%s): %v", ft, err)
	}
	return got
}

func sameFiles(got, want map[string]int64) error {
	if len(got) == len(want) {
		same := true
		for n, size := range want {
			if s, ok := got[n]; !ok || s != size {
				same = false
			}
		}
		if same {
			return nil
		}
	}
	return fmt.Errorf("got %v, want %v", sortedNames(got), sortedNames(want))
}

func sortedNames(m map[string]int64) []string {
	var names []string
	for n, size := range m {
		names = append(names, fmt.Sprintf("%s(%d)", n, size))
	}
	sort.Strings(names)
	return names
}

func testList(t *testing.T, s storage.Storage) {
	for _, ft := range storage.FileTypes {
		if got := listAll(t, s, ft); len(got) != 0 {
			t.Errorf("List(%s) of an empty storage: %v", ft, sortedNames(got))
		}
	}
	want := map[storage.FileType]map[string]int64{}
	shared := RandomName() // one name in every type
	for i, ft := range storage.FileTypes {
		want[ft] = map[string]int64{}
		if ft == storage.ConfigFile {
			save(t, s, storage.Handle{Type: ft}, []byte("cfg"))
			want[ft][""] = 3
			continue
		}
		for j := 0; j < 5+i*10; j++ {
			name := RandomName()
			if j == 0 {
				name = shared
			}
			data := RandomData(i + j)
			save(t, s, storage.Handle{Type: ft, Name: name}, data)
			want[ft][name] = int64(len(data))
		}
	}
	for _, ft := range storage.FileTypes {
		if err := sameFiles(listAll(t, s, ft), want[ft]); err != nil {
			t.Errorf("List(%s): %v", ft, err)
		}
	}
	if err := s.List(context.Background(), storage.FileType("bogus"), func(storage.FileInfo) error { return nil }); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("List of an unknown type: error %v, want one matching ErrInvalid", err)
	}
}

func testListStops(t *testing.T, s storage.Storage) {
	for i := 0; i < 10; i++ {
		save(t, s, storage.Handle{Type: storage.SnapshotFile, Name: RandomName()}, []byte{byte(i)})
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(context.Background(), storage.SnapshotFile, func(storage.FileInfo) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("List returned %v, want the error fn returned", err)
	}
	if calls != 3 {
		t.Errorf("List called fn %d times after it returned an error on call 3", calls)
	}
	// fn may call back into the storage.
	err = s.List(context.Background(), storage.SnapshotFile, func(fi storage.FileInfo) error {
		_, err := s.Load(context.Background(), storage.Handle{Type: storage.SnapshotFile, Name: fi.Name}, 0, 0)
		return err
	})
	if err != nil {
		t.Errorf("List with a fn that loads each file: %v", err)
	}
}

func testRemove(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	keep := storage.Handle{Type: storage.PackFile, Name: RandomName()}
	save(t, s, keep, []byte("keep"))
	for _, h := range []storage.Handle{
		{Type: storage.ConfigFile},
		{Type: storage.PackFile, Name: RandomName()},
		{Type: storage.LockFile, Name: RandomName()},
	} {
		save(t, s, h, []byte("first"))
		if err := s.Remove(ctx, h); err != nil {
			t.Fatalf("Remove(%v): %v", h, err)
		}
		if _, err := s.Stat(ctx, h); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%v) after Remove: %v, want an error matching fs.ErrNotExist", h, err)
		}
		if _, ok := listAll(t, s, h.Type)[h.Name]; ok {
			t.Errorf("List(%s) still shows %v after Remove", h.Type, h)
		}
		if err := s.Remove(ctx, h); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("second Remove(%v): %v, want an error matching fs.ErrNotExist", h, err)
		}
		// The name is free again.
		save(t, s, h, []byte("second"))
		if got := load(t, s, h, 0, 0); string(got) != "second" {
			t.Errorf("Load(%v) after Remove and Save = %q", h, got)
		}
	}
	if got := load(t, s, keep, 0, 0); string(got) != "keep" {
		t.Errorf("an unrelated file changed: %q", got)
	}
}

func testInvalidHandles(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	for _, h := range []storage.Handle{
		{Type: "bogus", Name: "abcd"},
		{Type: "", Name: "abcd"},
		{Type: storage.PackFile},
		{Type: storage.PackFile, Name: ".."},
		{Type: storage.PackFile, Name: "../config"},
		{Type: storage.KeyFile, Name: "a/b"},
		{Type: storage.KeyFile, Name: `a\b`},
		{Type: storage.IndexFile, Name: "."},
		{Type: storage.IndexFile, Name: ".tmp-1234"},
		{Type: storage.SnapshotFile, Name: "a b"},
		{Type: storage.LockFile, Name: string(bytes.Repeat([]byte("a"), 129))},
		{Type: storage.ConfigFile, Name: "x"},
	} {
		if err := s.Save(ctx, h, []byte("x")); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Save(%q, %q): error %v, want one matching ErrInvalid", h.Type, h.Name, err)
		}
		if _, err := s.Load(ctx, h, 0, 0); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Load(%q, %q): error %v, want one matching ErrInvalid", h.Type, h.Name, err)
		}
		if _, err := s.Stat(ctx, h); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Stat(%q, %q): error %v, want one matching ErrInvalid", h.Type, h.Name, err)
		}
		if err := s.Remove(ctx, h); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Remove(%q, %q): error %v, want one matching ErrInvalid", h.Type, h.Name, err)
		}
	}
	for _, ft := range storage.FileTypes {
		if got := listAll(t, s, ft); len(got) != 0 {
			t.Errorf("invalid Saves stored files of type %s: %v", ft, sortedNames(got))
		}
	}
}

// testConcurrent saves from many goroutines while others load and list; loaders
// must see each file either whole or not at all.
func testConcurrent(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	const writers, perWriter = 8, 16
	type file struct {
		h    storage.Handle
		data []byte
	}
	files := make([]file, writers*perWriter)
	for i := range files {
		ft := storage.FileTypes[1+i%(len(storage.FileTypes)-1)]
		files[i] = file{storage.Handle{Type: ft, Name: RandomName()}, RandomData(i * 97)}
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for _, f := range files[w*perWriter : (w+1)*perWriter] {
				if err := s.Save(ctx, f.h, f.data); err != nil {
					t.Errorf("Save(%v): %v", f.h, err)
				}
			}
		})
		wg.Go(func() { // a reader racing the writers
			for i := len(files) - 1; i >= 0; i-- {
				f := files[(i*7+w)%len(files)]
				b, err := s.Load(ctx, f.h, 0, 0)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Load(%v) during Saves: %v", f.h, err)
				} else if err == nil && !bytes.Equal(b, f.data) {
					t.Errorf("Load(%v) during Saves returned %d bytes, not the %d saved", f.h, len(b), len(f.data))
				}
			}
		})
		wg.Go(func() {
			ft := storage.FileTypes[1+w%(len(storage.FileTypes)-1)]
			if err := s.List(ctx, ft, func(storage.FileInfo) error { return nil }); err != nil {
				t.Errorf("List(%s) during Saves: %v", ft, err)
			}
		})
	}
	wg.Wait()
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for _, f := range files[w*perWriter : (w+1)*perWriter] {
				b, err := s.Load(ctx, f.h, 0, 0)
				if err != nil || !bytes.Equal(b, f.data) {
					t.Errorf("Load(%v) after concurrent Saves: %d bytes, %v", f.h, len(b), err)
				}
			}
		})
	}
	wg.Wait()
}

// testConcurrentSameName races Saves of one name with different contents: exactly
// one wins, the rest fail with ErrExists, and the winner's content is stored whole.
func testConcurrentSameName(t *testing.T, s storage.Storage) {
	const n = 16
	for round := 0; round < 3; round++ {
		h := storage.Handle{Type: storage.LockFile, Name: RandomName()}
		datas := make([][]byte, n)
		errs := make([]error, n)
		for i := range datas {
			datas[i] = RandomData(4096 + i)
		}
		var wg sync.WaitGroup
		for i := range datas {
			wg.Go(func() { errs[i] = s.Save(context.Background(), h, datas[i]) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("Saves %d and %d of the same name both succeeded", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("a losing Save: error %v, want one matching ErrExists", err)
			}
		}
		if winner < 0 {
			t.Fatal("no Save succeeded")
		}
		if got := load(t, s, h, 0, 0); !bytes.Equal(got, datas[winner]) {
			t.Errorf("the stored file (%d bytes) is not the winning Save's content", len(got))
		}
	}
}

func testLarge(t *testing.T, s storage.Storage) {
	h := storage.Handle{Type: storage.PackFile, Name: RandomName()}
	data := RandomData(20<<20 + 12345)
	save(t, s, h, data)
	if fi, err := s.Stat(context.Background(), h); err != nil || fi.Size != int64(len(data)) {
		t.Errorf("Stat = %+v, %v; want size %d", fi, err, len(data))
	}
	if got := load(t, s, h, 0, 0); !bytes.Equal(got, data) {
		t.Errorf("Load of a %d-byte file returned %d bytes, or other bytes", len(data), len(got))
	}
	off, n := int64(7<<20+3), int64(5<<20+11)
	if got := load(t, s, h, off, n); !bytes.Equal(got, data[off:off+n]) {
		t.Errorf("Load of a range inside a large file returned the wrong %d bytes", len(got))
	}
	if got := load(t, s, h, off, 0); !bytes.Equal(got, data[off:]) {
		t.Errorf("Load of a large file's tail returned the wrong %d bytes", len(got))
	}
}

func testEmpty(t *testing.T, s storage.Storage) {
	h := storage.Handle{Type: storage.IndexFile, Name: RandomName()}
	save(t, s, h, nil)
	if fi, err := s.Stat(context.Background(), h); err != nil || fi.Size != 0 {
		t.Errorf("Stat of an empty file = %+v, %v", fi, err)
	}
	if got := load(t, s, h, 0, 0); len(got) != 0 {
		t.Errorf("Load of an empty file returned %d bytes", len(got))
	}
	if _, err := s.Load(context.Background(), h, 0, 1); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("Load(0, 1) of an empty file: error %v, want one matching ErrInvalid", err)
	}
	if err := sameFiles(listAll(t, s, storage.IndexFile), map[string]int64{h.Name: 0}); err != nil {
		t.Errorf("List: %v", err)
	}
	if err := s.Save(context.Background(), h, nil); !errors.Is(err, storage.ErrExists) {
		t.Errorf("second Save of an empty file: error %v, want one matching ErrExists", err)
	}
}

func testCancelled(t *testing.T, s storage.Storage) {
	h := storage.Handle{Type: storage.PackFile, Name: RandomName()}
	save(t, s, h, []byte("present"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	fresh := storage.Handle{Type: storage.PackFile, Name: RandomName()}
	for _, data := range [][]byte{[]byte("data"), RandomData(9 << 20)} {
		if err := s.Save(ctx, fresh, data); !errors.Is(err, context.Canceled) {
			t.Errorf("Save with a cancelled context: error %v, want context.Canceled", err)
		}
		if _, err := s.Stat(context.Background(), fresh); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a cancelled Save stored the file (Stat: %v)", err)
		}
	}
	if _, err := s.Load(ctx, h, 0, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: error %v, want context.Canceled", err)
	}
	err := s.List(ctx, storage.PackFile, func(storage.FileInfo) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: error %v, want context.Canceled", err)
	}
	if got := listAll(t, s, storage.PackFile); len(got) != 1 {
		t.Errorf("after cancelled Saves List shows %v, want only the one saved before", sortedNames(got))
	}
}
