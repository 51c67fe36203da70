package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"cairn/internal/format"
	"cairn/internal/storage"
)

// DamagedPack is a pack that cannot be read as stored.
type DamagedPack struct {
	ID  ID
	Err error
}

// FindDamagedPacks reads every pack the index names or the storage holds and returns
// those that are missing (named by the index, not stored) or whose bytes do not
// match their name. progress, if set, hears of each pack read. An error that is not
// damage (such as an unreachable storage) ends the search.
func (r *Repository) FindDamagedPacks(ctx context.Context, progress func(done, total int)) ([]DamagedPack, error) {
	files, err := r.ListFiles(ctx, storage.PackFile)
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	stored := map[ID]bool{}
	var all []ID
	for _, f := range files {
		if id, err := ParseID(f.Name); err == nil {
			stored[id] = true
			all = append(all, id)
		}
	}
	var out []DamagedPack
	for _, id := range r.IndexedPacks() {
		if !stored[id] {
			out = append(out, DamagedPack{ID: id, Err: errors.New("missing: the index names it but the storage does not have it")})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].String() < all[j].String() })
	for i, id := range all {
		data, err := r.st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: id.String()}, 0, 0)
		switch {
		case storage.IsNotExist(err):
			// removed since the listing (by a prune that ran before our lock)
		case err != nil:
			return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
		case ID(r.key.ContentID(data)) != id:
			out = append(out, DamagedPack{ID: id, Err: errors.New("content does not match its name (damaged)")})
		}
		if progress != nil {
			progress(i+1, len(all))
		}
	}
	return out, nil
}

// SalvageResult says what SalvagePacks did.
type SalvageResult struct {
	// Removed lists the packs taken out of the index and deleted.
	Removed []ID
	// Salvaged counts the blobs that still verified and were stored again.
	Salvaged int
	// Lost lists the blobs the removed packs held that verified nowhere: the
	// repository no longer has them.
	Lost []IndexedBlob
}

// SalvagePacks takes damaged or missing packs out of the repository without losing
// what is still readable in them: every blob of each pack (as listed by the index
// and, where it can be read, by the pack's own header) that still decrypts and
// matches its id is stored again in a new pack; then the index is rewritten without
// the packs, and they are deleted. Blobs that are held intact elsewhere stay; the
// others are returned as lost, so that a backup of the same data stores them anew.
//
// A crash at any point loses nothing: new packs and their index are stored before
// the index is rewritten, and the packs are deleted last. An index file that cannot
// be read stops it (run RebuildIndex first), as does a storage error that is not
// damage.
func (r *Repository) SalvagePacks(ctx context.Context, packs []ID) (*SalvageResult, error) {
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if d := r.DamagedIndexFiles(); len(d) > 0 {
		return nil, errors.New("some index files cannot be read: run 'cairn repair index' first")
	}
	drop := map[ID]bool{}
	for _, p := range packs {
		drop[p] = true
	}
	listed := map[ID][]PackBlob{}
	_ = r.EachIndexedBlob(func(b IndexedBlob) error {
		if drop[b.Pack] {
			listed[b.Pack] = append(listed[b.Pack], PackBlob{Type: b.Type, ID: b.ID, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength})
		}
		return nil
	})
	res := &SalvageResult{}
	candidates := map[blobKey]IndexedBlob{}
	for _, p := range packs {
		blobs, n, err := r.salvagePack(ctx, p, listed[p])
		if err != nil {
			_ = r.Abort(context.WithoutCancel(ctx))
			return nil, err
		}
		res.Salvaged += n
		for _, b := range blobs {
			candidates[blobKey{b.Type, b.ID}] = IndexedBlob{Type: b.Type, ID: b.ID, BlobLocation: BlobLocation{Pack: p, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength}}
		}
	}
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	if err := r.RewriteIndex(ctx, func(id ID) bool { return !drop[id] }); err != nil {
		return nil, err
	}
	for _, p := range packs {
		if err := r.RemovePack(ctx, p); err != nil {
			return nil, fmt.Errorf("delete pack %s: %w", p.Short(), err)
		}
		res.Removed = append(res.Removed, p)
	}
	for k, b := range candidates {
		if !r.HasBlob(k.t, k.id) {
			res.Lost = append(res.Lost, b)
		}
	}
	sort.Slice(res.Lost, func(i, j int) bool { return res.Lost[i].ID.String() < res.Lost[j].ID.String() })
	return res, nil
}

// salvagePack stores again every blob of a pack that still verifies: those the
// index lists and those the pack's header lists, if it can be read. It returns every
// blob it looked for and how many it stored.
func (r *Repository) salvagePack(ctx context.Context, pack ID, listed []PackBlob) ([]PackBlob, int, error) {
	data, err := r.st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: pack.String()}, 0, 0)
	if storage.IsNotExist(err) {
		return listed, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("pack %s: %w", pack.Short(), err)
	}
	blobs := listed
	if header, err := r.packHeaderOf(data); err == nil {
		blobs = append(blobs, header...)
	}
	seen := map[blobKey]bool{}
	n := 0
	for _, b := range blobs {
		k := blobKey{b.Type, b.ID}
		end := int64(b.Offset) + int64(b.Length)
		if seen[k] || end > int64(len(data)) {
			continue
		}
		payload, _, err := r.openPayload(b.Type, b.ID, data[b.Offset:end], int(b.RawLength))
		if err != nil {
			continue
		}
		seen[k] = true
		if err := r.copyBlob(ctx, b, payload); err != nil {
			return nil, n, err
		}
		n++
	}
	return blobs, n, nil
}

// packHeaderOf returns the blobs listed by the header at the end of a whole pack.
func (r *Repository) packHeaderOf(data []byte) ([]PackBlob, error) {
	if len(data) < 4 {
		return nil, errors.New("too short")
	}
	hl := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if hl > len(data)-4 {
		return nil, errors.New("header length invalid")
	}
	plain, err := r.key.Open(nil, data[len(data)-4-hl:len(data)-4])
	if err != nil {
		return nil, err
	}
	return format.DecodePackHeader(plain)
}
