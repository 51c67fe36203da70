package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cairn/internal/imager"
	"cairn/internal/repo"
	"cairn/internal/snapshot"
	"cairn/internal/ui"
)

func newImageCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "System images of whole disks and partitions",
	}
	cmd.AddCommand(newImageCreateCommand(g), newImageRestoreCommand(g), newImageShowCommand(g))
	return cmd
}

type imageCreateOptions struct {
	tags      []string
	host      string
	chunkSize int
	live      imager.LiveOptions
}

func newImageCreateCommand(g *globalOptions) *cobra.Command {
	var o imageCreateOptions
	cmd := &cobra.Command{
		Use:   "create SOURCE...",
		Short: "Image a disk or partition (a block device or a disk image file)",
		Long: `Image each SOURCE: a whole disk with its partition table, the gaps between
partitions and every partition, or one partition. Only the blocks a filesystem uses
are read (ext2/3/4, FAT, NTFS; swap keeps its header); other content is read whole,
and all-zero chunks are never stored.

A filesystem mounted read-write is imaged only with --snapshot lvm (an LVM
snapshot made and removed around the run), --freeze (fsfreeze) or --force (the
image is then only crash-consistent).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("image create needs at least one source")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runImageCreate(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.tags, "tag", nil, "add `TAG` to the snapshot (repeatable)")
	f.StringVar(&o.host, "host", "", "record `HOST` as the snapshot's host (default: this computer's name)")
	f.IntVar(&o.chunkSize, "chunk-size", imager.DefaultChunkSize, "chunk size in `BYTES` (a power of two, 4 KiB to 8 MiB)")
	f.StringVar(&o.live.Snapshot, "snapshot", "", "image a mounted LVM volume through a snapshot: `lvm`")
	f.BoolVar(&o.live.Freeze, "freeze", false, "freeze mounted filesystems (fsfreeze) while they are imaged")
	f.BoolVar(&o.live.Force, "force", false, "image mounted read-write filesystems as they are (crash-consistent)")
	return cmd
}

// imageSummary is the JSON summary of an image.
type imageSummary struct {
	MessageType string  `json:"message_type"` // "summary"
	SnapshotID  string  `json:"snapshot_id"`
	Source      string  `json:"source"`
	Parent      string  `json:"parent,omitempty"`
	DiskSize    int64   `json:"disk_size"`
	BytesRead   uint64  `json:"bytes_read"`
	DataAdded   uint64  `json:"data_added"`
	Duration    float64 `json:"total_duration"`
	// Unreadable lists the runs of the source that could not be read (bad
	// sectors), stored as zeros.
	Unreadable []repo.ByteRange `json:"unreadable,omitempty"`
}

func runImageCreate(cmd *cobra.Command, g *globalOptions, o imageCreateOptions, sources []string) error {
	ctx := cmd.Context()
	if o.live.Snapshot != "" && o.live.Snapshot != "lvm" {
		return usageError("--snapshot takes only 'lvm'")
	}
	for _, s := range sources {
		if _, err := os.Stat(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	r, err := g.openRepository(ctx, true)
	if err != nil {
		return err
	}
	defer r.Close()
	unlock, err := g.lock(cmd, r, false)
	if err != nil {
		return err
	}
	defer unlock()
	host := o.host
	if host == "" {
		host, _ = os.Hostname()
	}
	var failed, unreadable int
	for _, src := range sources {
		complete, err := imageOne(cmd, g, r, o, host, src)
		if err != nil {
			g.printer.Error(src, err)
			failed++
		} else if !complete {
			unreadable++
		}
	}
	switch {
	case failed == len(sources):
		return fmt.Errorf("no image was saved")
	case failed > 0:
		return partialError("%d of %d sources could not be imaged", failed, len(sources))
	case unreadable > 0:
		return partialError("%d of %d images were saved with unreadable parts of their source stored as zeros", unreadable, len(sources))
	}
	return nil
}

// imageOne images src and reports whether every byte of it could be read (the
// image is saved either way when err is nil).
func imageOne(cmd *cobra.Command, g *globalOptions, r *repo.Repository, o imageCreateOptions, host, src string) (complete bool, err error) {
	ctx := cmd.Context()
	live, err := imager.PrepareSource(src, o.live, g.printer.Warning)
	if err != nil {
		return false, err
	}
	defer func() {
		// A filesystem left frozen or a snapshot left behind must be said.
		if err := live.Release(); err != nil {
			g.printer.Error(src, err)
		}
	}()
	opts := imager.CreateOptions{Host: host, Tags: o.tags, ChunkSize: o.chunkSize, Source: src}
	if u, err := user.Current(); err == nil {
		opts.User = u.Username
	}
	if parent, ok, err := snapshot.FindParent(ctx, r, repo.KindImage, host, []string{src}); err != nil {
		return false, err
	} else if ok {
		opts.ParentID = &parent.ID
	}
	progress := g.printer.NewProgress("image " + src)
	opts.Progress = imageProgress{progress, g.printer}
	opts.Warn = func(msg string) { g.printer.Warning(src, msg) }
	res, err := imager.Create(ctx, r, live.Path, opts)
	progress.Done()
	if err != nil {
		return false, err
	}
	s := res.Snapshot.Summary
	sum := imageSummary{MessageType: "summary", SnapshotID: res.ID.String(), Source: src, DiskSize: res.Snapshot.Image.Size,
		BytesRead: s.TotalBytes, DataAdded: s.DataAdded, Duration: s.End.Sub(s.Start).Seconds(),
		Unreadable: res.Snapshot.Image.Unreadable}
	if opts.ParentID != nil {
		sum.Parent = opts.ParentID.String()
	}
	g.printer.Result(sum, func(w io.Writer) {
		if g.quiet {
			return
		}
		fmt.Fprintf(w, "%s: %s disk, read %s in use, added %s to the repository in %s\n", src,
			ui.Bytes(uint64(sum.DiskSize)), ui.Bytes(s.TotalBytes), ui.Bytes(s.DataAdded), ui.Duration(s.End.Sub(s.Start)))
		fmt.Fprintf(w, "snapshot %s saved\n", res.ID.Short())
		if n := unreadableBytes(sum.Unreadable); n > 0 {
			fmt.Fprintf(w, "%s in %d runs could not be read from %s and are stored as zeros\n", ui.Bytes(uint64(n)), len(sum.Unreadable), src)
		}
	})
	return len(sum.Unreadable) == 0, nil
}

// unreadableBytes returns the bytes in runs.
func unreadableBytes(runs []repo.ByteRange) int64 {
	var n int64
	for _, l := range runs {
		n += l.Length
	}
	return n
}

// imageProgress shows an imager's events on a ui.Progress.
type imageProgress struct {
	p *ui.Progress
	g *ui.Printer
}

func (i imageProgress) Planned(n int64) { i.p.SetTotal(0, n, true) }
func (i imageProgress) Bytes(n int64)   { i.p.AddBytes(n) }
func (i imageProgress) Message(format string, args ...any) {
	i.g.Verbose(1, format, args...)
}

type imageRestoreOptions struct {
	partition int
	grow      string
	force     bool
	noVerify  bool
	filter    filterOptions
}

func newImageRestoreCommand(g *globalOptions) *cobra.Command {
	var o imageRestoreOptions
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT TARGET",
		Short: "Write an image snapshot to a block device or file",
		Long: `Write an image snapshot to TARGET, a block device or a file (created if
missing): partition table, gaps and every partition, unused blocks as zeros.
Everything written is read back and checked against the stored hashes.

On a larger target the GPT backup header moves to the new end; --grow[=N] lets
partition N (default: the largest filesystem) take the new space, grows its
filesystem, and moves the partitions after it to the end of the disk.

TARGET must not be mounted or hold the repository; one that already has a
partition table needs --force.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return runImageRestore(cmd, g, o, args[0], args[1]) },
	}
	f := cmd.Flags()
	f.IntVar(&o.partition, "partition", 0, "restore only partition `N` into TARGET")
	f.StringVar(&o.grow, "grow", "", "grow partition `N` (default: the largest filesystem) into the extra space")
	f.Lookup("grow").NoOptDefVal = "auto"
	f.BoolVar(&o.force, "force", false, "overwrite a target that has a partition table")
	f.BoolVar(&o.noVerify, "no-verify", false, "do not read back what was written")
	o.filter.add(cmd)
	return cmd
}

type imageRestoreSummary struct {
	MessageType  string   `json:"message_type"` // "summary"
	SnapshotID   string   `json:"snapshot_id"`
	Target       string   `json:"target"`
	BytesWritten int64    `json:"bytes_written"`
	Verified     int64    `json:"chunks_verified"`
	Grown        int      `json:"grown_partition,omitempty"`
	GrownTo      int64    `json:"grown_to,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
	Duration     float64  `json:"total_duration"`
}

func runImageRestore(cmd *cobra.Command, g *globalOptions, o imageRestoreOptions, name, target string) error {
	ctx := cmd.Context()
	grow := -1
	switch o.grow {
	case "":
	case "auto":
		grow = 0
	default:
		n, err := strconv.Atoi(o.grow)
		if err != nil || n < 1 {
			return usageError("--grow takes a partition number")
		}
		grow = n
	}
	r, err := g.openRepository(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	flt, err := o.filter.filter()
	if err != nil {
		return err
	}
	flt.Kind = repo.KindImage
	s, err := snapshot.Find(ctx, r, name, flt)
	if err != nil {
		return err
	}
	if s.Kind != repo.KindImage {
		return fmt.Errorf("snapshot %s is a file snapshot; use 'cairn restore'", s.ID.Short())
	}
	opts := imager.RestoreOptions{Partition: o.partition, Grow: grow, Force: o.force, NoVerify: o.noVerify}
	if l, err := g.location(); err == nil {
		opts.RepositoryPath = l.localPath()
	}
	progress := g.printer.NewProgress("restore " + target)
	opts.Progress = imageProgress{progress, g.printer}
	res, err := imager.Restore(ctx, r, s.Snapshot, target, opts)
	progress.Done()
	if err != nil {
		if errors.Is(err, imager.ErrTooSmall) {
			return fmt.Errorf("%w (nothing was written)", err)
		}
		return err
	}
	res.Warnings = append(res.Warnings, lostWarnings(s.Image, o.partition)...)
	for _, w := range res.Warnings {
		g.printer.Warning(target, w)
	}
	sum := imageRestoreSummary{MessageType: "summary", SnapshotID: s.ID.String(), Target: target, BytesWritten: res.BytesWritten,
		Verified: res.Verified, Grown: res.Grown, GrownTo: res.GrownTo, Warnings: res.Warnings, Duration: progress.Elapsed().Seconds()}
	g.printer.Result(sum, func(w io.Writer) {
		if g.quiet {
			return
		}
		fmt.Fprintf(w, "wrote %s of snapshot %s to %s in %s", ui.Bytes(uint64(res.BytesWritten)), s.ID.Short(), target, ui.Duration(progress.Elapsed()))
		if !o.noVerify {
			fmt.Fprintf(w, ", %d chunks read back and verified", res.Verified)
		}
		fmt.Fprintln(w)
		if res.Grown != 0 {
			fmt.Fprintf(w, "partition %d grown to %s\n", res.Grown, ui.Bytes(uint64(res.GrownTo)))
		}
	})
	if len(res.Warnings) > 0 {
		return partialError("image restored with %d warnings", len(res.Warnings))
	}
	return nil
}

func newImageShowCommand(g *globalOptions) *cobra.Command {
	var f filterOptions
	cmd := &cobra.Command{
		Use:   "show SNAPSHOT",
		Short: "Show the disk, partition table and filesystems of an image snapshot",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			flt, err := f.filter()
			if err != nil {
				return err
			}
			flt.Kind = repo.KindImage
			s, err := snapshot.Find(ctx, r, args[0], flt)
			if err != nil {
				return err
			}
			if s.Image == nil {
				return fmt.Errorf("snapshot %s is not an image snapshot", s.ID.Short())
			}
			img := s.Image
			g.printer.Result(map[string]any{"message_type": "image", "snapshot_id": s.ID.String(), "image": img}, func(w io.Writer) {
				fmt.Fprintf(w, "snapshot %s of %s on %s, %s\n", s.ID.Short(), img.Source, s.Host, s.Time.Local().Format("2006-01-02 15:04:05"))
				kind := "partition"
				if img.WholeDisk {
					kind = "disk"
				}
				fmt.Fprintf(w, "%s: %s (%d bytes), %d-byte sectors, table %s", kind, ui.Bytes(uint64(img.Size)), img.Size, img.SectorSize, img.Table)
				if img.DiskID != "" {
					fmt.Fprintf(w, " %s", img.DiskID)
				}
				fmt.Fprintln(w)
				if img.Model != "" || img.Serial != "" {
					fmt.Fprintf(w, "model %s, serial %s\n", img.Model, img.Serial)
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "#\tStart\tSize\tType\tName\tFS\tLabel\tFS UUID\tUsed")
				for _, reg := range img.Regions {
					p := reg.Partition
					if p == nil {
						continue
					}
					fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Number, reg.Offset, ui.Bytes(uint64(reg.Size)),
						firstNonEmpty(p.TypeName, p.Type), p.Name, p.FS, p.Label, p.FSUUID, ui.Bytes(uint64(p.UsedBytes)))
				}
				_ = tw.Flush()
				if len(img.Lost) > 0 {
					fmt.Fprintf(w, "repaired: %d ranges were lost from the repository and restore as zeros:\n", len(img.Lost))
					for _, l := range zeroedRuns(img, img.Lost, 0) {
						fmt.Fprintf(w, "  %s\n", l)
					}
				}
				if len(img.Unreadable) > 0 {
					fmt.Fprintf(w, "%d ranges could not be read from the source when the image was made and restore as zeros:\n", len(img.Unreadable))
					for _, l := range zeroedRuns(img, img.Unreadable, 0) {
						fmt.Fprintf(w, "  %s\n", l)
					}
				}
			})
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if strings.TrimSpace(x) != "" {
			return x
		}
	}
	return ""
}
