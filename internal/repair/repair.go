// Package repair rewrites damaged snapshots so that everything still intact in them
// stays usable, and what is lost is marked, as restic's "repair snapshots" does.
//
// In a file snapshot, a file whose data chunks are lost keeps its intact chunks in
// order and loses the others: it becomes shorter by what was lost, its size is set
// to what remains, and its node says so in its error field. A folder whose listing
// is lost becomes an empty folder, marked the same way. A snapshot whose root folder
// is lost has nothing left to keep and cannot be repaired. In an image snapshot,
// lost chunks (and chunks whose blob has a length no span at that chunk has, which
// no restore can read) become null chunks, which restore as zeros, and the byte
// ranges they cover are recorded in the image (Image.Lost) so that a restore names
// them.
//
// The repaired snapshot keeps the original's time, host, paths and parent, gets the
// tag "repaired", and names the original in its Original field. The original stays
// unless Options.Forget is set; then it is removed after the repaired one is saved.
package repair

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"

	"cairn/internal/repo"
)

// Tag is the tag a repaired snapshot carries.
const Tag = "repaired"

// Options control a repair.
type Options struct {
	// DryRun finds and reports the damage but writes and removes nothing.
	DryRun bool
	// Forget removes each damaged original once its repaired snapshot is saved, and
	// the snapshot files that cannot be read at all.
	Forget bool
	// ReadData reads every pack holding a data chunk of the snapshots and treats a
	// chunk that does not decrypt or match its id as lost. Without it, a chunk is
	// lost only when the index or the storage does not have it.
	ReadData bool
	// Progress, if set, hears what is being done.
	Progress func(format string, args ...any)
}

// Damage is one thing a snapshot lost.
type Damage struct {
	// Path is a file or folder of a file snapshot, or "partition N" or
	// "gap at OFFSET" in an image snapshot.
	Path string
	// What says what was lost.
	What string
}

// Status says what repair found in a snapshot.
type Status string

// The statuses of a Result.
const (
	Intact       Status = "intact"       // nothing lost
	Repaired     Status = "repaired"     // a repaired snapshot was (or in a dry run, would be) saved
	Unrepairable Status = "unrepairable" // the snapshot file or its root folder is lost: nothing to keep
)

// Result is what repair found and did for one snapshot.
type Result struct {
	ID repo.ID
	// Snapshot is the original; nil when its file cannot be read.
	Snapshot *repo.Snapshot
	Status   Status
	// Err says why an unrepairable snapshot is lost.
	Err error
	// Damage lists what the snapshot lost.
	Damage []Damage
	// Lost lists the byte ranges of an image snapshot that now restore as zeros.
	Lost []repo.ByteRange
	// New is the id of the repaired snapshot; zero in a dry run.
	New repo.ID
	// Removed says that the original was removed (Options.Forget).
	Removed bool
}

// Snapshots repairs the snapshots ids, in order. A snapshot whose file cannot be
// read is unrepairable; so is one whose root folder is lost. An error that is not
// damage (such as an unreachable storage) stops the repair, so that a passing
// failure never passes for lost data.
func Snapshots(ctx context.Context, r *repo.Repository, ids []repo.ID, opts Options) ([]Result, error) {
	say := opts.Progress
	if say == nil {
		say = func(string, ...any) {}
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	stored, err := r.PackStored(ctx)
	if err != nil {
		return nil, err
	}
	w := &walker{r: r, opts: opts, say: say, stored: stored, trees: map[repo.ID]*treeResult{}, verdict: map[repo.ID]string{}, read: map[repo.ID]bool{}}
	if opts.ReadData {
		w.packs = map[repo.ID][]repo.PackBlob{}
		_ = r.EachIndexedBlob(func(b repo.IndexedBlob) error {
			if b.Type == repo.DataBlob {
				w.packs[b.Pack] = append(w.packs[b.Pack], repo.PackBlob{Type: b.Type, ID: b.ID, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength})
			}
			return nil
		})
	}
	var out []Result
	for i, id := range ids {
		say("snapshot %d of %d: %s", i+1, len(ids), id.Short())
		res, err := w.snapshot(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

type walker struct {
	r      *repo.Repository
	opts   Options
	say    func(string, ...any)
	stored map[repo.ID]bool
	trees  map[repo.ID]*treeResult
	empty  repo.ID // the empty tree, once saved

	// With ReadData: the data blobs of each pack, the packs read, and the blobs
	// found damaged in them.
	packs   map[repo.ID][]repo.PackBlob
	read    map[repo.ID]bool
	verdict map[repo.ID]string
}

// treeResult is a tree after repair: its id (the same when nothing was lost) and
// what it lost, by path relative to the tree.
type treeResult struct {
	id      repo.ID
	changed bool
	lost    error // the tree itself cannot be read
	damage  []Damage
}

func (w *walker) snapshot(ctx context.Context, id repo.ID) (Result, error) {
	res := Result{ID: id}
	s, err := w.r.ReadSnapshot(ctx, id)
	if err != nil {
		if !errors.Is(err, repo.ErrDamaged) {
			return res, err
		}
		res.Status, res.Err = Unrepairable, err
		return res, w.forget(ctx, &res)
	}
	res.Snapshot = s
	next := *s
	if s.Kind == repo.KindImage && s.Image != nil {
		img, damage, lost, err := w.image(ctx, s.Image)
		if err != nil {
			return res, err
		}
		res.Damage, res.Lost = damage, lost
		next.Image = img
	} else {
		t, err := w.tree(ctx, s.Tree)
		if err != nil {
			return res, err
		}
		if t.lost != nil {
			res.Status, res.Err = Unrepairable, fmt.Errorf("its root folder is lost: %w", t.lost)
			res.Damage = []Damage{{Path: "/", What: "the root folder's listing is lost"}}
			return res, w.forget(ctx, &res)
		}
		for _, d := range t.damage {
			res.Damage = append(res.Damage, Damage{Path: path.Join("/", d.Path), What: d.What})
		}
		next.Tree = t.id
	}
	if len(res.Damage) == 0 {
		res.Status = Intact
		return res, nil
	}
	res.Status = Repaired
	if w.opts.DryRun {
		return res, nil
	}
	if !slices.Contains(next.Tags, Tag) {
		next.Tags = append(slices.Clone(next.Tags), Tag)
	}
	if next.Original == nil {
		orig := id
		next.Original = &orig
	}
	newID, err := w.r.SaveSnapshot(ctx, &next)
	if err != nil {
		return res, fmt.Errorf("save the repaired snapshot of %s: %w", id.Short(), err)
	}
	res.New = newID
	return res, w.forget(ctx, &res)
}

// forget removes the original of res when asked to.
func (w *walker) forget(ctx context.Context, res *Result) error {
	if !w.opts.Forget || w.opts.DryRun {
		return nil
	}
	if err := w.r.RemoveSnapshot(ctx, res.ID); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", res.ID.Short(), err)
	}
	res.Removed = true
	return nil
}

// misfit returns why chunk i of reg cannot be read from blob id although the blob
// is intact: its length fits no span at that chunk (the list and the blob do not
// belong together); "" when it fits or the index does not know the blob.
func (w *walker) misfit(reg *repo.ImageRegion, i int64, id repo.ID) string {
	size, ok := w.r.BlobSize(repo.DataBlob, id)
	if !ok {
		return ""
	}
	if _, _, err := reg.SpanOf(i, int64(size)); err != nil {
		return "chunk list names a blob that does not belong there: " + err.Error()
	}
	return ""
}

// dataLost returns why a data chunk is lost, or "" if it is intact.
func (w *walker) dataLost(ctx context.Context, id repo.ID) (string, error) {
	loc, ok := w.r.LookupBlob(repo.DataBlob, id)
	if !ok {
		return "not in the index", nil
	}
	if !w.stored[loc.Pack] {
		return fmt.Sprintf("pack %s is missing", loc.Pack.Short()), nil
	}
	if w.packs == nil {
		return "", nil
	}
	if !w.read[loc.Pack] {
		w.say("reading pack %s", loc.Pack.Short())
		bad, err := w.r.VerifyPackBlobs(ctx, loc.Pack, w.packs[loc.Pack])
		if err != nil {
			return "", err
		}
		w.read[loc.Pack] = true
		for k, v := range bad {
			w.verdict[k] = v.Error()
		}
	}
	return w.verdict[id], nil
}

// tree repairs the tree id and every tree below it, once each.
func (w *walker) tree(ctx context.Context, id repo.ID) (*treeResult, error) {
	if t, ok := w.trees[id]; ok {
		return t, nil
	}
	res := &treeResult{id: id}
	t, err := w.r.ReadTree(ctx, id)
	if err != nil {
		if !errors.Is(err, repo.ErrDamaged) {
			return nil, err
		}
		res.lost = err
		w.trees[id] = res
		return res, nil
	}
	for _, n := range t.Nodes {
		name := string(n.Name)
		switch {
		case n.Type == repo.NodeDir && n.Subtree != nil:
			sub, err := w.tree(ctx, *n.Subtree)
			if err != nil {
				return nil, err
			}
			if sub.lost != nil {
				empty, err := w.emptyTree(ctx)
				if err != nil {
					return nil, err
				}
				n.Subtree = &empty
				n.Error = "repaired: the folder's listing was lost; it is empty"
				res.damage = append(res.damage, Damage{Path: name, What: "folder listing lost: " + sub.lost.Error()})
				res.changed = true
				continue
			}
			for _, d := range sub.damage {
				res.damage = append(res.damage, Damage{Path: path.Join(name, d.Path), What: d.What})
			}
			if sub.changed {
				sub := sub.id
				n.Subtree = &sub
				res.changed = true
			}
		case n.Type == repo.NodeFile && len(n.Content) > 0:
			kept := make([]repo.ID, 0, len(n.Content))
			var size uint64
			first := ""
			for _, c := range n.Content {
				why, err := w.dataLost(ctx, c)
				if err != nil {
					return nil, err
				}
				if why != "" {
					if first == "" {
						first = why
					}
					continue
				}
				kept = append(kept, c)
				s, _ := w.r.BlobSize(repo.DataBlob, c)
				size += uint64(s)
			}
			if first == "" {
				continue
			}
			lostChunks := len(n.Content) - len(kept)
			what := fmt.Sprintf("%d of %d chunks lost (%s); kept %d of %d bytes", lostChunks, len(n.Content), first, size, n.Size)
			n.Error = "repaired: " + what + "; the lost parts are cut out"
			n.Content, n.Size = kept, size
			res.damage = append(res.damage, Damage{Path: name, What: what})
			res.changed = true
		}
	}
	if res.changed && !w.opts.DryRun {
		nid, _, err := w.r.SaveTree(ctx, t)
		if err != nil {
			return nil, err
		}
		res.id = nid
	}
	w.trees[id] = res
	return res, nil
}

func (w *walker) emptyTree(ctx context.Context) (repo.ID, error) {
	if w.opts.DryRun || !w.empty.IsNull() {
		return w.empty, nil
	}
	id, _, err := w.r.SaveTree(ctx, &repo.Tree{})
	if err != nil {
		return repo.ID{}, err
	}
	w.empty = id
	return id, nil
}

// image repairs the chunk lists of an image and returns the repaired image, what
// it lost by region, and the byte ranges lost (merged with those of earlier repairs).
func (w *walker) image(ctx context.Context, orig *repo.Image) (*repo.Image, []Damage, []repo.ByteRange, error) {
	img := *orig
	img.Regions = slices.Clone(orig.Regions)
	var damage []Damage
	var lost []repo.ByteRange
	for ri := range img.Regions {
		reg := &img.Regions[ri]
		reg.Chunks = slices.Clone(reg.Chunks)
		name := fmt.Sprintf("gap at %d", reg.Offset)
		if reg.Partition != nil {
			name = fmt.Sprintf("partition %d", reg.Partition.Number)
		}
		lists := make([][]repo.ID, len(reg.Chunks))
		listLost := make([]error, len(reg.Chunks))
		var known int64
		for i, lid := range reg.Chunks {
			ids, err := w.r.ReadChunkList(ctx, lid)
			if err != nil {
				if !errors.Is(err, repo.ErrDamaged) {
					return nil, nil, nil, err
				}
				listLost[i] = err
				continue
			}
			lists[i] = ids
			known += int64(len(ids))
		}
		counts := lostListCounts(reg.NumChunks(), known, lists)
		var regLost []repo.ByteRange
		var chunksLost int64
		first := ""
		var c int64 // the first chunk of list i
		for i := range reg.Chunks {
			ids := lists[i]
			changed := false
			if listLost[i] != nil {
				ids = make([]repo.ID, counts[i])
				changed = true
				chunksLost += counts[i]
				regLost = addRange(regLost, w.chunkRange(reg, c, counts[i]))
				if first == "" {
					first = "chunk list lost: " + listLost[i].Error()
				}
			} else {
				ids = slices.Clone(ids)
				for j, id := range ids {
					if id.IsNull() {
						continue
					}
					why, err := w.dataLost(ctx, id)
					if err != nil {
						return nil, nil, nil, err
					}
					if why == "" {
						why = w.misfit(reg, c+int64(j), id)
					}
					if why == "" {
						continue
					}
					ids[j] = repo.ID{}
					changed = true
					chunksLost++
					regLost = addRange(regLost, w.chunkRange(reg, c+int64(j), 1))
					if first == "" {
						first = why
					}
				}
			}
			c += int64(len(ids))
			if changed && !w.opts.DryRun {
				nid, err := w.r.SaveChunkList(ctx, ids)
				if err != nil {
					return nil, nil, nil, err
				}
				reg.Chunks[i] = nid
			}
		}
		if chunksLost == 0 {
			continue
		}
		var bytes int64
		for _, l := range regLost {
			bytes += l.Length
		}
		damage = append(damage, Damage{Path: name, What: fmt.Sprintf("%d chunks lost (%d bytes in %d ranges: %s); they restore as zeros", chunksLost, bytes, len(regLost), first)})
		lost = append(lost, regLost...)
	}
	if len(lost) > 0 {
		img.Lost = MergeRanges(append(slices.Clone(orig.Lost), lost...))
	}
	return &img, damage, lost, nil
}

// lostListCounts says how many chunks each lost chunk list held: the lists of a
// region hold ChunkListMax chunks each but the last, so a lost list is as long as
// that layout says, and when it cannot be told, the region's remaining chunks are
// shared out that way.
func lostListCounts(total, known int64, lists [][]repo.ID) []int64 {
	counts := make([]int64, len(lists))
	var unknown []int
	for i, l := range lists {
		if l == nil {
			unknown = append(unknown, i)
		}
	}
	left := max(total-known, 0)
	for k, i := range unknown {
		n := min(int64(repo.ChunkListMax), left)
		if k == len(unknown)-1 {
			n = left
		}
		counts[i] = n
		left -= n
	}
	return counts
}

// chunkRange returns the bytes of the disk that n chunks from chunk c of reg cover.
func (w *walker) chunkRange(reg *repo.ImageRegion, c, n int64) repo.ByteRange {
	cs := int64(reg.ChunkSize)
	start := c * cs
	end := min((c+n)*cs, reg.Size)
	return repo.ByteRange{Offset: reg.Offset + start, Length: max(end-start, 0)}
}

// addRange appends r to list, joining it to the last range when they touch.
func addRange(list []repo.ByteRange, r repo.ByteRange) []repo.ByteRange {
	if r.Length <= 0 {
		return list
	}
	if n := len(list); n > 0 && list[n-1].Offset+list[n-1].Length == r.Offset {
		list[n-1].Length += r.Length
		return list
	}
	return append(list, r)
}

// MergeRanges sorts ranges and joins those that overlap or touch.
func MergeRanges(ranges []repo.ByteRange) []repo.ByteRange {
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].Offset < ranges[j].Offset })
	var out []repo.ByteRange
	for _, r := range ranges {
		if r.Length <= 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Offset+out[n-1].Length >= r.Offset {
			out[n-1].Length = max(out[n-1].Offset+out[n-1].Length, r.Offset+r.Length) - out[n-1].Offset
			continue
		}
		out = append(out, r)
	}
	return out
}
