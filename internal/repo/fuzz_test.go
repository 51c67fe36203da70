package repo_test

import (
	"context"
	"testing"

	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/storage"
	"cairn/internal/storage/mem"
)

// FuzzPackFile stores arbitrary bytes as a pack and reads its header and blobs:
// damaged packs give errors, never a panic or a blob that does not match its id.
func FuzzPackFile(f *testing.F) {
	ctx := context.Background()
	st := mem.New()
	r := repotest.NewOn(f, st)
	id, _, err := r.SaveBlob(ctx, repo.DataBlob, []byte("seed blob content"))
	if err != nil {
		f.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		f.Fatal(err)
	}
	loc, _ := r.LookupBlob(repo.DataBlob, id)
	valid, _ := st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: loc.Pack.String()}, 0, 0)
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte{1, 2, 3, 4})
	f.Add([]byte{})
	var n int
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		var name repo.ID
		name[0], name[1], name[2] = byte(n), byte(n>>8), byte(n>>16)
		h := storage.Handle{Type: storage.PackFile, Name: name.String()}
		if err := st.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		defer st.Remove(ctx, h)
		blobs, err := r.LoadPackHeader(ctx, name)
		if err != nil {
			return
		}
		_ = r.LoadPackBlobs(ctx, name, blobs, func(b repo.PackBlob, plain []byte, err error) error {
			if err == nil && r.BlobID(plain) != b.ID {
				t.Fatalf("blob %s returned content of another id", b.ID.Short())
			}
			return nil
		})
	})
}
