package repo

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"cairn/internal/format"
	"cairn/internal/storage"
)

type blobKey struct {
	t  BlobType
	id ID
}

// BlobLocation says where a blob is stored.
type BlobLocation struct {
	Pack      ID
	Offset    uint32
	Length    uint32 // stored (sealed) size
	RawLength uint32 // plaintext size
}

type location struct {
	pack           int32 // index into masterIndex.packs
	offset, length uint32
	rawLength      uint32
}

// masterIndex knows every blob of every loaded index file, plus the blobs of packs
// uploaded since (not yet written to an index file).
type masterIndex struct {
	mu      sync.RWMutex
	packs   []ID
	packNum map[ID]int32
	blobs   map[blobKey]location
	files   map[ID]bool  // loaded index files
	damaged map[ID]error // index files that could not be read
	unsaved []format.IndexPack
}

func newMasterIndex() *masterIndex {
	return &masterIndex{packNum: map[ID]int32{}, blobs: map[blobKey]location{}, files: map[ID]bool{}, damaged: map[ID]error{}}
}

func (m *masterIndex) addPack(p format.IndexPack) {
	n, ok := m.packNum[p.ID]
	if !ok {
		n = int32(len(m.packs))
		m.packs = append(m.packs, p.ID)
		m.packNum[p.ID] = n
	}
	for _, b := range p.Blobs {
		k := blobKey{b.Type, b.ID}
		if _, ok := m.blobs[k]; ok {
			continue
		}
		m.blobs[k] = location{pack: n, offset: b.Offset, length: b.Length, rawLength: b.RawLength}
	}
}

func (m *masterIndex) lookup(t BlobType, id ID) (BlobLocation, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	l, ok := m.blobs[blobKey{t, id}]
	if !ok {
		return BlobLocation{}, false
	}
	return BlobLocation{Pack: m.packs[l.pack], Offset: l.offset, Length: l.length, RawLength: l.rawLength}, true
}

// LoadIndex reads every index file not yet loaded.
func (r *Repository) LoadIndex(ctx context.Context) error {
	var names []ID
	err := r.st.List(ctx, storage.IndexFile, func(fi storage.FileInfo) error {
		id, err := ParseID(fi.Name)
		if err != nil {
			return nil // not ours; check reports it
		}
		r.index.mu.RLock()
		loaded := r.index.files[id]
		r.index.mu.RUnlock()
		if !loaded {
			names = append(names, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	idxs := make([]*format.Index, len(names))
	errs := make([]error, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range names {
		g.Go(func() error {
			idxs[i], errs[i] = r.LoadIndexFile(gctx, id)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	superseded := map[ID]bool{}
	for _, idx := range idxs {
		if idx == nil {
			continue
		}
		for _, s := range idx.Supersedes {
			superseded[s] = true
		}
	}
	r.index.mu.Lock()
	defer r.index.mu.Unlock()
	for i, idx := range idxs {
		if errs[i] != nil {
			// A damaged index file costs only what it lists; check reports it and
			// repair index replaces it.
			r.index.damaged[names[i]] = errs[i]
			continue
		}
		r.index.files[names[i]] = true
		if superseded[names[i]] {
			continue
		}
		for _, p := range idx.Packs {
			r.index.addPack(p)
		}
	}
	return nil
}

// DamagedIndexFiles returns the index files that could not be read, with why.
func (r *Repository) DamagedIndexFiles() map[ID]error {
	r.index.mu.RLock()
	defer r.index.mu.RUnlock()
	out := make(map[ID]error, len(r.index.damaged))
	for k, v := range r.index.damaged {
		out[k] = v
	}
	return out
}

// LoadIndexFile reads and decodes one index file.
func (r *Repository) LoadIndexFile(ctx context.Context, id ID) (*format.Index, error) {
	plain, err := r.loadFile(ctx, storage.IndexFile, id)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", id.Short(), err)
	}
	raw, err := r.dec.DecodeAll(plain, nil)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", id.Short(), err)
	}
	idx, err := format.DecodeIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", id.Short(), err)
	}
	return idx, nil
}

// saveIndex writes the packs uploaded since the last call into a new index file.
func (r *Repository) saveIndex(ctx context.Context) error {
	r.index.mu.Lock()
	packs := r.index.unsaved
	r.index.unsaved = nil
	r.index.mu.Unlock()
	if len(packs) == 0 {
		return nil
	}
	raw := format.EncodeIndex(&format.Index{Packs: packs})
	id, err := r.saveFile(ctx, storage.IndexFile, r.enc.EncodeAll(raw, nil))
	if err != nil {
		r.index.mu.Lock()
		r.index.unsaved = append(packs, r.index.unsaved...)
		r.index.mu.Unlock()
		return fmt.Errorf("save index: %w", err)
	}
	r.index.mu.Lock()
	r.index.files[id] = true
	r.index.mu.Unlock()
	return nil
}

// HasBlob reports whether the index knows the blob.
func (r *Repository) HasBlob(t BlobType, id ID) bool {
	_, ok := r.index.lookup(t, id)
	return ok
}

// LookupBlob returns where a blob is stored.
func (r *Repository) LookupBlob(t BlobType, id ID) (BlobLocation, bool) {
	return r.index.lookup(t, id)
}

// BlobSize returns the plaintext size of a blob the index knows.
func (r *Repository) BlobSize(t BlobType, id ID) (uint32, bool) {
	l, ok := r.index.lookup(t, id)
	return l.RawLength, ok
}

// IndexedBlob is one entry of the index.
type IndexedBlob struct {
	Type BlobType
	ID   ID
	BlobLocation
}

// EachIndexedBlob calls fn for every blob in the index, in no particular order.
func (r *Repository) EachIndexedBlob(fn func(IndexedBlob) error) error {
	r.index.mu.RLock()
	list := make([]IndexedBlob, 0, len(r.index.blobs))
	for k, l := range r.index.blobs {
		list = append(list, IndexedBlob{Type: k.t, ID: k.id, BlobLocation: BlobLocation{Pack: r.index.packs[l.pack], Offset: l.offset, Length: l.length, RawLength: l.rawLength}})
	}
	r.index.mu.RUnlock()
	for _, b := range list {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// IndexedPacks returns the ids of every pack the index names.
func (r *Repository) IndexedPacks() []ID {
	r.index.mu.RLock()
	defer r.index.mu.RUnlock()
	return append([]ID(nil), r.index.packs...)
}

// PackBlob is one blob listed in a pack's header.
type PackBlob = format.PackBlob

// LoadPackHeader reads the header at the end of a pack and returns the blobs it lists.
func (r *Repository) LoadPackHeader(ctx context.Context, pack ID) ([]PackBlob, error) {
	h := storage.Handle{Type: storage.PackFile, Name: pack.String()}
	fi, err := r.st.Stat(ctx, h)
	if err != nil {
		return nil, err
	}
	if fi.Size < 4 {
		return nil, fmt.Errorf("pack %s: too short (%d bytes)", pack.Short(), fi.Size)
	}
	tail, err := r.st.Load(ctx, h, fi.Size-4, 4)
	if err != nil {
		return nil, err
	}
	hl := int64(uint32(tail[0]) | uint32(tail[1])<<8 | uint32(tail[2])<<16 | uint32(tail[3])<<24)
	if hl > fi.Size-4 || hl > 64<<20 {
		return nil, fmt.Errorf("pack %s: header length %d invalid", pack.Short(), hl)
	}
	sealed, err := r.st.Load(ctx, h, fi.Size-4-hl, hl)
	if err != nil {
		return nil, err
	}
	plain, err := r.key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("pack %s header: %w", pack.Short(), err)
	}
	blobs, err := format.DecodePackHeader(plain)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", pack.Short(), err)
	}
	var end int64
	if len(blobs) > 0 {
		last := blobs[len(blobs)-1]
		end = int64(last.Offset) + int64(last.Length)
	}
	if end != fi.Size-4-hl {
		return nil, fmt.Errorf("pack %s: header lists %d bytes of blobs, file holds %d", pack.Short(), end, fi.Size-4-hl)
	}
	return blobs, nil
}

// RewriteIndex replaces all index files with one that lists every pack of the
// current index files for which keep returns true, then removes the old files and
// reloads the index. Packs left out are then unknown to the repository; the caller
// deletes them afterwards, so a crash at any point loses nothing.
func (r *Repository) RewriteIndex(ctx context.Context, keep func(pack ID) bool) error {
	if err := r.Flush(ctx); err != nil {
		return err
	}
	files, err := r.ListFiles(ctx, storage.IndexFile)
	if err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	next := &format.Index{}
	seen := map[ID]bool{}
	for _, f := range files {
		id, err := ParseID(f.Name)
		if err != nil {
			continue
		}
		idx, err := r.LoadIndexFile(ctx, id)
		if err != nil {
			return err // never drop what an unreadable index file may list
		}
		next.Supersedes = append(next.Supersedes, id)
		for _, p := range idx.Packs {
			if !seen[p.ID] && keep(p.ID) {
				seen[p.ID] = true
				next.Packs = append(next.Packs, p)
			}
		}
	}
	newID, err := r.saveFile(ctx, storage.IndexFile, r.enc.EncodeAll(format.EncodeIndex(next), nil))
	if err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	for _, old := range next.Supersedes {
		if old == newID {
			continue
		}
		if err := r.st.Remove(ctx, storage.Handle{Type: storage.IndexFile, Name: old.String()}); err != nil && !storage.IsNotExist(err) {
			return fmt.Errorf("remove old index %s: %w", old.Short(), err)
		}
	}
	r.index = newMasterIndex()
	return r.LoadIndex(ctx)
}

// RemovePack deletes a pack file; the index must not name it any more.
func (r *Repository) RemovePack(ctx context.Context, id ID) error {
	err := r.st.Remove(ctx, storage.Handle{Type: storage.PackFile, Name: id.String()})
	if storage.IsNotExist(err) {
		return nil
	}
	return err
}

// RebuildIndex writes a new index from the headers of the packs in the storage,
// then removes every old index file, so that a lost or damaged index is replaced
// by what the packs really hold. Packs whose header cannot be read are left out
// and returned with their errors.
func (r *Repository) RebuildIndex(ctx context.Context) (packs int, bad map[ID]error, err error) {
	files, err := r.ListFiles(ctx, storage.PackFile)
	if err != nil {
		return 0, nil, err
	}
	old, err := r.ListFiles(ctx, storage.IndexFile)
	if err != nil {
		return 0, nil, err
	}
	next := &format.Index{}
	bad = map[ID]error{}
	for _, f := range files {
		id, err := ParseID(f.Name)
		if err != nil {
			continue
		}
		blobs, err := r.LoadPackHeader(ctx, id)
		if err != nil {
			bad[id] = err
			continue
		}
		next.Packs = append(next.Packs, format.IndexPack{ID: id, Blobs: blobs})
	}
	for _, f := range old {
		if id, err := ParseID(f.Name); err == nil {
			next.Supersedes = append(next.Supersedes, id)
		}
	}
	newID, err := r.saveFile(ctx, storage.IndexFile, r.enc.EncodeAll(format.EncodeIndex(next), nil))
	if err != nil {
		return 0, bad, fmt.Errorf("save index: %w", err)
	}
	for _, f := range old {
		if f.Name == newID.String() {
			continue
		}
		if err := r.st.Remove(ctx, storage.Handle{Type: storage.IndexFile, Name: f.Name}); err != nil && !storage.IsNotExist(err) {
			return len(next.Packs), bad, fmt.Errorf("remove old index %s: %w", f.Name[:8], err)
		}
	}
	r.index = newMasterIndex()
	return len(next.Packs), bad, r.LoadIndex(ctx)
}
