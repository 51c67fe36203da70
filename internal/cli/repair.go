package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func newRepairCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Bring a damaged repository back to a usable state",
	}
	index := &cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the packs",
		Long: `Read the header of every pack and write a new index of what the packs hold,
replacing every index file: for a lost or damaged index. Packs whose header cannot
be read are left out of it and listed; 'cairn prune' then deletes them.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
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
			var badList []string
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
	cmd.AddCommand(index)
	return cmd
}
