package repo_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"

	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/storage"
)

func randomBlob(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestSaveLoadBlobsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	st := repotest.Storage(t)
	r := repotest.NewOn(t, st)
	var ids []repo.ID
	var datas [][]byte
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBlob(int64(i%150), 10000+i%150*100) // 50 duplicates
			if i%3 == 0 {
				data = bytes.Repeat([]byte{byte(i % 150)}, 50000) // compressible
			}
			id, _, err := r.SaveBlob(ctx, repo.DataBlob, data)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids, datas = append(ids, id), append(datas, data)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := repo.Open(ctx, st, repotest.Password)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		got, err := r2.LoadBlob(ctx, repo.DataBlob, id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, datas[i]) {
			t.Fatalf("blob %d differs", i)
		}
	}
	var n int
	_ = r2.EachIndexedBlob(func(repo.IndexedBlob) error { n++; return nil })
	unique := map[repo.ID]bool{}
	for _, id := range ids {
		unique[id] = true
	}
	if n != len(unique) {
		t.Fatalf("index holds %d blobs, want %d unique", n, len(unique))
	}
	for _, p := range r2.IndexedPacks() {
		if _, err := r2.LoadPackHeader(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWrongPasswordAndNoRepository(t *testing.T) {
	ctx := context.Background()
	st := repotest.Storage(t)
	if _, err := repo.Open(ctx, st, "x"); !errors.Is(err, repo.ErrNoRepository) {
		t.Fatalf("open empty storage: %v", err)
	}
	repotest.NewOn(t, st)
	if _, err := repo.Open(ctx, st, "wrong"); !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("open with wrong password: %v", err)
	}
}

func TestSnapshotRoundTripAndDamage(t *testing.T) {
	ctx := context.Background()
	st := repotest.Storage(t)
	r := repotest.NewOn(t, st)
	data := randomBlob(1, 5000)
	id, _, err := r.SaveBlob(ctx, repo.DataBlob, data)
	if err != nil {
		t.Fatal(err)
	}
	treeID, _, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: "f", Type: repo.NodeFile, Mode: 0644, Size: 5000, Content: []repo.ID{id}}}})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Now(), Kind: repo.KindFile, Host: "h", Paths: []string{"/x"}, Tree: treeID})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.LoadSnapshot(ctx, sid)
	if err != nil || s.Tree != treeID {
		t.Fatalf("snapshot: %v %v", s, err)
	}
	tree, err := r.LoadTree(ctx, treeID)
	if err != nil || tree.Nodes[0].Content[0] != id {
		t.Fatalf("tree: %v", err)
	}
	// Damage one byte of the pack holding the data blob: loading must fail, never return wrong data.
	loc, _ := r.LookupBlob(repo.DataBlob, id)
	h := storage.Handle{Type: storage.PackFile, Name: loc.Pack.String()}
	packData, _ := st.Load(ctx, h, 0, 0)
	packData[loc.Offset+30] ^= 1
	_ = st.Remove(ctx, h)
	_ = st.Save(ctx, h, packData)
	if _, err := r.LoadBlob(ctx, repo.DataBlob, id); err == nil {
		t.Fatal("damaged blob loaded without error")
	}
	if err := r.CheckFile(ctx, storage.PackFile, loc.Pack.String()); err == nil {
		t.Fatal("damaged pack passed CheckFile")
	}
}
