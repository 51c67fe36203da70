package repo_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cairn/internal/crypto"
	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/storage"
)

func rewrite(t *testing.T, st storage.Storage, h storage.Handle, change func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	b, err := st.Load(ctx, h, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, h, change(b)); err != nil {
		t.Fatal(err)
	}
}

func onlyKey(t *testing.T, st storage.Storage) storage.Handle {
	t.Helper()
	var names []string
	_ = st.List(context.Background(), storage.KeyFile, func(fi storage.FileInfo) error { names = append(names, fi.Name); return nil })
	if len(names) != 1 {
		t.Fatalf("%d keys", len(names))
	}
	return storage.Handle{Type: storage.KeyFile, Name: names[0]}
}

// A damaged key file is told from a wrong password; a lost config or key says the
// repository cannot be opened, and why.
func TestOpenSaysWhyItCannot(t *testing.T) {
	ctx := context.Background()
	st := repotest.Storage(t)
	repotest.NewOn(t, st)
	key := onlyKey(t, st)
	orig, _ := st.Load(ctx, key, 0, 0)

	if _, err := repo.Open(ctx, st, "not the password"); !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	// The sealed master key damaged: not a wrong password.
	rewrite(t, st, key, func(b []byte) []byte {
		i := bytes.Index(b, []byte(`"data": "`)) + 12
		b[i] ^= 1
		return b
	})
	_, err := repo.Open(ctx, st, repotest.Password)
	if err == nil || errors.Is(err, repo.ErrWrongPassword) || !strings.Contains(err.Error(), "cannot be opened") || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), key.Name[:8]) {
		t.Fatalf("damaged key: %v", err)
	}
	// Truncated: the same.
	rewrite(t, st, key, func([]byte) []byte { return orig[:len(orig)/2] })
	if _, err := repo.Open(ctx, st, repotest.Password); err == nil || !strings.Contains(err.Error(), "cannot be opened") || !strings.Contains(err.Error(), key.Name[:8]) {
		t.Fatalf("truncated key: %v", err)
	}
	// No key at all.
	if err := st.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, st, repotest.Password); err == nil || !strings.Contains(err.Error(), "no key files") {
		t.Fatalf("no key: %v", err)
	}
	if err := st.Save(ctx, key, orig); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, repotest.Password)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckKeyFile(ctx, key.Name); err != nil {
		t.Fatalf("an intact key fails its check: %v", err)
	}
	// A change where the key still opens (its host) is found by the check.
	rewrite(t, st, key, func(b []byte) []byte { return bytes.Replace(b, []byte(`"created": "`), []byte(`"created": "1`), 1) })
	if err := r.CheckKeyFile(ctx, key.Name); err == nil {
		t.Fatal("the check passes a changed key file")
	}
	rewrite(t, st, key, func([]byte) []byte { return orig })

	// The config damaged, then gone.
	cfg := storage.Handle{Type: storage.ConfigFile}
	cfgBytes, _ := st.Load(ctx, cfg, 0, 0)
	rewrite(t, st, cfg, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	if _, err := repo.Open(ctx, st, repotest.Password); err == nil || !strings.Contains(err.Error(), "config file is damaged") {
		t.Fatalf("damaged config: %v", err)
	}
	if err := st.Remove(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, st, repotest.Password); err == nil || errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), "config file is missing") {
		t.Fatalf("missing config: %v", err)
	}
	// Nor is a new repository made over the old one's files.
	if _, err := repo.Init(ctx, st, "new", repo.Options{KDF: crypto.FastKDFParams}); err == nil {
		t.Fatal("init over a repository without config succeeded")
	}
	if err := st.Save(ctx, cfg, cfgBytes); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, st, repotest.Password); err != nil {
		t.Fatal(err)
	}
}

func TestReadSnapshotTellsDamageFromFailure(t *testing.T) {
	ctx := context.Background()
	st := repotest.Storage(t)
	r := repotest.NewOn(t, st)
	tree, _, err := r.SaveTree(ctx, &repo.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.SaveSnapshot(ctx, &repo.Snapshot{Kind: repo.KindFile, Time: time.Now(), Tree: tree})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadSnapshot(ctx, id); err != nil {
		t.Fatal(err)
	}
	h := storage.Handle{Type: storage.SnapshotFile, Name: id.String()}
	rewrite(t, st, h, func(b []byte) []byte { b[10] ^= 1; return b })
	if _, err := r.ReadSnapshot(ctx, id); !errors.Is(err, repo.ErrDamaged) {
		t.Fatalf("damaged snapshot: %v", err)
	}
	_ = st.Remove(ctx, h)
	if _, err := r.ReadSnapshot(ctx, id); !errors.Is(err, repo.ErrDamaged) {
		t.Fatalf("missing snapshot: %v", err)
	}
	r2, err := repo.Open(ctx, failingStorage{st}, repotest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := r2.ReadBlob(ctx, repo.TreeBlob, tree); err == nil || errors.Is(err, repo.ErrDamaged) {
		t.Fatalf("a failing read passes for damage: %v", err)
	}
}

// failingStorage fails every read of a pack as a broken network would.
type failingStorage struct{ storage.Storage }

func (s failingStorage) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	if h.Type == storage.PackFile {
		return nil, errors.New("connection reset")
	}
	return s.Storage.Load(ctx, h, off, n)
}

// SalvagePacks keeps every intact blob of a damaged pack, drops the pack, and says
// which blobs are lost; a backup of the same data then stores them again.
func TestSalvagePacks(t *testing.T) {
	ctx := context.Background()
	st := repotest.Storage(t)
	r := repotest.NewOn(t, st)
	var ids []repo.ID
	var datas [][]byte
	for i := 0; i < 4; i++ {
		d := randomBlob(int64(i), 20000)
		id, _, err := r.SaveBlob(ctx, repo.DataBlob, d)
		if err != nil {
			t.Fatal(err)
		}
		ids, datas = append(ids, id), append(datas, d)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loc, _ := r.LookupBlob(repo.DataBlob, ids[2])
	for _, id := range ids {
		if l, _ := r.LookupBlob(repo.DataBlob, id); l.Pack != loc.Pack {
			t.Fatal("the blobs are not in one pack")
		}
	}
	h := storage.Handle{Type: storage.PackFile, Name: loc.Pack.String()}
	rewrite(t, st, h, func(b []byte) []byte { b[loc.Offset+loc.Length/2] ^= 1; return b })

	damaged, err := r.FindDamagedPacks(ctx, nil)
	if err != nil || len(damaged) != 1 || damaged[0].ID != loc.Pack {
		t.Fatalf("damaged packs: %v %v", damaged, err)
	}
	res, err := r.SalvagePacks(ctx, []repo.ID{loc.Pack})
	if err != nil {
		t.Fatal(err)
	}
	if res.Salvaged != 3 || len(res.Lost) != 1 || res.Lost[0].ID != ids[2] || len(res.Removed) != 1 {
		t.Fatalf("salvage: %+v", res)
	}
	if _, err := st.Stat(ctx, h); !storage.IsNotExist(err) {
		t.Fatalf("the damaged pack is still stored: %v", err)
	}
	r2, err := repo.Open(ctx, st, repotest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for i, id := range ids {
		b, err := r2.LoadBlob(ctx, repo.DataBlob, id)
		if i == 2 {
			if err == nil {
				t.Fatal("the lost blob still loads")
			}
			continue
		}
		if err != nil || !bytes.Equal(b, datas[i]) {
			t.Fatalf("blob %d after salvage: %v", i, err)
		}
	}
	// Stored again, it is whole.
	if _, n, err := r2.SaveBlob(ctx, repo.DataBlob, datas[2]); err != nil || n == 0 {
		t.Fatalf("the lost blob was not stored again: %d %v", n, err)
	}
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := r2.FindDamagedPacks(ctx, nil); err != nil || len(d) != 0 {
		t.Fatalf("after salvage: %v %v", d, err)
	}
	// A pack the index names but the storage lost is dropped from the index.
	loc, _ = r2.LookupBlob(repo.DataBlob, ids[2])
	_ = st.Remove(ctx, storage.Handle{Type: storage.PackFile, Name: loc.Pack.String()})
	damaged, err = r2.FindDamagedPacks(ctx, nil)
	if err != nil || len(damaged) != 1 || !strings.Contains(damaged[0].Err.Error(), "missing") {
		t.Fatalf("missing pack: %v %v", damaged, err)
	}
	res, err = r2.SalvagePacks(ctx, []repo.ID{loc.Pack})
	if err != nil || len(res.Lost) != 1 || r2.HasBlob(repo.DataBlob, ids[2]) {
		t.Fatalf("salvage of a missing pack: %+v %v", res, err)
	}
}
