package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newMountCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Show every snapshot as a read-only folder (FUSE; not on Windows)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("cairn mount needs FUSE and is not available on Windows; use 'cairn ls', 'cairn cat' and 'cairn restore'")
		},
	}
}
