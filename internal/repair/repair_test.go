package repair_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn/internal/repair"
	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/storage"
)

func chunk(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// fixture is a repository whose every blob sits in a pack of its own, so that a
// test can damage exactly one.
type fixture struct {
	t  *testing.T
	st storage.Storage
	r  *repo.Repository
}

func newFixture(t *testing.T) *fixture {
	st := repotest.Storage(t)
	return &fixture{t: t, st: st, r: repotest.NewOn(t, st)}
}

func (f *fixture) blob(typ repo.BlobType, data []byte) repo.ID {
	f.t.Helper()
	ctx := context.Background()
	id, _, err := f.r.SaveBlob(ctx, typ, data)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.r.Flush(ctx); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) tree(nodes ...*repo.Node) repo.ID {
	f.t.Helper()
	id, _, err := f.r.SaveTree(context.Background(), &repo.Tree{Nodes: nodes})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.r.Flush(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) file(name string, chunks ...[]byte) (*repo.Node, []byte) {
	n := &repo.Node{Name: repo.RawString(name), Type: repo.NodeFile, Mode: 0o644}
	var all []byte
	for _, c := range chunks {
		n.Content = append(n.Content, f.blob(repo.DataBlob, c))
		n.Size += uint64(len(c))
		all = append(all, c...)
	}
	return n, all
}

func dir(name string, sub repo.ID) *repo.Node {
	return &repo.Node{Name: repo.RawString(name), Type: repo.NodeDir, Mode: 0o755, Subtree: &sub}
}

func (f *fixture) snapshot(s *repo.Snapshot) repo.ID {
	f.t.Helper()
	s.Time, s.Host = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC), "host"
	id, err := f.r.SaveSnapshot(context.Background(), s)
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) packOf(typ repo.BlobType, id repo.ID) storage.Handle {
	f.t.Helper()
	loc, ok := f.r.LookupBlob(typ, id)
	if !ok {
		f.t.Fatalf("blob %s not indexed", id.Short())
	}
	return storage.Handle{Type: storage.PackFile, Name: loc.Pack.String()}
}

// flip changes one byte in the middle of a stored file.
func (f *fixture) flip(h storage.Handle) {
	f.t.Helper()
	ctx := context.Background()
	b, err := f.st.Load(ctx, h, 0, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	b[len(b)/3] ^= 0x20
	if err := f.st.Remove(ctx, h); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Save(ctx, h, b); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) remove(h storage.Handle) {
	f.t.Helper()
	if err := f.st.Remove(context.Background(), h); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) count(t storage.FileType) int {
	n := 0
	_ = f.st.List(context.Background(), t, func(storage.FileInfo) error { n++; return nil })
	return n
}

// content reads a file node's data back, chunk by chunk.
func (f *fixture) content(n *repo.Node) []byte {
	f.t.Helper()
	var out []byte
	for _, c := range n.Content {
		b, err := f.r.LoadBlob(context.Background(), repo.DataBlob, c)
		if err != nil {
			f.t.Fatalf("%s: %v", n.Name, err)
		}
		out = append(out, b...)
	}
	return out
}

func (f *fixture) lookup(root repo.ID, p ...string) *repo.Node {
	f.t.Helper()
	var n *repo.Node
	for _, name := range p {
		tr, err := f.r.LoadTree(context.Background(), root)
		if err != nil {
			f.t.Fatal(err)
		}
		if n = tr.Find(name); n == nil {
			f.t.Fatalf("%v: no %s", p, name)
		}
		if n.Subtree != nil {
			root = *n.Subtree
		}
	}
	return n
}

func damagePaths(res repair.Result) []string {
	var out []string
	for _, d := range res.Damage {
		out = append(out, d.Path)
	}
	return out
}

func TestRepairFileSnapshot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a1, a2, a3 := chunk(1, 3000), chunk(2, 4000), chunk(3, 5000)
	fa, _ := f.file("a", a1, a2, a3)
	fb, b := f.file("b", chunk(4, 2000))
	fc, _ := f.file("c", chunk(5, 1000))
	fe, e := f.file("e", chunk(6, 1500))
	lostDir := f.tree(fc)
	okDir := f.tree(fe)
	root := f.tree(fa, fb, dir("gone", lostDir), dir("kept", okDir))
	snap := f.snapshot(&repo.Snapshot{Kind: repo.KindFile, Paths: []string{"/src"}, Tree: root, Tags: []string{"daily"}})

	// Lose the middle chunk of a (its pack deleted) and the listing of gone/.
	f.remove(f.packOf(repo.DataBlob, fa.Content[1]))
	f.remove(f.packOf(repo.TreeBlob, lostDir))

	// A dry run finds the damage and writes nothing.
	before := f.count(storage.PackFile) + f.count(storage.SnapshotFile)
	res, err := repair.Snapshots(ctx, f.r, []repo.ID{snap}, repair.Options{DryRun: true, Forget: true, ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Status != repair.Repaired || !slices.Equal(damagePaths(res[0]), []string{"/a", "/gone"}) {
		t.Fatalf("dry run: %+v", res)
	}
	if after := f.count(storage.PackFile) + f.count(storage.SnapshotFile); after != before {
		t.Fatalf("a dry run wrote or removed files: %d -> %d", before, after)
	}

	res, err = repair.Snapshots(ctx, f.r, []repo.ID{snap}, repair.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	got := res[0]
	if got.Status != repair.Repaired || got.New.IsNull() || got.Removed {
		t.Fatalf("repair: %+v", got)
	}
	if !strings.Contains(got.Damage[0].What, "1 of 3 chunks lost") {
		t.Errorf("damage of a: %q", got.Damage[0].What)
	}
	s, err := f.r.LoadSnapshot(ctx, got.New)
	if err != nil {
		t.Fatal(err)
	}
	if s.Original == nil || *s.Original != snap || !slices.Equal(s.Tags, []string{"daily", repair.Tag}) || s.Host != "host" || !slices.Equal(s.Paths, []string{"/src"}) {
		t.Fatalf("repaired snapshot: %+v", s)
	}
	// a keeps its intact chunks, in order, and says what it lost.
	na := f.lookup(s.Tree, "a")
	if want := append(append([]byte{}, a1...), a3...); !bytes.Equal(f.content(na), want) || na.Size != uint64(len(want)) {
		t.Errorf("a after repair: %d bytes, size %d, want %d", len(f.content(na)), na.Size, len(want))
	}
	if !strings.HasPrefix(na.Error, "repaired: ") {
		t.Errorf("a is not marked: %q", na.Error)
	}
	// gone/ is an empty folder, marked; the rest is as it was.
	ng := f.lookup(s.Tree, "gone")
	if tr, err := f.r.LoadTree(ctx, *ng.Subtree); err != nil || len(tr.Nodes) != 0 || ng.Error == "" {
		t.Errorf("gone/ after repair: %v %v %q", tr, err, ng.Error)
	}
	if nb := f.lookup(s.Tree, "b"); !bytes.Equal(f.content(nb), b) || nb.Error != "" {
		t.Errorf("b changed")
	}
	if ne := f.lookup(s.Tree, "kept", "e"); !bytes.Equal(f.content(ne), e) {
		t.Errorf("kept/e changed")
	}
	// Without Forget the original stays; the repaired one is intact.
	if _, err := f.r.LoadSnapshot(ctx, snap); err != nil {
		t.Errorf("the original was removed: %v", err)
	}
	again, err := repair.Snapshots(ctx, f.r, []repo.ID{got.New, snap}, repair.Options{ReadData: true, Forget: true})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Status != repair.Intact || again[1].Status != repair.Repaired || !again[1].Removed {
		t.Fatalf("second run: %+v", again)
	}
	if _, err := f.r.LoadSnapshot(ctx, snap); err == nil {
		t.Errorf("Forget kept the original")
	}
}

// A chunk whose pack is stored but damaged is found only by reading the data.
func TestRepairReadsData(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	fa, _ := f.file("a", chunk(1, 3000))
	fb, b := f.file("b", chunk(2, 3000))
	snap := f.snapshot(&repo.Snapshot{Kind: repo.KindFile, Paths: []string{"/src"}, Tree: f.tree(fa, fb)})
	f.flip(f.packOf(repo.DataBlob, fa.Content[0]))

	res, err := repair.Snapshots(ctx, f.r, []repo.ID{snap}, repair.Options{DryRun: true})
	if err != nil || res[0].Status != repair.Intact {
		t.Fatalf("without ReadData: %+v %v", res, err)
	}
	res, err = repair.Snapshots(ctx, f.r, []repo.ID{snap}, repair.Options{ReadData: true, Forget: true})
	if err != nil || res[0].Status != repair.Repaired || !slices.Equal(damagePaths(res[0]), []string{"/a"}) || !res[0].Removed {
		t.Fatalf("with ReadData: %+v %v", res, err)
	}
	s, err := f.r.LoadSnapshot(ctx, res[0].New)
	if err != nil {
		t.Fatal(err)
	}
	if na := f.lookup(s.Tree, "a"); len(na.Content) != 0 || na.Size != 0 {
		t.Errorf("a kept %d chunks, size %d", len(na.Content), na.Size)
	}
	if nb := f.lookup(s.Tree, "b"); !bytes.Equal(f.content(nb), b) {
		t.Errorf("b changed")
	}
}

// A snapshot whose file or root folder is lost cannot be repaired; Forget removes it.
func TestRepairUnrepairable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	fa, _ := f.file("a", chunk(1, 100))
	root := f.tree(fa)
	lostRoot := f.snapshot(&repo.Snapshot{Kind: repo.KindFile, Paths: []string{"/x"}, Tree: root})
	fb, _ := f.file("b", chunk(2, 100))
	damaged := f.snapshot(&repo.Snapshot{Kind: repo.KindFile, Paths: []string{"/y"}, Tree: f.tree(fb)})
	f.remove(f.packOf(repo.TreeBlob, root))
	f.flip(storage.Handle{Type: storage.SnapshotFile, Name: damaged.String()})

	res, err := repair.Snapshots(ctx, f.r, []repo.ID{lostRoot, damaged}, repair.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != repair.Unrepairable || r.Err == nil || r.Removed || !r.New.IsNull() {
			t.Errorf("%s: %+v", r.ID.Short(), r)
		}
	}
	if n := f.count(storage.SnapshotFile); n != 2 {
		t.Fatalf("%d snapshot files, want the 2 originals", n)
	}
	res, err = repair.Snapshots(ctx, f.r, []repo.ID{lostRoot, damaged}, repair.Options{Forget: true})
	if err != nil || !res[0].Removed || !res[1].Removed {
		t.Fatalf("with Forget: %+v %v", res, err)
	}
	if n := f.count(storage.SnapshotFile); n != 0 {
		t.Fatalf("%d snapshot files left", n)
	}
}

// failingLoads is a storage whose reads of packs fail as a network would.
type failingLoads struct {
	storage.Storage
}

var errNetwork = errors.New("connection reset by peer")

func (s failingLoads) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	if h.Type == storage.PackFile {
		return nil, errNetwork
	}
	return s.Storage.Load(ctx, h, off, n)
}

// A failure to read is not damage: the repair stops and drops nothing.
func TestRepairStopsOnReadFailure(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	fa, _ := f.file("a", chunk(1, 100))
	snap := f.snapshot(&repo.Snapshot{Kind: repo.KindFile, Paths: []string{"/x"}, Tree: f.tree(fa)})
	r, err := repo.Open(ctx, failingLoads{f.st}, repotest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before := f.count(storage.SnapshotFile)
	res, err := repair.Snapshots(ctx, r, []repo.ID{snap}, repair.Options{ReadData: true, Forget: true})
	if !errors.Is(err, errNetwork) {
		t.Fatalf("repair over a failing storage: %+v, %v", res, err)
	}
	if f.count(storage.SnapshotFile) != before {
		t.Fatal("the repair removed or wrote a snapshot")
	}
}

func TestRepairImageSnapshot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const cs = 4096
	c0, c2, c3 := chunk(1, cs), chunk(2, cs), chunk(3, 1000)
	id0, id2, id3 := f.blob(repo.DataBlob, c0), f.blob(repo.DataBlob, c2), f.blob(repo.DataBlob, c3)
	list := func(ids ...repo.ID) repo.ID {
		id, err := f.r.SaveChunkList(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return id
	}
	gapList := list(id0)
	partList := list(id0, repo.ID{}, id2, id3) // the last chunk is short
	img := &repo.Image{Source: "/dev/x", WholeDisk: true, Size: 2*cs + 3*cs + 1000, SectorSize: 512, Table: "gpt",
		Regions: []repo.ImageRegion{
			{Kind: repo.RegionGap, Offset: 0, Size: cs, ChunkSize: cs, Chunks: []repo.ID{gapList}},
			{Kind: repo.RegionPartition, Offset: cs, Size: 3*cs + 1000, ChunkSize: cs, Chunks: []repo.ID{partList},
				Partition: &repo.PartitionInfo{Number: 1, Type: "0x83"}},
			{Kind: repo.RegionGap, Offset: 4*cs + 1000, Size: cs, ChunkSize: cs, Chunks: []repo.ID{list(f.blob(repo.DataBlob, chunk(4, cs)))}},
		}}
	snap := f.snapshot(&repo.Snapshot{Kind: repo.KindImage, Paths: []string{"/dev/x"}, Image: img})

	// Lose chunk 2 and the short last chunk of the partition, and the last gap's list.
	f.flip(f.packOf(repo.DataBlob, id2))
	f.remove(f.packOf(repo.DataBlob, id3))
	f.remove(f.packOf(repo.TreeBlob, img.Regions[2].Chunks[0]))

	res, err := repair.Snapshots(ctx, f.r, []repo.ID{snap}, repair.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	got := res[0]
	if got.Status != repair.Repaired || !slices.Equal(damagePaths(got), []string{"partition 1", "gap at 17384"}) {
		t.Fatalf("repair: %+v", got)
	}
	wantLost := []repo.ByteRange{{Offset: 3 * cs, Length: cs + 1000}, {Offset: 4*cs + 1000, Length: cs}}
	if !slices.Equal(got.Lost, wantLost) {
		t.Fatalf("lost %v, want %v", got.Lost, wantLost)
	}
	s, err := f.r.LoadSnapshot(ctx, got.New)
	if err != nil {
		t.Fatal(err)
	}
	// Recorded merged: the two runs touch.
	if want := []repo.ByteRange{{Offset: 3 * cs, Length: 2*cs + 1000}}; !slices.Equal(s.Image.Lost, want) {
		t.Errorf("image records lost %v, want %v", s.Image.Lost, want)
	}
	ids, err := f.r.LoadChunkList(ctx, s.Image.Regions[1].Chunks[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []repo.ID{id0, {}, {}, {}}) {
		t.Errorf("partition chunks after repair: %v", ids)
	}
	ids, err = f.r.LoadChunkList(ctx, s.Image.Regions[2].Chunks[0])
	if err != nil || !slices.Equal(ids, []repo.ID{{}}) {
		t.Errorf("the lost list's region after repair: %v %v", ids, err)
	}
	if s.Image.Regions[0].Chunks[0] != gapList {
		t.Errorf("an intact region changed")
	}
	if img.Regions[1].Chunks[0] != partList {
		t.Errorf("the original image was changed in memory")
	}
	if again, err := repair.Snapshots(ctx, f.r, []repo.ID{got.New}, repair.Options{ReadData: true}); err != nil || again[0].Status != repair.Intact {
		t.Errorf("the repaired image is not intact: %+v %v", again, err)
	}
}

func TestMergeRanges(t *testing.T) {
	got := repair.MergeRanges([]repo.ByteRange{{Offset: 50, Length: 10}, {Offset: 0, Length: 10}, {Offset: 10, Length: 5}, {Offset: 55, Length: 20}, {Offset: 90, Length: 0}})
	want := []repo.ByteRange{{Offset: 0, Length: 15}, {Offset: 50, Length: 25}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestRepairImageChunkThatFitsNoSpan checks that a chunk whose list names an
// intact blob of a length no span at that chunk has is repaired as lost: a
// restore could not read it.
func TestRepairImageChunkThatFitsNoSpan(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const cs = 4096
	good, odd := f.blob(repo.DataBlob, chunk(1, cs)), f.blob(repo.DataBlob, chunk(2, cs+7))
	list, err := f.r.SaveChunkList(ctx, []repo.ID{good, odd, good, repo.ID{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	img := &repo.Image{Source: "/dev/x", Size: 4 * cs, SectorSize: 512, Table: "none",
		Regions: []repo.ImageRegion{{Kind: repo.RegionGap, Size: 4 * cs, ChunkSize: cs, Chunks: []repo.ID{list}}}}
	snap := f.snapshot(&repo.Snapshot{Kind: repo.KindImage, Paths: []string{"/dev/x"}, Image: img})
	res, err := repair.Snapshots(ctx, f.r, []repo.ID{snap}, repair.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	got := res[0]
	if got.Status != repair.Repaired || !slices.Equal(got.Lost, []repo.ByteRange{{Offset: cs, Length: cs}}) {
		t.Fatalf("repair: %+v", got)
	}
	if len(got.Damage) != 1 || !strings.Contains(got.Damage[0].What, "does not belong there") {
		t.Errorf("damage %+v, want the misfit named", got.Damage)
	}
	s, err := f.r.LoadSnapshot(ctx, got.New)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := f.r.LoadChunkList(ctx, s.Image.Regions[0].Chunks[0])
	if err != nil || !slices.Equal(ids, []repo.ID{good, {}, good, {}}) {
		t.Errorf("chunks after repair: %v %v", ids, err)
	}
}
