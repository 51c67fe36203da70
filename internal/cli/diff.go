package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"cairn/internal/vfs"
)

type changeJSON struct {
	MessageType string `json:"message_type"` // "change"
	Path        string `json:"path"`
	Modifier    string `json:"modifier"`
}

type diffSummary struct {
	MessageType  string `json:"message_type"` // "summary"
	Added        int    `json:"added"`
	Removed      int    `json:"removed"`
	Modified     int    `json:"modified"`
	TypeChanged  int    `json:"type_changed"`
	MetaChanged  int    `json:"metadata_changed"`
	BytesAdded   uint64 `json:"bytes_added"`
	BytesRemoved uint64 `json:"bytes_removed"`
}

func newDiffCommand(g *globalOptions) *cobra.Command {
	var f filterOptions
	cmd := &cobra.Command{
		Use:   "diff SNAPSHOT1 SNAPSHOT2",
		Short: "Show what changed between two snapshots",
		Long: `Show what changed from SNAPSHOT1 to SNAPSHOT2, one entry a line:
+ added, - removed, M content modified, T type changed, U metadata only.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			a, _, err := findEntry(ctx, g, r, args[0], "/", f)
			if err != nil {
				return err
			}
			b, _, err := findEntry(ctx, g, r, args[1], "/", f)
			if err != nil {
				return err
			}
			var sum diffSummary
			sum.MessageType = "summary"
			err = vfs.Diff(ctx, a, b, func(c vfs.Change) error {
				switch c.Kind {
				case vfs.Added:
					sum.Added++
					sum.BytesAdded += c.New.Size
				case vfs.Removed:
					sum.Removed++
					sum.BytesRemoved += c.Old.Size
				case vfs.Modified:
					sum.Modified++
					if c.New.Size > c.Old.Size {
						sum.BytesAdded += c.New.Size - c.Old.Size
					} else {
						sum.BytesRemoved += c.Old.Size - c.New.Size
					}
				case vfs.TypeChg:
					sum.TypeChanged++
				case vfs.MetaChg:
					sum.MetaChanged++
				}
				name := c.Path
				if (c.New != nil && c.New.Type == "dir") || (c.New == nil && c.Old.Type == "dir") {
					name += "/"
				}
				g.printer.Result(changeJSON{MessageType: "change", Path: c.Path, Modifier: string(c.Kind)}, func(w io.Writer) {
					fmt.Fprintf(w, "%-4s %s\n", c.Kind, name)
				})
				return nil
			})
			if err != nil {
				return err
			}
			g.printer.Result(sum, func(w io.Writer) {
				if g.quiet {
					return
				}
				fmt.Fprintf(w, "\n%d added, %d removed, %d modified, %d type changed, %d metadata changed\n",
					sum.Added, sum.Removed, sum.Modified, sum.TypeChanged, sum.MetaChanged)
			})
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
