package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cairn/internal/snapshot"
	"cairn/internal/stats"
	"cairn/internal/ui"
)

type countsJSON struct {
	ID               string  `json:"id,omitempty"`
	Snapshots        int     `json:"snapshots"`
	Logical          uint64  `json:"logical_size"`
	Blobs            int     `json:"blobs"`
	Raw              uint64  `json:"raw_size"`
	Stored           uint64  `json:"stored_size"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
}

func toCounts(id string, c stats.Counts) countsJSON {
	return countsJSON{ID: id, Snapshots: c.Snapshots, Logical: c.Logical, Blobs: c.Blobs, Raw: c.Raw, Stored: c.Stored,
		DedupRatio: c.DedupRatio(), CompressionRatio: c.CompressionRatio()}
}

func newStatsCommand(g *globalOptions) *cobra.Command {
	var f filterOptions
	cmd := &cobra.Command{
		Use:   "stats [SNAPSHOT...]",
		Short: "Show sizes: logical, stored, dedup and compression ratios",
		Long: `Show, for each snapshot (or the ones named) and for all of them together, the
bytes they stand for (logical), the unique data they use before (raw) and after
(stored) compression, and the dedup (logical/raw) and compression (raw/stored) ratios.`,
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
			var list []snapshot.Entry
			if len(args) == 0 {
				if list, err = snapshot.List(ctx, r, flt); err != nil {
					return err
				}
			}
			for _, a := range args {
				e, err := snapshot.Find(ctx, r, a, flt)
				if err != nil {
					return err
				}
				list = append(list, e)
			}
			counter := stats.NewCounter(r)
			var rows []countsJSON
			for _, e := range list {
				c, err := counter.Add(ctx, e.Snapshot)
				if err != nil {
					return fmt.Errorf("snapshot %s: %w", e.ID.Short(), err)
				}
				rows = append(rows, toCounts(e.ID.String(), c))
			}
			total := toCounts("", counter.Total())
			g.printer.Result(map[string]any{"message_type": "summary", "snapshots": rows, "total": total}, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tLogical\tRaw\tStored\tDedup\tCompression")
				for _, c := range append(rows, total) {
					id := "total"
					if c.ID != "" {
						id = c.ID[:8]
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2fx\t%.2fx\n", id, ui.Bytes(c.Logical), ui.Bytes(c.Raw), ui.Bytes(c.Stored), c.DedupRatio, c.CompressionRatio)
				}
				_ = tw.Flush()
			})
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
