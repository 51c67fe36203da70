package imager

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/storage"
)

// randomBytes returns n bytes from a seeded generator.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// chunkIDs returns the chunk ids of the image's only region.
func chunkIDs(t *testing.T, r *repo.Repository, img *repo.Image) []repo.ID {
	t.Helper()
	if len(img.Regions) != 1 {
		t.Fatalf("%d regions", len(img.Regions))
	}
	var ids []repo.ID
	for _, lid := range img.Regions[0].Chunks {
		l, err := r.LoadChunkList(context.Background(), lid)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, l...)
	}
	return ids
}

// restoreAndCompare restores s into a new file and compares it with want, and
// reads the image through a Reader at a few places.
func restoreAndCompare(t *testing.T, r *repo.Repository, s *repo.Snapshot, want []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.img")
	res, err := Restore(context.Background(), r, s, out, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verified == 0 {
		t.Error("nothing verified")
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the restored image differs from the source")
	}
	rd := NewReader(context.Background(), r, s.Image)
	for _, at := range [][2]int{{0, 100}, {32<<10 - 7, 20}, {5 << 20, 3 << 20}, {len(want) - 9000, 9000}} {
		b := make([]byte, at[1])
		if _, err := rd.ReadAt(b, int64(at[0])); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want[at[0]:at[0]+at[1]]) {
			t.Fatalf("Reader at %d+%d differs", at[0], at[1])
		}
	}
}

// TestIncrementalStoresChangedChunks images a disk (a file without a partition
// table or a filesystem, so every byte is read), changes a few places, and
// images it again against the first: only the changed chunks are stored, the
// others name the first image's blobs, chunks that became zeros are null, and
// both images restore to their disks byte for byte. A third image of the
// unchanged disk stores nothing.
func TestIncrementalStoresChangedChunks(t *testing.T) {
	ctx := context.Background()
	st := &countingStorage{Storage: repotest.Storage(t)}
	r := repotest.NewOn(t, st)
	const cs = DefaultChunkSize
	disk := randomBytes(1, 20<<20+5000) // the last chunk is short
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := Create(ctx, r, path, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if reg := first.Snapshot.Image.Regions[0]; reg.ChunkSize != cs || len(reg.Chunks) != 1 {
		t.Fatalf("region %+v", reg)
	}
	// The first image stores spans of SpanSize: 3 blobs for 20 MiB.
	ids1 := chunkIDs(t, r, first.Snapshot.Image)
	distinct := map[repo.ID]bool{}
	for _, id := range ids1 {
		distinct[id] = true
	}
	if len(distinct) != 3 {
		t.Errorf("the first image has %d blobs, want 3 spans", len(distinct))
	}
	restoreAndCompare(t, r, first.Snapshot, disk)
	orig := slices.Clone(disk)

	// Change 4 KiB in three chunks (one of them twice), 100 KiB across four,
	// the short last chunk, and zero two chunks.
	changed := map[int]bool{}
	write := func(off int, b []byte) {
		copy(disk[off:], b)
		for c := off / cs; c <= (off+len(b)-1)/cs; c++ {
			changed[c] = true
		}
	}
	write(3*cs+100, randomBytes(2, 4096))
	write(3*cs+9000, randomBytes(3, 4096))
	write(200*cs, randomBytes(4, 4096))
	write(500*cs+1, randomBytes(5, 4096))
	write(9<<20+777, randomBytes(6, 100<<10))
	write(len(disk)-3000, randomBytes(7, 3000))
	clear(disk[300*cs : 302*cs])
	if err := os.WriteFile(path, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := Create(ctx, r, path, CreateOptions{ParentID: &first.ID})
	if err != nil {
		t.Fatal(err)
	}
	ids2 := chunkIDs(t, r, second.Snapshot.Image)
	for c := range ids2 {
		switch {
		case c == 300 || c == 301:
			if !ids2[c].IsNull() {
				t.Errorf("chunk %d of zeros is not null", c)
			}
		case changed[c]:
			if ids2[c] == ids1[c] {
				t.Errorf("changed chunk %d names the first image's blob", c)
			}
		case ids2[c] != ids1[c]:
			t.Errorf("unchanged chunk %d names a new blob", c)
		}
	}
	// Random bytes do not compress: the second image adds exactly the changed
	// chunks, each span of them sealed as it is.
	var changedBytes int64
	for c := range changed {
		changedBytes += int64(min(cs, len(disk)-c*cs))
	}
	sum := second.Snapshot.Summary
	t.Logf("%d chunks changed (%d bytes); the second image added %d bytes, %d stored", len(changed), changedBytes, sum.DataAdded, sum.DataAddedStored)
	if int64(sum.DataAdded) != changedBytes || int64(sum.DataAddedStored) < changedBytes || int64(sum.DataAddedStored) > changedBytes+4096 {
		t.Errorf("the second image added %d bytes (%d stored) for %d bytes of changed chunks", sum.DataAdded, sum.DataAddedStored, changedBytes)
	}
	restoreAndCompare(t, r, second.Snapshot, disk)
	restoreAndCompare(t, r, first.Snapshot, orig)

	// The digests of the second image's groups tell that nothing changed:
	// the third image loads no blob of the second to compare with.
	st.packBytes.Store(0)
	third, err := Create(ctx, r, path, CreateOptions{ParentID: &second.ID})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.packBytes.Load(); n > 1<<20 {
		t.Errorf("the image of the unchanged disk read %d bytes of packs", n)
	}
	if s := third.Snapshot.Summary; s.DataAdded != 0 || s.DataAddedStored != 0 {
		t.Errorf("an image of the unchanged disk added %d bytes (%d stored)", s.DataAdded, s.DataAddedStored)
	}
	if ids3 := chunkIDs(t, r, third.Snapshot.Image); !slices.Equal(ids3, ids2) {
		t.Error("the image of the unchanged disk names other blobs")
	}
}

// countingStorage counts the bytes loaded from pack files.
type countingStorage struct {
	storage.Storage
	packBytes atomic.Int64
}

func (c *countingStorage) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	b, err := c.Storage.Load(ctx, h, off, n)
	if h.Type == storage.PackFile {
		c.packBytes.Add(int64(len(b)))
	}
	return b, err
}

// TestMostlyChangedGroupStoredWhole: when more than half of a group's chunks
// changed, the group is stored again as one span rather than in pieces.
func TestMostlyChangedGroupStoredWhole(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	const cs = DefaultChunkSize
	per := SpanSize / cs
	disk := randomBytes(10, 2*SpanSize)
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := Create(ctx, r, path, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Every other chunk of the second group and then some: 60 % of it.
	for c := per; c < 2*per; c++ {
		if c%2 == 0 || c%10 == 1 {
			copy(disk[c*cs:], randomBytes(uint64(c), 1000))
		}
	}
	if err := os.WriteFile(path, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := Create(ctx, r, path, CreateOptions{ParentID: &first.ID})
	if err != nil {
		t.Fatal(err)
	}
	ids1, ids2 := chunkIDs(t, r, first.Snapshot.Image), chunkIDs(t, r, second.Snapshot.Image)
	if !slices.Equal(ids1[:per], ids2[:per]) {
		t.Error("the unchanged first group names new blobs")
	}
	for c := per; c < 2*per; c++ {
		if ids2[c] != ids2[per] || ids2[c] == ids1[c] {
			t.Fatalf("chunk %d of the mostly changed group is not in one new span", c)
		}
	}
	if s := second.Snapshot.Summary; s.DataAdded != SpanSize {
		t.Errorf("the second image added %d bytes, want the group's %d", s.DataAdded, SpanSize)
	}
	restoreAndCompare(t, r, second.Snapshot, disk)
}

// TestSpanMismatch: a chunk list that names a blob whose length fits no span
// at its place (a damaged or foreign repository) is a clear error when the
// image is restored or read, not a panic or wrong bytes.
func TestSpanMismatch(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	const cs = DefaultChunkSize
	three, _, err := r.SaveBlob(ctx, repo.DataBlob, randomBytes(20, 3*cs))
	if err != nil {
		t.Fatal(err)
	}
	list, err := r.SaveChunkList(ctx, []repo.ID{three, three, three, {}})
	if err != nil {
		t.Fatal(err)
	}
	img := &repo.Image{Source: "x", Size: 4 * cs, SectorSize: 512, Table: "none", Regions: []repo.ImageRegion{
		{Kind: repo.RegionPartition, Offset: 0, Size: 4 * cs, ChunkSize: cs, Chunks: []repo.ID{list}, Partition: &repo.PartitionInfo{}},
	}}
	s := &repo.Snapshot{Kind: repo.KindImage, Image: img}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(ctx, r, s, filepath.Join(t.TempDir(), "out.img"), RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "fits no span") {
		t.Fatalf("restore: %v", err)
	}
	if _, err := NewReader(ctx, r, img).ReadAt(make([]byte, 10), cs); err == nil || !strings.Contains(err.Error(), "fits no span") {
		t.Fatalf("read: %v", err)
	}
}

// TestManyChunkLists images a disk of more chunks than one chunk list holds
// (4 KiB chunks, so that it stays small), with data on both sides of the
// lists' boundary, changes it there and images it again: both restore, and
// the Reader, which loads one list at a time, reads them.
func TestManyChunkLists(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	const cs = 4096
	size := (repo.ChunkListMax + 3000) * cs
	disk := make([]byte, size)
	boundary := repo.ChunkListMax * cs
	copy(disk[boundary-3*SpanSize/2:], randomBytes(30, 3*SpanSize))
	copy(disk[1000:], randomBytes(31, 5000))
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := Create(ctx, r, path, CreateOptions{ChunkSize: cs})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(first.Snapshot.Image.Regions[0].Chunks); n != 2 {
		t.Fatalf("%d chunk lists, want 2", n)
	}
	restoreAndCompare(t, r, first.Snapshot, disk)
	copy(disk[boundary-cs:], randomBytes(32, 2*cs))
	if err := os.WriteFile(path, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := Create(ctx, r, path, CreateOptions{ChunkSize: cs, ParentID: &first.ID})
	if err != nil {
		t.Fatal(err)
	}
	if s := second.Snapshot.Summary; s.DataAdded != 2*cs {
		t.Errorf("the second image added %d bytes for 2 changed chunks of %d", s.DataAdded, cs)
	}
	restoreAndCompare(t, r, second.Snapshot, disk)
	b := make([]byte, 2*SpanSize)
	if _, err := NewReader(ctx, r, second.Snapshot.Image).ReadAt(b, int64(boundary-SpanSize)); err != nil || !bytes.Equal(b, disk[boundary-SpanSize:boundary+SpanSize]) {
		t.Fatalf("reading across the lists' boundary: %v", err)
	}
}

// TestReaderListsOfOtherLengths: chunk lists need not hold ChunkListMax ids
// each; a region whose lists are cut otherwise (one-chunk blobs, as version 1
// images have) is read and restored all the same.
func TestReaderListsOfOtherLengths(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	const cs = 4096
	disk := randomBytes(40, 10*cs)
	var ids []repo.ID
	for c := range 10 {
		id, _, err := r.SaveBlob(ctx, repo.DataBlob, disk[c*cs:(c+1)*cs])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var lists []repo.ID
	for _, part := range [][]repo.ID{ids[:3], ids[3:4], ids[4:]} {
		id, err := r.SaveChunkList(ctx, part)
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, id)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	img := &repo.Image{Source: "x", Size: int64(len(disk)), SectorSize: 512, Table: "none", Regions: []repo.ImageRegion{
		{Kind: repo.RegionPartition, Size: int64(len(disk)), ChunkSize: cs, Chunks: lists, Partition: &repo.PartitionInfo{}},
	}}
	b := make([]byte, 7*cs)
	if _, err := NewReader(ctx, r, img).ReadAt(b, 2*cs+5); err != nil || !bytes.Equal(b, disk[2*cs+5:9*cs+5]) {
		t.Fatalf("read: %v", err)
	}
	out := filepath.Join(t.TempDir(), "out.img")
	if _, err := Restore(ctx, r, &repo.Snapshot{Kind: repo.KindImage, Image: img}, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, disk) {
		t.Fatalf("restored: %v", err)
	}
}
