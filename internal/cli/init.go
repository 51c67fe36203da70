package cli

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	"cairn/internal/storage"
)

func newInitCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a repository",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := g.location()
			if err != nil {
				return err
			}
			r, err := g.initRepository(cmd.Context(), l)
			if errors.Is(err, storage.ErrExists) {
				return err
			}
			if err != nil {
				return err
			}
			g.printer.Result(map[string]any{"message_type": "summary", "id": r.ID(), "repository": r.Storage().Location()}, func(w io.Writer) {})
			return nil
		},
	}
}
