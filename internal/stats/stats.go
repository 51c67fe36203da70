// Package stats measures what snapshots hold and what they cost: the bytes they
// stand for, the unique blobs they use, and those blobs' size before and after
// compression, so that dedup and compression ratios can be shown.
package stats

import (
	"context"
	"fmt"

	"cairn/internal/repo"
)

// Counts are the sizes of a set of snapshots.
type Counts struct {
	Snapshots int
	// Logical is the bytes the snapshots stand for: file sizes, or for images the
	// bytes the filesystems use (and whole gaps and unknown partitions).
	Logical uint64
	Blobs   int
	// Raw is the plaintext size of the unique blobs used; Stored their size in the
	// repository.
	Raw, Stored uint64
}

// DedupRatio is Logical over Raw.
func (c Counts) DedupRatio() float64 { return ratio(c.Logical, c.Raw) }

// CompressionRatio is Raw over Stored.
func (c Counts) CompressionRatio() float64 { return ratio(c.Raw, c.Stored) }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Counter adds up snapshots; blobs used by several are counted once.
type Counter struct {
	r     *repo.Repository
	seen  map[repo.ID]bool
	trees map[repo.ID]bool
	total Counts
}

// NewCounter returns a counter over r.
func NewCounter(r *repo.Repository) *Counter {
	return &Counter{r: r, seen: map[repo.ID]bool{}, trees: map[repo.ID]bool{}}
}

// Total returns the counts of every snapshot added so far.
func (c *Counter) Total() Counts { return c.total }

// Add counts one snapshot and returns its own counts (its blobs counted as if
// it were alone).
func (c *Counter) Add(ctx context.Context, s *repo.Snapshot) (Counts, error) {
	own := &Counts{Snapshots: 1}
	mine := map[repo.ID]bool{}
	blob := func(t repo.BlobType, id repo.ID) error {
		if id.IsNull() || mine[id] {
			return nil
		}
		loc, ok := c.r.LookupBlob(t, id)
		if !ok {
			return fmt.Errorf("%v blob %s is not in the index", t, id.Short())
		}
		mine[id] = true
		own.Blobs++
		own.Raw += uint64(loc.RawLength)
		own.Stored += uint64(loc.Length)
		if !c.seen[id] {
			c.seen[id] = true
			c.total.Blobs++
			c.total.Raw += uint64(loc.RawLength)
			c.total.Stored += uint64(loc.Length)
		}
		return nil
	}
	var err error
	if s.Kind == repo.KindImage && s.Image != nil {
		err = c.addImage(ctx, s.Image, own, blob)
	} else {
		err = c.addTree(ctx, s.Tree, own, blob)
	}
	if err != nil {
		return Counts{}, err
	}
	c.total.Snapshots++
	c.total.Logical += own.Logical
	return *own, nil
}

func (c *Counter) addTree(ctx context.Context, id repo.ID, own *Counts, blob func(repo.BlobType, repo.ID) error) error {
	if err := blob(repo.TreeBlob, id); err != nil {
		return err
	}
	t, err := c.r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		switch {
		case n.Type == repo.NodeDir && n.Subtree != nil:
			if err := c.addTree(ctx, *n.Subtree, own, blob); err != nil {
				return err
			}
		case n.Type == repo.NodeFile:
			own.Logical += n.Size
			for _, d := range n.Content {
				if err := blob(repo.DataBlob, d); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (c *Counter) addImage(ctx context.Context, img *repo.Image, own *Counts, blob func(repo.BlobType, repo.ID) error) error {
	for _, reg := range img.Regions {
		used := reg.Size
		if reg.Partition != nil {
			used = reg.Partition.UsedBytes
		}
		own.Logical += uint64(used)
		for _, lid := range reg.Chunks {
			if err := blob(repo.TreeBlob, lid); err != nil {
				return err
			}
			ids, err := c.r.LoadChunkList(ctx, lid)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := blob(repo.DataBlob, id); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
