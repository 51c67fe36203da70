package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"cairn/internal/checker"
)

type checkSummary struct {
	MessageType string   `json:"message_type"` // "summary"
	Snapshots   int      `json:"snapshots"`
	Trees       int      `json:"trees"`
	Packs       int      `json:"packs"`
	Blobs       int      `json:"blobs"`
	BytesRead   int64    `json:"bytes_read"`
	Problems    []string `json:"problems"`
	Affected    []string `json:"affected,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
}

func newCheckCommand(g *globalOptions) *cobra.Command {
	var readData bool
	var subset string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository",
		Long: `Verify the repository's structure: index files, packs and their headers, every
snapshot and every tree it reaches. With --read-data, also read every blob and
verify it against its id.

Exit status: 0 no problems; 1 problems found (listed).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			g.bypassCache = true // check the stored copies, not cached ones
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			unlock, err := g.lock(cmd, r, false)
			if err != nil {
				return err
			}
			defer unlock()
			progress := g.printer.NewProgress("check")
			opts := checker.Options{ReadData: readData || subset != ""}
			if subset != "" {
				if opts.ReadSubset, err = checker.Subset(subset); err != nil {
					return usageError("%v", err)
				}
			}
			opts.Progress = func(done, total int) {
				progress.SetTotal(int64(total), 0, true)
				progress.AddFile()
			}
			res, err := checker.Check(ctx, r, opts)
			progress.Done()
			if err != nil {
				return err
			}
			sum := checkSummary{MessageType: "summary", Snapshots: res.Snapshots, Trees: res.Trees, Packs: res.Packs,
				Blobs: res.Blobs, BytesRead: res.BytesRead, Problems: []string{}, Warnings: res.Warnings}
			for _, p := range res.Problems {
				sum.Problems = append(sum.Problems, p.Error())
				sum.Affected = append(sum.Affected, p.Affected...)
			}
			g.printer.Result(sum, func(w io.Writer) {
				for _, wn := range res.Warnings {
					fmt.Fprintf(w, "warning: %s\n", wn)
				}
				for _, p := range res.Problems {
					fmt.Fprintf(w, "error: %s\n", p.Error())
					for _, a := range p.Affected {
						fmt.Fprintf(w, "  affected: %s\n", a)
					}
				}
				if !g.quiet {
					fmt.Fprintf(w, "checked %d snapshots, %d trees, %d packs, %d blobs", res.Snapshots, res.Trees, res.Packs, res.Blobs)
					if opts.ReadData {
						fmt.Fprintf(w, ", read %d bytes", res.BytesRead)
					}
					fmt.Fprintln(w)
				}
				if len(res.Problems) == 0 && !g.quiet {
					fmt.Fprintln(w, "no problems found")
				}
			})
			if len(res.Problems) > 0 {
				return fmt.Errorf("the repository has %d problems", len(res.Problems))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify every blob")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "read and verify the blobs of a part of the packs: `n/m` or a percentage")
	return cmd
}
