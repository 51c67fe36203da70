package imager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"runtime"
	"sort"
	"time"

	"cairn/internal/disk"
	"cairn/internal/fs"
	"cairn/internal/localfs"
	"cairn/internal/repo"
)

// DefaultChunkSize is the size of image chunks unless a filesystem's block
// needs more: the unit in which a later image of the same disk finds and
// stores what changed. Blobs hold spans of up to SpanSize bytes of chunks.
const DefaultChunkSize = 32 << 10

// Progress receives events of a running image operation, from several goroutines.
type Progress interface {
	// Planned reports how many bytes will be read (or written).
	Planned(bytes int64)
	// Bytes reports bytes read (or written) so far.
	Bytes(n int64)
	// Message reports a step, such as a partition starting.
	Message(format string, args ...any)
}

// CreateOptions control an image.
type CreateOptions struct {
	Host, User string
	Tags       []string
	ChunkSize  int
	// Source is the name to record for what was imaged; empty means the path given
	// to Create (which may be a snapshot of the source).
	Source string
	// Parent is the previous image of the same source, recorded in the snapshot.
	ParentID *repo.ID
	Progress Progress
	Now      func() time.Time
	// Warn, if set, is told of damage an image works around by storing more: a
	// filesystem's block bitmap that fails its checksum, or a filesystem too
	// damaged to read, stored whole.
	Warn func(msg string)
}

// Result is a saved image snapshot.
type Result struct {
	ID       repo.ID
	Snapshot *repo.Snapshot
}

// Create images source, a block device or a disk image file: a whole disk with its
// partition table, gaps and partitions, or (when it has no partition table) one
// filesystem. Callers check beforehand that the source is safe to read (not mounted
// read-write); see CheckSource.
func Create(ctx context.Context, r *repo.Repository, source string, opts CreateOptions) (*Result, error) {
	if opts.Progress == nil {
		opts.Progress = nopProgress{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ChunkSize < 4096 || opts.ChunkSize&(opts.ChunkSize-1) != 0 || opts.ChunkSize > 8<<20 {
		return nil, fmt.Errorf("chunk size %d: must be a power of two from 4 KiB to 8 MiB", opts.ChunkSize)
	}
	dev, err := disk.Open(source)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	start := opts.Now()
	name := opts.Source
	if name == "" {
		name = source
	}
	img, plans, err := plan(dev, name, opts.ChunkSize, opts.Warn)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, p := range plans {
		total += p.used
	}
	opts.Progress.Planned(total)

	var parent *repo.Image
	if opts.ParentID != nil {
		// Without the parent, the image is stored whole: correct, only larger.
		if ps, err := r.LoadSnapshot(ctx, *opts.ParentID); err == nil && ps.Image != nil {
			parent = ps.Image
		}
	}

	rescue := &rescuer{r: dev, sector: max(dev.SectorSize, 512), warn: opts.Warn}
	sum := repo.Summary{Start: start}
	for i := range img.Regions {
		reg := &img.Regions[i]
		if reg.Partition != nil {
			opts.Progress.Message("partition %d: %s %s, %s used", reg.Partition.Number, reg.Partition.FS, reg.Partition.Label, sizeString(reg.Partition.UsedBytes))
		}
		prev := findParentRegion(ctx, r, parent, reg)
		lists, add, err := storeRegion(ctx, r, rescue, reg, plans[i], prev, opts.Progress)
		if err != nil {
			_ = r.Abort(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%s at offset %d: %w", regionName(reg), reg.Offset, err)
		}
		reg.Chunks = lists
		sum.DataAdded += uint64(add.raw)
		sum.DataAddedStored += uint64(add.stored)
		sum.TotalBytes += uint64(plans[i].used)
	}
	sum.End = opts.Now()
	img.Unreadable = rescue.unreadable()
	snap := &repo.Snapshot{
		Time: start, Kind: repo.KindImage, Host: opts.Host, User: opts.User,
		Paths: []string{img.Source}, Tags: opts.Tags, Parent: opts.ParentID,
		Image: img, Summary: &sum,
	}
	id, err := r.SaveSnapshot(ctx, snap)
	if err != nil {
		_ = r.Abort(context.WithoutCancel(ctx))
		return nil, err
	}
	return &Result{ID: id, Snapshot: snap}, nil
}

func regionName(reg *repo.ImageRegion) string {
	if reg.Partition != nil {
		return fmt.Sprintf("partition %d", reg.Partition.Number)
	}
	return "gap"
}

// regionPlan is what to read of one region: its used extents, relative to it.
type regionPlan struct {
	used   int64
	extent []fs.Extent
}

// plan reads the partition table and the filesystems' allocations and returns the
// image's regions (without chunks) and what to read of each; warn is told of the
// filesystems' warnings.
func plan(dev *disk.Device, source string, chunkSize int, warn func(string)) (*repo.Image, []regionPlan, error) {
	img := &repo.Image{Source: source, Size: dev.Size, SectorSize: dev.SectorSize, Model: dev.Model, Serial: dev.Serial, Table: "none"}
	if dev.Size <= 0 {
		return nil, nil, fmt.Errorf("%s is empty", source)
	}
	table, err := disk.ReadTable(dev, dev.Size, dev.SectorSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: partition table: %w", source, err)
	}
	var plans []regionPlan
	addGap := func(off, size int64) {
		if size <= 0 {
			return
		}
		img.Regions = append(img.Regions, repo.ImageRegion{Kind: repo.RegionGap, Offset: off, Size: size, ChunkSize: chunkSize})
		plans = append(plans, regionPlan{used: size, extent: []fs.Extent{{Off: 0, Len: size}}})
	}
	addPartition := func(info *repo.PartitionInfo, off, size int64) error {
		a, err := probe(io.NewSectionReader(dev, off, size), size)
		if err != nil {
			// A damaged filesystem is what one images before trying to repair
			// it: its used blocks cannot be known, so it is stored whole.
			warn(fmt.Sprintf("partition %d: %v: its used blocks cannot be known, so every block is stored", info.Number, err))
			a = nil
		}
		cs := chunkSize
		p := regionPlan{used: size, extent: []fs.Extent{{Off: 0, Len: size}}}
		if a != nil {
			for _, w := range a.Warnings {
				warn(fmt.Sprintf("partition %d (%s): %s", info.Number, a.Type, w))
			}
			info.FS, info.Label, info.FSUUID, info.FSSize, info.BlockSize = a.Type, a.Label, a.UUID, a.Size, a.BlockSize
			for cs < a.BlockSize {
				cs *= 2
			}
			stored := fs.Normalize(a.Stored(), size)
			p = regionPlan{used: (&fs.Allocation{Used: stored}).UsedBytes(), extent: stored}
			info.UsedBytes = a.UsedBytes()
		} else {
			info.UsedBytes = p.used
		}
		img.Regions = append(img.Regions, repo.ImageRegion{Kind: repo.RegionPartition, Offset: off, Size: size, ChunkSize: cs, Partition: info})
		plans = append(plans, p)
		return nil
	}
	if table.Type == "none" {
		return img, plans, addPartition(&repo.PartitionInfo{Number: 0}, 0, dev.Size)
	}
	img.WholeDisk, img.Table, img.DiskID = true, table.Type, table.DiskID
	parts := append([]disk.Partition(nil), table.Partitions...)
	sort.Slice(parts, func(i, j int) bool { return parts[i].Start < parts[j].Start })
	var pos int64
	for _, p := range parts {
		if p.Start < pos || p.Size <= 0 || p.Start+p.Size > dev.Size {
			return nil, nil, fmt.Errorf("%s: partition %d (%d+%d) overlaps another or lies outside the disk", source, p.Number, p.Start, p.Size)
		}
		addGap(pos, p.Start-pos)
		info := &repo.PartitionInfo{Number: p.Number, Type: p.Type, TypeName: p.TypeName, Name: p.Name, UUID: p.UUID,
			Attributes: p.Attributes, Bootable: p.Bootable}
		if err := addPartition(info, p.Start, p.Size); err != nil {
			return nil, nil, err
		}
		pos = p.Start + p.Size
	}
	addGap(pos, dev.Size-pos)
	return img, plans, nil
}

// group is one span-sized run of chunks of a region, read and stored together.
type group struct {
	first int64        // the region's chunk index of its first chunk (a multiple of the group size)
	n     int          // chunks in it (fewer at the region's end)
	size  int          // bytes in it
	buf   *[]byte      // its bytes, zeros where unused; nil when nothing in it is used
	used  []bool       // per chunk: holds used bytes
	prev  *parentGroup // the same chunks in the parent image; nil without one
	res   chan groupResult
}

type groupResult struct {
	ids    []repo.ID // one per chunk
	digest repo.ID   // content id of the group's bytes; null when all its chunks are
	added  added
	err    error
}

// added counts the blobs an image adds to the repository: their plaintext and
// stored bytes.
type added struct {
	raw, stored int64
}

func (a *added) add(raw, stored int) {
	if stored > 0 {
		a.raw += int64(raw)
		a.stored += int64(stored)
	}
}

// storeRegion reads the used bytes of a region on one goroutine (the device
// reads sequentially; bad sectors read as zeros and are recorded by dev), a group
// of chunks at a time, stores the groups on every core, and saves the ordered
// chunk ids, with a digest of each group, in chunk lists. prev is the region in
// the parent image, or nil.
func storeRegion(ctx context.Context, r *repo.Repository, dev *rescuer, reg *repo.ImageRegion, p regionPlan, prev *parentRegion, progress Progress) ([]repo.ID, added, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs := int64(reg.ChunkSize)
	per := int64(groupChunks(reg.ChunkSize))
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *group, workers)
	pending := make(chan *group, 4*workers)
	bufs := make(chan *[]byte, workers+1) // one being read, one for each worker
	for range cap(bufs) {
		b := make([]byte, per*cs)
		bufs <- &b
	}
	for range workers {
		go func() {
			for g := range jobs {
				res := storeGroup(ctx, r, reg, g)
				bufs <- g.buf
				g.res <- res
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(pending)
		defer close(jobs)
		used := &usedRanges{ext: p.extent}
		total := reg.NumChunks()
		for first := int64(0); first < total; first += per {
			g := &group{first: first, n: int(min(per, total-first)), res: make(chan groupResult, 1)}
			off, size := spanBytes(reg, first, first+int64(g.n))
			g.size = int(size)
			parts := used.in(off, size)
			if len(parts) == 0 {
				g.res <- groupResult{ids: make([]repo.ID, g.n)} // unused: null chunks, not read
				select {
				case pending <- g:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
				continue
			}
			select {
			case g.buf = <-bufs:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			buf := (*g.buf)[:size]
			clear(buf)
			g.used = make([]bool, g.n)
			for _, e := range parts {
				if err := dev.readAt(buf[e.Off-off:e.Off-off+e.Len], reg.Offset+e.Off); err != nil && !errors.Is(err, io.EOF) {
					readErr <- fmt.Errorf("read at %d: %w", reg.Offset+e.Off, err)
					return
				}
				for c := (e.Off - off) / cs; c <= (e.Off-off+e.Len-1)/cs; c++ {
					g.used[c] = true
				}
				progress.Bytes(e.Len)
			}
			if prev != nil {
				g.prev = prev.group(first, g.n)
			}
			select {
			case pending <- g:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			jobs <- g
		}
		readErr <- nil
	}()

	var lists []repo.ID
	cur := &repo.ChunkList{Group: int(per)}
	var sum added
	var firstErr error
	save := func() {
		id, err := r.SaveChunkListDigests(ctx, cur)
		if err != nil && firstErr == nil {
			firstErr = err
			cancel()
		}
		lists = append(lists, id)
		cur = &repo.ChunkList{Group: int(per)}
	}
	for g := range pending {
		gr := <-g.res
		if gr.err != nil && firstErr == nil {
			firstErr = gr.err
			cancel()
		}
		sum.raw += gr.added.raw
		sum.stored += gr.added.stored
		cur.IDs = append(cur.IDs, gr.ids...)
		cur.Digests = append(cur.Digests, gr.digest)
		if len(cur.IDs) == repo.ChunkListMax && firstErr == nil {
			save()
		}
	}
	if err := <-readErr; err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return nil, added{}, firstErr
	}
	if len(cur.IDs) > 0 || len(lists) == 0 {
		if len(cur.IDs) == 0 {
			cur.Group = 0
		}
		save()
		if firstErr != nil {
			return nil, added{}, firstErr
		}
	}
	return lists, sum, nil
}

// groupChunks is how many chunks of chunkSize bytes a group holds: SpanSize
// worth, at least one.
func groupChunks(chunkSize int) int {
	return max(1, SpanSize/chunkSize)
}

// storeGroup stores a group's chunks and returns their ids: those of the
// parent where a chunk is unchanged, null where a chunk is all zeros, and for
// the others, blobs of new spans. A group whose bytes are those of the parent
// (by its digest) or of a blob the repository has costs nothing. Otherwise,
// when the parent has the group, its chunks are compared with the parent's
// one by one, and only the changed ones are stored, in spans as large as
// their runs allow. The group is stored again as one span (the smallest that
// holds all its chunks that are not null) when there is no parent, when more
// than half of its chunks changed, or when the parent's blobs it would still
// name hold more than maxKeptSpans times its bytes: a group changed in many
// images is then not read from many large blobs used in small parts.
func storeGroup(ctx context.Context, r *repo.Repository, reg *repo.ImageRegion, g *group) groupResult {
	cs := reg.ChunkSize
	data := (*g.buf)[:g.size]
	chunk := func(j int) []byte { return data[j*cs : min((j+1)*cs, g.size)] }
	res := groupResult{ids: make([]repo.ID, g.n)}
	notNull := make([]bool, g.n)
	firstNZ, lastNZ, nonNull := -1, -1, 0
	for j := range g.n {
		if g.used[j] && !localfs.IsZero(chunk(j)) {
			notNull[j] = true
			if firstNZ < 0 {
				firstNZ = j
			}
			lastNZ = j
			nonNull++
		}
	}
	if nonNull == 0 {
		return res
	}
	res.digest = r.BlobID(data)
	if g.prev != nil && g.prev.digest == res.digest {
		copy(res.ids, g.prev.ids) // unchanged since the parent
		return res
	}

	// The group as one span.
	s, e := coveringSpan(g.first+int64(firstNZ), g.first+int64(lastNZ), reg.NumChunks())
	whole := data[(s-g.first)*int64(cs) : (s-g.first)*int64(cs)+spanLen(reg, s, e)]
	wholeID := res.digest
	if len(whole) != len(data) {
		wholeID = r.BlobID(whole)
	}
	storeWhole := func() groupResult {
		n, err := r.SaveBlobCompressed(ctx, repo.DataBlob, wholeID, whole, repo.CompressLarge)
		if err != nil {
			return groupResult{err: err}
		}
		res.added.add(len(whole), n)
		for j := range g.n {
			if notNull[j] {
				res.ids[j] = wholeID
			}
		}
		return res
	}
	if r.HasBlob(repo.DataBlob, wholeID) || g.prev == nil {
		return storeWhole()
	}
	old, sizes, err := g.prev.chunks(ctx, r, reg)
	if err != nil || old == nil {
		return storeWhole() // no parent to compare with: a damaged one is not this image's concern
	}

	// Chunk by chunk against the parent.
	changed := make([]bool, g.n)
	nChanged := 0
	kept := map[repo.ID]bool{}
	for j := range g.n {
		if !notNull[j] {
			continue
		}
		if old[j] != nil && bytes.Equal(chunk(j), old[j]) {
			res.ids[j] = g.prev.ids[j]
			kept[g.prev.ids[j]] = true
			continue
		}
		changed[j] = true
		nChanged++
	}
	var spans [][2]int64
	for j := 0; j < g.n; {
		if !changed[j] {
			j++
			continue
		}
		k := j
		for k < g.n && changed[k] {
			k++
		}
		spans = append(spans, pieces(g.first+int64(j), g.first+int64(k), int64(g.n))...)
		j = k
	}
	keptBytes := 0
	for id := range kept {
		keptBytes += sizes[id]
	}
	if 2*nChanged > nonNull || keptBytes > maxKeptSpans*g.size {
		clear(res.ids)
		return storeWhole()
	}
	for _, sp := range spans {
		off := (sp[0] - g.first) * int64(cs)
		b := data[off : off+spanLen(reg, sp[0], sp[1])]
		id := r.BlobID(b)
		n, err := r.SaveBlobCompressed(ctx, repo.DataBlob, id, b, repo.CompressLarge)
		if err != nil {
			return groupResult{err: err}
		}
		res.added.add(len(b), n)
		for c := sp[0]; c < sp[1]; c++ {
			res.ids[c-g.first] = id
		}
	}
	return res
}

// spanLen is the number of bytes of chunks [start, end) of reg.
func spanLen(reg *repo.ImageRegion, start, end int64) int64 {
	_, n := spanBytes(reg, start, end)
	return n
}

func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

type nopProgress struct{}

func (nopProgress) Planned(int64)          {}
func (nopProgress) Bytes(int64)            {}
func (nopProgress) Message(string, ...any) {}
