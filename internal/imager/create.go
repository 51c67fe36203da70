package imager

import (
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

// DefaultChunkSize is the size of image chunks unless a filesystem's block needs more.
const DefaultChunkSize = 256 << 10

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
	img, plans, err := plan(dev, name, opts.ChunkSize)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, p := range plans {
		total += p.used
	}
	opts.Progress.Planned(total)

	sum := repo.Summary{Start: start}
	for i := range img.Regions {
		reg := &img.Regions[i]
		if reg.Partition != nil {
			opts.Progress.Message("partition %d: %s %s, %s used", reg.Partition.Number, reg.Partition.FS, reg.Partition.Label, sizeString(reg.Partition.UsedBytes))
		}
		lists, added, err := storeRegion(ctx, r, dev, reg, plans[i], opts.Progress)
		if err != nil {
			_ = r.Abort(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%s at offset %d: %w", regionName(reg), reg.Offset, err)
		}
		reg.Chunks = lists
		sum.DataAdded += uint64(added)
		sum.TotalBytes += uint64(plans[i].used)
	}
	sum.End = opts.Now()
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
// image's regions (without chunks) and what to read of each.
func plan(dev *disk.Device, source string, chunkSize int) (*repo.Image, []regionPlan, error) {
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
			return fmt.Errorf("partition %d: %w", info.Number, err)
		}
		cs := chunkSize
		p := regionPlan{used: size, extent: []fs.Extent{{Off: 0, Len: size}}}
		if a != nil {
			info.FS, info.Label, info.FSUUID, info.FSSize, info.BlockSize = a.Type, a.Label, a.UUID, a.Size, a.BlockSize
			for cs < a.BlockSize {
				cs *= 2
			}
			p = regionPlan{used: a.UsedBytes(), extent: fs.Normalize(a.Used, size)}
		}
		info.UsedBytes = p.used
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

type chunkJob struct {
	buf *[]byte
	n   int
	res chan chunkResult
}

type chunkResult struct {
	id    repo.ID
	added int
	err   error
}

// storeRegion reads the used bytes of a region chunk by chunk on one goroutine (the
// device reads sequentially), saves the chunks on every core, and stores the
// ordered chunk ids in chunk lists.
func storeRegion(ctx context.Context, r *repo.Repository, dev io.ReaderAt, reg *repo.ImageRegion, p regionPlan, progress Progress) ([]repo.ID, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan chunkJob, workers)
	pending := make(chan chan chunkResult, 4*workers)
	bufs := make(chan *[]byte, 2*workers+2)
	for range cap(bufs) {
		b := make([]byte, reg.ChunkSize)
		bufs <- &b
	}
	for range workers {
		go func() {
			for j := range jobs {
				data := (*j.buf)[:j.n]
				var res chunkResult
				if !localfs.IsZero(data) {
					res.id, res.added, res.err = r.SaveBlob(ctx, repo.DataBlob, data)
				}
				bufs <- j.buf
				j.res <- res
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(pending)
		defer close(jobs)
		used := &usedRanges{ext: p.extent}
		n := reg.NumChunks()
		for i := int64(0); i < n; i++ {
			off := i * int64(reg.ChunkSize)
			size := min(int64(reg.ChunkSize), reg.Size-off)
			res := make(chan chunkResult, 1)
			parts := used.in(off, size)
			if len(parts) == 0 {
				res <- chunkResult{} // unused: a null chunk, not read
				select {
				case pending <- res:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
				continue
			}
			var bp *[]byte
			select {
			case bp = <-bufs:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			buf := (*bp)[:size]
			clear(buf)
			for _, e := range parts {
				if _, err := dev.ReadAt(buf[e.Off-off:e.Off-off+e.Len], reg.Offset+e.Off); err != nil && !errors.Is(err, io.EOF) {
					readErr <- fmt.Errorf("read at %d: %w", reg.Offset+e.Off, err)
					return
				}
				progress.Bytes(e.Len)
			}
			select {
			case pending <- res:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			jobs <- chunkJob{buf: bp, n: int(size), res: res}
		}
		readErr <- nil
	}()

	var lists []repo.ID
	var current []repo.ID
	var added int64
	var firstErr error
	for res := range pending {
		cr := <-res
		if cr.err != nil && firstErr == nil {
			firstErr = cr.err
			cancel()
		}
		added += int64(cr.added)
		current = append(current, cr.id)
		if len(current) == repo.ChunkListMax && firstErr == nil {
			id, err := r.SaveChunkList(ctx, current)
			if err != nil {
				firstErr = err
				cancel()
			}
			lists, current = append(lists, id), current[:0]
		}
	}
	if err := <-readErr; err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return nil, 0, firstErr
	}
	if len(current) > 0 || len(lists) == 0 {
		id, err := r.SaveChunkList(ctx, current)
		if err != nil {
			return nil, 0, err
		}
		lists = append(lists, id)
	}
	return lists, added, nil
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
