package imager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"cairn/internal/repo"
)

// Reader reads an image snapshot's disk (or one region of it) as bytes: null chunks
// read as zeros, stored chunks are loaded on demand (a blob at a time: the span of
// chunks it holds), with a small cache. It is safe for concurrent use.
type Reader struct {
	ctx     context.Context
	r       *repo.Repository
	regions []repo.ImageRegion
	size    int64

	mu        sync.Mutex
	lists     map[listKey][]repo.ID // chunk lists loaded, a few at a time
	listOrder []listKey             // their keys, oldest first
	whole     map[int][]repo.ID     // region index -> all its chunk ids, for regions whose lists are not of the usual lengths
	cache     map[repo.ID][]byte
	recent    []repo.ID // cache keys, oldest first
	cached    int       // bytes in the cache
}

// listKey names chunk list k of region i.
type listKey struct {
	i, k int
}

// readerLists bounds the chunk lists a Reader keeps (each 2 MiB at most), so that
// reading a large disk does not hold all its chunk ids.
const readerLists = 8

// NewReader returns a reader of the whole image.
func NewReader(ctx context.Context, r *repo.Repository, img *repo.Image) *Reader {
	return newReader(ctx, r, img.Regions, img.Size)
}

// NewRegionReader returns a reader of one region, starting at its first byte.
func NewRegionReader(ctx context.Context, r *repo.Repository, reg repo.ImageRegion) *Reader {
	reg.Offset = 0
	return newReader(ctx, r, []repo.ImageRegion{reg}, reg.Size)
}

func newReader(ctx context.Context, r *repo.Repository, regions []repo.ImageRegion, size int64) *Reader {
	return &Reader{ctx: ctx, r: r, regions: regions, size: size,
		lists: map[listKey][]repo.ID{}, whole: map[int][]repo.ID{}, cache: map[repo.ID][]byte{}}
}

// Size returns the number of bytes the reader covers.
func (rd *Reader) Size() int64 { return rd.size }

// ReadAt implements io.ReaderAt.
func (rd *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= rd.size {
			return n, io.EOF
		}
		i := sort.Search(len(rd.regions), func(i int) bool { return rd.regions[i].Offset+rd.regions[i].Size > pos })
		if i == len(rd.regions) {
			return n, io.EOF
		}
		reg := &rd.regions[i]
		rel := pos - reg.Offset
		c := rel / int64(reg.ChunkSize)
		within := rel - c*int64(reg.ChunkSize)
		chunkLen := min(int64(reg.ChunkSize), reg.Size-c*int64(reg.ChunkSize))
		want := min(int64(len(p)-n), chunkLen-within)
		data, err := rd.chunk(i, c)
		if err != nil {
			return n, err
		}
		if data == nil {
			clear(p[n : n+int(want)])
		} else {
			if int64(len(data)) != chunkLen {
				return n, fmt.Errorf("chunk %d of region at %d has %d bytes, want %d", c, reg.Offset, len(data), chunkLen)
			}
			copy(p[n:n+int(want)], data[within:])
		}
		n += int(want)
	}
	return n, nil
}

// chunkID returns the id of chunk c of region i. List k of a region holds its
// chunks from k·ChunkListMax, as image create and repair write them; it is
// loaded when first needed, and a few are kept. A region whose lists have other
// lengths has all its ids loaded at once.
func (rd *Reader) chunkID(i int, c int64) (repo.ID, error) {
	reg := &rd.regions[i]
	k := int(c / repo.ChunkListMax)
	rd.mu.Lock()
	ids, whole := rd.whole[i]
	if !whole {
		ids = rd.lists[listKey{i, k}]
	}
	rd.mu.Unlock()
	switch {
	case whole:
		return ids[c], nil
	case ids != nil:
		return ids[c-int64(k)*repo.ChunkListMax], nil
	case k >= len(reg.Chunks):
		return rd.allIDs(i, c)
	}
	l, err := rd.r.LoadChunkList(rd.ctx, reg.Chunks[k])
	if err != nil {
		return repo.ID{}, err
	}
	want := min(int64(repo.ChunkListMax), reg.NumChunks()-int64(k)*repo.ChunkListMax)
	if int64(len(l)) != want || (k == len(reg.Chunks)-1) != (int64(k+1)*repo.ChunkListMax >= reg.NumChunks()) {
		return rd.allIDs(i, c)
	}
	rd.mu.Lock()
	key := listKey{i, k}
	if _, ok := rd.lists[key]; !ok {
		rd.lists[key] = l
		rd.listOrder = append(rd.listOrder, key)
		if len(rd.listOrder) > readerLists {
			delete(rd.lists, rd.listOrder[0])
			rd.listOrder = rd.listOrder[1:]
		}
	}
	rd.mu.Unlock()
	return l[c-int64(k)*repo.ChunkListMax], nil
}

// allIDs loads every chunk id of region i and returns that of chunk c.
func (rd *Reader) allIDs(i int, c int64) (repo.ID, error) {
	var all []repo.ID
	for _, lid := range rd.regions[i].Chunks {
		l, err := rd.r.LoadChunkList(rd.ctx, lid)
		if err != nil {
			return repo.ID{}, err
		}
		all = append(all, l...)
	}
	if int64(len(all)) != rd.regions[i].NumChunks() {
		return repo.ID{}, fmt.Errorf("chunk lists hold %d chunks, the region has %d", len(all), rd.regions[i].NumChunks())
	}
	rd.mu.Lock()
	rd.whole[i] = all
	rd.mu.Unlock()
	return all[c], nil
}

// chunk returns chunk c of region i, nil for a null chunk.
func (rd *Reader) chunk(i int, c int64) ([]byte, error) {
	id, err := rd.chunkID(i, c)
	if err != nil {
		return nil, err
	}
	if id.IsNull() {
		return nil, nil
	}
	b, err := rd.blob(id)
	if err != nil {
		return nil, err
	}
	// The chunk is a part of the blob's span (span.go).
	reg := &rd.regions[i]
	s, _, err := reg.SpanOf(c, int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), err)
	}
	so, _ := spanBytes(reg, s, s)
	off, n := spanBytes(reg, c, c+1)
	return b[off-so : off-so+n], nil
}

// readerCacheBytes bounds the blobs a Reader keeps.
const readerCacheBytes = 4 * SpanSize

// blob returns the data of blob id, from the cache of recently read ones.
func (rd *Reader) blob(id repo.ID) ([]byte, error) {
	rd.mu.Lock()
	if b, ok := rd.cache[id]; ok {
		rd.mu.Unlock()
		return b, nil
	}
	rd.mu.Unlock()
	b, err := rd.r.LoadBlob(rd.ctx, repo.DataBlob, id)
	if err != nil {
		return nil, err
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if _, ok := rd.cache[id]; ok {
		return b, nil // loaded meanwhile by another read
	}
	rd.cache[id] = b
	rd.recent = append(rd.recent, id)
	rd.cached += len(b)
	for rd.cached > readerCacheBytes && len(rd.recent) > 1 {
		rd.cached -= len(rd.cache[rd.recent[0]])
		delete(rd.cache, rd.recent[0])
		rd.recent = rd.recent[1:]
	}
	return b, nil
}
