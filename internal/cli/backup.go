package cli

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"cairn/internal/archiver"
	"cairn/internal/snapshot"
	"cairn/internal/ui"
)

type backupOptions struct {
	excludes      []string
	excludeFiles  []string
	oneFileSystem bool
	tags          []string
	host          string
	force         bool
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:   "backup PATH...",
		Short: "Back up files and folders",
		Long: `Back up files and folders into a new snapshot. Files unchanged since the last
snapshot of the same host and paths are not read again.

Exit status: 0 saved; 3 saved, but some files could not be read (listed); 1 failed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("backup needs at least one path")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runBackup(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.excludes, "exclude", "e", nil, "leave out files matching `PATTERN` (a name glob, or a path glob with '/')")
	f.StringArrayVar(&o.excludeFiles, "exclude-file", nil, "read exclude patterns from `FILE`, one a line")
	f.BoolVarP(&o.oneFileSystem, "one-file-system", "x", false, "stay on the filesystem of each path")
	f.StringArrayVar(&o.tags, "tag", nil, "add `TAG` to the snapshot (repeatable)")
	f.StringVar(&o.host, "host", "", "record `HOST` as the snapshot's host (default: this computer's name)")
	f.BoolVar(&o.force, "force", false, "read every file again, ignoring the parent snapshot")
	return cmd
}

// backupSummary is the JSON summary of a backup.
type backupSummary struct {
	MessageType     string   `json:"message_type"` // "summary"
	SnapshotID      string   `json:"snapshot_id"`
	Parent          string   `json:"parent,omitempty"`
	FilesNew        uint64   `json:"files_new"`
	FilesChanged    uint64   `json:"files_changed"`
	FilesUnmodified uint64   `json:"files_unmodified"`
	DirsNew         uint64   `json:"dirs_new"`
	DirsChanged     uint64   `json:"dirs_changed"`
	DirsUnmodified  uint64   `json:"dirs_unmodified"`
	TotalFiles      uint64   `json:"total_files_processed"`
	TotalBytes      uint64   `json:"total_bytes_processed"`
	DataAdded       uint64   `json:"data_added"`
	Duration        float64  `json:"total_duration"`
	Errors          []string `json:"errors,omitempty"`
}

func runBackup(cmd *cobra.Command, g *globalOptions, o backupOptions, paths []string) error {
	ctx := cmd.Context()
	excludes := o.excludes
	for _, f := range o.excludeFiles {
		lines, err := readLines(f)
		if err != nil {
			return fmt.Errorf("exclude file: %w", err)
		}
		excludes = append(excludes, lines...)
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			return fmt.Errorf("%s: %w", p, archiver.ErrSourceMissing)
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
	opts := archiver.Options{
		Host: host, Tags: o.tags, Excludes: excludes, OneFileSystem: o.oneFileSystem,
	}
	if u, err := user.Current(); err == nil {
		opts.User = u.Username
	}
	if l, err := g.location(); err == nil && l.localPath() != "" {
		opts.ExcludePaths = append(opts.ExcludePaths, l.localPath(), keyFilePath(l.localPath()))
	}
	if !o.force {
		abs, err := absPaths(paths)
		if err != nil {
			return err
		}
		parent, ok, err := snapshot.FindParent(ctx, r, "file", host, abs)
		if err != nil {
			return err
		}
		if ok {
			opts.Parent, opts.ParentID = parent.Snapshot, &parent.ID
			g.printer.Verbose(1, "using parent snapshot %s", parent.ID.Short())
		}
	}
	progress := g.printer.NewProgress("backup")
	opts.Progress = backupProgress{progress}
	res, err := archiver.Backup(ctx, r, paths, opts)
	progress.Done()
	if err != nil {
		return err
	}
	s := res.Snapshot.Summary
	sum := backupSummary{
		MessageType: "summary", SnapshotID: res.ID.String(),
		FilesNew: s.FilesNew, FilesChanged: s.FilesChanged, FilesUnmodified: s.FilesUnmodified,
		DirsNew: s.DirsNew, DirsChanged: s.DirsChanged, DirsUnmodified: s.DirsUnmodified,
		TotalFiles: s.TotalFiles, TotalBytes: s.TotalBytes, DataAdded: s.DataAdded,
		Duration: s.End.Sub(s.Start).Seconds(),
	}
	if opts.ParentID != nil {
		sum.Parent = opts.ParentID.String()
	}
	for _, e := range res.Errors {
		sum.Errors = append(sum.Errors, e.Error())
	}
	g.printer.Result(sum, func(w io.Writer) {
		if g.quiet {
			return
		}
		fmt.Fprintf(w, "Files:  %d new, %d changed, %d unmodified\n", s.FilesNew, s.FilesChanged, s.FilesUnmodified)
		fmt.Fprintf(w, "Dirs:   %d new, %d changed, %d unmodified\n", s.DirsNew, s.DirsChanged, s.DirsUnmodified)
		fmt.Fprintf(w, "Added to the repository: %s\n", ui.Bytes(s.DataAdded))
		fmt.Fprintf(w, "processed %d files, %s in %s\n", s.TotalFiles, ui.Bytes(s.TotalBytes), ui.Duration(s.End.Sub(s.Start)))
		fmt.Fprintf(w, "snapshot %s saved\n", res.ID.Short())
	})
	if len(res.Errors) > 0 {
		return partialError("snapshot %s saved, but %d files or folders could not be read", res.ID.Short(), len(res.Errors))
	}
	return nil
}

// backupProgress shows an archiver's events on a ui.Progress.
type backupProgress struct{ p *ui.Progress }

func (b backupProgress) Scanned(files, bytes int64, done bool) { b.p.SetTotal(files, bytes, done) }
func (b backupProgress) FileDone(string, int64, archiver.FileStatus) {
	b.p.AddFile()
}
func (b backupProgress) BytesRead(n int64)            { b.p.AddBytes(n) }
func (b backupProgress) Error(path string, err error) { b.p.Error(path, err) }
func (b backupProgress) Warning(path, msg string)     { b.p.Warning(path, msg) }

var _ = time.Second
