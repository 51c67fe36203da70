package imager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"cairn/internal/disk"
	"cairn/internal/repo"
)

// RestoreOptions control writing an image snapshot back.
type RestoreOptions struct {
	// Partition restores only the partition with this number into the target.
	Partition int
	// Grow, for a target larger than the disk, names the partition that takes the
	// new space (-1: none; 0: the largest partition with a filesystem that can grow);
	// its filesystem is grown too (resize2fs, ntfsresize).
	Grow int
	// Force allows writing over a target that already has a partition table.
	Force bool
	// NoVerify skips reading back what was written.
	NoVerify bool
	// RepositoryPath is the local folder of the repository, which must not live on
	// the target.
	RepositoryPath string
	Progress       Progress
}

// RestoreResult says what a restore wrote.
type RestoreResult struct {
	Target       string
	BytesWritten int64
	Verified     int64 // chunks read back and found equal
	Grown        int   // partition grown, or 0
	GrownTo      int64 // its new size
	Warnings     []string
}

// ErrTooSmall is returned before anything is written when the target cannot hold the image.
var ErrTooSmall = errors.New("target too small")

// Restore writes the image of snapshot s onto target: a block device, or a file
// (created when missing). Every check that can fail is done before the first byte
// is written: the target is not mounted, does not hold the repository, is large
// enough, and has no partition table unless Force is set.
func Restore(ctx context.Context, r *repo.Repository, s *repo.Snapshot, target string, opts RestoreOptions) (*RestoreResult, error) {
	img := s.Image
	if img == nil {
		return nil, errors.New("not an image snapshot")
	}
	if opts.Progress == nil {
		opts.Progress = nopProgress{}
	}
	regions := img.Regions
	if opts.Partition != 0 {
		regions = nil
		for _, reg := range img.Regions {
			if reg.Partition != nil && reg.Partition.Number == opts.Partition {
				regions = []repo.ImageRegion{reg}
				regions[0].Offset = 0
			}
		}
		if regions == nil {
			return nil, fmt.Errorf("the image has no partition %d", opts.Partition)
		}
	}
	need := int64(0)
	for _, reg := range regions {
		need = max(need, reg.Offset+reg.Size)
	}

	if err := checkInUse(target, opts.RepositoryPath); err != nil {
		return nil, err
	}
	created, err := prepareTarget(target, need)
	if err != nil {
		return nil, err
	}
	dev, err := disk.OpenWrite(target)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	if err := checkTarget(dev, target, need, created, opts); err != nil {
		if created {
			os.Remove(target)
		}
		return nil, err
	}

	// Where each region goes: a larger whole-disk target moves the GPT backup to the
	// new end and may grow a partition, shifting the ones after it.
	shift := make([]int64, len(regions))
	var tableWrites []disk.Region
	var newTable *disk.Table
	res := &RestoreResult{Target: target}
	if opts.Partition == 0 && img.WholeDisk && dev.Size > img.Size {
		nt, tw, sh, grown, grownTo, err := resizeLayout(r, dev, img, opts.Grow)
		if err != nil {
			return nil, err
		}
		newTable, tableWrites, shift, res.Grown, res.GrownTo = nt, tw, sh, grown, grownTo
	}

	var total int64
	for _, reg := range regions {
		total += reg.Size
	}
	opts.Progress.Planned(total)
	written := make([][]writtenRun, len(regions))
	for i, reg := range regions {
		n, w, err := writeRegion(ctx, r, dev, &reg, reg.Offset+shift[i], created, !opts.NoVerify, opts.Progress)
		res.BytesWritten += n
		written[i] = w
		if err != nil {
			return res, fmt.Errorf("%s: %w", regionName(&reg), err)
		}
	}
	if err := dev.Sync(); err != nil {
		return res, fmt.Errorf("sync %s: %w", target, err)
	}
	if !opts.NoVerify {
		for i, reg := range regions {
			n, err := verifyRegion(r, dev, written[i])
			res.Verified += n
			if err != nil {
				return res, fmt.Errorf("verify %s: %w", regionName(&reg), err)
			}
		}
	}
	// The resized table goes last: it overwrites the old table's bytes in the gaps.
	if len(tableWrites) > 0 {
		for _, w := range tableWrites {
			if _, err := dev.WriteAt(w.Data, w.Off); err != nil {
				return res, fmt.Errorf("write partition table: %w", err)
			}
		}
		if err := dev.Sync(); err != nil {
			return res, fmt.Errorf("sync %s: %w", target, err)
		}
		if err := verifyTable(dev, newTable); err != nil {
			return res, err
		}
	}
	if res.Grown != 0 {
		for i, reg := range regions {
			if reg.Partition != nil && reg.Partition.Number == res.Grown {
				dev.Close()
				if err := growFilesystem(target, reg.Partition.FS, reg.Offset+shift[i], res.GrownTo); err != nil {
					res.Warnings = append(res.Warnings, err.Error())
				}
			}
		}
	}
	return res, nil
}

// prepareTarget creates a missing target file of size bytes (sparse) and reports
// whether it did: a new file needs no zeros written.
func prepareTarget(target string, size int64) (bool, error) {
	if _, err := os.Stat(target); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	f, err := os.OpenFile(target, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(target)
		return false, err
	}
	return true, f.Close()
}

// checkInUse refuses a target that is mounted (or has a mounted partition) or that
// holds the repository.
func checkInUse(target, repoPath string) error {
	fi, err := os.Stat(target)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeDevice != 0 || fi.Mode().IsRegular() {
		mounted, err := disk.MountedPartitions(target)
		if err != nil && !errors.Is(err, disk.ErrNotSupported) {
			return err
		}
		if len(mounted) > 0 {
			return fmt.Errorf("refusing to write to %s: it is in use (mounted at %s)", target, strings.Join(mounted, ", "))
		}
	}
	if repoPath != "" && fi.Mode()&os.ModeDevice != 0 {
		holds, err := disk.Holds(target, repoPath)
		if err != nil && !errors.Is(err, disk.ErrNotSupported) {
			return err
		}
		if holds {
			return fmt.Errorf("refusing to write to %s: it holds the repository %s", target, repoPath)
		}
	}
	return nil
}

func checkTarget(dev *disk.Device, target string, need int64, created bool, opts RestoreOptions) error {
	if dev.Size < need {
		return fmt.Errorf("%w: %s has %d bytes, the image needs %d", ErrTooSmall, target, dev.Size, need)
	}
	if !created && !opts.Force && opts.Partition == 0 {
		t, err := disk.ReadTable(dev, dev.Size, dev.SectorSize)
		if err == nil && t.Type != "none" {
			return fmt.Errorf("%s already has a %s partition table; use --force to overwrite it", target, t.Type)
		}
	}
	return nil
}

// writtenRun is a run of stored chunks written to the target, with the id its
// bytes have, to be read back and compared.
type writtenRun struct {
	pos    int64 // on the target
	n      int   // bytes
	chunks int64
	id     repo.ID
}

// writeRegion writes a region's chunks at off; null chunks become zeros (nothing
// at all on a new file). It returns the bytes written and, with verify, the runs
// written, each with the id of its bytes.
func writeRegion(ctx context.Context, r *repo.Repository, dev *disk.Device, reg *repo.ImageRegion, off int64, fresh, verify bool, progress Progress) (int64, []writtenRun, error) {
	var written int64
	var runs []writtenRun
	var zeroStart, zeroLen int64
	flushZeros := func() error {
		if zeroLen == 0 || fresh {
			zeroLen = 0
			return nil
		}
		err := dev.Zero(zeroStart, zeroLen)
		zeroLen = 0
		return err
	}
	err := eachRun(ctx, r, reg, func(run chunkRun) error {
		at, size := spanBytes(reg, run.first, run.first+run.n)
		pos := off + at
		progress.Bytes(size)
		if run.data == nil {
			if zeroLen > 0 && zeroStart+zeroLen == pos {
				zeroLen += size
			} else {
				if err := flushZeros(); err != nil {
					return err
				}
				zeroStart, zeroLen = pos, size
			}
			return nil
		}
		if err := flushZeros(); err != nil {
			return err
		}
		if _, err := dev.WriteAt(run.data, pos); err != nil {
			return err
		}
		written += int64(len(run.data))
		if verify {
			id := run.id
			if !run.whole {
				id = r.BlobID(run.data)
			}
			runs = append(runs, writtenRun{pos: pos, n: len(run.data), chunks: run.n, id: id})
		}
		return nil
	})
	if err != nil {
		return written, nil, err
	}
	return written, runs, flushZeros()
}

// chunkRun is a run of chunks of a region: n chunks from first, all null (data
// nil) or all parts of the span of one blob (data their bytes).
type chunkRun struct {
	first, n int64
	data     []byte
	id       repo.ID // the blob's
	whole    bool    // data is the whole blob
}

// eachRun calls fn for the chunks of a region in order, in runs, loading the
// blobs several at a time (each once, however many runs it is cut into).
func eachRun(ctx context.Context, r *repo.Repository, reg *repo.ImageRegion, fn func(chunkRun) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	type load struct {
		done chan struct{}
		result
	}
	type job struct {
		run   chunkRun
		start int64 // the first chunk of the blob's span
		load  *load
	}
	parallel := 2 * runtime.GOMAXPROCS(0)
	queue := make(chan job, parallel)
	listErr := make(chan error, 1)
	go func() {
		defer close(queue)
		loads := map[repo.ID]*load{} // blobs whose spans are not behind us
		ends := map[repo.ID]int64{}
		var i int64
		var pend *job
		emit := func() bool {
			if pend == nil {
				return true
			}
			select {
			case queue <- *pend:
				pend = nil
				return true
			case <-ctx.Done():
				listErr <- ctx.Err()
				return false
			}
		}
		for _, lid := range reg.Chunks {
			ids, err := r.LoadChunkList(ctx, lid)
			if err != nil {
				listErr <- err
				return
			}
			for _, id := range ids {
				if pend != nil && pend.run.id == id && (id.IsNull() || i < ends[id]) && pend.run.first+pend.run.n == i {
					pend.run.n++ // the run goes on
					i++
					continue
				}
				if !emit() {
					return
				}
				pend = &job{run: chunkRun{first: i, n: 1, id: id}}
				if !id.IsNull() {
					size, ok := r.BlobSize(repo.DataBlob, id)
					if !ok {
						listErr <- fmt.Errorf("chunk %d: data blob %s is not in the index", i, id.Short())
						return
					}
					s, e, err := reg.SpanOf(i, int64(size))
					if err != nil {
						listErr <- fmt.Errorf("chunk %d: blob %s: %w", i, id.Short(), err)
						return
					}
					l, ok := loads[id]
					if !ok {
						l = &load{done: make(chan struct{})}
						go func() {
							defer close(l.done)
							l.data, l.err = r.LoadBlob(ctx, repo.DataBlob, id)
						}()
						loads[id] = l
					}
					ends[id] = e
					pend.start, pend.load = s, l
				}
				for k, e := range ends {
					if e <= i {
						delete(loads, k)
						delete(ends, k)
					}
				}
				i++
			}
		}
		if !emit() {
			return
		}
		if i != reg.NumChunks() {
			listErr <- fmt.Errorf("chunk lists hold %d chunks, the region has %d", i, reg.NumChunks())
			return
		}
		listErr <- nil
	}()
	for j := range queue {
		run := j.run
		if j.load != nil {
			<-j.load.done
			if j.load.err != nil {
				return fmt.Errorf("chunk %d at %d: %w", run.first, reg.Offset+run.first*int64(reg.ChunkSize), j.load.err)
			}
			so, _ := spanBytes(reg, j.start, j.start)
			at, n := spanBytes(reg, run.first, run.first+run.n)
			if at-so+n > int64(len(j.load.data)) {
				return fmt.Errorf("chunk %d: blob %s is shorter than its span", run.first, run.id.Short())
			}
			run.data = j.load.data[at-so : at-so+n]
			run.whole = len(run.data) == len(j.load.data)
		}
		if err := fn(run); err != nil {
			return err
		}
	}
	return <-listErr
}

// verifyRegion reads back the runs written and compares the id of their bytes
// with the one they were written with; it returns the chunks verified.
func verifyRegion(r *repo.Repository, dev *disk.Device, runs []writtenRun) (int64, error) {
	var n int64
	var buf []byte
	for _, w := range runs {
		if cap(buf) < w.n {
			buf = make([]byte, w.n)
		}
		b := buf[:w.n]
		if _, err := dev.ReadAt(b, w.pos); err != nil && !errors.Is(err, io.EOF) {
			return n, err
		}
		if r.BlobID(b) != w.id {
			return n, fmt.Errorf("bytes %d to %d read back differ from the image", w.pos, w.pos+int64(w.n))
		}
		n += w.chunks
	}
	return n, nil
}

// resizeLayout plans a whole-disk restore onto a larger device: the new partition
// table, and how far each region moves.
func resizeLayout(r *repo.Repository, dev *disk.Device, img *repo.Image, grow int) (*disk.Table, []disk.Region, []int64, int, int64, error) {
	shift := make([]int64, len(img.Regions))
	if img.Table == "none" {
		return nil, nil, shift, 0, 0, nil
	}
	if grow == 0 {
		grow = largestGrowable(img)
	}
	if grow < 0 {
		grow = 0
	}
	// The table is read back from the image's own bytes.
	old, err := disk.ReadTable(NewReader(context.Background(), r, img), img.Size, img.SectorSize)
	if err != nil {
		return nil, nil, nil, 0, 0, fmt.Errorf("read the image's partition table: %w", err)
	}
	nt, err := old.Resize(dev.Size, grow)
	if err != nil {
		return nil, nil, nil, 0, 0, err
	}
	writes, err := nt.Encode()
	if err != nil {
		return nil, nil, nil, 0, 0, err
	}
	newStart := map[int]int64{}
	var grownTo int64
	for _, p := range nt.Partitions {
		newStart[p.Number] = p.Start
		if p.Number == grow {
			grownTo = p.Size
		}
	}
	// A gap moves with the partition after it; the last one with the disk's end.
	next := dev.Size - img.Size
	for i := len(img.Regions) - 1; i >= 0; i-- {
		reg := img.Regions[i]
		if reg.Partition != nil {
			next = newStart[reg.Partition.Number] - reg.Offset
		}
		shift[i] = next
	}
	if len(img.Regions) > 0 && img.Regions[0].Kind == repo.RegionGap {
		shift[0] = 0 // the boot area stays at the start
	}
	return nt, writes, shift, grow, grownTo, nil
}

// verifyTable reads the partition table back from dev and compares it with want.
func verifyTable(dev *disk.Device, want *disk.Table) error {
	got, err := disk.ReadTable(dev, dev.Size, dev.SectorSize)
	if err != nil {
		return fmt.Errorf("verify partition table: %w", err)
	}
	if len(got.Partitions) != len(want.Partitions) {
		return fmt.Errorf("verify partition table: %d partitions read back, %d written", len(got.Partitions), len(want.Partitions))
	}
	for i, p := range got.Partitions {
		w := want.Partitions[i]
		if p.Number != w.Number || p.Start != w.Start || p.Size != w.Size || p.Type != w.Type || p.UUID != w.UUID {
			return fmt.Errorf("verify partition table: partition %d reads back as %d+%d, written as %d+%d", w.Number, p.Start, p.Size, w.Start, w.Size)
		}
	}
	if len(got.Warnings) > 0 {
		return fmt.Errorf("verify partition table: %s", strings.Join(got.Warnings, "; "))
	}
	return nil
}

// largestGrowable returns the number of the largest partition whose filesystem cairn
// can grow, or -1.
func largestGrowable(img *repo.Image) int {
	best, size := -1, int64(0)
	for _, reg := range img.Regions {
		p := reg.Partition
		if p == nil || !growable(p.FS) {
			continue
		}
		if reg.Size > size {
			best, size = p.Number, reg.Size
		}
	}
	return best
}

func growable(fs string) bool {
	return strings.HasPrefix(fs, "ext") || fs == "ntfs"
}

// growFilesystem grows the filesystem of the partition at off (size bytes) in
// target to fill it, through a loop device over just that partition.
func growFilesystem(target, fsType string, off, size int64) error {
	if !growable(fsType) {
		return nil
	}
	out, err := exec.Command("losetup", "-f", "--show", "-o", fmt.Sprint(off), "--sizelimit", fmt.Sprint(size), target).Output()
	if err != nil {
		return fmt.Errorf("grow %s: losetup: %w", fsType, err)
	}
	loop := strings.TrimSpace(string(out))
	defer func() { _ = exec.Command("losetup", "-d", loop).Run() }()
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		cmd.Stdin = strings.NewReader("y\n")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("grow %s: %s: %w: %s", fsType, name, err, strings.TrimSpace(buf.String()))
		}
		return nil
	}
	if strings.HasPrefix(fsType, "ext") {
		// e2fsck exits 1 when it fixed something; resize2fs insists on a fresh check.
		if err := run("e2fsck", "-fy", loop); err != nil && !strings.Contains(err.Error(), "exit status 1") {
			return err
		}
		return run("resize2fs", loop)
	}
	return run("ntfsresize", "-f", "-f", "-P", loop)
}
