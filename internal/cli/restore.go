package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"cairn/internal/restorer"
	"cairn/internal/ui"
)

type restoreOptions struct {
	target           string
	include, exclude []string
	verify           bool
	filter           filterOptions
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT[:PATH] --target DIR",
		Short: "Restore files of a snapshot into a folder",
		Long: `Restore a snapshot, or the folder or file at PATH inside it, into DIR with all
metadata. Nothing is written outside DIR.

Exit status: 0 restored; 3 restored, but some entries failed (listed); 1 failed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRestore(cmd, g, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.target, "target", "t", "", "restore into `DIR` (required)")
	f.StringArrayVarP(&o.include, "include", "i", nil, "restore only what matches `PATTERN`")
	f.StringArrayVarP(&o.exclude, "exclude", "e", nil, "leave out what matches `PATTERN`")
	f.BoolVar(&o.verify, "verify", false, "read every restored file back and compare it with the snapshot")
	o.filter.add(cmd)
	return cmd
}

// restoreSummary is the JSON summary of a restore.
type restoreSummary struct {
	MessageType string   `json:"message_type"` // "summary"
	SnapshotID  string   `json:"snapshot_id"`
	Target      string   `json:"target"`
	Files       int64    `json:"files_restored"`
	Dirs        int64    `json:"dirs_restored"`
	Others      int64    `json:"others_restored"`
	Bytes       int64    `json:"bytes_restored"`
	Verified    int64    `json:"files_verified"`
	Duration    float64  `json:"total_duration"`
	Errors      []string `json:"errors,omitempty"`
}

func runRestore(cmd *cobra.Command, g *globalOptions, o restoreOptions, spec string) error {
	if o.target == "" {
		return usageError("restore needs --target DIR")
	}
	name, p, _ := strings.Cut(spec, ":")
	if p == "" {
		p = "/"
	}
	ctx := cmd.Context()
	r, err := g.openRepository(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	e, s, err := findEntry(ctx, g, r, name, p, o.filter)
	if err != nil {
		return err
	}
	progress := g.printer.NewProgress("restore")
	res, err := restorer.Restore(ctx, e, cleanPath(p), restorer.Options{
		Target: o.target, Include: o.include, Exclude: o.exclude, Verify: o.verify, Repository: r,
		Progress: restoreProgress{progress},
	})
	progress.Done()
	if err != nil {
		return err
	}
	sum := restoreSummary{MessageType: "summary", SnapshotID: s.ID.String(), Target: o.target,
		Files: res.Files, Dirs: res.Dirs, Others: res.Others, Bytes: res.Bytes, Verified: res.Verified,
		Duration: progress.Elapsed().Seconds()}
	for _, e := range res.Errors {
		sum.Errors = append(sum.Errors, e.Error())
	}
	g.printer.Result(sum, func(w io.Writer) {
		if g.quiet {
			return
		}
		fmt.Fprintf(w, "restored %d files, %d folders, %d other entries, %s from snapshot %s into %s in %s\n",
			res.Files, res.Dirs, res.Others, ui.Bytes(uint64(res.Bytes)), s.ID.Short(), o.target, ui.Duration(progress.Elapsed()))
		if o.verify {
			fmt.Fprintf(w, "verified %d files\n", res.Verified)
		}
	})
	if len(res.Errors) > 0 {
		return partialError("%d entries could not be restored", len(res.Errors))
	}
	return nil
}

// restoreProgress shows a restorer's events on a ui.Progress.
type restoreProgress struct{ p *ui.Progress }

func (r restoreProgress) Planned(files, bytes int64)   { r.p.SetTotal(files, bytes, true) }
func (r restoreProgress) FileDone(string, int64)       { r.p.AddFile() }
func (r restoreProgress) BytesWritten(n int64)         { r.p.AddBytes(n) }
func (r restoreProgress) Error(path string, err error) { r.p.Error(path, err) }
