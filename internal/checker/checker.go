// Package checker verifies a repository: that its structure holds together (index
// files, packs and their headers, snapshots and every tree they reach) and, when
// asked, that every byte of every blob decrypts and matches its id. Damage is
// reported by object, with the snapshots and files it affects.
package checker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"cairn/internal/repo"
	"cairn/internal/storage"
)

// Options control a check.
type Options struct {
	// ReadData reads and verifies every blob of every pack (of ReadSubset).
	ReadData bool
	// ReadSubset, if set, picks the packs ReadData reads.
	ReadSubset func(pack repo.ID) bool
	// Progress, if set, is told about each pack read with ReadData.
	Progress func(packsDone, packsTotal int)
}

// Problem is one damaged or missing object.
type Problem struct {
	Object string // such as "pack 1a2b3c4d" or "snapshot 5e6f7a8b"
	Err    error
	// Affected lists "SNAPSHOT:PATH" entries whose data this problem hits.
	Affected []string
}

func (p Problem) Error() string { return p.Object + ": " + p.Err.Error() }

// Result summarises a check.
type Result struct {
	Problems  []Problem
	Warnings  []string
	Snapshots int
	Trees     int
	Packs     int
	Blobs     int
	BytesRead int64
}

type checker struct {
	r    *repo.Repository
	opts Options
	mu   sync.Mutex
	res  Result
	bad  map[repo.ID]string // damaged or missing blobs -> problem object
}

// Check verifies r and returns what it found; the error is for a check that could
// not run at all (such as an unreachable storage).
func Check(ctx context.Context, r *repo.Repository, opts Options) (*Result, error) {
	c := &checker{r: r, opts: opts, bad: map[repo.ID]string{}}
	if err := c.checkKeyFiles(ctx); err != nil {
		return nil, err
	}
	if err := c.checkIndexFiles(ctx); err != nil {
		return nil, err
	}
	if err := c.checkPacks(ctx); err != nil {
		return nil, err
	}
	if err := c.checkSnapshots(ctx); err != nil {
		return nil, err
	}
	sort.Slice(c.res.Problems, func(i, j int) bool { return c.res.Problems[i].Object < c.res.Problems[j].Object })
	return &c.res, nil
}

func (c *checker) problem(obj string, err error) {
	c.mu.Lock()
	c.res.Problems = append(c.res.Problems, Problem{Object: obj, Err: err})
	c.mu.Unlock()
}

// checkKeyFiles verifies that every key file is what was stored: a damaged one
// may be the only key of some password.
func (c *checker) checkKeyFiles(ctx context.Context) error {
	files, err := c.r.ListFiles(ctx, storage.KeyFile)
	if err != nil {
		return fmt.Errorf("list key files: %w", err)
	}
	for _, f := range files {
		if err := c.r.CheckKeyFile(ctx, f.Name); err != nil {
			c.problem("key "+short(f.Name), fmt.Errorf("%w (if its password is one you use, add it again with 'cairn key add'; then 'cairn key remove %s')", err, short(f.Name)))
		}
	}
	return nil
}

func (c *checker) checkIndexFiles(ctx context.Context) error {
	files, err := c.r.ListFiles(ctx, storage.IndexFile)
	if err != nil {
		return fmt.Errorf("list index files: %w", err)
	}
	for _, f := range files {
		if err := c.r.CheckFile(ctx, storage.IndexFile, f.Name); err != nil {
			c.problem("index "+short(f.Name), err)
		}
	}
	return nil
}

func short(name string) string {
	if len(name) > 8 {
		return name[:8]
	}
	return name
}

// checkPacks compares the index with the packs: each named pack exists, its header
// lists exactly the blobs the index places in it, and (with ReadData) every blob
// decrypts and matches its id.
func (c *checker) checkPacks(ctx context.Context) error {
	files, err := c.r.ListFiles(ctx, storage.PackFile)
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	stored := map[string]int64{}
	for _, f := range files {
		stored[f.Name] = f.Size
	}
	byPack := map[repo.ID][]repo.IndexedBlob{}
	_ = c.r.EachIndexedBlob(func(b repo.IndexedBlob) error {
		byPack[b.Pack] = append(byPack[b.Pack], b)
		return nil
	})
	c.res.Blobs = 0
	for _, bs := range byPack {
		c.res.Blobs += len(bs)
	}
	for name := range stored {
		id, err := repo.ParseID(name)
		if err != nil {
			c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("data/%s: not a pack name", name))
			continue
		}
		if _, ok := byPack[id]; !ok {
			c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("pack %s is not in the index (left by an interrupted backup; prune removes it)", id.Short()))
		}
	}
	packs := make([]repo.ID, 0, len(byPack))
	for id := range byPack {
		packs = append(packs, id)
	}
	sort.Slice(packs, func(i, j int) bool { return packs[i].String() < packs[j].String() })
	c.res.Packs = len(packs)
	var done int
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, id := range packs {
		blobs := byPack[id]
		g.Go(func() error {
			c.checkPack(gctx, id, blobs, stored)
			c.mu.Lock()
			done++
			d := done
			c.mu.Unlock()
			if c.opts.Progress != nil {
				c.opts.Progress(d, len(packs))
			}
			return nil
		})
	}
	return g.Wait()
}

func (c *checker) markBad(obj string, blobs []repo.IndexedBlob) {
	c.mu.Lock()
	for _, b := range blobs {
		c.bad[b.ID] = obj
	}
	c.mu.Unlock()
}

func (c *checker) checkPack(ctx context.Context, id repo.ID, indexed []repo.IndexedBlob, stored map[string]int64) {
	obj := "pack " + id.Short()
	if _, ok := stored[id.String()]; !ok {
		c.problem(obj, errors.New("missing: the index names it but the storage does not have it"))
		c.markBad(obj, indexed)
		return
	}
	header, err := c.r.LoadPackHeader(ctx, id)
	if err != nil {
		c.problem(obj, err)
		c.markBad(obj, indexed)
		return
	}
	inHeader := map[repo.ID]repo.PackBlob{}
	for _, b := range header {
		inHeader[b.ID] = b
	}
	for _, b := range indexed {
		h, ok := inHeader[b.ID]
		if !ok || h.Offset != b.Offset || h.Length != b.Length || h.Type != b.Type {
			c.problem(obj, fmt.Errorf("blob %s: index and pack header disagree", b.ID.Short()))
			c.markBad(obj, []repo.IndexedBlob{b})
		}
	}
	if !c.opts.ReadData || (c.opts.ReadSubset != nil && !c.opts.ReadSubset(id)) {
		return
	}
	if err := c.r.CheckFile(ctx, storage.PackFile, id.String()); err != nil {
		c.problem(obj, err)
	}
	var bad []repo.IndexedBlob
	err = c.r.LoadPackBlobs(ctx, id, header, func(b repo.PackBlob, data []byte, err error) error {
		if err != nil {
			c.problem(obj, err)
			bad = append(bad, repo.IndexedBlob{Type: b.Type, ID: b.ID})
		}
		c.mu.Lock()
		c.res.BytesRead += int64(b.Length)
		c.mu.Unlock()
		return nil
	})
	if err != nil {
		c.problem(obj, err)
		bad = indexed
	}
	c.markBad(obj, bad)
}

// checkSnapshots loads every snapshot and walks every tree it reaches, checking that
// each blob it names is in the index and not damaged.
func (c *checker) checkSnapshots(ctx context.Context) error {
	ids, err := c.r.SnapshotIDs(ctx)
	if err != nil {
		return err
	}
	c.res.Snapshots = len(ids)
	seen := map[repo.ID]bool{}
	for _, id := range ids {
		s, err := c.r.LoadSnapshot(ctx, id)
		if err != nil {
			c.problem("snapshot "+id.Short(), err)
			continue
		}
		var affected []string
		if s.Kind == repo.KindImage && s.Image != nil {
			affected = c.walkImage(ctx, id, s.Image, seen)
		} else {
			affected = c.walkTree(ctx, id, "/", s.Tree, seen)
		}
		if len(affected) > 0 {
			c.problem("snapshot "+id.Short(), fmt.Errorf("%d files or folders are damaged or missing", len(affected)))
			c.mu.Lock()
			c.res.Problems[len(c.res.Problems)-1].Affected = affected
			c.mu.Unlock()
		}
	}
	return nil
}

// walkTree returns the paths below p that are affected by missing or damaged blobs.
// Trees already walked are walked again only when damage is known, to name paths.
func (c *checker) walkTree(ctx context.Context, snap repo.ID, p string, id repo.ID, seen map[repo.ID]bool) []string {
	if seen[id] && len(c.bad) == 0 {
		return nil
	}
	first := !seen[id]
	seen[id] = true
	if first {
		c.res.Trees++
	}
	if obj, bad := c.bad[id]; bad {
		return []string{fmt.Sprintf("%s:%s (tree in %s)", snap.Short(), p, obj)}
	}
	if !c.r.HasBlob(repo.TreeBlob, id) {
		if first {
			c.problem("tree "+id.Short(), errors.New("not in the index"))
		}
		return []string{fmt.Sprintf("%s:%s (tree missing)", snap.Short(), p)}
	}
	t, err := c.r.LoadTree(ctx, id)
	if err != nil {
		if first {
			c.problem("tree "+id.Short(), err)
		}
		return []string{fmt.Sprintf("%s:%s", snap.Short(), p)}
	}
	var affected []string
	for _, n := range t.Nodes {
		np := path.Join(p, string(n.Name))
		if n.Type == repo.NodeDir && n.Subtree != nil {
			affected = append(affected, c.walkTree(ctx, snap, np, *n.Subtree, seen)...)
			continue
		}
		for _, b := range n.Content {
			if obj, bad := c.bad[b]; bad {
				affected = append(affected, fmt.Sprintf("%s:%s (data in %s)", snap.Short(), np, obj))
				break
			}
			if !c.r.HasBlob(repo.DataBlob, b) {
				if first {
					c.problem("blob "+b.Short(), fmt.Errorf("not in the index (used by %s)", np))
				}
				affected = append(affected, fmt.Sprintf("%s:%s (data missing)", snap.Short(), np))
				break
			}
		}
	}
	return affected
}

// walkImage checks the chunk lists of an image snapshot and returns the regions
// affected by missing or damaged blobs.
func (c *checker) walkImage(ctx context.Context, snap repo.ID, img *repo.Image, seen map[repo.ID]bool) []string {
	var affected []string
	for _, reg := range img.Regions {
		name := fmt.Sprintf("%s:gap at %d", snap.Short(), reg.Offset)
		if reg.Partition != nil {
			name = fmt.Sprintf("%s:partition %d", snap.Short(), reg.Partition.Number)
		}
		var n int64
		hit := ""
		for _, lid := range reg.Chunks {
			first := !seen[lid]
			seen[lid] = true
			if obj, bad := c.bad[lid]; bad {
				hit = "chunk list in " + obj
				break
			}
			ids, err := c.r.LoadChunkList(ctx, lid)
			if err != nil {
				if first {
					c.problem("chunk list "+lid.Short(), err)
				}
				hit = "chunk list damaged or missing"
				break
			}
			for j, id := range ids {
				i := n + int64(j) // the chunk's index in the region
				if id.IsNull() {
					continue
				}
				if obj, bad := c.bad[id]; bad {
					hit = fmt.Sprintf("chunk %d in %s", i, obj)
					break
				}
				size, ok := c.r.BlobSize(repo.DataBlob, id)
				if !ok {
					if first {
						c.problem("blob "+id.Short(), fmt.Errorf("not in the index (used by %s)", name))
					}
					hit = fmt.Sprintf("chunk %d missing", i)
					break
				}
				if _, _, err := reg.SpanOf(i, int64(size)); err != nil {
					if first {
						c.problem("chunk list "+lid.Short(), fmt.Errorf("names blob %s, which does not belong there: %w", id.Short(), err))
					}
					hit = fmt.Sprintf("chunk %d names a blob that fits no span", i)
					break
				}
			}
			n += int64(len(ids))
			if hit != "" {
				break
			}
		}
		if hit == "" && n != reg.NumChunks() {
			hit = fmt.Sprintf("chunk lists hold %d chunks, the region has %d", n, reg.NumChunks())
		}
		if hit != "" {
			affected = append(affected, name+" ("+hit+")")
		}
	}
	return affected
}

// Subset returns a ReadSubset from "n/m" (the n-th of m parts, by pack id, so that
// m runs with n = 1..m read every pack once) or "p%" (about p percent of the packs,
// by pack id).
func Subset(spec string) (func(repo.ID) bool, error) {
	var n, m uint64
	if _, err := fmt.Sscanf(spec, "%d/%d", &n, &m); err == nil && strings.Count(spec, "/") == 1 {
		if m == 0 || n < 1 || n > m {
			return nil, fmt.Errorf("read subset %q: want n/m with 1 <= n <= m", spec)
		}
		return func(id repo.ID) bool { return binary.BigEndian.Uint64(id[:8])%m == n-1 }, nil
	}
	if pct, ok := strings.CutSuffix(spec, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p <= 0 || p > 100 {
			return nil, fmt.Errorf("read subset %q: want a percentage above 0 and at most 100", spec)
		}
		limit := uint64(p / 100 * float64(^uint64(0)>>1))
		return func(id repo.ID) bool { return binary.BigEndian.Uint64(id[:8])>>1 <= limit }, nil
	}
	return nil, fmt.Errorf("read subset %q: want n/m (such as 1/10) or a percentage (such as 10%%)", spec)
}
