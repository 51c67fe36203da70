package ext

import (
	"container/list"
	"sync"
)

// blockCache keeps the most recently used chunks of the filesystem's metadata
// (inode tables, folders, extent tree nodes, indirect blocks, xattr blocks):
// aligned runs of whole blocks, read with one ReadAt each, so that reading a
// folder's inodes or a file's block map reads each chunk once, and the reads
// reaching r are few and large. It is safe for concurrent use; the slices it
// returns are shared and must not be modified.
type blockCache struct {
	f         *filesystem
	read      func(p []byte, off int64) error // fills p from the partition at off
	chunkSize int64                           // bytes a chunk: a multiple of the block size
	limit     int64                           // bytes that may be read: the filesystem's blocks
	max       int                             // chunks kept

	mu     sync.Mutex
	chunks map[int64]*list.Element // by chunk index; values are *cachedChunk
	lru    list.List               // most recently used first
}

type cachedChunk struct {
	index int64
	data  []byte
}

// Default cache geometry: 64 chunks of 64 KiB (or of one block, if larger).
const (
	cacheChunkSize = 64 << 10
	cacheChunks    = 64
)

func newBlockCache(f *filesystem, chunkSize int64, chunks int, read func(p []byte, off int64) error) *blockCache {
	chunkSize = max(chunkSize, f.blockSize)
	chunkSize -= chunkSize % f.blockSize
	return &blockCache{
		f:         f,
		read:      read,
		chunkSize: chunkSize,
		limit:     f.fsSize(),
		max:       chunks,
		chunks:    make(map[int64]*list.Element),
	}
}

// block returns block b; the caller has checked that it is inside the
// filesystem.
func (c *blockCache) block(b uint64) ([]byte, error) {
	off := int64(b) * c.f.blockSize
	idx := off / c.chunkSize
	data, err := c.chunk(idx)
	if err != nil {
		return nil, err
	}
	within := off - idx*c.chunkSize
	return data[within : within+c.f.blockSize : within+c.f.blockSize], nil
}

// chunk returns chunk idx, reading it on a miss. Two goroutines missing the
// same chunk may both read it; the cache keeps one.
func (c *blockCache) chunk(idx int64) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.chunks[idx]; ok {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*cachedChunk).data, nil
	}
	c.mu.Unlock()

	start := idx * c.chunkSize
	n := min(c.chunkSize, c.limit-start)
	data := make([]byte, n)
	if err := c.read(data, start); err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.chunks[idx]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cachedChunk).data, nil
	}
	c.chunks[idx] = c.lru.PushFront(&cachedChunk{idx, data})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.chunks, old.Value.(*cachedChunk).index)
	}
	return data, nil
}
