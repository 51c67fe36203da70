package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cairn/internal/snapshot"
	"cairn/internal/ui"
)

// filterOptions select snapshots by host, tag and path.
type filterOptions struct {
	hosts, tags, paths []string
}

func (f *filterOptions) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.hosts, "host", nil, "only snapshots of `HOST` (repeatable)")
	fl.StringArrayVar(&f.tags, "tag", nil, "only snapshots with `TAG` (repeatable)")
	fl.StringArrayVar(&f.paths, "path", nil, "only snapshots of exactly these paths (repeatable)")
}

func (f *filterOptions) filter() (snapshot.Filter, error) {
	paths, err := absPaths(f.paths)
	if err != nil {
		return snapshot.Filter{}, err
	}
	return snapshot.Filter{Hosts: f.hosts, Tags: f.tags, Paths: paths}, nil
}

// snapshotJSON is a snapshot as listed in JSON.
type snapshotJSON struct {
	ID     string    `json:"id"`
	Short  string    `json:"short_id"`
	Time   time.Time `json:"time"`
	Host   string    `json:"host"`
	User   string    `json:"user,omitempty"`
	Kind   string    `json:"kind"`
	Paths  []string  `json:"paths"`
	Tags   []string  `json:"tags,omitempty"`
	Parent string    `json:"parent,omitempty"`
	Tree   string    `json:"tree,omitempty"`
	Size   uint64    `json:"size"`
	Files  uint64    `json:"files"`
}

func toJSON(e snapshot.Entry) snapshotJSON {
	j := snapshotJSON{ID: e.ID.String(), Short: e.ID.Short(), Time: e.Time, Host: e.Host, User: e.User,
		Kind: e.Kind, Paths: e.Paths, Tags: e.Tags, Tree: e.Tree.String()}
	if j.Paths == nil {
		j.Paths = []string{}
	}
	if e.Parent != nil {
		j.Parent = e.Parent.String()
	}
	if e.Summary != nil {
		j.Size, j.Files = e.Summary.TotalBytes, e.Summary.TotalFiles
	}
	if e.Image != nil {
		j.Size = uint64(e.Image.Size)
		j.Tree = ""
	}
	return j
}

func newSnapshotsCommand(g *globalOptions) *cobra.Command {
	var f filterOptions
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Args:  exactArgs(0),
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
			list, damaged, err := snapshot.ListAll(ctx, r, flt)
			if err != nil {
				return err
			}
			for id, err := range damaged {
				g.printer.Warning("snapshot "+id.Short(), fmt.Sprintf("%v; 'cairn repair snapshots --forget' removes it", err))
			}
			out := make([]snapshotJSON, 0, len(list))
			for _, e := range list {
				out = append(out, toJSON(e))
			}
			g.printer.Result(out, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTime\tHost\tKind\tPaths\tSize\tTags")
				for _, s := range out {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Short, s.Time.Local().Format("2006-01-02 15:04:05"),
						s.Host, s.Kind, strings.Join(s.Paths, ", "), ui.Bytes(s.Size), strings.Join(s.Tags, ","))
				}
				_ = tw.Flush()
				fmt.Fprintf(w, "%d snapshots\n", len(out))
			})
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
