package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func newCatCommand(g *globalOptions, name string) *cobra.Command {
	var f filterOptions
	cmd := &cobra.Command{
		Use:   name + " SNAPSHOT PATH",
		Short: "Print a file of a snapshot",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			e, _, err := findEntry(ctx, g, r, args[0], args[1], f)
			if err != nil {
				return err
			}
			file, err := e.Open(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			out := g.printer.Out()
			return file.Chunks(ctx, runtime.GOMAXPROCS(0), func(off int64, data []byte) error {
				_, err := out.Write(data)
				return err
			})
		},
	}
	f.add(cmd)
	return cmd
}
