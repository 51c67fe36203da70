//go:build !windows

package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"cairn/internal/mount"
)

func newMountCommand(g *globalOptions) *cobra.Command {
	var opts mount.Options
	cmd := &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Show every snapshot as a read-only folder (FUSE)",
		Long: `Mount the repository read-only at MOUNTPOINT: snapshots/ID/ for every
snapshot, hosts/HOST/ and tags/TAG/ with links to them, and latest. An image
snapshot's folder holds disk.img, partN.img (loop-mountable) and partN/ (its files).

Unmount with Ctrl-C or fusermount -u MOUNTPOINT.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir := args[0]
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("mount point %s is not a folder", dir)
			}
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			m, err := mount.Mount(ctx, r, dir, opts)
			if err != nil {
				return err
			}
			g.printer.Message("repository mounted at %s; Ctrl-C or 'fusermount -u %s' unmounts it", dir, dir)
			done := make(chan struct{})
			go func() {
				m.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-ctx.Done():
				// Files may still be open: try again until the kernel lets go.
				for m.Unmount() != nil {
					select {
					case <-done:
					case <-time.After(500 * time.Millisecond):
						continue
					}
					break
				}
				<-done
			}
			g.printer.Message("unmounted %s", dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.AllowOther, "allow-other", false, "let other users read the mount")
	cmd.Flags().BoolVar(&opts.Debug, "debug-fuse", false, "log every FUSE request")
	return cmd
}
