package vfs

import (
	"context"
	"fmt"
	"io"
	"sync"

	"cairn/internal/fs"
	"cairn/internal/fs/ext"
	"cairn/internal/fs/fat"
	"cairn/internal/fs/ntfs"
	"cairn/internal/imager"
	"cairn/internal/repo"
)

// imageSource serves the filesystems inside an image snapshot: the root holds one
// folder partN per partition whose filesystem cairn can read (for a one-partition
// image, the root is that filesystem), read through the filesystem readers over
// the image's chunks.
type imageSource struct {
	r    *repo.Repository
	snap *repo.Snapshot

	mu      sync.Mutex
	readers map[int]fs.Reader // by region index
}

// imageRef is an image entry's handle: its region and the filesystem's own entry
// (nil for the image's root).
type imageRef struct {
	region int
	entry  *fs.Entry
}

func imageRoot(r *repo.Repository, s *repo.Snapshot) (*Entry, error) {
	src := &imageSource{r: r, snap: s, readers: map[int]fs.Reader{}}
	root := &Entry{Node: &repo.Node{Name: "/", Type: repo.NodeDir, Mode: 0o755, MTime: s.Time.UnixNano()}, src: src, ref: imageRef{region: -1}}
	if !s.Image.WholeDisk {
		// One filesystem: its root is the snapshot's root.
		for i, reg := range s.Image.Regions {
			if reg.Partition != nil {
				return src.fsRoot(i, "/")
			}
		}
	}
	return root, nil
}

// reader returns the filesystem reader of region i, opening it on first use.
func (s *imageSource) reader(i int) (fs.Reader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rd, ok := s.readers[i]; ok {
		return rd, nil
	}
	reg := s.snap.Image.Regions[i]
	open := fileReaders[reg.Partition.FS]
	if open == nil {
		return nil, fmt.Errorf("partition %d: cannot read files of a %q filesystem", reg.Partition.Number, reg.Partition.FS)
	}
	rd, err := open(imager.NewRegionReader(context.Background(), s.r, reg), reg.Size)
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", reg.Partition.Number, err)
	}
	s.readers[i] = rd
	return rd, nil
}

// fsRoot returns the root folder of region i's filesystem, named name.
func (s *imageSource) fsRoot(i int, name string) (*Entry, error) {
	rd, err := s.reader(i)
	if err != nil {
		return nil, err
	}
	fe, err := rd.Root()
	if err != nil {
		return nil, err
	}
	e := s.entry(i, fe)
	e.Node.Name = repo.RawString(name)
	return e, nil
}

func (s *imageSource) entry(region int, fe *fs.Entry) *Entry {
	n := &repo.Node{
		Name: repo.RawString(fe.Name), Type: fe.Type, Mode: fe.Mode & 0o7777, UID: fe.UID, GID: fe.GID,
		Size: uint64(max(fe.Size, 0)), MTime: fe.MTime, ATime: fe.ATime, CTime: fe.CTime,
		Inode: fe.Inode, Links: fe.Links, Rdev: fe.Rdev, LinkTarget: repo.RawString(fe.LinkTarget),
		// Inode numbers are per filesystem: the region tells hard links of one
		// partition from unrelated files of another.
		DeviceID: uint64(region + 1),
	}
	if fe.Type == repo.NodeDir {
		n.Size = 0
	}
	for _, x := range fe.Xattrs {
		n.Xattrs = append(n.Xattrs, repo.Xattr{Name: repo.RawString(x.Name), Value: x.Value})
	}
	return &Entry{Node: n, src: s, ref: imageRef{region: region, entry: fe}}
}

func (s *imageSource) children(ctx context.Context, e *Entry) ([]*Entry, error) {
	ref := e.ref.(imageRef)
	if ref.region < 0 {
		var out []*Entry
		for i, reg := range s.snap.Image.Regions {
			if reg.Partition == nil || fileReaders[reg.Partition.FS] == nil {
				continue
			}
			name := fmt.Sprintf("part%d", reg.Partition.Number)
			root, err := s.fsRoot(i, name)
			if err != nil {
				// A partition that cannot be read is shown empty, not hidden.
				root = &Entry{Node: &repo.Node{Name: repo.RawString(name), Type: repo.NodeDir, Mode: 0o500,
					Error: err.Error()}, src: s, ref: imageRef{region: i}}
			}
			out = append(out, root)
		}
		sortEntries(out)
		return out, nil
	}
	if ref.entry == nil {
		return nil, fmt.Errorf("%s: %s", e.Name(), e.Node.Error)
	}
	rd, err := s.reader(ref.region)
	if err != nil {
		return nil, err
	}
	list, err := rd.ReadDir(ref.entry) // with damaged entries: the others and an error
	out := make([]*Entry, 0, len(list))
	for _, fe := range list {
		if repo.CheckName(fe.Name) != nil {
			continue // a name that could escape a restore target
		}
		out = append(out, s.entry(ref.region, fe))
	}
	sortEntries(out)
	return out, err
}

func (s *imageSource) open(ctx context.Context, e *Entry) (*File, error) {
	ref := e.ref.(imageRef)
	rd, err := s.reader(ref.region)
	if err != nil {
		return nil, err
	}
	src, err := rd.Open(ref.entry)
	if err != nil {
		return nil, err
	}
	return readerFile(ctx, src, int64(e.Node.Size)), nil
}

// fileReaders opens the file reader of each filesystem cairn can browse.
var fileReaders = map[string]func(io.ReaderAt, int64) (fs.Reader, error){
	"ext2": ext.Open, "ext3": ext.Open, "ext4": ext.Open,
	"fat12": fat.Open, "fat16": fat.Open, "fat32": fat.Open,
	"ntfs": ntfs.Open,
}
