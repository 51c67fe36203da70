// Package lru is a small least-recently-used cache for the filesystem readers.
package lru

import "sync"

// Cache is a small least-recently-used cache, safe for concurrent use. The values
// it holds are shared: callers must not change them.
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	tick  uint64
	items map[K]*lruItem[V]
}

type lruItem[V any] struct {
	v    V
	used uint64
}

// New returns a cache of at most max values.
func New[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{max: max, items: make(map[K]*lruItem[V], max)}
}

// Get returns the value cached under k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.tick++
	it.used = c.tick
	return it.v, true
}

// Put caches v under k, evicting the least recently used value if full. The
// caches are small (tens of items), so finding it by a scan is cheap next to
// the read that filled the slot.
func (c *Cache[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if it, ok := c.items[k]; ok {
		it.v, it.used = v, c.tick
		return
	}
	if len(c.items) >= c.max {
		var oldest K
		first := true
		var min uint64
		for key, it := range c.items {
			if first || it.used < min {
				oldest, min, first = key, it.used, false
			}
		}
		delete(c.items, oldest)
	}
	c.items[k] = &lruItem[V]{v: v, used: c.tick}
}
