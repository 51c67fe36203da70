package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"cairn/internal/repair"
	"cairn/internal/repo"
	"cairn/internal/snapshot"
	"cairn/internal/ui"
)

func newRepairCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Bring a damaged repository back to a usable state",
		Long: `Bring a damaged repository back to a usable state. 'cairn check --read-data'
says what is damaged; then, in this order:

  cairn repair index       when index files are lost or damaged
  cairn repair packs       when packs are damaged or missing: keeps what is intact
  cairn backup ...         stores again whatever lost data still exists on disk,
                           which makes the snapshots that used it whole again
  cairn repair snapshots --forget
                           for what is lost for good: keeps the rest of each
                           damaged snapshot, marked, and removes the original`,
	}
	index := &cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the packs",
		Long: `Read the header of every pack and write a new index of what the packs hold,
replacing every index file: for a lost or damaged index. Packs whose header cannot
be read are left out of it and listed; 'cairn repair packs' salvages them.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			g.bypassCache = true // repair what is stored, not cached copies
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			unlock, err := g.lock(cmd, r, true)
			if err != nil {
				return err
			}
			defer unlock()
			packs, bad, err := r.RebuildIndex(ctx)
			if err != nil {
				return err
			}
			badList := []string{}
			for id, e := range bad {
				badList = append(badList, fmt.Sprintf("pack %s: %v", id.Short(), e))
				g.printer.Error("pack "+id.Short(), e)
			}
			g.printer.Result(map[string]any{"message_type": "summary", "packs_indexed": packs, "packs_unreadable": badList}, func(w io.Writer) {
				fmt.Fprintf(w, "indexed %d packs; %d packs have unreadable headers\n", packs, len(bad))
			})
			return nil
		},
	}
	cmd.AddCommand(index, newRepairPacksCommand(g), newRepairSnapshotsCommand(g))
	return cmd
}

type repairPacksSummary struct {
	MessageType string   `json:"message_type"` // "summary"
	DryRun      bool     `json:"dry_run"`
	Damaged     []string `json:"damaged"`
	Removed     []string `json:"removed"`
	Salvaged    int      `json:"blobs_salvaged"`
	Lost        []string `json:"blobs_lost"`
}

func newRepairPacksCommand(g *globalOptions) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "packs [PACK...]",
		Short: "Salvage what is intact in damaged or missing packs, and remove them",
		Long: `Take damaged packs out of the repository without losing what is still intact in
them: every blob that still decrypts and matches its id is stored again in a new
pack, the index is rewritten without the damaged packs, and they are deleted.

PACK is a pack id or a unique prefix of one (as 'cairn check' names them); with
none, every pack is read and those that are damaged, or named by the index but
missing, are repaired.

Blobs that are intact nowhere are lost: 'cairn backup' of the same files stores
them again (and makes whole every snapshot that used them); for data that no
longer exists, 'cairn repair snapshots' keeps the rest of the snapshots.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			g.bypassCache = true // repair what is stored, not cached copies
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			unlock, err := g.lock(cmd, r, !dryRun)
			if err != nil {
				return err
			}
			defer unlock()
			damaged, err := damagedPacks(ctx, g, r, args)
			if err != nil {
				return err
			}
			sum := repairPacksSummary{MessageType: "summary", DryRun: dryRun, Damaged: []string{}, Removed: []string{}, Lost: []string{}}
			var ids []repo.ID
			for _, d := range damaged {
				ids = append(ids, d.ID)
				sum.Damaged = append(sum.Damaged, d.ID.String())
				msg := "named for repair"
				if d.Err != nil {
					msg = d.Err.Error()
				}
				g.printer.Warning("pack "+d.ID.Short(), msg)
			}
			if len(ids) > 0 && !dryRun {
				res, err := r.SalvagePacks(ctx, ids)
				if err != nil {
					return err
				}
				for _, p := range res.Removed {
					sum.Removed = append(sum.Removed, p.String())
				}
				sum.Salvaged = res.Salvaged
				for _, b := range res.Lost {
					sum.Lost = append(sum.Lost, fmt.Sprintf("%v %s", b.Type, b.ID))
				}
			}
			g.printer.Result(sum, func(w io.Writer) {
				switch {
				case len(ids) == 0:
					fmt.Fprintln(w, "no damaged packs")
				case dryRun:
					fmt.Fprintf(w, "would salvage and remove %d packs\n", len(ids))
				default:
					fmt.Fprintf(w, "removed %d packs; stored %d intact blobs again; %d blobs are lost\n", len(sum.Removed), sum.Salvaged, len(sum.Lost))
					if len(sum.Lost) > 0 {
						fmt.Fprintln(w, "back up the same files again to store what still exists, then run 'cairn repair snapshots' for the rest")
					}
				}
			})
			return nil
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "only find and list the damaged packs")
	return cmd
}

// damagedPacks returns the packs named by args (id prefixes), or, with none, every
// pack found damaged or missing.
func damagedPacks(ctx context.Context, g *globalOptions, r *repo.Repository, args []string) ([]repo.DamagedPack, error) {
	if len(args) == 0 {
		progress := g.printer.NewProgress("read packs")
		list, err := r.FindDamagedPacks(ctx, func(done, total int) {
			progress.SetTotal(int64(total), 0, true)
			progress.AddFile()
		})
		progress.Done()
		return list, err
	}
	stored, err := r.PackStored(ctx)
	if err != nil {
		return nil, err
	}
	known := map[repo.ID]bool{}
	for id := range stored {
		known[id] = true
	}
	for _, id := range r.IndexedPacks() {
		known[id] = true
	}
	var out []repo.DamagedPack
	for _, a := range args {
		var match []repo.ID
		for id := range known {
			if repo.HasPrefix(id, a) {
				match = append(match, id)
			}
		}
		if len(match) != 1 {
			return nil, usageError("pack %q: %d packs match", a, len(match))
		}
		out = append(out, repo.DamagedPack{ID: match[0]})
	}
	return out, nil
}

type repairSnapshotOptions struct {
	dryRun     bool
	forget     bool
	noReadData bool
	filter     filterOptions
}

// repairSnapshotJSON is one snapshot's result in JSON.
type repairSnapshotJSON struct {
	MessageType string           `json:"message_type"` // "snapshot"
	ID          string           `json:"id"`
	Status      string           `json:"status"` // intact, repaired, unrepairable
	Error       string           `json:"error,omitempty"`
	Damaged     []repairDamage   `json:"damaged,omitempty"`
	LostRanges  []repo.ByteRange `json:"lost_ranges,omitempty"`
	NewID       string           `json:"new_id,omitempty"`
	Removed     bool             `json:"removed"`
}

type repairDamage struct {
	Path string `json:"path"`
	What string `json:"what"`
}

type repairSnapshotsSummary struct {
	MessageType  string `json:"message_type"` // "summary"
	DryRun       bool   `json:"dry_run"`
	Snapshots    int    `json:"snapshots"`
	Intact       int    `json:"intact"`
	Repaired     int    `json:"repaired"`
	Unrepairable int    `json:"unrepairable"`
	Removed      int    `json:"removed"`
}

func newRepairSnapshotsCommand(g *globalOptions) *cobra.Command {
	var o repairSnapshotOptions
	cmd := &cobra.Command{
		Use:   "snapshots [SNAPSHOT...]",
		Short: "Keep what is intact of damaged snapshots, and mark what is lost",
		Long: `Walk every snapshot (or those named, or those the filters select) and, for each
that lost data, save a repaired snapshot that keeps everything still intact:

  - a file whose data is partly lost keeps its intact parts in order and loses
    the rest, so it gets shorter (as restic does); it is listed here, and its
    entry in the snapshot says 'repaired: ...' in its error field;
  - a folder whose listing is lost becomes an empty folder, marked the same way;
  - in an image snapshot, lost chunks become zeros; the snapshot records which
    byte ranges are lost and 'cairn image restore' names them.

The repaired snapshot has the original's time, host and paths, the tag
"repaired", and the original's id in its "original" field. The original stays
unless --forget is given. A snapshot whose file or root folder is lost has
nothing left to keep: it is listed, and --forget removes it.

Every pack holding data of the snapshots is read to find damaged data (as
'check --read-data' does); --no-read-data trusts the index and finds only data
that is missing. Damaged packs must be dealt with first ('cairn repair packs'),
and lost data that still exists on disk is better stored again by a backup,
which makes the snapshots whole again.

Exit status: 0 when every snapshot is intact or repaired; 1 when a snapshot
cannot be repaired and was not removed.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runRepairSnapshots(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "only say what is lost and what would be saved and removed")
	f.BoolVar(&o.forget, "forget", false, "remove each damaged original once its repaired snapshot is saved")
	f.BoolVar(&o.noReadData, "no-read-data", false, "do not read the data: only data missing from the index or storage counts as lost")
	o.filter.add(cmd)
	return cmd
}

func runRepairSnapshots(cmd *cobra.Command, g *globalOptions, o repairSnapshotOptions, args []string) error {
	ctx := cmd.Context()
	g.bypassCache = true // repair what is stored, not cached copies
	r, err := g.openRepository(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	unlock, err := g.lock(cmd, r, !o.dryRun)
	if err != nil {
		return err
	}
	defer unlock()
	ids, err := repairSelection(cmd, r, o.filter, args)
	if err != nil {
		return err
	}
	progress := g.printer.NewProgress("repair snapshots")
	res, err := repair.Snapshots(ctx, r, ids, repair.Options{DryRun: o.dryRun, Forget: o.forget, ReadData: !o.noReadData,
		Progress: func(f string, a ...any) { g.printer.Verbose(1, f, a...) }})
	progress.Done()
	if err != nil {
		return err
	}
	sum := repairSnapshotsSummary{MessageType: "summary", DryRun: o.dryRun, Snapshots: len(res)}
	left := 0
	for _, s := range res {
		switch s.Status {
		case repair.Intact:
			sum.Intact++
		case repair.Repaired:
			sum.Repaired++
		case repair.Unrepairable:
			sum.Unrepairable++
			if !s.Removed {
				left++
			}
		}
		if s.Removed {
			sum.Removed++
		}
		if s.Status == repair.Intact {
			g.printer.Verbose(1, "snapshot %s: intact", s.ID.Short())
			continue
		}
		printRepairResult(g, s, o)
	}
	g.printer.Result(sum, func(w io.Writer) {
		if o.dryRun {
			fmt.Fprintf(w, "%d snapshots checked: %d intact, %d would be repaired, %d cannot be repaired (dry run: nothing written)\n",
				sum.Snapshots, sum.Intact, sum.Repaired, sum.Unrepairable)
			return
		}
		fmt.Fprintf(w, "%d snapshots checked: %d intact, %d repaired, %d cannot be repaired; %d removed\n",
			sum.Snapshots, sum.Intact, sum.Repaired, sum.Unrepairable, sum.Removed)
		if sum.Repaired > sum.Removed && !o.forget {
			fmt.Fprintln(w, "the damaged originals are kept: 'cairn repair snapshots --forget' replaces them, then 'cairn prune' frees their space")
		}
	})
	if left > 0 && !o.dryRun {
		return fmt.Errorf("%d snapshots cannot be repaired (nothing of them can be read); --forget removes them", left)
	}
	return nil
}

func printRepairResult(g *globalOptions, s repair.Result, o repairSnapshotOptions) {
	j := repairSnapshotJSON{MessageType: "snapshot", ID: s.ID.String(), Status: string(s.Status), LostRanges: s.Lost, Removed: s.Removed}
	if s.Err != nil {
		j.Error = s.Err.Error()
	}
	if !s.New.IsNull() {
		j.NewID = s.New.String()
	}
	for _, d := range s.Damage {
		j.Damaged = append(j.Damaged, repairDamage{Path: d.Path, What: d.What})
	}
	g.printer.Result(j, func(w io.Writer) {
		head := "snapshot " + s.ID.Short()
		if s.Snapshot != nil {
			head += fmt.Sprintf(" (%s of %s on %s)", s.Snapshot.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(s.Snapshot.Paths, ", "), s.Snapshot.Host)
		}
		fmt.Fprintln(w, head)
		for _, d := range j.Damaged {
			fmt.Fprintf(w, "  lost: %s: %s\n", d.Path, d.What)
		}
		for _, l := range s.Lost {
			fmt.Fprintf(w, "  zeros: bytes %d to %d (%s)\n", l.Offset, l.Offset+l.Length, ui.Bytes(uint64(l.Length)))
		}
		switch {
		case s.Status == repair.Unrepairable:
			fmt.Fprintf(w, "  cannot be repaired: %v\n", s.Err)
		case o.dryRun:
			fmt.Fprintln(w, "  would save a repaired snapshot")
		default:
			fmt.Fprintf(w, "  saved the repaired snapshot %s\n", s.New.Short())
		}
		if s.Removed {
			fmt.Fprintln(w, "  removed the original")
		}
	})
}

// repairSelection returns the ids of the snapshots to repair: those named (by id
// prefix, which also names snapshot files that cannot be read, or "latest"), or
// every one that passes the filters; with no names and no filters, every snapshot
// file, readable or not.
func repairSelection(cmd *cobra.Command, r *repo.Repository, fo filterOptions, args []string) ([]repo.ID, error) {
	ctx := cmd.Context()
	flt, err := fo.filter()
	if err != nil {
		return nil, err
	}
	all, err := r.SnapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		if len(flt.Hosts) == 0 && len(flt.Tags) == 0 && len(flt.Paths) == 0 {
			return all, nil
		}
		list, err := snapshot.List(ctx, r, flt)
		if err != nil {
			return nil, err
		}
		var ids []repo.ID
		for _, e := range list {
			ids = append(ids, e.ID)
		}
		return ids, nil
	}
	var ids []repo.ID
	for _, a := range args {
		if a == "latest" {
			e, err := snapshot.Find(ctx, r, a, flt)
			if err != nil {
				return nil, err
			}
			ids = append(ids, e.ID)
			continue
		}
		var match []repo.ID
		for _, id := range all {
			if repo.HasPrefix(id, a) {
				match = append(match, id)
			}
		}
		switch len(match) {
		case 1:
			ids = append(ids, match[0])
		case 0:
			return nil, fmt.Errorf("snapshot %s: %w", a, snapshot.ErrNotFound)
		default:
			return nil, errors.New("snapshot prefix " + a + " is ambiguous")
		}
	}
	return ids, nil
}

// lostWarnings names the byte ranges of an image that a restore writes as zeros:
// those a repair found lost from the repository, and those that could not be
// read from the source when the image was made; of the whole disk, or of
// partition n (offsets then within the partition).
func lostWarnings(img *repo.Image, partition int) []string {
	var out []string
	for _, l := range zeroedRuns(img, img.Lost, partition) {
		out = append(out, l+" were lost from the repository and are written as zeros")
	}
	for _, l := range zeroedRuns(img, img.Unreadable, partition) {
		out = append(out, l+" could not be read from the source when the image was made and are written as zeros")
	}
	return out
}

// zeroedRuns names each part of ranges that lies in a region of img, as "bytes A
// to B of the disk (where, size)", or, for partition n > 0, only the parts in
// that partition as "bytes A to B of partition n (size)" with offsets within it.
func zeroedRuns(img *repo.Image, ranges []repo.ByteRange, partition int) []string {
	var out []string
	for _, l := range ranges {
		for _, reg := range img.Regions {
			s, e := max(l.Offset, reg.Offset), min(l.Offset+l.Length, reg.Offset+reg.Size)
			if s >= e {
				continue
			}
			where := fmt.Sprintf("gap at %d", reg.Offset)
			if reg.Partition != nil {
				where = fmt.Sprintf("partition %d", reg.Partition.Number)
			}
			switch {
			case partition == 0:
				out = append(out, fmt.Sprintf("bytes %d to %d of the disk (%s, %s)", s, e, where, ui.Bytes(uint64(e-s))))
			case reg.Partition != nil && reg.Partition.Number == partition:
				out = append(out, fmt.Sprintf("bytes %d to %d of partition %d (%s)", s-reg.Offset, e-reg.Offset, partition, ui.Bytes(uint64(e-s))))
			}
		}
	}
	return out
}
